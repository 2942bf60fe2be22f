"""LoRA (Hu et al. 2021, arXiv 2106.09685) — the baseline every other method is measured against.

    Δy = dropout(x) Aᵀ Bᵀ · (α / r)        ΔW = (α / r) · B A
    A (r, d_in): Kaiming-uniform (a=√5, as nn.Linear)     B (d_out, r): zeros  → ΔW = 0 at init
    trainable parameters per layer: r · (d_in + d_out)

Same init and scaling as PEFT's `LoraConfig` (cross-checked in tests/test_adapters_methods.py).

ReLoRA (Lialin et al. 2023, arXiv 2307.05695; the ReLoRA row of MoRA's Table 3), `relora_every` = T > 0:
after every T-th optimizer step (kT + `relora_offset`), in every layer,
    W ← W + (α / r) B A                 (merge the cycle's update into the frozen base)
    A ← Kaiming-uniform (as at init)    B ← 0      (ΔW = 0 again: the output does not change)
and the trainer, asked by `LoRAHooks`, resets the optimizer state and restarts the LR warmup. What the
reset does is the train key `optimizer_reset` (training/trainer.py reset_optimizer_state): `delete`
(default) as kongds/MoRA's ResetReloraCallback, which ran the MoRA paper's ReLoRA row (Table 3) as
well as ReMoRA's — `--use_relora` without `--use_mora` merges and re-inits LoRA in the same callback,
whose pretraining branch deletes the `lora` parameters' Adam state; or `prune_random` /
`prune_magnitude` (ratio `optimizer_reset_ratio`, step count kept) as Guitaricet/relora @ 176f376,
whose default (`--reset_optimizer_on_relora True`) zeroes a random 99.9 % of exp_avg and exp_avg_sq.
The official ReLoRA also merges one step later, after step kT + 1 (`relora_offset: 1`; the step runs
at lr 0 in its jagged schedule, `restart_schedule: relora`); kongds/MoRA after step kT. After k
restarts the layer computes W0 + Σ_{i≤k} ΔW_i + (α/r) B A: a sum of rank-r updates, of rank up to
(k+1)·r, at the trainable cost of one. Σ ΔW_i is kept in the `relora_delta` buffer (base orientation)
and saved with the adapter, so loading onto a fresh base rebuilds the model; `delta_weight()` stays
the current cycle's update (merge adds it to a base that already holds the earlier ones).
As in ReLoRA's reference code, the trainer's reset (shared with ReMoRA) touches only the adapter's
Adam state: modules_to_save (trained embeddings, norms, head) keep theirs.
The new A's are drawn from a generator seeded by (run seed, step); see `merge_and_reinit`.
MiLoRA and SoRA reuse this layer but take no `relora_every` (their options reject it).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import TrainingHooks
from ._layer import AdaptedLayer, check_dropout, kaiming_uniform_, positive_int, rank_problem
from ._registry import register


@dataclass
class LoRAOptions:
    r: int
    alpha: float
    dropout: float
    relora_every: int = 0   # ReLoRA merge-and-reinit period in optimizer steps; 0 = plain LoRA
    relora_offset: int = 0  # merge after optimizer steps kT + offset: 0 = kongds/MoRA's callback (the
                            # MoRA paper's ReLoRA row), 1 = Guitaricet/relora (after step kT + 1)

    def __post_init__(self):
        positive_int("r", self.r)
        check_dropout(self.dropout)
        if isinstance(self.relora_every, bool) or not isinstance(self.relora_every, int) or self.relora_every < 0:
            raise ValueError(f"relora_every must be an integer ≥ 0 (0 disables ReLoRA; MoRA's Table 3 merges "
                             f"every 2000 steps), got {self.relora_every!r}")
        offset = self.relora_offset
        if (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0
                or (self.relora_every and offset >= self.relora_every)):
            raise ValueError(f"relora_offset must be an integer in [0, relora_every) (0: merge after steps kT as "
                             f"kongds/MoRA; 1: after kT + 1 as Guitaricet/relora), got {offset!r}")


def merge_and_reinit(model: nn.Module, step: int) -> int:
    """ReLoRA's restart (at optimizer step `step`) for every ReLoRA layer; returns how many it touched.

    The new A's come from a generator seeded by (the run's torch seed, step), not from the global
    RNG: DDP replicas' global RNGs drift apart with their own dropout masks, and parameters, unlike
    gradients, are not synchronised, so every replica must draw the same A's by itself.
    """
    seed = random.Random(f"relora:{torch.initial_seed()}:{step}").getrandbits(63)
    generator = torch.Generator().manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, LoRALayer) and hasattr(m, "relora_delta")]
    for layer in layers:
        layer.merge_and_reinit(generator)
    return len(layers)


class LoRAHooks(TrainingHooks):
    """Calls ReLoRA's merge-and-reinit after steps kT + `relora_offset`, k ≥ 1, T = `relora_every`
    (nothing when it is 0). With an offset the lr cycle still restarts after step kT
    ({"restart_schedule": True}): in Guitaricet/relora's jagged schedule step kT + 1 runs at lr 0,
    the merge and the optimizer reset follow it ({"reset_main_optimizer": True, "restart_schedule": False})."""

    def after_optimizer_step(self, step):
        every, offset = self.options.relora_every, self.options.relora_offset
        if not every or step < every:
            return {}
        if offset and step % every == 0:
            return {"restart_schedule": True}
        if (step - offset) % every == 0:
            merge_and_reinit(self.model, step)
            return {"reset_main_optimizer": True, **({"restart_schedule": False} if offset else {})}
        return {}


@register("lora", LoRAOptions, hooks_cls=LoRAHooks)
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
        if getattr(options, "relora_every", 0):  # MiLoRA's and SoRA's options have no such field
            self.register_buffer("relora_delta", torch.zeros_like(w))  # Σ merged ΔW, base orientation
            self.persistent_buffers = (*self.persistent_buffers, "relora_delta")

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
        if hasattr(self, "relora_delta") and self.relora_delta.any():
            raise ValueError("ReLoRA has merged earlier cycles into the base (rank up to (k+1)·r), which a rank-r "
                             "PEFT LoRA cannot carry; use adapters.export_merged(model, directory)")
        return self.lora_A.detach(), (self.lora_B * self.scaling).detach()

    # --- ReLoRA -------------------------------------------------------------------------
    @torch.no_grad()
    def merge_and_reinit(self, generator: torch.Generator | None = None) -> None:
        """Fold the current update into the base weight, then A as at init (drawn on the CPU from
        `generator`, the global RNG if None) and B = 0."""
        if self.merged:
            raise ValueError("the layer is merged: merging again would add ΔW twice; call adapters.unmerge first")
        delta = self.delta_weight()
        self.base_layer.weight.add_(delta.to(self.base_layer.weight.dtype))
        self.relora_delta.add_(delta.to(self.relora_delta.dtype))
        self.lora_A.copy_(kaiming_uniform_(torch.empty(self.lora_A.shape), generator))
        self.lora_B.zero_()

    @torch.no_grad()
    def load_adapter_state(self, state):
        # The base weight is not saved: a fresh base lacks the merged cycles, so add what it misses.
        relora = hasattr(self, "relora_delta") and "relora_delta" in state
        missing = state["relora_delta"] - self.relora_delta if relora else None
        super().load_adapter_state(state)
        if missing is not None:
            self.base_layer.weight.add_(missing.to(self.base_layer.weight.dtype))
