"""Checkpoints: everything a killed run needs to continue as if it had never stopped.

<out>/checkpoints/step_<N>/ holds the trained tensors (an `adapter/` written by adapters.save, or
`model.pt` for full fine-tuning) and `trainer_state.pt`: optimizer, schedule, method hooks, grad
scaler, RNG states of python / numpy / torch, the data position and the run's counters. The
directory is renamed into place whole, so every step_<N> that exists is complete.
"""
from __future__ import annotations

import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import adapters
from adapters._io import atomic_directory

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out_dir: Path, step: int, model: nn.Module, full_model: bool, state: dict) -> Path:
    """Write checkpoint `step` and drop the older ones."""
    root = out_dir / CHECKPOINTS
    final = root / f"step_{step:08d}"
    with atomic_directory(final) as tmp:
        if full_model:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        else:
            adapters.save(model, tmp / "adapter")
        torch.save(state, tmp / STATE_FILE)
    for old in root.glob("step_*"):
        if old != final:
            shutil.rmtree(old)
    return final


def latest(out_dir: Path, config_hash: str) -> Path | None:
    """The newest checkpoint written by this config, or None (a stale one is ignored, with a warning)."""
    found = sorted((out_dir / CHECKPOINTS).glob("step_*"))
    if not found:
        return None
    state = read_state(found[-1])
    if state["config_hash"] != config_hash:
        warnings.warn(f"{found[-1]} was written by another config (hash {state['config_hash']} != "
                      f"{config_hash}); starting over")
        return None
    return found[-1]


def read_state(path: Path) -> dict:
    # Our own file; it holds numpy RNG state, which the weights-only unpickler refuses.
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)


def restore_model(path: Path, base_model: nn.Module, full_model: bool) -> nn.Module:
    """The trained model as it was at the checkpoint, built on a freshly loaded base model."""
    if full_model:
        base_model.load_state_dict(torch.load(path / "model.pt", map_location="cpu"))
        return base_model
    return adapters.load(base_model, path / "adapter")


def remove_all(out_dir: Path) -> None:
    shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
