"""PEFT's methods as lorabench methods: a method YAML with a `peft:` block in place of a method file.

    # config/methods/dora.yaml
    peft: {peft_type: LORA, r: 8, lora_alpha: 16, lora_dropout: 0.05, use_dora: true}
    train: {lr: 2.0e-4}

The `peft:` block holds the keyword arguments of the PEFT config class that `peft_type` names
(LoraConfig, LoHaConfig, PromptTuningConfig, ...); `variants:` and `options` overrides (a run's
`method_options`, `adapters.apply(..., **overrides)`) change the same keys. The run's
`target_modules` become the config's unless the block sets its own (our "all-linear" is PEFT's
"all-linear"); `modules_to_save` become the config's; the task type follows the model class
(CAUSAL_LM, SEQ_CLS for a classifier).

Everything else in the suite reaches these methods through the functions of `adapters`:
  apply         peft.get_peft_model: the model returned is a PeftModel wrapping the base (the
                trainer trains `hooks.model`, which is it); prompt tuning and p-tuning have the
                virtual tokens' logits cut off, so logits line up with the input as for every
                other method (the trainer's loss, lm-eval).
  save / load   PEFT's save_pretrained / PeftModel.from_pretrained in the adapter directory, plus
                lorabench.json (method, options, peft version, the init). Inits that move the
                base weights (PiSSA, OLoRA, CorDA: W_res = W − s·B₀A₀) also save the initial
                factors in initial/; loading rebuilds W_res from the original base and them, so a
                checkpoint resumes exactly and evaluation merges into the right weights.
  merge         merge_adapter() where the tuner can merge; prompt-type methods cannot and are
                evaluated through the PEFT model's forward.
  num_trainable the trainable parameters, as PeftModel.get_nb_trainable_parameters counts them.
  training_hooks PeftHooks: AdaLoRA's orthogonality penalty and update_and_allocate(step) with
                the run's total_step; EVA's data-driven init (calibrate: the run's train batches).
LoRA+ needs no hook: its YAML sets `train: {lr_multipliers: {lora_B: 16}}` (the B matrices' lr
ratio, as peft.optimizers.create_loraplus_optimizer's loraplus_lr_ratio).
docs/peft_methods.md lists every method of the pinned peft with its YAML or the reason it has none.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ._hooks import TrainingHooks

META_FILE = "lorabench.json"
INITIAL_DIR = "initial"     # the initial factors of an init that moves the base weights
PROMPT_ENCODER_FILE = "prompt_encoder.safetensors"  # a prompt method's whole encoder (to train on)
FORMAT_VERSION = 1
ALL_LINEAR = "all-linear"
# Prompt methods that put virtual tokens in front of the input (their logits come back longer).
PREPENDING = ("PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")
# Methods whose targets are no linear layers (norms, attention modules): PEFT's defaults for the
# model type stand, not the run's target_modules.
OWN_TARGETS = ("LN_TUNING", "ADAPTION_PROMPT", "TRAINABLE_TOKENS")
# Inits that replace W by W − s·B₀A₀ (PEFT's LoRA init_lora_weights values).
RESIDUAL_INITS = ("pissa", "olora", "corda", "lora_ga")
# PEFT methods of peft 0.21.2 without a YAML here, and why (tests/test_peft_methods.py checks each
# reason still holds; docs/peft_methods.md lists them with the shipped ones).
NOT_COVERED = {
    "MULTITASK_PROMPT_TUNING": "needs task_ids in every forward (multi-task prompt routing); a run trains one task",
    "POLY": "needs task_ids in every forward (Polytropon's per-task routing); a run trains one task",
    "XLORA": "mixes LoRA adapters trained before (adapters: {name: path}) and needs use_cache False; "
             "a single run has nothing to mix",
    "SHADOW": "its forward fails on transformers' LLaMA (AttributeError: 'ShadowCarrier' object has no "
              "attribute 'view') with peft 0.21.2",
    "TRAINABLE_TOKENS": "trains the embedding rows of tokens named by id (token_indices, e.g. added special "
                        "tokens); the ids depend on the tokenizer, so no YAML can name them for every profile",
    "CPT": "context-aware prompt tuning trains on few-shot layouts (cpt_token_ids of a tokenized context, "
           "input_type_mask and labels drive its loss); the suite's rows are plain prompt + target",
}
# LoRA inits of PeftType.LORA that have no YAML, and why.
LORA_INITS_NOT_COVERED = {
    "corda": "preprocess_corda(model, config, run_model) must see the base model with calibration data before "
             "the adapter is injected; the trainer's calibrate hook runs after injection",
    "lora_ga": "preprocess_loraga(model, config, train_step) estimates gradients on the base model before "
               "injection; the trainer's calibrate hook runs after injection",
    "loftq": "initialises the factors for a quantized base (NF4 through bitsandbytes); the suite's bases are "
             "not quantized and bitsandbytes is not installed",
}
# AdaLoRA's total_step before the trainer knows the run's (begin_training sets the real one).
PLACEHOLDER_TOTAL_STEP = 1_000_000


def _peft_type_name(value: Any) -> str:
    return getattr(value, "value", value)


def config_class(peft_type: str) -> type:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    key = str(peft_type).upper()
    if key not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise ValueError(f"peft_type {peft_type!r} is not a PEFT method of peft; "
                         f"known: {', '.join(sorted(PEFT_TYPE_TO_CONFIG_MAPPING))}")
    return PEFT_TYPE_TO_CONFIG_MAPPING[key]


def _is_residual_init(init: Any) -> bool:
    return isinstance(init, str) and init.startswith(RESIDUAL_INITS)


def resolve_config(name: str, block: dict, overrides: dict, *, target_modules: Any = None,
                   modules_to_save: Iterable[str] = (), task_type: str = "CAUSAL_LM"):
    """The PEFT config of method `name`: its YAML `peft:` block + `overrides`, checked by PEFT."""
    values = {**(block or {}), **(overrides or {})}
    if "peft_type" not in values:
        raise ValueError(f"config/methods/{name}.yaml: the peft: block needs peft_type (e.g. LORA)")
    kind = str(values.pop("peft_type")).upper()
    cls = config_class(kind)
    fields = {f.name for f in dataclasses.fields(cls)}
    stray = sorted(set(values) - fields)
    if stray:
        raise ValueError(f"{cls.__name__} (method {name!r}) has no option {', '.join(map(repr, stray))}; "
                         f"it takes: {', '.join(sorted(fields - {'peft_type', 'task_type'}))}")
    values.setdefault("task_type", task_type)
    if ("target_modules" in fields and values.get("target_modules") is None and target_modules is not None
            and kind not in OWN_TARGETS):
        values["target_modules"] = (ALL_LINEAR if target_modules == ALL_LINEAR
                                    else [target_modules] if isinstance(target_modules, str) else list(target_modules))
    if "modules_to_save" in fields and list(modules_to_save):
        values["modules_to_save"] = sorted({*(values.get("modules_to_save") or []), *modules_to_save})
    if "total_step" in fields and values.get("total_step") is None:
        values["total_step"] = PLACEHOLDER_TOTAL_STEP
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{cls.__name__} (method {name!r}): {error}") from None


def _task_type(model: nn.Module) -> str:
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"


def _strip_virtual_tokens(model: nn.Module, n: int) -> None:
    """Cut the n virtual tokens' positions off the logits, so logits[:, i] is input token i's."""
    forward = model.forward

    def stripped(*args, **kwargs):
        out = forward(*args, **kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = getattr(out, "logits", None)
        if ids is not None and logits is not None and logits.dim() == 3 and logits.shape[1] == ids.shape[1] + n:
            out.logits = logits[:, n:]
        return out

    model.forward = stripped


def _finish(model: nn.Module, name: str, options: dict, modules_to_save: list[str], base_name: str,
            initial: dict | None) -> nn.Module:
    from ._inject import STATE_ATTR

    config = model.peft_config["default"]
    kind = _peft_type_name(config.peft_type)
    if kind in PREPENDING:
        _strip_virtual_tokens(model, config.num_virtual_tokens)
    tuner = model.base_model
    targets = sorted(getattr(tuner, "targeted_module_names", []) or [])
    setattr(model, STATE_ATTR, {"method": name, "options": dict(options), "peft_type": kind,
                                "peft": True, "target_modules": targets,
                                "modules_to_save": list(modules_to_save), "base_model": base_name})
    model._lorabench_initial = initial  # not a module attribute: kept out of state_dict
    return model


def apply(model: nn.Module, name: str, block: dict, target_modules: Any = ALL_LINEAR, *,
          modules_to_save: Iterable[str] = (), **options: Any) -> nn.Module:
    """Wrap `model` in PEFT's method `name` (a PeftModel, returned; the base is changed in place)."""
    from peft import get_peft_model
    from peft.utils import get_peft_model_state_dict

    modules_to_save = list(modules_to_save)
    config = resolve_config(name, block, options, target_modules=target_modules,
                            modules_to_save=modules_to_save, task_type=_task_type(model))
    base_name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    peft_model = get_peft_model(model, config)
    initial = None
    if _is_residual_init(getattr(config, "init_lora_weights", None)):
        initial = {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(peft_model).items()}
    return _finish(peft_model, name, options, modules_to_save, base_name, initial)


def is_peft_model(model: nn.Module) -> bool:
    from ._inject import STATE_ATTR

    return bool(getattr(model, "__dict__", {}).get(STATE_ATTR, {}).get("peft"))


def _tuner(model: nn.Module):
    from peft.tuners.tuners_utils import BaseTuner

    return model.base_model if isinstance(model.base_model, BaseTuner) else None


def mergeable(model: nn.Module) -> bool:
    """Whether the method's update can go into the base weights (not prompt-type methods)."""
    return _tuner(model) is not None


def merge(model: nn.Module) -> nn.Module:
    """Merge where the tuner can; where it cannot (prompt methods, Lily, BEFT without base biases)
    the model stays unmerged and is evaluated through its forward, which gives the same outputs."""
    tuner = _tuner(model)
    if tuner is not None:
        try:
            tuner.merge_adapter()
        except (NotImplementedError, ValueError):
            for module in tuner.modules():  # the layers merged before the one that could not
                if module is not tuner and getattr(module, "merged", False):
                    module.unmerge()
    return model


def is_merged(model: nn.Module) -> bool:
    tuner = _tuner(model)
    return tuner is not None and any(getattr(m, "merged", False) for m in tuner.modules() if m is not tuner)


def unmerge(model: nn.Module) -> nn.Module:
    if is_merged(model):
        _tuner(model).unmerge_adapter()
    return model


def num_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_params(model: nn.Module) -> int:
    """Trainable parameters without the fully trained modules_to_save (a task head)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if p.requires_grad and ".modules_to_save." not in n and ".original_module." not in n)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def _loadable_config(config):
    """A copy of `config` that from_pretrained rebuilds without running a data or SVD init (the
    weights come from the file): init_lora_weights True; the real init is in lorabench.json."""
    import copy

    config = copy.deepcopy(config)
    init = getattr(config, "init_lora_weights", None)
    if isinstance(init, str) and init != "gaussian":
        config.init_lora_weights = True
    targets, feedforward = getattr(config, "target_modules", None), getattr(config, "feedforward_modules", None)
    if isinstance(targets, (set, list)) and isinstance(feedforward, (set, list)):
        # IA³ after "all-linear": full target names, feedforward suffixes; PEFT's reload wants a subset
        config.feedforward_modules = {t for t in targets if any(t == f or t.endswith("." + f) for f in feedforward)}
    return config


def save(model: nn.Module, directory: str | os.PathLike) -> Path:
    import peft
    from safetensors.torch import save_file

    from ._inject import adapter_info
    from ._io import atomic_directory

    info = adapter_info(model)
    if is_merged(model):
        raise ValueError("adapter is merged into the base weights; call adapters.unmerge(model) before saving")
    config = model.peft_config["default"]
    init = getattr(config, "init_lora_weights", None)
    with atomic_directory(directory) as tmp:
        model.peft_config["default"] = _loadable_config(config)
        try:
            model.save_pretrained(str(tmp))
        finally:
            model.peft_config["default"] = config
        if model.peft_config["default"].is_prompt_learning:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in model.prompt_encoder["default"].state_dict().items()},
                      str(tmp / PROMPT_ENCODER_FILE))
        if model._lorabench_initial is not None:
            (tmp / INITIAL_DIR).mkdir()
            _loadable_config(config).save_pretrained(str(tmp / INITIAL_DIR))
            save_file({k: v.contiguous() for k, v in model._lorabench_initial.items()},
                      str(tmp / INITIAL_DIR / "adapter_model.safetensors"))
        meta = {**{k: v for k, v in info.items() if k != "peft"}, "peft_version": peft.__version__,
                "init": init if isinstance(init, (str, bool)) or init is None else str(init),
                "residual_init": model._lorabench_initial is not None, "format_version": FORMAT_VERSION}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return Path(directory)


def read_meta(directory: str | os.PathLike) -> dict | None:
    path = Path(directory) / META_FILE
    return json.loads(path.read_text()) if path.exists() else None


@torch.no_grad()
def load(base_model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """The PeftModel saved in `directory`, on `base_model` (changed in place), trainable as when saved."""
    from peft import PeftModel
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_meta(directory)
    initial = None
    if meta["residual_init"]:
        # W_res = W − s·B₀A₀ from the original base and the initial factors, then the trained factors.
        model = PeftModel.from_pretrained(base_model, str(directory / INITIAL_DIR), is_trainable=True)
        for module in model.base_model.modules():
            if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
                weight = module.get_base_layer().weight
                weight.sub_(module.get_delta_weight("default").to(weight.dtype))
        device = next(model.parameters()).device
        trained = {k: v.to(device) for k, v in load_file(str(directory / "adapter_model.safetensors")).items()}
        set_peft_model_state_dict(model, trained)
        initial = load_file(str(directory / INITIAL_DIR / "adapter_model.safetensors"))
    elif (directory / PROMPT_ENCODER_FILE).exists():
        # PEFT saves a prompt method's output embeddings only (p-tuning's MLP is gone) and loads it
        # frozen: the method is built afresh and its whole prompt encoder loaded, as it trained
        from peft import get_peft_model

        kind = json.loads((directory / "adapter_config.json").read_text())["peft_type"]
        config = config_class(kind).from_pretrained(str(directory))
        config.inference_mode = False
        model = get_peft_model(base_model, config)
        encoder = model.prompt_encoder["default"]
        device = next(base_model.parameters()).device
        encoder.load_state_dict({k: v.to(device) for k, v in load_file(str(directory / PROMPT_ENCODER_FILE)).items()})
    else:
        model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=True)
    model.peft_config["default"].init_lora_weights = meta.get("init", True) \
        if hasattr(model.peft_config["default"], "init_lora_weights") else None
    return _finish(model, meta["method"], meta["options"], meta["modules_to_save"], meta.get("base_model", ""),
                   initial)


def export_merged(model: nn.Module, directory: str | os.PathLike) -> Path:
    """A plain transformers model with the update merged in (a copy is merged; `model` is kept)."""
    import copy

    from ._io import atomic_directory

    if not mergeable(model):
        raise ValueError(f"{model.peft_config['default'].peft_type} cannot be merged into the base weights; "
                         f"use adapters.save (PEFT's own adapter directory)")
    merged = copy.deepcopy(model).merge_and_unload()
    with atomic_directory(directory) as tmp:
        merged.save_pretrained(tmp)
    return Path(directory)


class PeftHooks(TrainingHooks):
    """The optimisation steps some PEFT methods need beside the plain loop (the trainer calls these)."""

    def __init__(self, model: nn.Module, options: Any):
        super().__init__(model, options)
        self.config = model.peft_config["default"]
        self.kind = _peft_type_name(self.config.peft_type)

    def calibrate(self, batches: Callable[[], Iterator[dict]]) -> None:
        """EVA: the LoRA A matrices from the SVD of the layers' inputs over the run's train batches."""
        if getattr(self.config, "init_lora_weights", None) != "eva":
            return
        from peft import initialize_lora_eva_weights

        was_training = self.model.training
        self.model.eval()
        initialize_lora_eva_weights(self.model, dataloader=list(batches()), show_progress_bar=False)
        self.model.train(was_training)

    def begin_training(self, total_steps: int) -> None:
        super().begin_training(total_steps)
        if self.kind == "ADALORA":
            if self.config.tinit >= total_steps - self.config.tfinal:
                raise ValueError(f"AdaLoRA: tinit {self.config.tinit} + tfinal {self.config.tfinal} leave no "
                                 f"budgeting steps in a run of {total_steps}; lower them in the method's peft: block")
            self.config.total_step = total_steps

    def loss_penalty(self) -> torch.Tensor | None:
        """AdaLoRA's orth_reg_weight · mean over P ∈ {A, B} of ‖P Pᵀ − I‖_F (A: rows, B: columns)."""
        if self.kind != "ADALORA" or not self.config.orth_reg_weight:
            return None
        terms = []
        for name, p in self.model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                gram = p @ p.T if "lora_A" in name else p.T @ p
                terms.append(torch.linalg.matrix_norm(gram - torch.eye(len(gram), device=p.device, dtype=p.dtype)))
        return self.config.orth_reg_weight * torch.stack(terms).mean() if terms else None

    def after_optimizer_step(self, step: int) -> dict[str, Any]:
        if self.kind == "ADALORA":  # PEFT counts its global step from 0; `step` counts completed steps
            self.model.base_model.update_and_allocate(step - 1)
        return {}

    def log_stats(self) -> dict[str, Any]:
        if self.kind == "ADALORA":
            masks = [m for n, m in self.model.named_parameters() if "lora_E" in n]
            return {"adalora_rank": int(sum(int((m != 0).sum()) for m in masks))}
        return {}

    def state_dict(self) -> dict[str, Any]:
        if self.kind != "ADALORA":
            return {}
        allocator = self.model.base_model.rankallocator
        return {k: dict(getattr(allocator, k)) for k in ("ipt", "exp_avg_ipt", "exp_avg_unc")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.kind == "ADALORA" and state:
            allocator = self.model.base_model.rankallocator
            for key, value in state.items():
                setattr(allocator, key, dict(value))


def method_provenance(method: str | None, options: dict, target_modules: Any = ALL_LINEAR) -> dict[str, Any]:
    """What provenance.json records of a PEFT method: {"peft": {version, peft_type, config}}; {} else."""
    from ._registry import get_spec

    if method is None or method == "full" or get_spec(method).peft is None:
        return {}
    import peft

    config = resolve_config(method, get_spec(method).peft, options, target_modules=target_modules)
    as_dict = json.loads(json.dumps(config.to_dict(), default=str))
    return {"peft": {"version": peft.__version__, "peft_type": _peft_type_name(config.peft_type), "config": as_dict}}
