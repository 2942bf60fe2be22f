"""VeRA (Kopiczko et al., ICLR 2024, arXiv 2310.11454): shared frozen random A, B; train two vectors.

    shared, frozen: A (r, d_in_max) ~ U(±√(6/d_in_max)),  B (d_out_max, r) ~ U(±√(6/r))
                    (Kaiming-uniform from a seeded generator; maxima over all adapted layers)
    a layer uses the slices A_s = A[:, :d_in], B_s = B[:d_out, :]
    trainable per layer: d (r) = d_initial, b (d_out) = 0      → ΔW = 0 at init
    Δy = b ⊙ ((d ⊙ (dropout(x) A_sᵀ)) B_sᵀ)      ΔW = (b[:,None] ⊙ B_s)(d[:,None] ⊙ A_s); no α
    trainable parameters per layer: d_out + r

r may exceed the layer's dimensions (the paper uses r = 1024 on RoBERTa-base's 768-wide layers).
The projections are saved with the adapter by default: regenerating them from the seed is not
guaranteed to give the same numbers across torch versions. Same forward as PEFT's `VeraConfig`.
VeRA wants ~10× LoRA's learning rate (config/methods/vera.yaml).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._layer import AdaptedLayer, check_dropout, positive_int
from ._registry import register


@dataclass
class VeRAOptions:
    r: int
    d_initial: float
    projection_seed: int
    save_projection: bool
    dropout: float

    def __post_init__(self):
        positive_int("r", self.r)
        check_dropout(self.dropout)


class VeRAProjections(nn.Module):
    """The frozen A and B every VeRA layer of a model shares (one module object, many parents)."""

    def __init__(self, shapes: list[tuple[int, int]], options: VeRAOptions):
        super().__init__()
        d_in_max = max(d_in for d_in, _ in shapes)
        d_out_max = max(d_out for _, d_out in shapes)
        gen = torch.Generator().manual_seed(options.projection_seed)
        A = torch.empty(options.r, d_in_max).uniform_(-1.0, 1.0, generator=gen) * math.sqrt(6.0 / d_in_max)
        B = torch.empty(d_out_max, options.r).uniform_(-1.0, 1.0, generator=gen) * math.sqrt(6.0 / options.r)
        self.register_buffer("vera_A", A)
        self.register_buffer("vera_B", B)
        self.save_with_adapter = options.save_projection


@register("vera", VeRAOptions, make_shared=VeRAProjections)
class VeRALayer(AdaptedLayer):
    def __init__(self, base_layer, options: VeRAOptions, shared: VeRAProjections = None, init_weights=True):
        super().__init__(base_layer, options, shared=shared)
        w = base_layer.weight
        self.dropout = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        self.vera_lambda_d = nn.Parameter(torch.full((options.r,), float(options.d_initial), dtype=w.dtype, device=w.device))
        self.vera_lambda_b = nn.Parameter(torch.zeros(self.out_features, dtype=w.dtype, device=w.device))

    def _projections(self):
        A = self.shared.vera_A[:, : self.in_features].to(self.vera_lambda_d.dtype)
        B = self.shared.vera_B[: self.out_features, :].to(self.vera_lambda_d.dtype)
        return A, B

    def adapter_forward(self, x):
        A, B = self._projections()
        x = self.dropout(x.to(self.vera_lambda_d.dtype))
        return self.vera_lambda_b * ((self.vera_lambda_d * (x @ A.T)) @ B.T)

    def delta_out_in(self):
        A, B = self._projections()
        return (self.vera_lambda_b[:, None] * B) @ (self.vera_lambda_d[:, None] * A)

    def peft_factors(self):
        """A rank-r LoRA: A' = d ⊙ A_s, B' = b ⊙ B_s (scaling 1)."""
        A, B = self._projections()
        return (self.vera_lambda_d[:, None] * A).detach(), (self.vera_lambda_b[:, None] * B).detach()
