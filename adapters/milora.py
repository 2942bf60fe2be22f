"""MiLoRA (Wang et al. 2024, arXiv 2406.09044): LoRA started in the *minor* singular subspace of W0.

    U, S, Vh = svd(W0)   (singular values descending);  s = α / r
    take the last r components (U_m, S_m, Vh_m); S_m ← S_m / s
    B = U_m diag(√S_m) (d_out, r)      A = diag(√S_m) Vh_m (r, d_in)
    frozen base W_res = W0 − s·B A     (the principal part; output unchanged at init)
    h = W_res x + s · B A dropout(x)   merge adds s·B A into W_res; params r (d_in + d_out)

`init`: "minor" (the paper), "principal" (the first r components = PiSSA, the paper's ablation)
or "random" (r components drawn at random from the torch RNG). The checkpoint carries the initial
factors (A0, B0) so that W_res = W0 − s B0 A0 is rebuilt exactly on load; exported to PEFT the
update is an exact rank-2r LoRA over the original base: ΔW_total = s (B A − B0 A0).
Tiny check: W0 = diag(5, 3, 1), r = 1, α = 1 → s·B A = diag(0, 0, 1), W_res = diag(5, 3, 0).
With α ≠ r this differs from the official init, which takes α = r (s = 1) and does not divide S by
s: here A and B are 1/√s times the official ones, while s·B A and W_res are identical.

Numerics. The SVD runs in float32 on the weight's own device (the trainer injects adapters after
moving the model to its training device: on a GPU, not minutes per LLaMA layer on the host). The
factors are stored in float32 when the base is float16 / bfloat16, as the official init
(sufenlp/MiLoRA @ 4740756 svd_init.py: A, B from the SVD of p.data.float(), assigned as float32
tensors, saved as a float32 adapter; the base keeps its half dtype), else in the layer's dtype; the
forward casts x to their dtype and its sum back to the base's, a merge adds ΔW in the base's dtype.
(Before: half-precision factors, A off by up to 1.1e-4 (fp16) / 4.6e-4 (bf16) from the official.)
W_res = W0 − s·B0 A0 is computed in float64 from those
stored factors (the forward's own values) and rounded once to the layer's dtype (`nearest`): every
element of W_res + s·B0 A0 is within half an ulp of W_res from W0, the best that dtype can hold.
The output still changes at init by the output's own rounding (y = W_res x + s·B(A x) is rounded
more often than W0 x). Measured on a random 256×512 nn.Linear (its own init, 256 inputs x ~ N(0, 1),
r = 8, α = 8, minor and principal alike; max |y| ≈ 2.5), max |y_adapted − y_base|:
    float32:  1.4e-6 (the base layer's own rounding error against float64: 1.1e-6);
    bfloat16: 1.6e-2 = one bf16 ulp of y, mean 1.1e-3, half the outputs bit-identical (the base
              layer's own error: 7.7e-3, half an ulp); the same for bf16 weights with float32
              factors under bf16 autocast (the trainer's bf16 path).
Before (SVD on the host CPU, residual in float32, cast through float32): the same output changes;
the residual was off by more than half an ulp in 10k-34k of the 131k float32 elements (up to 7e-9)
and in 0-1 bf16 elements (tests/test_milora_device.py checks the half-ulp bound).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._layer import check_dropout, positive_int
from ._registry import register
from .lora import LoRALayer

INITS = ("minor", "principal", "random")
HALF = (torch.float16, torch.bfloat16)


@dataclass
class MiLoRAOptions:
    r: int
    alpha: float
    dropout: float
    init: str

    def __post_init__(self):
        positive_int("r", self.r)
        check_dropout(self.dropout)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")


def singular_indices(n_singular: int, r: int, init: str) -> torch.Tensor:
    if init == "minor":
        return torch.arange(n_singular - r, n_singular)
    if init == "principal":
        return torch.arange(r)
    return torch.randperm(n_singular)[:r].sort().values


def nearest(exact: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`exact` (float64) rounded to the nearest value of `dtype`.

    PyTorch casts float64 to bfloat16 / float16 through float32: rounding twice, a value just off a
    midpoint can land one ulp too far. Then its mirror image through `exact` lies by the right one.
    """
    first = exact.to(dtype)
    second = (2 * exact - first.double()).to(dtype)
    return torch.where((second.double() - exact).abs() < (first.double() - exact).abs(), second, first)


@register("milora", MiLoRAOptions)
class MiLoRALayer(LoRALayer):
    """LoRA's factors, forward and ΔW; only the initialisation and the residual base differ."""
    persistent_buffers = ("lora_A0", "lora_B0")

    def __init__(self, base_layer, options: MiLoRAOptions, shared=None, init_weights=True):
        super().__init__(base_layer, options, init_weights=False)
        if base_layer.weight.dtype in HALF:  # the official factors stay float32 on a half-precision base
            self.lora_A.data = self.lora_A.data.float()
            self.lora_B.data = self.lora_B.data.float()
        self.register_buffer("lora_A0", torch.zeros_like(self.lora_A))
        self.register_buffer("lora_B0", torch.zeros_like(self.lora_B))
        if init_weights:
            self._init_from_svd(options)

    @torch.no_grad()
    def _init_from_svd(self, options: MiLoRAOptions) -> None:
        U, S, Vh = torch.linalg.svd(self.base_weight_out_in().float(), full_matrices=False)
        idx = singular_indices(S.numel(), options.r, options.init).to(S.device)
        root = (S[idx] / self.scaling).sqrt()
        self.lora_B.copy_(U[:, idx] * root[None, :])
        self.lora_A.copy_(root[:, None] * Vh[idx, :])
        self._set_residual_base(self.lora_A.detach().clone(), self.lora_B.detach().clone())

    @torch.no_grad()
    def _set_residual_base(self, A0: torch.Tensor, B0: torch.Tensor) -> None:
        """W_res = W0 − s B0 A0, written into the frozen base (W0 is the base as given).

        From the factors as stored (the forward's own values), in float64, rounded once."""
        self.lora_A0.copy_(A0)
        self.lora_B0.copy_(B0)
        w = self.base_layer.weight
        shift = self.to_base_orientation(self.scaling * (self.lora_B0.double() @ self.lora_A0.double()))
        w.copy_(nearest(w.double() - shift, w.dtype))

    @torch.no_grad()
    def load_adapter_state(self, state):
        # Built with init_weights=False, the base still holds W0: rebuild W_res from the saved A0, B0.
        super().load_adapter_state(state)
        self._set_residual_base(state["lora_A0"], state["lora_B0"])

    def peft_factors(self):
        """Rank 2r over the original base: [B, −B0] [A; A0] · s = s (B A − B0 A0)."""
        A = torch.cat([self.lora_A, self.lora_A0], dim=0)
        B = torch.cat([self.lora_B, -self.lora_B0], dim=1) * self.scaling
        return A.detach(), B.detach()
