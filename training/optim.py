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
    """lr(step) = base_lr · warm(step − last restart) · decay(step).

    The warmup is linear from 1/warmup to 1; decay is linear, cosine or constant from the end
    of the first warmup to `min_lr_ratio` at the last step. A restart (the method asked for an
    optimizer reset) runs a new warmup on top of the decay, as ReLoRA's jagged schedule does.
    """

    def __init__(self, cfg: TrainConfig, total_steps: int):
        self.kind, self.total, self.min_ratio = cfg.schedule, total_steps, cfg.min_lr_ratio
        self.warmup = warmup_steps(cfg, total_steps)
        self.restart_warmup = self.warmup if cfg.restart_warmup_steps is None else cfg.restart_warmup_steps
        self.last_restart = 0

    def factor(self, step: int) -> float:
        """Multiplier for the step with 0-based index `step`."""
        length = self.warmup if self.last_restart == 0 else self.restart_warmup
        warm = min(1.0, (step - self.last_restart + 1) / length) if length else 1.0
        if self.kind == "constant" or step < self.warmup:
            return warm
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        shape = 1.0 - progress if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * (self.min_ratio + (1.0 - self.min_ratio) * shape)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        f = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * f
        return f

    def restart(self, step: int) -> None:
        self.last_restart = step

    def state_dict(self) -> dict:
        return {"last_restart": self.last_restart}

    def load_state_dict(self, state: dict) -> None:
        self.last_restart = state["last_restart"]
