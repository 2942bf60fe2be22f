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
OPTIMIZER_RESETS = ("delete", "prune_random", "prune_magnitude")
WARMUP_STARTS = ("hf", "one_ahead")
SCHEDULE_TOTALS = ("run", "epochs_floor")
OPTIMIZERS = ("adamw_torch", "adamw_hf_legacy")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("auto", "cpu", "cuda")
# Keys that do not change what is computed; they stay out of the config hash, so a resumed
# run may use another thread count than the run that wrote the checkpoint.
NOT_HASHED = ("threads",)
FULL = "full"  # method `full` = null (full fine-tuning) with config/methods/full.yaml's train defaults


class InputError(ValueError):
    """Bad input (a config or data file): nothing ran, and nothing but the input can fix it.
    The message names the file, the key or line, and the fix; `python -m training` exits 2."""


class ConfigError(InputError):
    """A bad value of one config key (`key`), so callers can say which file set it."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"config: {key} {problem}")
        self.key, self.problem = key, problem


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
    method: str | None = "lora"      # a registered adapters method; None (or "full") = full fine-tuning
    method_options: dict = field(default_factory=dict)   # overrides of config/methods/<method>.yaml
    target_modules: str | list = "all-linear"
    modules_to_save: list | None = None  # None: the task head for classification, nothing for causal LM
    # --- task ----------------------------------------------------------------------------
    data_dir: str = ""               # holds train.jsonl (and validation.jsonl for evaluation)
    task_kind: str = "causal_lm"
    num_labels: int | None = None    # classification: None = from the data (1 = regression)
    seq_len: int = 512
    add_bos: bool | str = "auto"     # causal LM: sequence = [bos] prompt target [eos]; auto = bos only
                                     # when the tokenizer itself starts text with it, as lm-eval's
                                     # prompts are encoded (LLaMA-2, the tiny model: yes; GPT-2, SmolLM2: no)
    add_eos: bool = True             # causal LM: end every target with the tokenizer's eos; false = the text
                                     # alone, as kongds/MoRA's UUID data (`key:value`, no eos; paper profile)
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
    warmup_start: str = "one_ahead"  # hf: lr·i/w from a zero-lr first step, as transformers' schedulers
                                     # (the workflow schema's default, so every paper profile's);
                                     # one_ahead: lr·(i+1)/w (the tiny, replication and real profiles)
    schedule_total: str = "run"      # the steps the schedule spans: run = the run's; epochs_floor =
                                     # int(epochs·examples/(batch·grad_accum·world)) as SoRA's run_glue.py,
                                     # so the run's last steps train at the decay's end (training/optim.py)
    restart_schedule: str = "mora"   # after an optimizer reset (ReLoRA / ReMoRA): mora = kongds/MoRA's
                                     # callback, relora = ReLoRA's jagged cosine (training/optim.py)
    restart_warmup_steps: int | None = 50  # warmup after a reset (the callback's 50); None = warmup
    optimizer_reset: str = "delete"  # what a reset does to the adapter's Adam state: delete = kongds/MoRA's
                                     # callback (the state, step count included, is dropped; it ran MoRA
                                     # Table 3's ReLoRA and ReMoRA rows); prune_random / prune_magnitude =
                                     # Guitaricet/relora's (zero a random / the smallest-|x| fraction
                                     # `optimizer_reset_ratio` of exp_avg and exp_avg_sq, keep the step count;
                                     # its default is prune_random 0.999). training/trainer.py
    optimizer_reset_ratio: float = 0.999  # the fraction prune_* zeroes, in [0, 1)
    min_lr_ratio: float = 0.0        # the decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0        # on matrices only: biases, norms, gates and vectors get none
    adam_betas: list = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    optimizer: str = "adamw_torch"   # the main groups': adamw_torch = torch.optim.AdamW; adamw_hf_legacy =
                                     # transformers 4.x's AdamW (ε on √v before the bias correction)
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
        _check_types(self)
        _choice("task_kind", self.task_kind, TASK_KINDS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("restart_schedule", self.restart_schedule, RESTART_SCHEDULES)
        _choice("optimizer_reset", self.optimizer_reset, OPTIMIZER_RESETS)
        if not 0.0 <= self.optimizer_reset_ratio < 1.0:
            raise ConfigError("optimizer_reset_ratio", f"must be in [0, 1) (the fraction of the Adam moments "
                                                       f"a prune_* reset zeroes), got {self.optimizer_reset_ratio}")
        _choice("warmup_start", self.warmup_start, WARMUP_STARTS)
        _choice("schedule_total", self.schedule_total, SCHEDULE_TOTALS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("device", self.device, DEVICES)
        _choice("model_init", self.model_init, ("pretrained", "random"))
        _choice("add_bos", self.add_bos, (True, False, "auto"))
        if self.model_init == "pretrained" and not self.model:
            raise ConfigError("model", "(a local path or Hub id) is required unless model_init is 'random'")
        if self.model_init == "random" and not (self.model_config or self.model):
            raise ConfigError("model_config", "is needed by model_init 'random' (or `model`, to take the config from)")
        if not (self.tokenizer or self.model):
            raise ConfigError("tokenizer", "(a path or Hub id) is required when `model` is empty")
        if not self.data_dir:
            raise ConfigError("data_dir", "(the task's JSONL directory) is required")
        for name in ("seq_len", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be ≥ 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be ≥ 0 (0 = off), got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps", f"must be ≥ 1 (or null to use epochs), got {self.max_steps}")
        if self.max_steps is None and self.epochs <= 0:
            raise ConfigError("epochs", f"must be > 0, got {self.epochs}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.pack and self.task_kind != "causal_lm":
            raise ConfigError("pack", "applies to causal_lm tasks only")
        bad = [n for n in self.snapshot_steps if isinstance(n, bool) or not isinstance(n, int) or n < 1]
        if bad:
            raise ConfigError("snapshot_steps", f"must be positive step numbers, got {bad}")
        if self.method == FULL:  # full fine-tuning by name (config/methods/full.yaml): the same as null
            if self.method_options:
                raise ConfigError("method_options", f"full fine-tuning takes no options, got {self.method_options!r}")
            self.method = None
        if self.method is None and self.modules_to_save:
            raise ConfigError("modules_to_save", "needs a method; with method null every weight trains")
        if self.method is not None:
            self.method_options = _method_options(self.method, self.method_options)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        check_keys(values, "run config")
        method = values.get("method", cls.method)
        method_train = {}
        if method is not None:
            import adapters  # the method's YAML: options for apply, `train:` defaults for us
            if not isinstance(method, str):
                raise ConfigError("method", f"must be a method name or null (full fine-tuning), got {method!r}")
            try:
                if method != FULL:
                    adapters._registry.get_spec(method)
                method_train = adapters.method_config(method).get("train") or {}
            except ValueError as error:
                raise ConfigError("method", f"{method!r}: {error}") from None
            check_keys(method_train, f"the `train:` section of config/methods/{method}.yaml")
        return cls(**{**method_train, **values})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        values = read_yaml(path)
        if not isinstance(values, dict):
            raise InputError(f"{path}: a run config is a mapping of keys to values (key: value lines)")
        try:
            return cls.from_dict(values)
        except InputError as error:
            raise _in_file(error, path) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        hashed = {k: v for k, v in self.to_dict().items() if k not in NOT_HASHED}
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


def read_yaml(path: str | Path) -> Any:
    """A YAML file's content; broken YAML names the file, the line and what to fix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a YAML run config")
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(error, "problem", None) or str(error)
        start = getattr(error, "context_mark", None)
        if getattr(error, "context", None) and start:
            problem += f" ({error.context} that starts at line {start.line + 1})"
        raise InputError(f"{path}: not valid YAML at {where}: {problem}; fix the syntax there "
                         "(a `{` or `[` left open, a tab, a missing `: `?)") from None


def _in_file(error: InputError, path: str | Path) -> InputError:
    """The same error, its message prefixed with the file that holds the bad value."""
    error.args = (f"{path}: {error.args[0]}",)
    return error


def _method_options(method: str, options: Any) -> dict:
    """The method's options checked now (unknown option, r: 0, a bad mora_type), not in the trainer."""
    from adapters._registry import resolve_options

    if not isinstance(options, dict):
        raise ConfigError("method_options", f"must be a mapping of {method}'s options, got {options!r}")
    try:
        resolve_options(method, options)
    except (ValueError, TypeError) as error:
        raise ConfigError("method_options", f"({method}): {error}; fix it, or drop it to take "
                                            f"config/methods/{method}.yaml's default") from None
    return options


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_keys(values: dict[str, Any], where: str) -> None:
    """Every key of `values` is a TrainConfig key and holds a value of its type; errors name `where`."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: must be a mapping of training keys to values, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"unknown key {key!r} in {where}{hint}; see `python -m training --help` for the keys")
        try:
            _typed(fields[key], value)
        except ConfigError as error:
            raise ConfigError(key, f"{error.problem} (in {where})") from None


# The annotation of each key -> the Python types its values may take (YAML gives int for 3, float for 3.0).
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,), "list": (list,)}


def _typed(f: dataclasses.Field, value: Any) -> Any:
    """`value` as key `f` takes it, or ConfigError. YAML 1.1 reads `3e-3` (no dot) as a string and
    `--config` hands nested values over as strings: numbers in strings are taken as meant."""
    allowed = [t for part in str(f.type).split("|") for t in _TYPES.get(part.strip(), ())]
    if not allowed or (value is None and "None" in str(f.type)):
        return value
    if allowed == [int] and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    if float in allowed and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            example = f.default if isinstance(f.default, float) else 1.0e-4
            raise ConfigError(f.name, f"must be a number, got {value!r}; write e.g. {f.name}: {example}") from None
    if not isinstance(value, tuple(allowed)) or (isinstance(value, bool) and bool not in allowed):
        kind = " or ".join(str(f.type).replace(" ", "").split("|"))
        raise ConfigError(f.name, f"must be {kind}, got {value!r} ({type(value).__name__})")
    return value


def _check_types(cfg: "TrainConfig") -> None:
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, _typed(f, getattr(cfg, f.name)))
