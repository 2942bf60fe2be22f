"""LoRA (Hu et al. 2021, arXiv 2106.09685) — the baseline every other method is measured against.

    Δy = dropout(x) Aᵀ Bᵀ · (α / r)        ΔW = (α / r) · B A
    A (r, d_in): Kaiming-uniform (a=√5, as nn.Linear)     B (d_out, r): zeros  → ΔW = 0 at init
    trainable parameters per layer: r · (d_in + d_out)

Same init and scaling as PEFT's `LoraConfig` (cross-checked in tests/test_adapters_peft.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._layer import AdaptedLayer, check_dropout, kaiming_uniform_, positive_int, rank_problem
from ._registry import register


@dataclass
class LoRAOptions:
    r: int
    alpha: float
    dropout: float

    def __post_init__(self):
        positive_int("r", self.r)
        check_dropout(self.dropout)


@register("lora", LoRAOptions)
class LoRALayer(AdaptedLayer):
    def __init__(self, base_layer, options: LoRAOptions, shared=None, init_weights=True):
        super().__init__(base_layer, options)
        w = base_layer.weight
        self.scaling = options.alpha / options.r
        self.dropout = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        self.lora_A = nn.Parameter(torch.zeros(options.r, self.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, options.r, dtype=w.dtype, device=w.device))
        if init_weights:
            kaiming_uniform_(self.lora_A)

    @classmethod
    def check_shape(cls, d_in, d_out, options):
        return rank_problem(options.r, d_in, d_out)

    def adapter_forward(self, x):
        x = self.dropout(x.to(self.lora_A.dtype))
        return (x @ self.lora_A.T) @ self.lora_B.T * self.scaling

    def delta_out_in(self):
        return (self.lora_B @ self.lora_A) * self.scaling

    def peft_factors(self):
        """(A, B) with ΔW = B A: PEFT LoRA factors at scaling 1."""
        return self.lora_A.detach(), (self.lora_B * self.scaling).detach()
