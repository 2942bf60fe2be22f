"""Method-specific optimisation steps, called by the trainer through one interface.

The trainer knows no method by name. It asks `adapters.training_hooks(model)` for an object
of this class and calls it at fixed points of every step; SoRA (gate optimizer + proximal
step) and ReMoRA (periodic merge-and-switch) override what they need.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainingHooks:
    def __init__(self, model: nn.Module, options: Any):
        self.model = model
        self.options = options
        self.total_steps: int | None = None

    def calibrate(self, batches) -> None:
        """A data-driven init before the first step of a fresh run (not on resume): `batches()` yields
        one epoch of the run's training micro-batches as {"input_ids", "attention_mask"} on the run's
        device, without moving the run's own data position (PEFT's EVA). The plain hooks do nothing."""

    def begin_training(self, total_steps: int) -> None:
        """Called once before the first step with the run's total optimizer steps (schedules)."""
        self.total_steps = total_steps

    def main_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs for the trainer's main optimizer: all trainable ones by default."""
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def scheduled_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Optimizers this object steps itself whose parameters follow the run like the main ones:
        the trainer clips their gradients together with the main parameters' and sets every group's
        lr to its "base_lr" × the schedule's factor each step (SoRA's gates, as the official code).
        `lr` is the run's lr, for groups that take it as their base_lr."""
        return []

    def loss_penalty(self) -> torch.Tensor | None:
        """A term added to the training loss (e.g. SoRA's L1 on the gates), or None."""
        return None

    def after_optimizer_step(self, step: int) -> dict[str, Any]:
        """Runs after the main optimizer's step; `step` counts completed steps from 1.

        Returns {"reset_main_optimizer": True} when the main optimizer's state must be cleared
        (ReMoRA after a merge-and-switch); the trainer also restarts the warmup then.
        """
        return {}

    def log_stats(self) -> dict[str, Any]:
        """Extra per-step numbers for train_log.jsonl (e.g. SoRA's live rank per module)."""
        return {}

    def zero_grad(self) -> None:
        """Clear gradients of parameters this object optimises itself."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume this object (e.g. SoRA's gate optimizer)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
