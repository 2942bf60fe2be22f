"""One run's configuration: a dataclass with defaults, read from YAML with strict key checking.

Precedence, lowest to highest: the defaults below < the method's `train:` section in
config/methods/<method>.yaml (e.g. VeRA's larger lr) < the keys the run config sets.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TASK_KINDS = ("causal_lm", "classification")
SCHEDULES = ("linear", "cosine", "constant")
RESTART_SCHEDULES = ("mora", "relora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("auto", "cpu", "cuda")
# Keys that do not change what is computed; they stay out of the config hash, so a resumed
# run may use another thread count than the run that wrote the checkpoint.
NOT_HASHED = ("threads",)


@dataclass
class TrainConfig:
    # --- model ---------------------------------------------------------------------------
    model: str = ""                  # local path or Hub id of the base model (random init: its config)
    tokenizer: str | None = None     # default: `model`
    model_init: str = "pretrained"   # "random": fresh weights from `model_config` (pretraining from scratch)
    model_config: dict | None = None  # random init: transformers config kwargs incl. model_type
    dtype: str = "float32"           # dtype of the base weights as loaded
    device: str = "auto"             # auto = cuda when present
    precision: str = "auto"          # autocast: auto = bf16 on a GPU that has it, fp32 on CPU
    gradient_checkpointing: bool = False
    # --- adapter -------------------------------------------------------------------------
    method: str | None = "lora"      # a registered adapters method; None = full fine-tuning
    method_options: dict = field(default_factory=dict)   # overrides of config/methods/<method>.yaml
    target_modules: str | list = "all-linear"
    modules_to_save: list | None = None  # None: the task head for classification, nothing for causal LM
    # --- task ----------------------------------------------------------------------------
    data_dir: str = ""               # holds train.jsonl (and validation.jsonl for evaluation)
    task_kind: str = "causal_lm"
    num_labels: int | None = None    # classification: None = from the data (1 = regression)
    seq_len: int = 512
    add_bos: bool = True             # causal LM: sequence = [bos] prompt target [eos]
    pack: bool = False               # causal LM: concatenate training records into full seq_len rows
    # --- batches and length of training --------------------------------------------------
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int | None = None     # optimizer steps; wins over epochs
    epochs: float = 1.0
    # --- optimisation --------------------------------------------------------------------
    lr: float = 2e-4
    head_lr: float | None = None     # lr of modules_to_save (e.g. a classifier head); None = lr
    lr_multipliers: dict = field(default_factory=dict)  # {parameter-name substring: factor on its lr}
    schedule: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0        # used when warmup_steps is 0
    restart_schedule: str = "mora"   # after an optimizer reset (ReLoRA / ReMoRA): mora = kongds/MoRA's
                                     # callback, relora = ReLoRA's jagged cosine (training/optim.py)
    restart_warmup_steps: int | None = 50  # warmup after a reset (the callback's 50); None = warmup
    min_lr_ratio: float = 0.0        # the decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0        # on matrices only: biases, norms, gates and vectors get none
    adam_betas: list = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0  # None or 0: no clipping
    # --- run -----------------------------------------------------------------------------
    seed: int = 0
    threads: int | None = None       # torch threads; None = $LORABENCH_THREADS, else torch's default
    log_every: int = 1
    checkpoint_every: int = 0        # optimizer steps between checkpoints; 0 = none
    keep_checkpoint: bool = False    # keep the last checkpoint after a successful run
    snapshot_steps: list = field(default_factory=list)  # save the adapter at these steps too:
                                     # <out>/snapshots/step<N>/ (learning curves, e.g. MoRA Table 2)
    eval_every: int = 0              # validation loss every N steps; 0 = only at the end
    eval_at_end: bool = True
    eval_max_batches: int | None = None
    eval_batch_size: int | None = None  # None = batch_size

    def __post_init__(self):
        _coerce_numbers(self)
        _choice("task_kind", self.task_kind, TASK_KINDS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("restart_schedule", self.restart_schedule, RESTART_SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("device", self.device, DEVICES)
        _choice("model_init", self.model_init, ("pretrained", "random"))
        if self.model_init == "pretrained" and not self.model:
            raise ValueError("config: `model` (a local path or Hub id) is required unless model_init is 'random'")
        if self.model_init == "random" and not (self.model_config or self.model):
            raise ValueError("config: model_init 'random' needs `model_config` (or `model` to take the config from)")
        if not (self.tokenizer or self.model):
            raise ValueError("config: `tokenizer` (a path or Hub id) is required when `model` is empty")
        if not self.data_dir:
            raise ValueError("config: `data_dir` (the task's JSONL directory) is required")
        for name in ("seq_len", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"config: {name} must be ≥ 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"config: max_steps must be ≥ 1 (or null to use epochs), got {self.max_steps}")
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError(f"config: epochs must be > 0, got {self.epochs}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"config: warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.pack and self.task_kind != "causal_lm":
            raise ValueError("config: pack applies to causal_lm tasks only")
        bad = [n for n in self.snapshot_steps if isinstance(n, bool) or not isinstance(n, int) or n < 1]
        if bad:
            raise ValueError(f"config: snapshot_steps must be positive step numbers, got {bad}")
        if self.method is None and self.modules_to_save:
            raise ValueError("config: modules_to_save needs a method; with method null every weight trains")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        _check_keys(values, "run config")
        method = values.get("method", cls.method)
        method_train = {}
        if method is not None:
            import adapters  # the method's YAML: options for apply, `train:` defaults for us
            method_train = adapters.method_config(method).get("train") or {}
            _check_keys(method_train, f"the `train:` section of config/methods/{method}.yaml")
        return cls(**{**method_train, **values})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a run config is a mapping of keys to values")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        hashed = {k: v for k, v in self.to_dict().items() if k not in NOT_HASHED}
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"config: {name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _check_keys(values: dict[str, Any], where: str) -> None:
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown key {key!r} in {where}{hint}; see `python -m training --help` for the keys")


def _coerce_numbers(cfg: "TrainConfig") -> None:
    """YAML 1.1 reads `3e-3` (no dot) as a string: take it as the float it was meant to be."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(f.default, float) and isinstance(value, str):
            try:
                setattr(cfg, f.name, float(value))
            except ValueError:
                raise ValueError(f"config: {f.name} must be a number, got {value!r}") from None
