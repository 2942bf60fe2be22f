"""SoRA (Ding et al., EMNLP 2023, arXiv 2311.11696): LoRA with a sparsified gate between A and B.

    A (r_max, d_in) Kaiming-uniform, B (d_out, r_max) zeros, gate g (r_max) ~ N(0, 1)
    Δy = ((dropout(x) Aᵀ) ⊙ g) Bᵀ · (α / r_max)          ΔW = (α / r_max) · B diag(g) A
    trainable parameters per layer: r_max (d_in + d_out) + r_max  (option `r` is r_max)

Optimisation (`SoRAHooks`) follows the official code (TsinghuaC3I/SoRA @ c275ac2: src/sparse_optimizer.py,
src/trainer.py, run_glue.py, scripts/); tests/test_sora_official.py holds its numbers:
- The gates are not in the main optimizer: `GateAdam` steps them after the main step, at `gate_lr`
  (None = the run's lr) times a warmup + decay schedule, with ε added as the official
  SparseAdamW does (`gate_eps`, 1e-6), no weight decay. Their gradients are clipped with the others'.
  `gate_schedule: run`: the run's own schedule. `official`: run_glue.py's separate one for the gates,
  the run's total and decay but a warmup of int(warmup_ratio · epochs · examples / batch), rounded
  down (the main warmup is rounded up: ⌈warmup_ratio · total⌉), warmup_steps not looked at.
- Then the threshold at ξ (not scaled by the lr). `threshold_mode: reference` is the official
  sequence of masked ops — g > ξ: g − ξ; then g < −ξ: g + ξ; then |g| < ξ: 0 — which zeroes the band
  |g| < 2ξ and shrinks the rest by ξ; `textbook` is the proximal operator of ξ‖g‖₁,
  g ← sign(g)·max(|g| − ξ, 0), which zeroes only |g| ≤ ξ.
- The loss gets λ · Σ|g| / (number of gates), over all modules' gates together (`l1_lambda`; the
  official scripts use 10 without a ξ schedule, 1e-3 with one; 0 disables it).
- ξ schedules (official names and shapes, `xi_rounds` values from `xi` to `xi_max`):
  linear, log_linear = log(linspace(e^ξ0, e^ξmax)) (nearly linear for small ξ),
  exp_linear = exp(linspace(log ξ0, log ξmax)) (geometric; needs ξ0 > 0), or constant.
  `round_mode: official`: the whole run is round 1 at ξ0; each later round is `round_steps` steps at
  the next ξ in which the official code reuses its finished lr schedules (lr exactly 0), so only the
  thresholding acts — done here after the last step, without the data. `in_run`: the rounds split
  the run into equal parts instead (ours).

`prune(model)` drops the zero gates of every layer, S = {i : g_i ≠ 0}; the layer is then exactly the
LoRA A' = A[S], B' = (α/r_max) B[:, S] diag(g_S) of rank |S| (ranks differ per module), which is
what `peft_factors()` exports. `live_ranks(model)` and `param_counts(model)` report the sparsity;
`paper_param_count` counts as the paper's tables do.
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
THRESHOLD_MODES = ("reference", "textbook")
ROUND_MODES = ("official", "in_run")
GATE_SCHEDULES = ("run", "official")


@dataclass
class SoRAOptions:
    r: int                 # r_max, the starting rank
    alpha: float
    dropout: float
    xi: float              # ξ0: the threshold (start of the schedule)
    xi_max: float          # end of the schedule (= xi for a constant ξ)
    xi_schedule: str
    xi_rounds: int         # how many ξ values the schedule steps through (official: lambda_num)
    round_mode: str        # official: rounds after the run; in_run: rounds split the run
    round_steps: int       # official rounds 2, 3, ...: steps each (the official scripts: 15 epochs)
    gate_lr: float | None  # None: the run's lr; the gates follow a warmup + decay either way
    gate_schedule: str     # run: the run's schedule | official: its own warmup, rounded down
    gate_eps: float        # Adam ε of the gates, added as the official SparseAdamW does
    l1_lambda: float       # λ of the L1 term on all gates' mean |g|
    threshold_mode: str

    def __post_init__(self):
        positive_int("r", self.r)
        positive_int("xi_rounds", self.xi_rounds)
        check_dropout(self.dropout)
        if self.xi < 0 or self.xi_max < self.xi:
            raise ValueError(f"need 0 ≤ xi ≤ xi_max, got xi={self.xi}, xi_max={self.xi_max}")
        for name, value, choices in (("xi_schedule", self.xi_schedule, SCHEDULES),
                                     ("threshold_mode", self.threshold_mode, THRESHOLD_MODES),
                                     ("round_mode", self.round_mode, ROUND_MODES),
                                     ("gate_schedule", self.gate_schedule, GATE_SCHEDULES)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if self.xi_schedule == "exp_linear" and self.xi == 0 < self.xi_max:
            raise ValueError("xi_schedule exp_linear needs xi > 0 (a geometric schedule cannot start at 0); "
                             "use linear, or log_linear")
        if self.round_mode == "official" and self.xi_rounds > 1 and self.round_steps < 1:
            raise ValueError("round_mode official with xi_rounds > 1 needs round_steps ≥ 1 (the steps of each "
                             "later round; the official scripts run 15 epochs), or round_mode: in_run")
        if self.gate_lr is not None and self.gate_lr <= 0:
            raise ValueError(f"gate_lr must be > 0, or null for the run's lr; got {self.gate_lr}")


def _linspace(a: float, b: float, n: int) -> list[float]:
    step = (b - a) / (n - 1)
    return [k * step + a for k in range(n - 1)] + [b]   # numpy's linspace, to the last bit


def xi_values(options: SoRAOptions) -> list[float]:
    """The `xi_rounds` values of ξ, as the official SparseAdamW._build_lambda_list makes them (the
    first is ξ0 itself: the official optimizer starts from it, not from the list)."""
    xi0, xi1, n = options.xi, options.xi_max, options.xi_rounds
    if options.xi_schedule == "constant" or n == 1:
        return [xi0] * n
    if options.xi_schedule == "linear":
        values = _linspace(xi0, xi1, n)
    elif options.xi_schedule == "log_linear":
        values = [math.log(v) for v in _linspace(math.exp(xi0), math.exp(xi1), n)]
    else:
        values = [math.exp(v) for v in _linspace(math.log(xi0), math.log(xi1), n)]
    return [xi0] + values[1:]


def xi_at(step: int, total_steps: int, options: SoRAOptions) -> float:
    """ξ during optimizer step `step` (1-based) of `total_steps` (round_mode official: always ξ0)."""
    values = xi_values(options)
    if options.round_mode == "official":
        return values[0]
    return values[min(len(values) - 1, (max(step, 1) - 1) * len(values) // max(total_steps, 1))]


@torch.no_grad()
def soft_threshold_(g: torch.Tensor, xi: float, mode: str = "reference") -> torch.Tensor:
    """The threshold step at ξ, in place (see the module docstring for the two modes)."""
    if mode == "reference":
        g.copy_(torch.where(g > xi, g - xi, g))
        g.copy_(torch.where(g < -xi, g + xi, g))
        return g.masked_fill_(g.abs() < xi, 0.0)
    return g.copy_(g.sign() * (g.abs() - xi).clamp_min(0))


class GateAdam(torch.optim.Optimizer):
    """Adam as the official SparseAdamW steps the gates (transformers' old AdamW): ε goes on √v before
    the bias correction, which goes into the step size,
        g ← g − lr · √(1 − β2ᵗ) / (1 − β1ᵗ) · m / (√v + ε)
    (torch's Adam adds ε to √v̂: for a first gradient of 1e-5 it steps 0.999·lr, this 0.240·lr at
    ε = 1e-6); no weight decay. A group's lr None means the trainer sets it every step, on the run's
    schedule or (`warmup_rounding` "down") on one of its own with the warmup rounded down."""

    def __init__(self, params, lr: float | None, eps: float = 1e-6, betas: tuple[float, float] = (0.9, 0.999),
                 warmup_rounding: str = "up"):
        super().__init__(params, {"lr": lr, "base_lr": lr, "eps": eps, "betas": betas})
        self.warmup_rounding = warmup_rounding

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group["lr"] is None:
                raise ValueError("SoRA gate lr unset: set the option gate_lr, or let the trainer schedule the "
                                 "gates (hooks.scheduled_optimizers(lr))")
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                m.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                p.add_(torch.div(m, v.sqrt().add_(group["eps"])) * -step_size)


def sora_layers(model: nn.Module) -> dict[str, SoRALayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SoRALayer)}


def gate_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [layer.sora_gate for layer in sora_layers(model).values()]


def proximal_step(model: nn.Module, xi: float, mode: str = "reference", times: int = 1) -> None:
    """`times` threshold steps at ξ on every gate (all gates as one tensor: cheap for many steps)."""
    gates = gate_parameters(model)
    if not gates:
        return
    flat = torch.cat([g.detach().flatten() for g in gates])
    for _ in range(times):
        soft_threshold_(flat, xi, mode)
    with torch.no_grad():
        for g, new in zip(gates, flat.split([g.numel() for g in gates])):
            g.copy_(new.view_as(g))


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Σ|g| / (number of gates) over all modules' gates together, as the official loss term."""
    gates = gate_parameters(model)
    return sum(g.abs().sum() for g in gates) / sum(g.numel() for g in gates)


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


def paper_param_count(model: nn.Module, hidden_size: int) -> int:
    """The count the paper's tables print (official compute_trainable_sparse_param): every trainable
    parameter but the gates — the task head included — minus 2·hidden_size per zero gate, also on
    layers whose sides are not hidden_size (e.g. 768 ↔ 3072). `param_counts` is the exact count."""
    gates = {id(g) for g in gate_parameters(model)}
    total = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in gates)
    zeros = sum(int((g == 0).sum()) for g in gate_parameters(model))
    return total - zeros * 2 * hidden_size


def prune(model: nn.Module) -> dict[str, int]:
    """Prune every SoRA layer of `model`; returns the rank each module keeps."""
    for layer in sora_layers(model).values():
        layer.prune()
    return live_ranks(model)


class SoRAHooks(TrainingHooks):
    """Gates: GateAdam on the run's schedule, then the threshold at the scheduled ξ; the L1 term in the
    loss; round_mode official: the later rounds after the last step."""

    def __init__(self, model, options: SoRAOptions):
        super().__init__(model, options)
        gates = gate_parameters(model)
        self._gate_ids = {id(g) for g in gates}
        self.gate_optimizer = GateAdam(gates, lr=options.gate_lr, eps=options.gate_eps,
                                       warmup_rounding="down" if options.gate_schedule == "official" else "up")
        self.xi = xi_values(options)[0]
        self.rounds: list[dict] = []

    def main_parameters(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in self._gate_ids]

    def scheduled_optimizers(self, lr):
        """The gate optimizer at base lr `lr` (or gate_lr); its lr stays there unless a trainer schedules it."""
        for group in self.gate_optimizer.param_groups:
            group["base_lr"] = group["lr"] = lr if self.options.gate_lr is None else self.options.gate_lr
        return [self.gate_optimizer]

    def loss_penalty(self):
        return self.options.l1_lambda * l1_penalty(self.model) if self.options.l1_lambda else None

    def after_optimizer_step(self, step):
        self.gate_optimizer.step()
        self.xi = xi_at(step, self.total_steps or step, self.options)
        proximal_step(self.model, self.xi, self.options.threshold_mode)
        if step == self.total_steps and self.options.round_mode == "official":
            self.later_rounds()
        return {}

    def later_rounds(self) -> None:
        """Official rounds 2, 3, ...: the lr schedules have ended (lr 0), so a round of round_steps
        steps is round_steps threshold steps at its ξ; the live ranks after each go to log_stats."""
        for xi in xi_values(self.options)[1:]:
            self.xi = xi
            proximal_step(self.model, xi, self.options.threshold_mode, times=self.options.round_steps)
            self.rounds.append({"xi": xi, "live_rank_total": sum(live_ranks(self.model).values())})

    def zero_grad(self):
        self.gate_optimizer.zero_grad(set_to_none=True)

    def log_stats(self):
        ranks = live_ranks(self.model)
        stats = {"xi": self.xi, "live_rank_total": sum(ranks.values()), "live_rank": ranks}
        return {**stats, "rounds": self.rounds} if self.rounds else stats

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
