"""Putting a method into a transformers model: target matching, wrapping, freezing."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from torch import nn

from ._layer import SUPPORTED_LAYERS, AdaptedLayer, layer_shape
from ._registry import get_spec, resolve_options

ALL_LINEAR = "all-linear"
# Task heads that "all-linear" leaves alone: the trainer trains them whole (modules_to_save).
HEAD_NAMES = ("lm_head", "classifier", "score", "qa_outputs")
STATE_ATTR = "lorabench_adapter"  # where a model remembers what was applied to it


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or name.endswith("." + pattern)


def find_targets(model: nn.Module, target_modules: str | Iterable[str]) -> list[str]:
    """Qualified names of the linear layers that `target_modules` selects."""
    linear = {n: m for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)}
    if isinstance(target_modules, str):
        if target_modules != ALL_LINEAR:
            target_modules = [target_modules]
        else:
            head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
            return [n for n, m in linear.items()
                    if m is not head and not any(n == h or n.startswith(h + ".") for h in HEAD_NAMES)]
    patterns = list(target_modules)
    if not patterns:
        raise ValueError("target_modules is empty: name layers (e.g. ['q_proj', 'v_proj']) or use 'all-linear'")
    selected = []
    for name, module in model.named_modules():
        if any(_matches(name, p) for p in patterns):
            if not isinstance(module, SUPPORTED_LAYERS):
                raise ValueError(f"target {name!r} is a {type(module).__name__}, not a linear layer; "
                                 f"name its nn.Linear / Conv1D children instead")
            selected.append(name)
    if not selected:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise ValueError(f"target_modules {patterns} match no layer of {type(model).__name__}; "
                         f"its linear layers end in: {', '.join(suffixes)} (or use 'all-linear')")
    return selected


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def apply(model: nn.Module, method: str, target_modules: str | Iterable[str] = ALL_LINEAR, *,
          modules_to_save: Iterable[str] = (), init_weights: bool = True, **options: Any) -> nn.Module:
    """Inject `method` into `model` (in place; also returned) and freeze everything else.

    `target_modules`: module names or name suffixes, or "all-linear" (every linear layer but
    the output head). `modules_to_save`: modules (e.g. a classification head) that stay fully
    trainable and are saved with the adapter. `options` override config/methods/<method>.yaml.
    `init_weights=False` skips the method's initialisation (used when loading a checkpoint).
    """
    spec = get_spec(method)  # unknown method -> error before anything is touched
    if hasattr(model, STATE_ATTR):
        raise ValueError(f"model already carries a {getattr(model, STATE_ATTR)['method']} adapter; "
                         f"apply to a fresh base model")
    if spec.peft is not None:  # a PEFT config (config/methods/<method>.yaml `peft:`): returns a PeftModel
        from . import peft_method
        return peft_method.apply(model, method, spec.peft, target_modules, modules_to_save=modules_to_save, **options)
    opts = resolve_options(method, options)
    names = find_targets(model, target_modules)
    layers = {n: model.get_submodule(n) for n in names}
    shapes = {n: layer_shape(m) for n, m in layers.items()}
    for name, (d_in, d_out) in shapes.items():  # check every layer before changing any
        problem = spec.layer_cls.check_shape(d_in, d_out, opts)
        if problem:
            raise ValueError(f"{method} cannot adapt {name} ({d_in}->{d_out}): {problem}")
    save_names = [n for n, _ in model.named_modules() if any(_matches(n, p) for p in modules_to_save)]
    if list(modules_to_save) and not save_names:
        raise ValueError(f"modules_to_save {list(modules_to_save)} match no module of {type(model).__name__}")

    for p in model.parameters():
        p.requires_grad_(False)
    shared = spec.make_shared(list(shapes.values()), opts) if spec.make_shared else None
    if shared is not None:
        ref = next(iter(layers.values())).weight
        shared.to(device=ref.device)
    for name, layer in layers.items():
        wrapped = spec.layer_cls(layer, opts, shared=shared, init_weights=init_weights)
        _set_submodule(model, name, wrapped.train(layer.training))  # new dropouts follow the model's mode
    for name in save_names:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)

    base_name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    setattr(model, STATE_ATTR, {
        "method": method,
        "options": dataclasses.asdict(opts),
        "target_modules": names,
        "modules_to_save": save_names,
        "base_model": base_name,
    })
    return model


def adapter_info(model: nn.Module) -> dict[str, Any]:
    if not hasattr(model, STATE_ATTR):
        raise ValueError("model has no adapter: call adapters.apply(model, method, target_modules) first")
    return getattr(model, STATE_ATTR)


def adapted_modules(model: nn.Module) -> dict[str, AdaptedLayer]:
    """{qualified name: adapted layer}."""
    return {n: m for n, m in model.named_modules() if isinstance(m, AdaptedLayer)}


def _peft(model: nn.Module):
    """adapters.peft_method when `model` carries a PEFT method, else None."""
    from . import peft_method
    return peft_method if peft_method.is_peft_model(model) else None


def merge(model: nn.Module) -> nn.Module:
    if _peft(model):
        return _peft(model).merge(model)
    for layer in adapted_modules(model).values():
        layer.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    if _peft(model):
        return _peft(model).unmerge(model)
    for layer in adapted_modules(model).values():
        layer.unmerge()
    return model


def num_trainable(model: nn.Module) -> int:
    """Trainable parameters of the model: the adapters' own count plus modules_to_save."""
    if _peft(model):
        return _peft(model).num_trainable(model)
    layers = adapted_modules(model)
    count = sum(layer.num_trainable() for layer in layers.values())
    inside = {id(p) for layer in layers.values() for p in layer.parameters()}
    return count + sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in inside)


def adapter_params(model: nn.Module) -> int:
    """The adapter's trainable parameters alone, without modules_to_save (the papers' counts)."""
    if _peft(model):
        return _peft(model).adapter_params(model)
    return sum(layer.num_trainable() for layer in adapted_modules(model).values())


def training_hooks(model: nn.Module):
    """The method's TrainingHooks for this model (the plain default for most methods)."""
    from ._hooks import TrainingHooks
    info = adapter_info(model)
    spec = get_spec(info["method"])
    if spec.peft is not None:
        return spec.hooks_cls(model, info["options"])
    opts = spec.options_cls(**info["options"])
    return (spec.hooks_cls or TrainingHooks)(model, opts)
