"""SoRA (Ding et al., EMNLP 2023, arXiv 2311.11696): LoRA with a sparsified gate between A and B.

    A (r_max, d_in) Kaiming-uniform, B (d_out, r_max) zeros, gate g (r_max) ~ N(0, 1)
    Δy = ((dropout(x) Aᵀ) ⊙ g) Bᵀ · (α / r_max)          ΔW = (α / r_max) · B diag(g) A
    trainable parameters per layer: r_max (d_in + d_out) + r_max  (option `r` is r_max)

Optimisation (`SoRAHooks`, called by the trainer): the gates are not in the main optimizer. After
every step they take their own Adam step, then the proximal step (soft-thresholding)
    g ← sign(g) · max(|g| − ξ, 0)
which zeroes gates with |g| ≤ ξ and shrinks the others by ξ. `threshold_mode: reference` instead
zeroes everything below 2ξ as the reference code's sequence of masked ops does. An L1 term
λ · Σ|g| / numel(g) per module is added to the loss (`l1_lambda`, 0 disables it).
ξ follows a sparsifying schedule over `xi_rounds` equal rounds of training, from `xi` to `xi_max`:
constant, linear, log_linear (geometric) or exp_linear (ξ0 + (ξmax − ξ0)(e^t − 1)/(e − 1), t ∈ [0, 1]).

`prune(model)` drops the zero gates of every layer, S = {i : g_i ≠ 0}; the layer is then exactly the
LoRA A' = A[S], B' = (α/r_max) B[:, S] diag(g_S) of rank |S| (ranks differ per module), which is
what `peft_factors()` exports. `live_ranks(model)` and `param_counts(model)` report the sparsity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import TrainingHooks
from ._layer import check_dropout, positive_int, rank_problem
from ._registry import register
from .lora import LoRALayer

SCHEDULES = ("constant", "linear", "log_linear", "exp_linear")
THRESHOLD_MODES = ("textbook", "reference")


@dataclass
class SoRAOptions:
    r: int                 # r_max, the starting rank
    alpha: float
    dropout: float
    xi: float              # ξ0: proximal threshold (start of the schedule)
    xi_max: float          # end of the schedule (= xi for a constant ξ)
    xi_schedule: str
    xi_rounds: int         # how many distinct ξ values the schedule steps through
    gate_lr: float
    l1_lambda: float
    threshold_mode: str

    def __post_init__(self):
        positive_int("r", self.r)
        positive_int("xi_rounds", self.xi_rounds)
        check_dropout(self.dropout)
        if self.xi < 0 or self.xi_max < self.xi:
            raise ValueError(f"need 0 ≤ xi ≤ xi_max, got xi={self.xi}, xi_max={self.xi_max}")
        if self.xi_schedule not in SCHEDULES:
            raise ValueError(f"xi_schedule must be one of {SCHEDULES}, got {self.xi_schedule!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if self.xi_schedule == "log_linear" and self.xi == 0 < self.xi_max:
            raise ValueError("log_linear needs xi > 0 (a geometric schedule cannot start at 0)")


def xi_at(step: int, total_steps: int, options: SoRAOptions) -> float:
    """ξ for optimizer step `step` (1-based) of `total_steps`: piecewise constant over xi_rounds rounds."""
    xi0, xi1, rounds = options.xi, options.xi_max, options.xi_rounds
    if options.xi_schedule == "constant" or rounds == 1 or xi0 == xi1:
        return xi0
    k = min(rounds - 1, (max(step, 1) - 1) * rounds // max(total_steps, 1))
    t = k / (rounds - 1)
    if options.xi_schedule == "linear":
        return xi0 + (xi1 - xi0) * t
    if options.xi_schedule == "log_linear":
        return xi0 * (xi1 / xi0) ** t
    return xi0 + (xi1 - xi0) * (math.exp(t) - 1) / (math.e - 1)


@torch.no_grad()
def soft_threshold_(g: torch.Tensor, xi: float, mode: str = "textbook") -> torch.Tensor:
    """The proximal operator of ξ‖g‖₁, in place. `reference` zeroes |g| < 2ξ as the SoRA code does."""
    if mode == "reference":
        shrunk = g.sign() * (g.abs() - xi).clamp_min(0)
        return g.copy_(torch.where(g.abs() < 2 * xi, torch.zeros_like(g), shrunk))
    return g.copy_(g.sign() * (g.abs() - xi).clamp_min(0))


def sora_layers(model: nn.Module) -> dict[str, SoRALayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SoRALayer)}


def gate_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [layer.sora_gate for layer in sora_layers(model).values()]


def proximal_step(model: nn.Module, xi: float, mode: str = "textbook") -> None:
    for g in gate_parameters(model):
        soft_threshold_(g, xi, mode)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Σ over modules of Σ|g| / numel(g)."""
    return sum(g.abs().sum() / g.numel() for g in gate_parameters(model))


def live_ranks(model: nn.Module) -> dict[str, int]:
    return {n: layer.live_rank() for n, layer in sora_layers(model).items()}


def param_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters at the start rank r_max and retained after pruning (non-zero gates)."""
    initial = retained = 0
    for layer in sora_layers(model).values():
        r_max, k = layer.options.r, layer.live_rank()
        per_rank = layer.in_features + layer.out_features + 1
        initial += r_max * per_rank
        retained += k * per_rank
    return {"initial": initial, "retained": retained}


def prune(model: nn.Module) -> dict[str, int]:
    """Prune every SoRA layer of `model`; returns the rank each module keeps."""
    for layer in sora_layers(model).values():
        layer.prune()
    return live_ranks(model)


class SoRAHooks(TrainingHooks):
    """Gates: their own Adam, then soft-thresholding at the scheduled ξ; L1 penalty in the loss."""

    def __init__(self, model, options: SoRAOptions):
        super().__init__(model, options)
        gates = gate_parameters(model)
        self._gate_ids = {id(g) for g in gates}
        self.gate_optimizer = torch.optim.Adam(gates, lr=options.gate_lr)
        self.xi = options.xi

    def main_parameters(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in self._gate_ids]

    def loss_penalty(self):
        return self.options.l1_lambda * l1_penalty(self.model) if self.options.l1_lambda else None

    def after_optimizer_step(self, step):
        self.gate_optimizer.step()
        self.xi = xi_at(step, self.total_steps or step, self.options)
        proximal_step(self.model, self.xi, self.options.threshold_mode)
        return {}

    def zero_grad(self):
        self.gate_optimizer.zero_grad(set_to_none=True)

    def log_stats(self):
        ranks = live_ranks(self.model)
        return {"xi": self.xi, "live_rank_total": sum(ranks.values()), "live_rank": ranks}

    def state_dict(self):
        return {"gate_optimizer": self.gate_optimizer.state_dict(), "xi": self.xi}

    def load_state_dict(self, state):
        self.gate_optimizer.load_state_dict(state["gate_optimizer"])
        self.xi = state["xi"]



@register("sora", SoRAOptions, hooks_cls=SoRAHooks)
class SoRALayer(LoRALayer):
    """LoRA's A (Kaiming) and B (zeros) at rank r_max, scaled by α / r_max, with a gate between them."""

    def __init__(self, base_layer, options: SoRAOptions, shared=None, init_weights=True):
        super().__init__(base_layer, options, init_weights=init_weights)
        w = base_layer.weight
        self.sora_gate = nn.Parameter(torch.zeros(options.r, dtype=w.dtype, device=w.device))
        if init_weights:
            nn.init.normal_(self.sora_gate)

    @classmethod
    def check_shape(cls, d_in, d_out, options):
        return rank_problem(options.r, d_in, d_out, label="r (r_max)")

    def adapter_forward(self, x):
        x = self.dropout(x.to(self.lora_A.dtype))
        return ((x @ self.lora_A.T) * self.sora_gate) @ self.lora_B.T * self.scaling

    def delta_out_in(self):
        return (self.lora_B * self.sora_gate) @ self.lora_A * self.scaling

    def live_rank(self) -> int:
        return int((self.sora_gate != 0).sum())

    @torch.no_grad()
    def prune(self) -> None:
        """Keep only the non-zero gates; ΔW and the output are unchanged."""
        keep = (self.sora_gate != 0).nonzero().flatten()
        self._resize(self.lora_A[keep].clone(), self.lora_B[:, keep].clone(), self.sora_gate[keep].clone())

    def _resize(self, A, B, g) -> None:
        self.lora_A = nn.Parameter(A, requires_grad=self.lora_A.requires_grad)
        self.lora_B = nn.Parameter(B, requires_grad=self.lora_B.requires_grad)
        self.sora_gate = nn.Parameter(g, requires_grad=self.sora_gate.requires_grad)

    @torch.no_grad()
    def load_adapter_state(self, state):
        if state["sora_gate"].numel() != self.sora_gate.numel():  # a pruned checkpoint: take its ranks
            self._resize(torch.empty_like(state["lora_A"]), torch.empty_like(state["lora_B"]),
                         torch.empty_like(state["sora_gate"]))
        super().load_adapter_state(state)

    def peft_factors(self):
        """Rank |S| LoRA: A' = A[S], B' = (α/r_max) B[:, S] diag(g_S)."""
        keep = (self.sora_gate != 0).nonzero().flatten()
        B = self.lora_B[:, keep] * self.sora_gate[keep] * self.scaling
        return self.lora_A[keep].detach(), B.detach()
