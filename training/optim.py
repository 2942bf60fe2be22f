"""AdamW over parameter groups, and the learning-rate schedule.

Groups differ by learning rate (head_lr for modules_to_save, `lr_multipliers` matched on the
parameter name, e.g. from a method's YAML) and by weight decay: only matrices decay; biases,
norm weights, gates and scaling vectors (ndim < 2) do not.
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


def make_optimizer(cfg: TrainConfig, groups: list[dict]) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    return cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total_steps)


class LRSchedule:
    """lr(step) = base_lr · factor(step).

    A linear warmup from 1/warmup to 1 (the step before the first has no zero-lr step, unlike
    transformers' i/warmup), then linear, cosine or constant decay to `min_lr_ratio` at the last step.
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

    def __init__(self, cfg: TrainConfig, total_steps: int):
        self.kind, self.total, self.min_ratio = cfg.schedule, total_steps, cfg.min_lr_ratio
        self.warmup = warmup_steps(cfg, total_steps)
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
            return (step + 1) / self.warmup
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
