"""AdamW over parameter groups, and the learning-rate schedule.

Groups differ by learning rate (head_lr for modules_to_save, `lr_multipliers` matched on the
parameter name, e.g. from a method's YAML) and by weight decay: only matrices decay; biases,
norm weights, gates and scaling vectors (ndim < 2) do not.

`optimizer` picks the AdamW: `adamw_torch` (torch.optim.AdamW) or `adamw_hf_legacy`
(`HFLegacyAdamW`, the AdamW of transformers 4.x that the HF Trainer of the official SoRA code used).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def param_groups(cfg: TrainConfig, named_params: list[tuple[str, nn.Parameter]],
                 head_modules: list[str]) -> list[dict]:
    """`head_modules`: qualified names of the modules_to_save, which train at head_lr."""
    groups: dict[tuple[float, bool], dict] = {}
    head_prefixes = tuple(m + "." for m in head_modules)
    for name, p in named_params:
        in_head = name.startswith(head_prefixes)
        lr = cfg.head_lr if in_head and cfg.head_lr is not None else cfg.lr
        for pattern, factor in cfg.lr_multipliers.items():
            if pattern in name:
                lr *= factor
        decay = p.ndim >= 2
        group = groups.setdefault((lr, decay), {"params": [], "base_lr": lr, "lr": lr,
                                                "weight_decay": cfg.weight_decay if decay else 0.0})
        group["params"].append(p)
    if not groups:
        raise ValueError("nothing to train: the model has no trainable parameters in the main optimizer")
    return list(groups.values())


class HFLegacyAdamW(torch.optim.Optimizer):
    """The AdamW of transformers 4.x (`transformers.AdamW`, correct_bias=True), which differs from
    torch.optim.AdamW in two places:
        m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²
        p ← p − lr · √(1 − β2ᵗ) / (1 − β1ᵗ) · m / (√v + ε)      ε on √v before the bias correction
        p ← p − lr · wd · p                                       decay after the update, on the new p
    (torch: p ← p(1 − lr·wd) first, then − lr · m̂ / (√v̂ + ε)). The ops run in the same order as the
    original, so its results agree to the last bit on CPU (tests/test_official_recipes.py)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"]
                m.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                step_size = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
                p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
                if decay > 0.0:
                    p.add_(p, alpha=-lr * decay)
        return loss


def make_optimizer(cfg: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """The main optimizer over `groups` (each carries its own weight_decay)."""
    kind = torch.optim.AdamW if cfg.optimizer == "adamw_torch" else HFLegacyAdamW
    return kind(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)


def schedule_length(cfg: TrainConfig, run_steps: int, examples: int, world: int = 1) -> float:
    """The steps the schedules span, before rounding. `schedule_total: run`: the run's steps.
    `epochs_floor` (SoRA's run_glue.py: int(num_train_epochs · (len(train) / train_batch_size))):
    epochs · (examples / examples per optimizer step), whose int() is the schedule's total — fewer
    than the run's epochs · ⌈batches per epoch⌉ steps when the last batch is partial, and those last
    steps train at the decay's end value (lr 0 for linear). With max_steps set: the run's steps."""
    if cfg.schedule_total == "run" or cfg.max_steps:
        return float(run_steps)
    return cfg.epochs * (examples / (cfg.batch_size * cfg.grad_accum * world))


def warmup_steps(cfg: TrainConfig, total_steps: int | float, rounding: str = "up") -> int:
    """`warmup_steps`, else warmup_ratio · the schedule's total, rounded up (transformers'
    TrainingArguments.get_warmup_steps, of the int total). `rounding: down`: int(warmup_ratio · the
    unrounded length), warmup_steps ignored — how the official SoRA code warms its gates up."""
    if rounding == "down":
        return int(total_steps * cfg.warmup_ratio)
    return cfg.warmup_steps or math.ceil(cfg.warmup_ratio * int(total_steps))


class LRSchedule:
    """lr(step) = base_lr · factor(step).

    A linear warmup to 1, then linear, cosine or constant decay to `min_lr_ratio` at the total's last
    step (held there after it). The warmup as `warmup_start` says: `hf` — transformers' schedulers'
    i/warmup for the step with index i, so the first step runs at lr 0; `one_ahead` — (i + 1)/warmup,
    from 1/warmup at the first step, one step ahead of them all through the warmup.
    `total_steps` may be a float (`schedule_length`): the total is its int(), and `warmup_rounding`
    "down" takes the warmup from the unrounded length (the official SoRA gates').
    An optimizer reset (ReLoRA / ReMoRA: the method asked for one after step r) restarts the schedule
    as `restart_schedule` says:
      mora   — kongds/MoRA's ResetReloraCallback, which ran the paper's ReLoRA and ReMoRA rows: the first
               step after the reset keeps the rate ρ the schedule in force had there, then a warmup
               over `restart_warmup_steps` (ρ·j/w for the j-th step after the reset), then a fresh decay
               of the same kind from ρ to ρ·min_lr_ratio over the steps that are left.
      relora — Guitaricet/relora's `cosine_restarts` (the "jagged" schedule): the global decay goes
               on; after a reset the rate climbs from 0 over `restart_warmup_steps` to the decay's
               value at the end of that warmup.
    Every group keeps its own base_lr (the callback sets every group's to the first group's rate).
    """

    def __init__(self, cfg: TrainConfig, total_steps: int | float, warmup_rounding: str = "up"):
        self.kind, self.total, self.min_ratio = cfg.schedule, int(total_steps), cfg.min_lr_ratio
        self.warmup = warmup_steps(cfg, total_steps, warmup_rounding)
        self.ahead = 1 if cfg.warmup_start == "one_ahead" else 0
        self.restart_kind = cfg.restart_schedule
        self.restart_warmup = self.warmup if cfg.restart_warmup_steps is None else cfg.restart_warmup_steps
        self.last_restart, self.restart_rate = 0, 1.0

    def decay(self, step: int, start: int, end: int) -> float:
        """The decay's multiplier at `step`: 1 at `start`, min_lr_ratio at `end`."""
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, max(0, step - start) / max(1, end - start))
        shape = 1.0 - progress if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_ratio + (1.0 - self.min_ratio) * shape

    def first_cycle(self, step: int) -> float:
        if step < self.warmup:
            return (step + self.ahead) / self.warmup
        return self.decay(step, self.warmup, self.total)

    def factor(self, step: int) -> float:
        """Multiplier for the step with 0-based index `step`."""
        r = self.last_restart
        if r == 0:
            return self.first_cycle(step)
        j, w = step - r, self.restart_warmup
        if self.restart_kind == "relora":
            return j / w * self.first_cycle(r + w) if j < w else self.first_cycle(step)
        if j == 0:
            return self.restart_rate
        return self.restart_rate * (j / w if j < w else self.decay(step, r + w, self.total))

    def apply(self, step: int, *optimizers: torch.optim.Optimizer) -> float:
        f = self.factor(step)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * f
        return f

    def restart(self, step: int) -> None:
        """The optimizer was reset after `step` steps: step index `step` is the first of the new cycle."""
        self.restart_rate = self.factor(step)
        self.last_restart = step

    def state_dict(self) -> dict:
        return {"last_restart": self.last_restart, "restart_rate": self.restart_rate}

    def load_state_dict(self, state: dict) -> None:
        self.last_restart, self.restart_rate = state["last_restart"], state["restart_rate"]
