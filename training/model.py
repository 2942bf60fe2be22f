"""Building the model a run trains: base weights (pretrained or random), then the method."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoTokenizer)

import adapters
from adapters import TrainingHooks

from .config import TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def check_local_path(name: str) -> None:
    """A path that does not exist would reach the Hub client, whose error only talks about repo ids."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"model or tokenizer directory {name} not found (build the base model first?)")


def load_tokenizer(cfg: TrainConfig):
    check_local_path(cfg.tokenizer or cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    if tokenizer.pad_token_id is None:  # LLaMA / GPT-2 tokenizers have none; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def task_head_names(model: nn.Module) -> list[str]:
    """A classifier's modules outside its base model (`score`, `classifier`, `pooler`, ...)."""
    return [n for n, m in model.named_children()
            if n != model.base_model_prefix and any(True for _ in m.parameters())]


def load_base_model(cfg: TrainConfig, tokenizer, num_labels: int | None) -> nn.Module:
    """Pretrained weights from a path / Hub id, or fresh weights from a config (seeded by the caller)."""
    auto = AutoModelForCausalLM if cfg.task_kind == "causal_lm" else AutoModelForSequenceClassification
    task_kwargs = {}
    if cfg.task_kind == "classification":
        task_kwargs = {"num_labels": num_labels, "pad_token_id": tokenizer.pad_token_id,
                       "problem_type": "regression" if num_labels == 1 else "single_label_classification"}
    dtype = DTYPES[cfg.dtype]
    if cfg.model_init == "pretrained":
        check_local_path(cfg.model)
        model = auto.from_pretrained(cfg.model, dtype=dtype, **task_kwargs)
    else:
        if cfg.model_config:
            config = AutoConfig.for_model(**{"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                                             "eos_token_id": tokenizer.eos_token_id,
                                             "pad_token_id": tokenizer.pad_token_id,
                                             **cfg.model_config, **task_kwargs})
        else:
            config = AutoConfig.from_pretrained(cfg.model, **task_kwargs)
        model = auto.from_config(config, dtype=torch.float32 if dtype == "auto" else dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing gives gradients to adapters even when the inputs need none.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def modules_to_save(cfg: TrainConfig, model: nn.Module) -> list[str]:
    if cfg.modules_to_save is not None:
        return list(cfg.modules_to_save)
    return task_head_names(model) if cfg.task_kind == "classification" else []


def attach_method(cfg: TrainConfig, model: nn.Module) -> TrainingHooks:
    """Inject the method (or unfreeze everything for full fine-tuning); returns the hooks to call.
    The model to train is `hooks.model`: `model` itself, or for a PEFT method the PeftModel around it."""
    if cfg.method is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return TrainingHooks(model, None)  # the plain hooks: every parameter in the main optimizer
    model = adapters.apply(model, cfg.method, cfg.target_modules, modules_to_save=modules_to_save(cfg, model),
                           **cfg.method_options)
    return adapters.training_hooks(model)


def num_trainable(cfg: TrainConfig, model: nn.Module) -> int:
    if cfg.method is not None:
        return adapters.num_trainable(model)  # the method's own count (e.g. VeRA's shared projections are frozen)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def upcast_trainable_(model: nn.Module) -> None:
    """Half-precision base weights, fp32 trainable tensors: autocast computes in half, Adam updates in fp32."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def resolve_device(name: str) -> torch.device:
    """The configured device as a torch.device: `auto` = the GPU when one is visible."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("config: device 'cuda' but no GPU is visible; use device 'cpu' or 'auto'")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def full_model_dir(adapter_dir: str | Path) -> Path | None:
    """A full fine-tuning run's (or snapshot's) trained model: where an adapter run keeps
    <dir>/adapter, a full run (method null) keeps the whole model in <dir> itself (config.json,
    written last, and safetensors weights). None when `adapter_dir`'s parent holds no such model."""
    adapter_dir = Path(adapter_dir)
    parent = adapter_dir.parent
    if adapter_dir.exists() or not (parent / "config.json").is_file() or not any(parent.glob("*.safetensors")):
        return None
    return parent


def load_for_eval(cfg: TrainConfig, num_labels: int | None, adapter_dir: str | Path | None = None):
    """(model, tokenizer) as a run is evaluated: the base with the adapter merged in, in the run's
    dtype, on the run's device (a 7B model in fp32 on the host CPU takes days through MMLU).
    A full fine-tuning run has no adapter: its directory's own model replaces the base."""
    full = full_model_dir(adapter_dir) if adapter_dir is not None else None
    if full is not None:
        cfg = dataclasses.replace(cfg, model=str(full), tokenizer=str(full), model_init="pretrained")
    tokenizer = load_tokenizer(cfg)
    model = load_base_model(cfg, tokenizer, num_labels)
    model.to(resolve_device(cfg.device))
    if adapter_dir is not None and full is None:  # a PEFT method's load returns the PeftModel around the base
        model = adapters.merge(adapters.load(model, adapter_dir))
    return model.eval(), tokenizer
