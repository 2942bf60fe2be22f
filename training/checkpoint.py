"""Checkpoints: everything a killed run needs to continue as if it had never stopped.

<out>/checkpoints/step_<N>/ holds the trained tensors (an `adapter/` written by adapters.save, or
`model.pt` for full fine-tuning) and the trainer state: optimizer, schedule, method hooks, grad
scaler, RNG states of python / numpy / torch, the data position and the run's counters. The state
is stored without pickle, so a planted file cannot run code when a run starts or resumes:
its tensors in trainer_state.safetensors, everything else (and where each tensor goes) in
trainer_state.json, which is read first, and only a checkpoint of this very config (its hash) is
loaded further. The directory is renamed into place whole, so every step_<N> that exists is complete.
"""
from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import adapters
from adapters._io import atomic_directory

CHECKPOINTS = "checkpoints"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
FORMAT = 2  # 1: trainer_state.pt (pickle), no longer read
MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__")


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


# --- the state as JSON + safetensors ------------------------------------------------------------
def _to_json(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` as JSON, its tensors (and numpy arrays) moved to `tensors` and named in their place."""
    if isinstance(value, torch.Tensor):
        name = str(len(tensors))
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(value, np.ndarray):  # numpy's RNG key (uint32): stored widened, restored exactly
        name = str(len(tensors))
        tensors[name] = torch.from_numpy(value.astype(np.int64))
        return {"__ndarray__": name, "dtype": value.dtype.str}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not set(value) & set(MARKERS):
            return {k: _to_json(v, tensors) for k, v in value.items()}
        return {"__dict__": [[_to_json(k, tensors), _to_json(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"checkpoint state: a {type(value).__name__} cannot be stored without pickle; "
                    "give the state_dict() that returns it plain numbers, strings, lists, dicts and tensors")


def _from_json(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_from_json(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy().astype(np.dtype(value["dtype"]))
    if "__tuple__" in value:
        return tuple(_from_json(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_from_json(k, tensors): _from_json(v, tensors) for k, v in value["__dict__"]}
    return {k: _from_json(v, tensors) for k, v in value.items()}


def save(out_dir: Path, step: int, model: nn.Module, full_model: bool, state: dict) -> Path:
    """Write checkpoint `step` and drop the older ones."""
    root = out_dir / CHECKPOINTS
    final = root / f"step_{step:08d}"
    with atomic_directory(final) as tmp:
        if full_model:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        else:
            adapters.save(model, tmp / "adapter")
        tensors: dict[str, torch.Tensor] = {}
        described = _to_json(state, tensors)
        save_file(tensors, tmp / STATE_TENSORS)
        (tmp / STATE_JSON).write_text(json.dumps({"format": FORMAT, "config_hash": state["config_hash"],
                                                  "state": described}) + "\n")
    for old in root.glob("step_*"):
        if old != final:
            shutil.rmtree(old)
    return final


def _header(path: Path) -> dict | None:
    """The checkpoint's JSON part, or None when it has none (an old pickle checkpoint, or a planted one)."""
    try:
        header = json.loads((path / STATE_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def latest(out_dir: Path, config_hash: str) -> Path | None:
    """The newest checkpoint written by this config, or None (any other is ignored, with a warning).

    Only the JSON part is read here; nothing in the directory is unpickled, ever."""
    found = sorted((out_dir / CHECKPOINTS).glob("step_*"))
    if not found:
        return None
    header = _header(found[-1])
    if header is None:
        warnings.warn(f"{found[-1]} has no {STATE_JSON} of format {FORMAT} (a pickle checkpoint of an older "
                      f"version, or a file put there by someone else): it is not loaded; starting over")
        return None
    if header["config_hash"] != config_hash:
        warnings.warn(f"{found[-1]} was written by another config (hash {header['config_hash']} != "
                      f"{config_hash}); starting over")
        return None
    return found[-1]


def read_state(path: Path) -> dict:
    """The trainer state of checkpoint `path` (found by `latest`): JSON and safetensors, no pickle."""
    header = _header(path)
    if header is None:
        raise ValueError(f"{path}: no readable {STATE_JSON}; start over with --fresh")
    return _from_json(header["state"], load_file(path / STATE_TENSORS))


def restore_model(path: Path, base_model: nn.Module, full_model: bool) -> nn.Module:
    """The trained model as it was at the checkpoint, built on a freshly loaded base model."""
    if full_model:
        base_model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        return base_model
    return adapters.load(base_model, path / "adapter")


def remove_all(out_dir: Path) -> None:
    shutil.rmtree(out_dir / CHECKPOINTS, ignore_errors=True)
