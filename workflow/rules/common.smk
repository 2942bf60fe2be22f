# What the DAG runs: variants x tasks x seeds, resolved from the config, the method YAMLs and
# the task registry. Every rule file reads the names defined here.
import json
import os
import sys

import yaml
from snakemake.logging import logger

import adapters
import tasks as task_registry
from analysis.settings import VerdictSettings

RESULTS = f"results/{config['profile']}"
ENV = "../../environment.yml"


def _select(kind, wanted, known):
    if wanted == "all":
        return sorted(known)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"config {kind}: unknown {unknown}; known: {', '.join(sorted(known))}")
    return list(wanted)


# The profile's files, as error messages name them, and the command that fetches what it reads.
_FILES = [os.path.relpath(f) for f in workflow.overwrite_configfiles]
PROFILE = " + ".join(_FILES) or "config/config.yaml"
_CONFIGFILES = f" --configfile {' '.join(_FILES)}" if _FILES else ""
DOWNLOAD = f"snakemake download --cores 1{_CONFIGFILES}"


def _all_variants():
    # PEFT YAMLs' variants too (`variants: all` skips them); the ones the profile uses are checked below
    found = adapters.variants(include_peft=True, check_peft=False)
    for name, v in config["define_variants"].items():
        if name in found:
            raise ValueError(f"config define_variants: {name!r} already exists in config/methods; pick another name")
        try:  # fail early, naming the fix
            adapters._registry.resolve_options(v["method"], v.get("options", {}))
        except ValueError as error:
            raise ValueError(f"{PROFILE}: define_variants.{name}.options: {error}") from None
        found[name] = {"method": v["method"], "options": v.get("options", {}), "train": v.get("train", {})}
    return found


VARIANTS = _all_variants()
RUN_VARIANTS = _select("variants", config["variants"], VARIANTS if config["variants"] != "all" else
                       {v: s for v, s in VARIANTS.items() if s["method"] not in adapters.peft_methods()})
ALL_TASKS = _select("tasks", config["tasks"], task_registry.available())
# Tasks that only probe another task's run (continual pretraining: domain QA, forgetting) get no
# training of their own; they are evaluated on the run of the task whose train split they share
# (and come along whenever that task is selected).
TRAIN_TASKS = [t for t in ALL_TASKS if not task_registry.get(t).shares_train_with]
PROBES = {t: [p for p in task_registry.available() if task_registry.get(p).shares_train_with == t]
          for t in TRAIN_TASKS}
SEEDS = config["seeds"]
for _variant in config["variant_seeds"]:
    if _variant not in VARIANTS:
        raise ValueError(f"config variant_seeds: {_variant!r} is not a variant of this profile "
                         f"({', '.join(VARIANTS)}); drop it or add the variant")


def seeds_for(variant):
    """The seeds `variant` trains with: its variant_seeds entry (more seeds where a claim needs the
    power), else the profile's seeds."""
    return list(config["variant_seeds"].get(variant, SEEDS))


VerdictSettings.from_dict(config["verdicts"])  # a misspelt key fails now, not after every run
for _task, _names in config["task_variants"].items():
    if _task not in TRAIN_TASKS:
        raise ValueError(f"config task_variants: {_task!r} is not a trained task of this profile "
                         f"(tasks: {', '.join(TRAIN_TASKS)}); drop it or add it to `tasks`")
    _select(f"task_variants.{_task}", _names, VARIANTS)


def variants_for(task):
    """The variants trained on `task`: its task_variants entry, else the profile's variants."""
    return list(config["task_variants"].get(task, RUN_VARIANTS))


USED_VARIANTS = sorted({v for t in TRAIN_TASKS for v in variants_for(t)})
for _variant in USED_VARIANTS:  # a PEFT variant's options, checked by PEFT (imports peft: only when used)
    if VARIANTS[_variant]["method"] in adapters.peft_methods():
        try:
            adapters._registry.resolve_options(VARIANTS[_variant]["method"], VARIANTS[_variant]["options"])
        except ValueError as error:
            raise ValueError(f"variant {_variant!r}: {error}") from None

wildcard_constraints:
    task="|".join(TRAIN_TASKS + [t for ps in PROBES.values() for t in ps]) or "NONE",
    variant="|".join(USED_VARIANTS),
    seed=r"\d+",


def run_dir(task, variant, seed):
    return f"{RESULTS}/runs/{task}/{variant}/seed{seed}"


def data_dir(task):
    return f"{RESULTS}/data/{task}"


def _base_model_gguf():
    """The GGUF file the DAG converts into its base model (base_model.gguf), else None; checked now."""
    spec = config["base_model"].get("gguf")
    if not spec:
        return None
    if config["base_model"]["path"]:
        raise ValueError(f"{PROFILE}: base_model sets both `path` and `gguf`; keep one (path: a model directory "
                         "or Hub id; gguf: a GGUF file in an installed wheel, converted by the DAG)")
    from training import gguf

    try:
        return gguf.locate(spec["wheel"], spec["file"])
    except FileNotFoundError as error:
        raise ValueError(f"{PROFILE}: base_model.gguf: {error}") from None


BASE_GGUF = _base_model_gguf()


def base_model_path():
    """The base model: a Hub id / local path (paper profiles) or the DAG's own (tiny or converted GGUF)."""
    return config["base_model"]["path"] or f"{RESULTS}/base_model"


def base_model_input():
    return [] if config["base_model"]["path"] else [f"{RESULTS}/base_model/config.json"]


def method_yaml(variant):
    method = VARIANTS[variant]["method"]
    return str(adapters._registry._method_yaml(method))


def variant_source(variant):
    """Where a variant is defined, as error messages name it."""
    if variant in config["define_variants"]:
        return f"{PROFILE}: define_variants.{variant}"
    method = VARIANTS[variant]["method"]
    listed = adapters.method_config(method).get("variants")
    return f"config/methods/{method}.yaml: " + (f"variants.{variant}" if listed else "options")


def run_layers(task, variant):
    """The parts of a run's training config, lowest precedence first: (where it is written, keys)."""
    method = VARIANTS[variant]["method"]
    return [
        (f"{PROFILE}: train", config["train"]),
        (f"{PROFILE}: task_train.{task}", config["task_train"].get(task) or {}),
        (f"config/methods/{method}.yaml: train", adapters.method_config(method).get("train") or {}),
        (f"{variant_source(variant)}.train", VARIANTS[variant]["train"] or {}),
        (f"{PROFILE}: variant_train.{variant}", config["variant_train"].get(variant) or {}),
    ]


def run_config(task, variant, seed):
    """One run's training.TrainConfig as a dict: profile < task < method YAML < variant."""
    spec = task_registry.get(task)
    v = VARIANTS[variant]
    return {
        **{key: value for _, keys in run_layers(task, variant) for key, value in keys.items()},
        "model": base_model_path(),
        "method": v["method"],
        "method_options": v["options"],
        "data_dir": data_dir(task),
        "task_kind": "causal_lm" if spec.kind == "causal_lm" else "classification",
        "num_labels": spec.num_labels,  # 1 = regression head (STS-B)
        "seed": int(seed),
        "threads": config["threads"],
    }


def _base_model_config():
    """The base model's transformers config, no weights (None when not on disk: a Hub model not in
    the cache). The tiny base model is built by a job: its architecture is in its pretrain config."""
    from training import preflight

    if BASE_GGUF:  # converted by an earlier run, else read from the GGUF's metadata (seconds)
        from training import gguf

        return preflight.base_config(base_model_path()) or gguf.config(BASE_GGUF)
    if not config["base_model"]["path"]:
        with open(config["base_model"]["pretrain_config"]) as f:
            spec = yaml.safe_load(f) or {}
        vocab = (spec.get("tokenizer") or {}).get("vocab_size", 2048)
        return preflight.base_config(model_config={"model_type": "llama", "vocab_size": vocab, **(spec.get("model") or {})})
    path = config["base_model"]["path"]
    found = preflight.base_config(path)
    if found is None:
        local = os.path.expanduser(path)
        if os.path.isdir(local) or os.path.isabs(local) or path.startswith("."):  # local: nothing fetches it
            what = "has no config.json (not a transformers model folder)" if os.path.isdir(local) else "does not exist"
            raise ValueError(f"{PROFILE}: base_model.path {path} {what}; point it at a model folder "
                             "(config.json, weights, tokenizer) or at a Hub id")
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "on", "yes", "true"):
            logger.warning(f"{path}: not in the Hugging Face cache and HF_HUB_OFFLINE is set, so every run "
                           f"would fail to load it; fetch it first where there is internet: `{DOWNLOAD}`")
        else:
            logger.info(f"{path}: no config.json on disk (not in the Hugging Face cache); "
                        "the methods' ranks are checked against its layer shapes when each run starts")
    return found


def _trained_as_configured(task, variant):
    """Whether every seed of (task, variant) has trained with exactly its current config (the config
    hash its train_summary.json records): those runs fit, evidently, and need no model built to say so."""
    from training.config import TrainConfig

    for seed in seeds_for(variant):
        try:
            with open(f"{run_dir(task, variant, seed)}/train_summary.json") as f:
                recorded = json.load(f).get("config_hash")
        except (OSError, ValueError):
            return False
        if recorded != TrainConfig.from_dict(run_config(task, variant, seed)).config_hash():
            return False
    return True


def _check_runs():
    """Every run's full training config, and every variant's method on the base model's layer
    shapes, before any job starts: a mistake found after the first runs costs their hours. The
    shapes check (a model built on the meta device) is skipped for runs that already trained with
    their current config, so that a rerun with nothing to do plans in seconds."""
    from training import preflight
    from training.config import ConfigError, TrainConfig, check_keys

    base, loaded = None, False  # the base model's config: read once, when a run needs its shapes checked
    for task in TRAIN_TASKS:
        for variant in variants_for(task):
            layers = run_layers(task, variant)
            for where, keys in layers:
                check_keys(keys, where)
            try:
                cfg = TrainConfig.from_dict(run_config(task, variant, SEEDS[0]))
                if not _trained_as_configured(task, variant):
                    if not loaded:
                        base, loaded = _base_model_config(), True
                    if base is not None:
                        preflight.check_fits(cfg, base)
            except ConfigError as error:
                setters = [where for where, keys in layers if error.key in keys]
                if error.key == "method_options":
                    where = f"{variant_source(variant)} (the options of variant {variant})"
                else:
                    where = setters[-1] if setters else f"{PROFILE} (set {error.key} under train:)"
                raise ValueError(f"run {task}/{variant}: {error}; it is set in {where}") from None


_check_runs()


def eval_placement(task, variant=None, seed=0):
    """Where a run is evaluated: its training device and dtype (the bare base: the task's)."""
    cfg = run_config(task, variant, seed) if variant else {**config["train"], **config["task_train"].get(task, {})}
    return {key: cfg[key] for key in ("device", "dtype") if key in cfg}


# One GPU job per GPU. A profile that trains on CUDA gives its GPU rules a `gpu` resource; on the
# local executor the pool is the number of visible GPUs unless `--resources gpu=N` says otherwise
# (a cluster executor gets one GPU per job from its profile, config/profiles/slurm). The resource
# only counts: each GPU job's script claims a free GPU of its own (training/devices.py).
def _uses_cuda():
    placements = [config["train"], *config["task_train"].values(), *config["variant_train"].values(),
                  *(v["train"] for v in VARIANTS.values())]
    return any(p.get("device") == "cuda" for p in placements)


GPU_PER_JOB = 1 if _uses_cuda() else 0
if GPU_PER_JOB and workflow.local_exec:
    from training import devices as _devices

    _VISIBLE_GPUS = _devices.count()  # nvidia-smi within CUDA_VISIBLE_DEVICES; CUDA is not initialised here
    if "gpu" not in workflow.global_resources:
        workflow.register_resource("gpu", max(1, _VISIBLE_GPUS))
    elif (workflow.global_resources["gpu"] or 0) > max(1, _VISIBLE_GPUS):
        logger.warning(f"--resources gpu={workflow.global_resources['gpu']} but {_VISIBLE_GPUS} GPU(s) are visible: "
                       "jobs beyond them wait for a free GPU (training/devices.py), they never share one")


def _memory_plan():
    """Every CUDA run's estimated peak GPU memory and tokens (training/estimate.py), printed when
    the DAG is built; with `gpu_memory_gb`, a run estimated above it fails now, naming the fix."""
    limit = config.get("gpu_memory_gb")
    if not (GPU_PER_JOB or limit):
        return
    from training import estimate as _estimate
    from training.config import TrainConfig

    path = config["base_model"]["path"]
    base = _estimate.model_config(path) if path else _base_model_config()
    if base is None:
        logger.info(f"memory estimate skipped: {path} has no config.json on disk and is not in "
                    "training/estimate.py's KNOWN architectures")
        return
    lines = []
    for task in TRAIN_TASKS:
        for variant in variants_for(task):
            cfg = TrainConfig.from_dict(run_config(task, variant, SEEDS[0]))
            if cfg.device != "cuda":
                continue
            examples = _estimate.train_examples(data_dir(task), task, config["data"])
            est = _estimate.estimate(cfg, base, examples, run=f"{task}/{variant}")
            lines.append(est.line())
            if limit and est.total_gb + _estimate.OVERHEAD_GB > limit:
                setters = [w for w, keys in run_layers(task, variant) if "batch_size" in keys]
                message = _estimate.too_big_message(est, limit, setters[-1] if setters else f"{PROFILE} (under train:)")
                raise ValueError(f"{PROFILE}: {message}")
    if lines:
        shown_limit = f"; limit gpu_memory_gb {limit:g}" if limit else ""
        logger.info(f"Memory estimate per run (training/estimate.py: weights, gradients, AdamW state, activations, "
                    f"logits; GB = 1e9 bytes, + ~{_estimate.OVERHEAD_GB:g} GB CUDA context{shown_limit}):")
        for line in lines:
            logger.info(f"  {line}")


_memory_plan()


def eval_tasks(task):
    """The suite tasks one run is evaluated on: its own and the probes sharing its train split.
    Only the evaluation rules' input functions call it: the DAG's evaluations of `task` are planned,
    so what they read must be there (a `snakemake download` DAG, which fetches it, plans none)."""
    tasks = [task] + PROBES.get(task, [])
    _check_eval_resources(task, tasks)
    return tasks


_PUNKT_CHECKED = set()


def _check_eval_resources(task, tasks):
    """IFEval's nltk punkt_tab, which no job of the DAG fetches: checked when the DAG is built, not
    found missing by every evaluation after every run has trained. Skipped once all of `task`'s
    evaluations are done (a later `snakemake` there re-evaluates nothing)."""
    from training import preflight

    lists = {t: preflight.punkt_tab_tasks(config["eval"]["lm_eval_tasks"].get(t) or []) for t in tasks}
    lists = {t: names for t, names in lists.items() if names}
    if not lists or task in _PUNKT_CHECKED:
        return
    _PUNKT_CHECKED.add(task)
    outputs = [f"{run_dir(task, v, s)}/eval.json" for v in variants_for(task) for s in seeds_for(v)]
    if all(os.path.exists(f) for f in [*outputs, f"{RESULTS}/base_eval/{task}/eval.json"]):
        return
    if not preflight.punkt_tab_found():
        where, names = next(iter(lists.items()))
        raise ValueError(
            f"{PROFILE}: eval.lm_eval_tasks.{where} evaluates {', '.join(names)}, whose checks need nltk's "
            f"punkt_tab, and nltk does not find it (NLTK_DATA, ~/nltk_data, {sys.prefix}/nltk_data, /usr/share/nltk_data, "
            f"…). Fetch it before any run, where there is internet: `{DOWNLOAD}` (it puts punkt_tab in "
            f"{sys.prefix}/nltk_data), or `python -m nltk.downloader -d DIR punkt_tab` and set NLTK_DATA=DIR")


def run_outputs():
    runs = [f"{run_dir(t, v, s)}/{f}" for t in TRAIN_TASKS for v in variants_for(t) for s in seeds_for(v)
            for f in ("train_summary.json", "eval.json")]
    base = [f"{RESULTS}/base_eval/{t}/eval.json" for t in TRAIN_TASKS]
    return runs + base


def final_outputs():
    return [*rules.aggregate.output, f"{RESULTS}/report.html"]


# --- learning-rate sweep (config `lr_sweep`; rules in sweep.smk) ---------------------------------
def _sweep_lr(where, value):
    """One grid entry (or factor) as a float: YAML 1.1 reads `3e-3` (no dot) as a string."""
    try:
        lr = float(value)
    except ValueError:
        raise ValueError(f"config lr_sweep.{where}: {value!r} is not a number; "
                         "write numbers such as 3.0e-4") from None
    if not lr > 0:
        raise ValueError(f"config lr_sweep.{where}: values must be > 0, got {value!r}")
    return lr


def own_lr(variant):
    """The lr a variant brings along: its own definition's train.lr, else its method YAML's, before
    any profile scales it (the anchor of `lr_sweep.relative`); None where neither sets one."""
    own = (VARIANTS[variant]["train"] or {}).get("lr")
    if own is None:
        own = (adapters.method_config(VARIANTS[variant]["method"]).get("train") or {}).get("lr")
    return None if own is None else float(own)


def _relative_grid():
    """`lr_sweep.relative`: {variant: its own lr × each factor, to 3 significant digits}."""
    relative = config["lr_sweep"].get("relative")
    if not relative:
        return {}
    factors = [_sweep_lr("relative.factors", f) for f in relative["factors"]]
    if len(set(factors)) < len(factors):
        raise ValueError(f"config lr_sweep.relative.factors: {relative['factors']} lists a factor twice; drop the repeat")
    wanted = relative.get("variants", "all")
    wanted = USED_VARIANTS if wanted == "all" else _select("lr_sweep.relative.variants", wanted, VARIANTS)
    grid = {}
    for variant in wanted:
        anchor = own_lr(variant)
        if anchor is None:
            raise ValueError(f"config lr_sweep.relative: variant {variant!r} has no lr of its own ({variant_source(variant)} "
                             "and its method YAML set no train.lr); give it one there or an lr_sweep.grid entry")
        grid[variant] = sorted({float(f"{anchor * f:.3g}") for f in factors})
    return grid


def _sweep_grid():
    """{variant: sorted lrs}; a variant the profile does not train is simply not swept. An explicit
    `grid` entry wins over `relative`."""
    grid = _relative_grid()
    for variant, values in config["lr_sweep"]["grid"].items():
        if variant not in VARIANTS:
            raise ValueError(f"config lr_sweep.grid: unknown variant {variant!r}; known: {', '.join(sorted(VARIANTS))}")
        lrs = [_sweep_lr(f"grid.{variant}", v) for v in values]
        if len(set(lrs)) < len(lrs):
            raise ValueError(f"config lr_sweep.grid.{variant}: {values} lists a learning rate twice; drop the repeat")
        grid[variant] = sorted(lrs)
    return grid


def _sweep_tasks():
    wanted = config["lr_sweep"]["tasks"]
    if wanted == "all":
        return list(TRAIN_TASKS)
    untrained = [t for t in wanted if t not in TRAIN_TASKS]
    if untrained:
        raise ValueError(f"config lr_sweep.tasks: {untrained} not trained by this profile (trained: "
                         f"{', '.join(TRAIN_TASKS)}); drop them from lr_sweep.tasks or add them to `tasks`")
    return list(wanted)


SWEEP_GRID = _sweep_grid()
SWEEP_SEED = SEEDS[0] if config["lr_sweep"]["seed"] is None else config["lr_sweep"]["seed"]
# (task, variant) -> the lrs its sweep tries; empty without a grid, and then no rule of sweep.smk runs.
SWEEP = {(t, v): SWEEP_GRID[v] for t in (_sweep_tasks() if SWEEP_GRID else []) for v in variants_for(t)
         if v in SWEEP_GRID}


def lr_tag(lr):
    """An lr as its sweep directory names it (lr0.001, lr5e-05): repr round-trips, so float(tag) == lr."""
    return repr(float(lr))


def sweep_dir(task, variant):
    return f"{RESULTS}/sweep/{task}/{variant}"


def sweep_trials(task, variant):
    """The train_summary.json of every lr the sweep of (task, variant) tries, in the grid's order."""
    return [f"{sweep_dir(task, variant)}/lr{lr_tag(lr)}/train_summary.json" for lr in SWEEP[(task, variant)]]


def sweep_config(task, variant, lr):
    """A sweep run: the real runs' config at the sweep seed and this lr. No snapshots (only the end
    counts), and always the end-of-run validation loss, the score the lr is chosen by."""
    return {**run_config(task, variant, SWEEP_SEED), "lr": float(lr), "snapshot_steps": [], "eval_at_end": True}


def chosen_lr_input(task, variant):
    """The train rule's extra input: the sweep's choice for a swept (task, variant), else nothing."""
    return [f"{sweep_dir(task, variant)}/chosen_lr.json"] if (task, variant) in SWEEP else []


def sweep_outputs():
    return [f"{sweep_dir(t, v)}/chosen_lr.json" for t, v in sorted(SWEEP)]
