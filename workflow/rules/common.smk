# What the DAG runs: variants x tasks x seeds, resolved from the config, the method YAMLs and
# the task registry. Every rule file reads the names defined here.
import os

import adapters
import tasks as task_registry

RESULTS = f"results/{config['profile']}"
ENV = "../../environment.yml"


def _select(kind, wanted, known):
    if wanted == "all":
        return sorted(known)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"config {kind}: unknown {unknown}; known: {', '.join(sorted(known))}")
    return list(wanted)


def _all_variants():
    found = adapters.variants()
    for name, v in config["define_variants"].items():
        if name in found:
            raise ValueError(f"config define_variants: {name!r} already exists in config/methods; pick another name")
        adapters._registry.resolve_options(v["method"], v.get("options", {}))  # fail early, naming the fix
        found[name] = {"method": v["method"], "options": v.get("options", {}), "train": v.get("train", {})}
    return found


VARIANTS = _all_variants()
RUN_VARIANTS = _select("variants", config["variants"], VARIANTS)
ALL_TASKS = _select("tasks", config["tasks"], task_registry.available())
# Tasks that only probe another task's run (continual pretraining: domain QA, forgetting) get no
# training of their own; they are evaluated on the run of the task whose train split they share
# (and come along whenever that task is selected).
TRAIN_TASKS = [t for t in ALL_TASKS if not task_registry.get(t).shares_train_with]
PROBES = {t: [p for p in task_registry.available() if task_registry.get(p).shares_train_with == t]
          for t in TRAIN_TASKS}
SEEDS = config["seeds"]

wildcard_constraints:
    task="|".join(TRAIN_TASKS + [t for ps in PROBES.values() for t in ps]) or "NONE",
    variant="|".join(RUN_VARIANTS),
    seed=r"\d+",


def run_dir(task, variant, seed):
    return f"{RESULTS}/runs/{task}/{variant}/seed{seed}"


def data_dir(task):
    return f"{RESULTS}/data/{task}"


def base_model_path():
    """The base model: a Hub id / local path (paper profiles) or the DAG's own tiny model."""
    return config["base_model"]["path"] or f"{RESULTS}/base_model"


def base_model_input():
    return [] if config["base_model"]["path"] else [f"{RESULTS}/base_model/config.json"]


def method_yaml(variant):
    method = VARIANTS[variant]["method"]
    return str(adapters._registry._method_yaml(method))


def run_config(task, variant, seed):
    """One run's training.TrainConfig as a dict: profile < task < method YAML < variant."""
    spec = task_registry.get(task)
    v = VARIANTS[variant]
    return {
        **config["train"],
        **config["task_train"].get(task, {}),
        **adapters.method_config(v["method"]).get("train", {}),
        **v["train"],
        **config["variant_train"].get(variant, {}),
        "model": base_model_path(),
        "method": v["method"],
        "method_options": v["options"],
        "data_dir": data_dir(task),
        "task_kind": "causal_lm" if spec.kind == "causal_lm" else "classification",
        "num_labels": spec.num_labels,  # 1 = regression head (STS-B)
        "seed": int(seed),
        "threads": config["threads"],
    }


def eval_tasks(task):
    """The suite tasks one run is evaluated on: its own and the probes sharing its train split."""
    return [task] + PROBES.get(task, [])


def run_outputs():
    runs = [f"{run_dir(t, v, s)}/{f}" for t in TRAIN_TASKS for v in RUN_VARIANTS for s in SEEDS
            for f in ("train_summary.json", "eval.json")]
    base = [f"{RESULTS}/base_eval/{t}/eval.json" for t in TRAIN_TASKS]
    return runs + base


def final_outputs():
    return [*rules.aggregate.output, f"{RESULTS}/report.html"]
