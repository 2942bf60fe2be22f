"""Saving, loading and exporting adapters.

`save` writes only the method's own tensors (adapter.safetensors) and adapter_config.json;
`load` rebuilds the adapted model from a base model and that directory. `export_merged`
writes a full model plain transformers loads; `export_peft` writes a standard PEFT LoRA
directory for every method whose ΔW is low-rank (each method's `peft_factors()`).
All writes go to a temporary directory that is renamed into place, so a killed job never
leaves a half-written adapter behind.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ._inject import STATE_ATTR, _peft, adapted_modules, adapter_info, apply

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter.safetensors"
FORMAT_VERSION = 1


def as_umask_allows(path: str | os.PathLike) -> None:
    """Give a file made by mkstemp / mkdtemp (0600 / 0700) the mode a plain open / mkdir would have
    given it under the process's umask (0644 / 0755 with umask 022)."""
    try:  # Linux shows it without changing it (os.umask would, for a moment, for every thread)
        status = Path("/proc/self/status").read_text()
        mask = int(re.search(r"^Umask:\s*(\d+)", status, re.M).group(1), 8)
    except (OSError, AttributeError):
        mask = os.umask(0)
        os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


@contextmanager
def atomic_directory(directory: str | os.PathLike):
    """Yield a temp dir beside `directory`; on success it replaces `directory` in one rename."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        as_umask_allows(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _contiguous_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor an adapter checkpoint holds, keyed `<module>.<tensor>` / `shared.<tensor>`."""
    if _peft(model):
        return _peft(model).adapter_state_dict(model)
    info = adapter_info(model)
    state: dict[str, torch.Tensor] = {}
    shared_seen = None
    for name, layer in adapted_modules(model).items():
        for key, value in layer.adapter_state().items():
            state[f"{name}.{key}"] = value
        if hasattr(layer, "shared") and shared_seen is None:
            shared_seen = layer.shared
    if shared_seen is not None and getattr(shared_seen, "save_with_adapter", True):
        for key, value in shared_seen.state_dict(keep_vars=False).items():
            state[f"shared.{key}"] = value
    for name in info["modules_to_save"]:
        for key, value in model.get_submodule(name).state_dict().items():
            state[f"{name}.{key}"] = value
    return state


def save(model: nn.Module, directory: str | os.PathLike) -> Path:
    if _peft(model):  # PEFT's save_pretrained + lorabench.json
        return _peft(model).save(model, directory)
    info = adapter_info(model)
    if any(layer.merged for layer in adapted_modules(model).values()):
        raise ValueError("adapter is merged into the base weights; call adapters.unmerge(model) before saving")
    with atomic_directory(directory) as tmp:
        save_file(_contiguous_cpu(adapter_state_dict(model)), str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps({**info, "format_version": FORMAT_VERSION}, indent=2))
    return Path(directory)


def read_config(directory: str | os.PathLike) -> dict:
    from .peft_method import read_meta
    meta = read_meta(directory)  # a PEFT method's directory: its adapter_config.json is PEFT's
    if meta is not None:
        return meta
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{path} not found: not an adapter directory written by adapters.save()")
    return json.loads(path.read_text())


@torch.no_grad()
def load(base_model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Rebuild the adapted model saved in `directory` on top of `base_model` (modified in place).
    A PEFT method's directory gives a PeftModel wrapping `base_model`: use the returned model."""
    cfg = read_config(directory)
    if "peft_version" in cfg:
        from . import peft_method
        return peft_method.load(base_model, directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.exists():
        raise ValueError(f"{weights} not found: the adapter directory is incomplete")
    state = load_file(str(weights))
    model = apply(base_model, cfg["method"], cfg["target_modules"],
                  modules_to_save=cfg["modules_to_save"], init_weights=False, **cfg["options"])
    layers = adapted_modules(model)
    device = next(iter(layers.values())).weight.device
    shared_state = {k[len("shared."):]: v.to(device) for k, v in state.items() if k.startswith("shared.")}
    if shared_state:
        next(iter(layers.values())).shared.load_state_dict(shared_state)
    for name, layer in layers.items():
        prefix = name + "."
        layer.load_adapter_state({k[len(prefix):]: v.to(device) for k, v in state.items()
                                  if k.startswith(prefix) and not k[len(prefix):].startswith("base_layer.")})
    for name in cfg["modules_to_save"]:
        prefix = name + "."
        model.get_submodule(name).load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                                   if k.startswith(prefix)})
    getattr(model, STATE_ATTR)["base_model"] = cfg.get("base_model", "")
    return model


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's own state dict with every ΔW added in; the model is not modified."""
    layers = adapted_modules(model)
    merged = {}
    for key, value in model.state_dict().items():
        module_name, _, tensor_name = key.rpartition(".")
        owner = module_name.removesuffix(".base_layer")
        if owner in layers and module_name.endswith(".base_layer"):
            layer = layers[owner]
            if tensor_name == "weight" and not layer.merged:
                value = value + layer.delta_weight().to(value.dtype)
            merged[f"{owner}.{tensor_name}"] = value
        elif not any(module_name == n or module_name.startswith(n + ".") for n in layers):
            merged[key] = value  # adapter tensors and shared projections are left out
    return merged


def export_merged(model: nn.Module, directory: str | os.PathLike) -> Path:
    """A full model with ΔW merged in, loadable by plain transformers `from_pretrained`."""
    if _peft(model):
        return _peft(model).export_merged(model, directory)
    adapter_info(model)
    state = {k: v.contiguous() for k, v in merged_state_dict(model).items()}
    with atomic_directory(directory) as tmp:
        # transformers' own writer (config, shards, tied weights) with our merged tensors.
        model.save_pretrained(tmp, state_dict=state)
    return Path(directory)


def export_peft(model: nn.Module, directory: str | os.PathLike) -> Path:
    """A standard PEFT LoRA adapter directory, for the original base model.

    Each layer's `peft_factors()` gives (A, B) with ΔW_total = B A exactly (ΔW_total is what
    the layer adds to the *original* base weight: MiLoRA's includes the residual shift), so the
    PEFT config uses lora_alpha = rank (scaling 1) with per-module ranks where they differ.
    """
    from peft import LoraConfig

    if _peft(model):  # already PEFT's own format
        return _peft(model).save(model, directory)
    info = adapter_info(model)
    layers = adapted_modules(model)
    tensors, ranks = {}, {}
    for name, layer in layers.items():
        if not hasattr(layer, "peft_factors"):
            raise ValueError(f"{info['method']} has no low-rank form PEFT's LoRA can hold; "
                             f"use adapters.export_merged(model, directory) instead")
        A, B = layer.peft_factors()
        if A.shape[0] == 0:
            continue  # e.g. a SoRA module whose gates were all pruned: ΔW = 0, nothing to export
        ranks[name] = A.shape[0]
        tensors[f"base_model.model.{name}.lora_A.weight"] = A
        tensors[f"base_model.model.{name}.lora_B.weight"] = B
    if not ranks:
        raise ValueError("every adapted module has rank 0 after pruning: ΔW = 0, there is nothing to export")
    if info["modules_to_save"]:
        raise ValueError("export_peft does not carry modules_to_save (e.g. a trained head); "
                         "use adapters.export_merged(model, directory)")
    default_rank = max(set(ranks.values()), key=list(ranks.values()).count)
    config = LoraConfig(
        r=default_rank, lora_alpha=default_rank, lora_dropout=0.0, target_modules=sorted(ranks),
        # PEFT matches pattern keys as regexes against module names: escape the dots.
        rank_pattern={re.escape(n): r for n, r in ranks.items() if r != default_rank},
        alpha_pattern={re.escape(n): r for n, r in ranks.items() if r != default_rank},
        fan_in_fan_out=any(layer.fan_in_fan_out for layer in layers.values()),
        base_model_name_or_path=info["base_model"] or None,
        init_lora_weights=True,
    )
    with atomic_directory(directory) as tmp:
        config.save_pretrained(str(tmp))
        save_file(_contiguous_cpu(tensors), str(tmp / "adapter_model.safetensors"))
    return Path(directory)
