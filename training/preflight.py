"""Checks made before anything runs: does a run's method fit the base model's layers?

The base model is built from its config alone, on the meta device (no weights, no memory), so a
rank the layers cannot take (`r: 100000` on a 32-wide layer) or target modules that select nothing
fail when the Snakemake DAG is built or `python -m training` starts, not after hours of other runs.

    config = base_config("meta-llama/Llama-2-7b-hf")   # config.json only; None when not on disk
    check_fits(TrainConfig.from_dict(run), config)      # raises ConfigError naming the key and the fix

And the resources the evaluations read that no job of the DAG fetches: nltk's punkt_tab for IFEval
(`punkt_tab_tasks`, `punkt_tab_found`), so that a machine without it fails when the DAG is built,
not after every run has trained.
"""
from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path

from .config import ConfigError, TrainConfig


def base_config(model: str = "", model_config: dict | None = None):
    """The base model's transformers config without its weights, or None when it is not on disk.

    `model_config` (transformers config kwargs with `model_type`, as `model_init: random` takes them)
    wins; else a local directory's config.json; else a Hub id's config.json if the Hugging Face cache
    has it (nothing is downloaded).
    """
    from transformers import AutoConfig

    if model_config:
        kwargs = dict(model_config)
        return AutoConfig.for_model(kwargs.pop("model_type", "llama"), **kwargs)
    if not model:
        return None
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return None  # built by an earlier job of the DAG (the tiny base model): not there yet
        return AutoConfig.from_pretrained(str(path))
    try:
        return AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=8)
def _meta_model(config_json: str, classification: bool, num_labels: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = json.loads(config_json)
    config = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    if classification:
        config.num_labels = num_labels
    auto = AutoModelForSequenceClassification if classification else AutoModelForCausalLM
    with torch.device("meta"):  # a 7B model in 0.05 s; importing its modeling code costs ~1 s
        return auto.from_config(config)


def _meta_key(config, cfg: TrainConfig) -> tuple[str, bool, int]:
    """_meta_model's (hashable) arguments for the model `cfg` trains on `config`."""
    return json.dumps(config.to_dict(), sort_keys=True, default=str), cfg.task_kind == "classification", cfg.num_labels or 2


def meta_model(config, cfg: TrainConfig):
    """The model `cfg` trains (task head included), with meta tensors: names and shapes only."""
    return _meta_model(*_meta_key(config, cfg))


@lru_cache(maxsize=256)
def _peft_problem(config_json: str, classification: bool, num_labels: int, method: str, options_json: str,
                  targets_json: str, heads_json: str) -> str | None:
    """PEFT's own complaint about the layer shapes, from applying the method to a fresh meta model
    (c3a's block size, RoAd's group size, VB-LoRA's vector length must divide the layers' widths):
    PEFT raises ValueError for those. Inits that read weights (PiSSA's SVD, FRoD's decomposition)
    cannot run on meta tensors; they are left to the run, which reads real weights."""
    import warnings

    import adapters
    model = _meta_model.__wrapped__(config_json, classification, num_labels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapters.apply(model, method, json.loads(targets_json), modules_to_save=json.loads(heads_json),
                           **json.loads(options_json))
    except ValueError as error:
        return str(error)
    except (NotImplementedError, RuntimeError):  # an operation meta tensors cannot do: not a shape problem
        return None
    return None


def check_fits(cfg: TrainConfig, config) -> None:
    """Raise ConfigError when cfg's target_modules select no layer of the base model (`config`, a
    transformers config) or its method cannot take the shape of a selected layer."""
    import adapters
    from adapters._layer import layer_shape
    from adapters._registry import get_spec, resolve_options

    from .model import modules_to_save

    if cfg.method is None:
        return
    model = meta_model(config, cfg)
    try:
        targets = adapters.find_targets(model, cfg.target_modules)
    except ValueError as error:
        raise ConfigError("target_modules", f"{error}") from None
    if isinstance(cfg.target_modules, list):  # a misspelt name selects nothing while the others do
        idle = [p for p in cfg.target_modules if not any(t == p or t.endswith("." + p) for t in targets)]
        if idle:
            raise ConfigError("target_modules", f"{idle} match no layer of {config.model_type}; fix the names")
    spec, options = get_spec(cfg.method), resolve_options(cfg.method, cfg.method_options)
    if spec.peft is not None:
        problem = _peft_problem(*_meta_key(config, cfg), cfg.method, json.dumps(cfg.method_options, sort_keys=True, default=str),
                                json.dumps(cfg.target_modules), json.dumps(sorted(modules_to_save(cfg, model))))
        if problem:
            raise ConfigError("method_options", f"({cfg.method}) cannot adapt {config.model_type}: {problem.rstrip('.')}; "
                                                "choose sizes that divide its layers' widths")
        return
    seen = set()
    for name in targets:
        shape = layer_shape(model.get_submodule(name))
        if shape in seen:
            continue
        seen.add(shape)
        problem = spec.layer_cls.check_shape(*shape, options)
        if problem:
            raise ConfigError("method_options", f"({cfg.method}) cannot adapt {name} ({shape[0]}->{shape[1]}) "
                                                f"of {config.model_type}: {problem}")


# --- resources the evaluations need ----------------------------------------------------------------
# lm-eval's IFEval checks count sentences and words with nltk's punkt_tab (lm_eval/tasks/ifeval/
# instructions_util.py), which only nltk's downloader provides; workflow/scripts/hub_download.py
# (`snakemake download`) fetches it for the same task names.
PUNKT_TAB = Path("tokenizers") / "punkt_tab" / "english"
PUNKT_TAB_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def punkt_tab_tasks(lm_eval_tasks) -> list[str]:
    """The lm-eval tasks of `lm_eval_tasks` that need nltk's punkt_tab (IFEval's)."""
    return sorted({name for name in lm_eval_tasks if str(name).startswith("ifeval")})


def nltk_data_dirs() -> list[Path]:
    """nltk's default search path (nltk.data.path), without importing nltk (~1.5 s)."""
    dirs = [Path(d).expanduser() for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    if "APPENGINE_RUNTIME" not in os.environ and os.path.expanduser("~/") != "~/":
        dirs.append(Path("~/nltk_data").expanduser())
    dirs += [Path(sys.prefix) / "nltk_data", Path(sys.prefix) / "share" / "nltk_data",
             Path(sys.prefix) / "lib" / "nltk_data"]
    dirs += [Path(d) for d in ("/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data",
                               "/usr/local/lib/nltk_data")]
    return dirs


def punkt_tab_found() -> bool:
    """Whether nltk finds punkt_tab's English model, all of its files (a partial one fails as a
    missing one does). A look at nltk's default folders first; else nltk itself answers (a zip,
    a search path changed at run time)."""
    if any(all((d / PUNKT_TAB / f).is_file() for f in PUNKT_TAB_FILES) for d in nltk_data_dirs()):
        return True
    try:
        import nltk.data

        found = nltk.data.find(f"{PUNKT_TAB.as_posix()}/")
        for name in PUNKT_TAB_FILES:
            found.join(name)
    except (LookupError, OSError, ValueError):
        return False
    return True
