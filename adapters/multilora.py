"""MultiLoRA (Wang et al. 2023, arXiv 2311.11501): n parallel LoRAs with learnable scalings.

    Δy = Σ_i s_i · (α/r) · dropout(x) A_iᵀ B_iᵀ        ΔW = (α/r) Σ_i s_i B_i A_i   (a rank n·r LoRA)
    A_i (r, d_in) and B_i (d_out, r) both Kaiming-uniform (B is *not* zero);
    s_i initialised to zero, so ΔW = 0 at init
    trainable parameters per layer: n · r (d_in + d_out) + n   (scalar s; n · d_out per-channel)

The paper says "learnable per-module scaling" without pinning its shape down publicly: the default
is a scalar per module (`scaling: scalar`); `scaling: channel` gives each module a d_out vector.
The closest public code, MTL-LoRA's MultiLoRA baseline (pUmpKin-Co/MTL-LoRA 7848a70, checked in
tests/test_official_forward.py), has s per output channel (our `scaling: channel`) and multiplies
it by α/r, as here (ΔW above):
α/r means what it means for the LoRA baseline compared against, and s starts at 0 either way; but
Adam's steps on s are about lr in size whatever the gradient's scale, so each step of s moves ΔW by
(α/r)× what an unscaled s would — at α/r = 2, twice. `alpha: r` (α/r = 1) gives the unscaled form.
Parameter-matched comparisons: n modules of rank r vs one LoRA of rank n·r, or rank r/n vs rank r.
The paper's analysis — a flatter ("more democratic") singular spectrum of ΔW than LoRA's — is
computed for every method by the suite's analysis stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._layer import AdaptedLayer, check_dropout, kaiming_uniform_, positive_int, rank_problem
from ._registry import register

SCALINGS = ("scalar", "channel")


@dataclass
class MultiLoRAOptions:
    r: int
    alpha: float
    dropout: float
    n_modules: int
    scaling: str

    def __post_init__(self):
        positive_int("r", self.r)
        positive_int("n_modules", self.n_modules)
        check_dropout(self.dropout)
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")


@register("multilora", MultiLoRAOptions)
class MultiLoRALayer(AdaptedLayer):
    def __init__(self, base_layer, options: MultiLoRAOptions, shared=None, init_weights=True):
        super().__init__(base_layer, options)
        w = base_layer.weight
        n, r = options.n_modules, options.r
        self.scaling = options.alpha / r
        self.dropout = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        kw = dict(dtype=w.dtype, device=w.device)
        self.multi_A = nn.Parameter(torch.zeros(n, r, self.in_features, **kw))
        self.multi_B = nn.Parameter(torch.zeros(n, self.out_features, r, **kw))
        s_shape = (n,) if options.scaling == "scalar" else (n, self.out_features)
        self.multi_scale = nn.Parameter(torch.zeros(s_shape, **kw))
        if init_weights:
            kaiming_uniform_(self.multi_A)
            kaiming_uniform_(self.multi_B)

    @classmethod
    def check_shape(cls, d_in, d_out, options):
        return rank_problem(options.n_modules * options.r, d_in, d_out, label="n_modules·r")

    def _stacked(self):
        """(A_cat (n·r, d_in), B_cat (d_out, n·r)) with each B_i already multiplied by s_i."""
        n, d_out, r = self.multi_B.shape
        s = self.multi_scale[:, None, None] if self.multi_scale.dim() == 1 else self.multi_scale[:, :, None]
        B = (self.multi_B * s).permute(1, 0, 2).reshape(d_out, n * r)
        return self.multi_A.reshape(n * r, -1), B

    def adapter_forward(self, x):
        A, B = self._stacked()
        x = self.dropout(x.to(A.dtype))
        return (x @ A.T) @ B.T * self.scaling

    def delta_out_in(self):
        A, B = self._stacked()
        return B @ A * self.scaling

    def peft_factors(self):
        """Exactly a rank n·r LoRA (scaling 1)."""
        A, B = self._stacked()
        return A.detach(), (B * self.scaling).detach()
