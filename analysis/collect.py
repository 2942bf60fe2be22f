"""From run directories to tidy tables.

    runs = collect("results/tiny")        # one row per run × metric (the table everything else reads)
    curves = collect_curves("results/tiny")  # one row per logged training step

Layout read (written by training/ and evaluation/):
    <results>/runs/<task>/<variant>/seed<k>/{train_summary.json, train_log.jsonl, eval.json,
                                            eval_step<N>.json, adapter/adapter_config.json}
    <results>/base_eval/<task>/eval.json                       (the base model: variant "base")

A run that failed or diverged still gets a row (metric and value empty) with its status and
reason, so tables show it instead of silently dropping it; `status` is the training's, and a
trained run without eval.json keeps "ok" with reason "no eval.json". Columns: see COLUMNS.
`source` is the lm-eval task a number comes from, or "train" for numbers of train_summary.json /
train_log.jsonl (final loss, end-of-run validation loss, SoRA's live rank), "spectrum" / "init" for
measured ones (spectra.py). `trainable_params` counts everything trained (a classifier head too),
`adapter_params` the adapter alone (the papers' count; a full fine-tuning run, method "full": all
its parameters); `base_model` is the run's base model as its
provenance.json records it (a Hub id or a local path).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from . import settings, taskinfo
from .files import read_json, write_csv

COLUMNS = [
    "profile", "family", "task", "train_task", "variant", "method", "role", "r", "options", "seed",
    "source", "metric", "filter", "metric_id", "step", "final", "value", "stderr", "higher_is_better",
    "trainable_params", "adapter_params", "wall_time_s", "peak_memory_mb", "tokens_seen", "base_model",
    "status", "reason", "run_dir",
]
SEED_DIR = re.compile(r"seed(\d+)$")
STEP_FILE = re.compile(r"eval_step(\d+)\.json$")


# --- eval.json -------------------------------------------------------------------------------
def _number(value) -> float | None:
    """A float for numbers and JSON nulls (NaN); None for anything else (strings such as "N/A")."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_results(eval_json: dict) -> list[dict]:
    """lm-eval's {"results": {task: {"<metric>,<filter>": v, "<metric>_stderr,<filter>": se}}} as rows."""
    rows = []
    higher = eval_json.get("higher_is_better") or {}
    for eval_task, entries in (eval_json.get("results") or {}).items():
        for key, raw in (entries or {}).items():
            metric, comma, filter_name = key.partition(",")
            if not comma or metric.endswith("_stderr"):
                continue  # "alias", sample counts, standard errors (read with their metric)
            value = _number(raw)
            if value is None:
                continue
            stderr = _number(entries.get(f"{metric}_stderr,{filter_name}"))
            hib = (higher.get(eval_task) or {}).get(metric)
            rows.append({"source": eval_task, "metric": metric, "filter": filter_name, "value": value,
                         "stderr": math.nan if stderr is None else stderr,
                         "higher_is_better": (not settings.lower_is_better(metric)) if hib is None else bool(hib)})
    return rows


def attribute(source: str, metric: str, filter_name: str, train_task: str) -> tuple[str, str]:
    """(task, metric_id) of one eval.json number of a run trained on `train_task`.

    Suite tasks are "lorabench_<task>" (a probe of the run, e.g. cpt_general, is its own task) or
    "lorabench_<train_task>_<subset>"; built-in lm-eval tasks keep their name in the metric id.
    """
    suffix = f"[{filter_name}]" if filter_name not in ("none", "") else ""
    if source.startswith("lorabench_"):
        rest = source[len("lorabench_"):]
        if rest == train_task or rest in taskinfo.known_tasks():
            return rest, metric + suffix
        if rest.startswith(train_task + "_"):
            return train_task, f"{rest[len(train_task) + 1:]}/{metric}{suffix}"
        return train_task, f"{rest}/{metric}{suffix}"
    return taskinfo.owner_of_builtin(source, train_task), f"{source}/{metric}{suffix}"


# --- one run ---------------------------------------------------------------------------------
def read_log(path: Path) -> list[dict]:
    """train_log.jsonl entries; a torn last line (a killed job) is skipped."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "step" in entry:
            entries.append(entry)
    return entries


def variant_identity(variant: str, adapter_config: dict | None, registry: dict) -> tuple[str, dict]:
    """(method, options): from the run's adapter_config.json, else from the variant registry."""
    if adapter_config:
        return adapter_config.get("method", variant), dict(adapter_config.get("options") or {})
    if variant in registry:
        import adapters
        method = registry[variant]["method"]
        defaults = adapters.method_config(method).get("options") or {}
        return method, {**defaults, **registry[variant]["options"]}
    return variant, {}


def role_of(method: str, options: dict) -> str:
    """The method as the claims name it: MiLoRA with principal init is PiSSA, MoRA/LoRA with
    merge-and-restart are ReMoRA/ReLoRA."""
    if method == "milora" and options.get("init", "minor") != "minor":
        return "pissa" if options["init"] == "principal" else f"milora_{options['init']}"
    if method == "mora" and options.get("remora_every"):
        return "remora"  # merge-and-switch: MoRA Table 3's own row
    if method == "lora" and options.get("relora_every"):
        return "relora"
    return method


def _variant_registry() -> dict:
    try:
        import adapters
        return adapters.variants()
    except Exception:  # e.g. a method YAML that no longer loads: identities come from adapter dirs
        return {}


def validation_loss(summary: dict, log: list[dict]) -> float | None:
    """The run's end-of-run validation loss: train_summary.json's eval_loss, else the last logged one."""
    if _is_number(summary.get("eval_loss")):
        return float(summary["eval_loss"])
    logged = [e["eval_loss"] for e in log if _is_number(e.get("eval_loss"))]
    return float(logged[-1]) if logged else None


def train_numbers(summary: dict, adapter_config: dict | None, log: list[dict]) -> dict[str, float]:
    """Run-level numbers of training: final and validation loss, SoRA's live rank at start and end, init change."""
    numbers = {}
    if _is_number(summary.get("final_loss")):
        numbers["final_loss"] = float(summary["final_loss"])
    if (loss := validation_loss(summary, log)) is not None:
        numbers["validation_loss"] = loss
    ranks = [e["live_rank_total"] for e in log if _is_number(e.get("live_rank_total"))]
    final_rank = (summary.get("method_stats") or {}).get("live_rank_total", ranks[-1] if ranks else None)
    if final_rank is not None:
        config = adapter_config or {}
        r_max = (config.get("options") or {}).get("r") if config.get("method") == "sora" else None
        if r_max is not None:
            # The start rank is r_max in every module by construction; the first logged value is
            # already after one proximal step.
            numbers["live_rank_start"] = float(r_max * len(config.get("target_modules") or []))
        elif ranks:
            numbers["live_rank_start"] = float(ranks[0])
        numbers["live_rank_final"] = float(final_rank)
    if isinstance(summary.get("sora"), dict) and "retained" in summary["sora"]:
        numbers["retained_params"] = float(summary["sora"]["retained"])
    if _is_number(summary.get("init_output_change")):
        numbers["init_output_change"] = float(summary["init_output_change"])
    return numbers


def _run_status(run_dir: Path) -> tuple[dict, str, str]:
    try:
        summary = read_json(run_dir / "train_summary.json")
    except ValueError as error:
        return {}, "failed", str(error)
    if summary is None:
        return {}, "missing", "no train_summary.json (not run yet, or killed)"
    status = str(summary.get("status", "failed"))
    reason = str(summary.get("reason", "")) if status != "ok" else ""
    if status == "ok" and summary.get("collapsed"):  # finished, but stuck at the uniform-output loss
        reason = f"collapsed: {summary.get('collapse', 'final loss at the uniform-output loss')}"
    return summary, status, reason


def _adapter_config(run_dir: Path) -> tuple[dict | None, str]:
    """The run's adapter/adapter_config.json (None when absent) and the error if it is unreadable.
    A PEFT method's adapter_config.json is PEFT's own; its method and options (the YAML's name and
    the run's overrides, e.g. r) are in lorabench.json beside it (adapters.peft_method)."""
    try:
        config = read_json(run_dir / "adapter" / "adapter_config.json")
        if isinstance(config, dict) and "peft_type" in config and "method" not in config:
            meta = read_json(run_dir / "adapter" / "lorabench.json") or {}
            if meta.get("method"):
                config = {**config, "method": meta["method"], "options": dict(meta.get("options") or {})}
        return config, ""
    except ValueError as error:
        return None, str(error)


def base_model_of(run_dir: Path) -> str:
    """The base model the run's provenance.json records (config `model`), "" when unknown."""
    try:
        provenance = read_json(run_dir / "provenance.json") or {}
    except ValueError:
        return ""
    return str((provenance.get("config") or {}).get("model") or "")


def run_rows(run_dir: Path, profile: str, task: str, variant: str, seed: int | None, registry: dict) -> list[dict]:
    summary, status, reason = _run_status(run_dir)
    adapter_config, error = _adapter_config(run_dir) if variant != "base" else (None, "")
    if error:
        status, reason = "failed", error
    method, options = variant_identity(variant, adapter_config, registry)
    if variant != "base" and adapter_config is None and "method" in summary and summary["method"] is None:
        method, options = "full", {}  # full fine-tuning (method null): no adapter, the run dir is the model
    if variant == "base":  # an evaluation of the bare base model: nothing was trained
        method, options, status, reason = "base", {}, "ok", ""
    run = {
        "profile": profile, "train_task": task, "variant": variant, "method": method,
        "role": "base" if variant == "base" else role_of(method, options),
        "r": options.get("r"), "options": json.dumps(options, sort_keys=True), "seed": seed,
        "trainable_params": 0 if variant == "base" else _number(summary.get("trainable_params")),
        # full fine-tuning: every parameter is trained, the count the papers' FFT rows give
        "adapter_params": 0 if variant == "base" else _number(summary.get(
            "trainable_params" if method == "full" else "adapter_params")),
        "base_model": base_model_of(run_dir), "wall_time_s": _number(summary.get("wall_time_s")),
        "peak_memory_mb": _number(summary.get("peak_memory_mb")),
        "tokens_seen": _number(summary.get("tokens_seen")), "run_dir": str(run_dir),
    }
    log = read_log(run_dir / "train_log.jsonl")
    final_step = summary.get("steps", log[-1]["step"] if log else None)  # the step eval.json was taken at
    evaluations = {None: run_dir / "eval.json"}
    evaluations.update({int(STEP_FILE.search(p.name).group(1)): p for p in run_dir.glob("eval_step*.json")
                        if STEP_FILE.search(p.name)})
    metric_rows = []
    for step, path in sorted(evaluations.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        try:
            data = read_json(path)
        except ValueError as error:
            if step is None:
                status, reason = "failed", str(error)
            continue
        if data is None:
            if step is None and status == "ok":
                reason = "no eval.json"  # trained fine (status stays ok) but not evaluated yet
            continue
        for row in parse_results(data):
            row["task"], row["metric_id"] = attribute(row["source"], row["metric"], row["filter"], task)
            row.update(step=final_step if step is None else step, final=step is None)
            metric_rows.append(row)
    for metric, value in train_numbers(summary, adapter_config, log).items():
        metric_rows.append({"source": settings.TRAIN_SOURCE, "metric": metric, "filter": "none", "value": value,
                            "stderr": math.nan, "higher_is_better": not settings.lower_is_better(metric),
                            "task": task, "metric_id": metric, "step": final_step, "final": True})
    if not metric_rows:  # failed before any number: one row so that the run still shows
        metric_rows.append({"task": task, "final": True, "value": math.nan})
    for row in metric_rows:
        row.update(run, status=status, reason=reason, family=taskinfo.family_of(row["task"]))
    return metric_rows


def iter_runs(results_dir: Path):
    """(task, variant, seed, run_dir) for every run directory, sorted."""
    for run_dir in sorted((results_dir / "runs").glob("*/*/seed*")):
        match = SEED_DIR.search(run_dir.name)
        if match and run_dir.is_dir():
            yield run_dir.parent.parent.name, run_dir.parent.name, int(match.group(1)), run_dir


def to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("seed", "step", "r"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in ("value", "stderr", "trainable_params", "adapter_params", "wall_time_s", "peak_memory_mb",
                   "tokens_seen"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["final"] = frame["final"].fillna(True).astype(bool)
    for column in ("reason", "filter", "source", "metric", "metric_id", "base_model"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    return frame


def collect(results_dir: str | Path) -> pd.DataFrame:
    """The tidy table of every run (and the base model's evaluations) under `results_dir`."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ValueError(f"results directory {results_dir} does not exist")
    profile, registry, rows = results_dir.name, _variant_registry(), []
    for task, variant, seed, run_dir in iter_runs(results_dir):
        rows += run_rows(run_dir, profile, task, variant, seed, registry)
    for base_dir in sorted((results_dir / "base_eval").glob("*")):
        if base_dir.is_dir():
            rows += run_rows(base_dir, profile, base_dir.name, "base", None, registry)
    return to_frame(rows)


def collect_curves(results_dir: str | Path) -> pd.DataFrame:
    """Every train_log.jsonl entry's scalar numbers, one row per (run, logged step).

    Nested numbers (the contract's optional "eval": {...}) become "eval.<name>" columns; SoRA's
    per-module live ranks stay out (their total is the `live_rank_total` column).
    """
    results_dir = Path(results_dir)
    registry, rows = _variant_registry(), []
    for task, variant, seed, run_dir in iter_runs(results_dir):
        method, options = variant_identity(variant, _adapter_config(run_dir)[0], registry)
        for entry in read_log(run_dir / "train_log.jsonl"):
            row = {"profile": results_dir.name, "family": taskinfo.family_of(task), "task": task,
                   "variant": variant, "method": method, "role": role_of(method, options), "seed": seed}
            for key, value in entry.items():
                if isinstance(value, dict) and key == "eval":
                    row.update({f"eval.{k}": v for k, v in value.items() if _is_number(v)})
                elif _is_number(value):
                    row[key] = value
            rows.append(row)
    return pd.DataFrame(rows)


def selection_overlap(results_dir: str | Path) -> dict[str, dict]:
    """{task: {"validation": rows, "shared": rows of validation also in test, "scored_on_train": bool}}
    from the data the runs trained on (<results>/data/<task>/): what the captions say about selection.
    Everything the suite selects (a paper row's lr, the lr sweep) is chosen on the validation loss, so
    selection saw the reported rows exactly where `shared` > 0."""
    from tasks.records import shared_rows

    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    out = {}
    for folder in sorted(p for p in (Path(results_dir) / "data").glob("*") if p.is_dir()):
        validation, test = folder / "validation.jsonl", folder / "test.jsonl"
        if validation.is_file() and test.is_file():
            held = rows(validation)
            out[folder.name] = {"validation": len(held), "shared": shared_rows(held, rows(test)),
                                "scored_on_train": taskinfo.scored_on_train(folder.name)}
    return out


def write_runs(runs: pd.DataFrame, out_dir: str | Path) -> Path:
    return write_csv(Path(out_dir) / "tables" / "runs.csv", runs)


def read_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv back into the dtypes `collect` gives."""
    frame = pd.read_csv(path, keep_default_na=True)
    return to_frame(frame.to_dict("records"))
