"""The seed papers' published numbers and the "paper | ours | Δ" tables.

    reference = load_reference()           # reference/papers.csv: one row per published cell
    mapping = load_mapping()               # reference/mapping.yaml: paper table -> our runs and metrics
    table = paper_table(runs, reference, mapping[0], mode="values", model="LLaMA-2-7B")
    write_paper_tables(runs, out_dir)      # tables/paper_<paper>_<table>.{csv,md,tex}

A paper row matches runs by what was trained, not by a variant name: our role (lora, mora, pissa,
milora, vera, sora, relora, remora, multilora), the rank and the options that matter (e.g.
mora_type). Every variant matching a row (a profile's learning-rate variants) is a candidate, and
the table's selection rule picks the one reported: the lowest end-of-run validation loss, mean over
seeds (train_summary.json `eval_loss`), as the papers report their best lr. The caption says, from the
runs' data folders, whether those validation rows are disjoint from the test rows the table reports.
Seeds give the mean with its 95% CI, or (`seeds: median`) the median with min–max, as VeRA does.

`mode` "values" compares numbers, and only with the paper's rows of the run's own model
(paper_models.py); "shape" (the tiny profile, or any other setting than the paper's) compares
only the ordering of methods within each column: a paper rank and our rank replace Δ.
"""
from __future__ import annotations

import json
import logging
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import settings
from .files import write_csv, write_text
from .paper_models import base_model_note, not_compared_note, paper_model, same_model
from .render import to_latex, to_markdown
from .stats import decimals_for, format_summary, summarize, summarize_median
from .values import metric_values, primary_values

log = logging.getLogger(__name__)

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
LOWER_IS_BETTER_UNITS = ("perplexity", "loss", "M params")
PRIMARY = "@primary"  # a metric id naming the task's headline number (its suite evaluation)
MINUS_BASE = "minus_base"  # transform: ours minus the base model's value (its base_eval) of the same metric
BASE_KEY = "_base_value"   # where paper_table hands a minus_base column the base model's value
STANDARD_SUFFIX = " (lm-eval standard)"
HEAD_SUFFIX = " incl. head"
SELECTIONS = ("best_validation",)
SEED_RULES = ("mean", "median")
ENTRY_KEYS = {"paper", "table", "title", "rows", "columns", "selection", "seeds"}
ROW_KEYS = {"method", "r", "role", "options"}
COLUMN_KEYS = {"task", "metric", "standard", "shape", "step", "transform", "params"}
VALUE_COLUMNS = ["variant", "seed", "run_dir", "metric", "metric_id", "value"]  # per run, one cell
RECORD_COLUMNS = ["model", "method", "r", "column", "protocol", "variant", "candidates", "selection", "our r",
                  "metric_id", "paper", "unit", "verified", "ours", "low", "high", "n", "ours cell"]


# --- reference data and mapping --------------------------------------------------------------
def load_reference(path: str | Path = REFERENCE_DIR / "papers.csv") -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"table": str, "model": str}, keep_default_na=False, na_values={"r": [""]})
    frame["r"] = pd.to_numeric(frame["r"], errors="coerce").astype("Int64")
    frame["verified"] = frame["verified"].astype(str).str.lower().eq("true")
    duplicated = frame[frame.duplicated(["paper", "table", "model", "method", "r", "column"], keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise ValueError(f"{path}: {len(duplicated)} rows publish the same cell twice, e.g. {first['paper']} "
                         f"table {first['table']} {first['model']} {first['method']} {first['column']}")
    return frame


def _check_keys(where: str, given, known: set[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")


def load_mapping(path: str | Path = REFERENCE_DIR / "mapping.yaml") -> list[dict]:
    entries = yaml.safe_load(Path(path).read_text()) or []
    for entry in entries:
        entry["table"] = str(entry["table"])
        where = f"{path}: {entry.get('paper')} table {entry['table']}"
        for key in ("paper", "rows", "columns"):
            if key not in entry:
                raise ValueError(f"{where} lacks {key!r}")
        _check_keys(where, entry, ENTRY_KEYS)
        if entry.setdefault("selection", "best_validation") not in SELECTIONS:
            raise ValueError(f"{where}: selection {entry['selection']!r}; known: {', '.join(SELECTIONS)}")
        if entry.setdefault("seeds", "mean") not in SEED_RULES:
            raise ValueError(f"{where}: seeds {entry['seeds']!r}; known: {', '.join(SEED_RULES)}")
        for row in entry["rows"]:
            _check_keys(f"{where} row {row}", row, ROW_KEYS)
            row.setdefault("role", str(row["method"]).lower())
        for name, column in entry["columns"].items():
            _check_keys(f"{where} column {name}", column, COLUMN_KEYS)
            if not column.get("params") and not column.get("metric"):
                raise ValueError(f"{where} column {name}: give `metric` (ids) or `params`")
    return entries


def metric_ids(column: dict, key: str = "metric") -> list[str]:
    """Every metric id a column names under `key` ({mean: [...]} entries flattened)."""
    ids = []
    for item in column.get(key) or []:
        ids += item["mean"] if isinstance(item, dict) else [item]
    return ids


def comparison_mode(profile: str, paper: str) -> str:
    """Numbers are comparable only in the paper's own profile (config/paper/<paper>.yaml)."""
    return "values" if profile.lower().startswith(paper.lower()) else "shape"


def match_rank(paper_r, paper_ranks: list[int], our_ranks: list[int], mode: str):
    """Our rank for a paper row's rank: the same one, or in shape mode the one at the same position."""
    if paper_r is None or (isinstance(paper_r, float) and math.isnan(paper_r)):
        return None
    if mode == "values":
        return paper_r
    position = sorted(set(paper_ranks)).index(paper_r)
    ours = sorted(set(our_ranks))
    return ours[position] if position < len(ours) else -1  # -1: no run at a rank this far up


def _our_step(runs: pd.DataFrame, task: str, step: int, paper_steps: list[int], mode: str) -> int | None:
    """The paper's step, or in shape mode the evaluated step at the same fraction of training."""
    if mode == "values":
        return step
    steps = sorted({int(s) for s in runs.loc[runs["task"].eq(task) & runs["step"].notna(), "step"]})
    if not steps:
        return None
    target = step / max(paper_steps) * steps[-1]
    return min(steps, key=lambda s: abs(s - target))


# --- which runs a paper row is ---------------------------------------------------------------
@lru_cache(maxsize=None)
def _run_options(method: str, options: str) -> dict:
    """A run's options (its recorded JSON) over the method's defaults."""
    try:
        import adapters
        defaults = dict(adapters.method_config(method).get("options") or {})
    except Exception:  # an unknown method: only the options the run recorded count
        defaults = {}
    return {**defaults, **json.loads(options or "{}")}


def row_runs(runs: pd.DataFrame, row: dict) -> pd.DataFrame:
    """Successful runs of the row's role whose options include the row's `options` (rank apart)."""
    found = runs[runs["role"].eq(row["role"]) & runs["status"].eq("ok")]
    wanted = row.get("options") or {}
    if not wanted or found.empty:
        return found
    keep = [all(_run_options(m, o).get(k) == v for k, v in wanted.items())
            for m, o in zip(found["method"], found["options"])]
    return found[keep]


def validation_losses(runs: pd.DataFrame) -> dict[str, float]:
    """{run_dir: the run's end-of-run validation loss} (collect's "validation_loss" train number)."""
    rows = runs[runs["source"].eq(settings.TRAIN_SOURCE) & runs["metric"].eq("validation_loss")]
    return dict(zip(rows["run_dir"], rows["value"]))


def choose_variant(values: pd.DataFrame, validation: dict[str, float]) -> tuple[str | None, str]:
    """The variant a row reports among its candidates, and why: the lowest mean validation loss.

    Only validation numbers choose; a candidate without one cannot be chosen, and with none at
    all the cell stays empty rather than fall back on a test number.
    """
    variants = sorted(set(values["variant"]))
    if len(variants) == 1:
        return variants[0], "the only candidate"
    scores = {}
    for variant in variants:
        losses = [validation[d] for d in values.loc[values["variant"].eq(variant), "run_dir"] if d in validation]
        losses = [x for x in losses if math.isfinite(x)]
        if losses:
            scores[variant] = float(np.mean(losses))
    if not scores:
        return None, f"no validation loss to choose among {', '.join(variants)}"
    best = min(scores, key=lambda v: (scores[v], v))
    listed = ", ".join(f"{v} {scores[v]:.4g}" for v in sorted(scores, key=scores.get))
    return best, f"lowest validation loss of {len(variants)} ({listed})"


# --- our numbers for one cell ----------------------------------------------------------------
def _run_values(runs: pd.DataFrame, column: dict, ids: list, step: int | None) -> pd.DataFrame:
    """Per run: variant, seed, run_dir, metric, metric_id and value of a column, on the paper's scale."""
    task = column["task"]
    if column.get("params"):
        done = runs[runs["task"].eq(task) | runs["train_task"].eq(task)].drop_duplicates("run_dir")
        key = "trainable_params" if column["params"] == "trainable" else "adapter_params"
        return pd.DataFrame({"variant": done["variant"], "seed": done["seed"], "run_dir": done["run_dir"],
                             "metric": key, "metric_id": key,
                             "value": done[key].to_numpy(float) / 1e6}).dropna(subset="value")
    for metric_id in ids:  # the first one this set of runs has
        if isinstance(metric_id, dict):
            parts = [metric_values(runs, task, [m], step) for m in metric_id["mean"]]
            keys = ["variant", "seed", "run_dir"]
            merged = parts[0][keys + ["metric"]].assign(value=parts[0]["value"])
            for part in parts[1:]:  # a run counts only with every part
                merged = merged.merge(part[keys + ["value"]], on=keys, suffixes=("", "_next"))
                merged["value"] = merged["value"] + merged.pop("value_next")
            found = merged.assign(value=merged["value"] / len(parts), metric_id="mean(" + ", ".join(metric_id["mean"]) + ")")
        elif metric_id == PRIMARY:
            found = primary_values(runs, task, source="suite").assign(metric_id=PRIMARY)
        else:
            found = metric_values(runs, task, [metric_id], step)
        if len(found):
            break
    else:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    values = found["value"].to_numpy(float)
    metric = found["metric"].iloc[0]
    values = np.log(values) if column.get("transform") == "log" else values * settings.display_scale(metric)
    if column.get("transform") == MINUS_BASE:  # the change from the base model (PEFT's forgetting)
        values = values - column.get(BASE_KEY, math.nan)
    return found[["variant", "seed", "run_dir", "metric", "metric_id"]].assign(value=values)


def base_value(runs: pd.DataFrame, column: dict, ids: list, step: int | None) -> float:
    """The base model's value (variant "base", its base_eval) of a column's metric, NaN without one."""
    base = runs[runs["role"].eq("base")] if len(runs) else runs
    if base.empty:
        return math.nan
    values = _run_values(base, {k: v for k, v in column.items() if k != "transform"}, ids, step)
    return float(values["value"].mean()) if len(values) else math.nan


def cell_values(runs: pd.DataFrame, column: dict, ids: list, step: int | None,
                validation: dict[str, float]) -> tuple[pd.DataFrame, list[str], str | None, str]:
    """(the chosen variant's per-seed values, the candidates, the chosen variant, why)."""
    values = _run_values(runs, column, ids, step) if len(runs) else pd.DataFrame(columns=VALUE_COLUMNS)
    if values.empty:
        return values, [], None, "no run has this number"
    variant, why = choose_variant(values, validation)
    return values[values["variant"].eq(variant)], sorted(set(values["variant"])), variant, why


# --- one table -------------------------------------------------------------------------------
def table_models(ref: pd.DataFrame) -> list[str]:
    """The table's models in papers.csv order ("" when the paper does not say)."""
    return list(dict.fromkeys(ref["model"]))


def _rank(values: pd.Series, lower_is_better: bool) -> pd.Series:
    return values.rank(ascending=lower_is_better, method="min").astype("Int64")


def _paper_cell(ref: pd.DataFrame, entry: dict, row: dict, column_name: str, r) -> pd.Series:
    cell = ref[ref["method"].eq(row["method"]) & ref["column"].eq(str(column_name))]
    if r is not None:
        cell = cell[cell["r"].eq(r)]
    if cell.empty:
        raise ValueError(f"mapping: no published value for {entry['paper']} table {entry['table']} "
                         f"{row['method']} r={r} {column_name}")
    return cell.iloc[0]


def _row_rank(ref: pd.DataFrame, row: dict):
    """The row's rank: the mapping's, else the one papers.csv gives the method for this model."""
    if row.get("r") is not None:
        return int(row["r"])
    ranks = {int(r) for r in ref.loc[ref["method"].eq(row["method"]), "r"].dropna()}
    return ranks.pop() if len(ranks) == 1 else None


def paper_table(runs: pd.DataFrame, reference: pd.DataFrame, entry: dict, mode: str,
                model: str | None = None) -> pd.DataFrame:
    """Long format, one record per paper cell (RECORD_COLUMNS), then Δ (values) or the two ranks (shape).

    values: only the rows of `model` (the runs' base model as papers.csv names it); a table without
    that model gives no records. shape: the table's first model.
    """
    ref = reference[reference["paper"].eq(entry["paper"]) & reference["table"].eq(entry["table"])]
    models = table_models(ref)
    if mode == "values":
        chosen = next((m for m in models if m == "" or same_model(m, model or "")), None)
        if chosen is None:
            return pd.DataFrame(columns=RECORD_COLUMNS + ["Δ"])
    else:
        chosen = models[0] if models else ""
    ref = ref[ref["model"].eq(chosen)]
    ranks = {id(row): _row_rank(ref, row) for row in entry["rows"]}
    paper_ranks = sorted({r for r in ranks.values() if r is not None})
    paper_steps = [int(c["step"]) for c in entry["columns"].values() if c.get("step") is not None]
    validation = validation_losses(runs)
    summarise = summarize_median if entry["seeds"] == "median" else summarize
    records = []
    for column_name, column in entry["columns"].items():
        step = column.get("step")
        if step is not None:
            step = _our_step(runs, column["task"], int(step), paper_steps, mode)
        kinds = [("paper", str(column_name), column.get("metric") or [])]
        if column.get("standard"):
            kinds.append(("lm-eval standard", f"{column_name}{STANDARD_SUFFIX}", column["standard"]))
        if column.get("params") and column["params"] != "trainable":
            kinds.append(("trainable", f"{column_name}{HEAD_SUFFIX}", []))
        for row in entry["rows"]:
            cell = _paper_cell(ref, entry, row, column_name, ranks[id(row)])
            candidates = row_runs(runs, row)
            our_r = match_rank(ranks[id(row)], paper_ranks, [int(r) for r in candidates["r"].dropna()], mode)
            if our_r is not None:
                candidates = candidates[candidates["r"].eq(our_r)]
            for protocol, name, ids in kinds:
                if mode == "shape" and protocol == "paper":  # the tiny profiles' own evaluations
                    ids = ids + (column.get("shape") or [])
                spec = {**column, "params": "trainable"} if protocol == "trainable" else column
                if column.get("transform") == MINUS_BASE:
                    spec = {**spec, BASE_KEY: base_value(runs, column, ids, step)}
                if step is None and column.get("step") is not None:
                    values, pool, variant, why = pd.DataFrame(columns=VALUE_COLUMNS), [], None, "no step"
                else:
                    values, pool, variant, why = cell_values(candidates, spec, ids, step, validation)
                summary = summarise(values["value"])
                paper = float(cell["value"]) if protocol != "trainable" else math.nan
                records.append({
                    "model": chosen, "method": row["method"], "r": "" if ranks[id(row)] is None else ranks[id(row)],
                    "column": name, "protocol": protocol, "variant": variant or "", "candidates": " ".join(pool),
                    "selection": why, "our r": "" if our_r in (None, -1) else our_r,
                    "metric_id": values["metric_id"].iloc[0] if len(values) else "", "paper": paper,
                    "unit": cell["unit"], "verified": bool(cell["verified"]), "ours": summary.mean,
                    "low": summary.low, "high": summary.high, "n": summary.n, "ours cell": format_summary(summary)})
    table = pd.DataFrame(records, columns=RECORD_COLUMNS)
    if mode == "values":
        table["Δ"] = table["ours"] - table["paper"]
    else:
        lower = table["unit"].isin(LOWER_IS_BETTER_UNITS)
        for source, target in (("paper", "paper rank"), ("ours", "our rank")):
            table[target] = pd.concat([_rank(group[source].astype(float), bool(lower[group.index].all()))
                                       for _, group in table.groupby("column", sort=False)])
    return table


# --- rendering -------------------------------------------------------------------------------
def display(table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The table as strings: numbers to the paper's precision, unverified numbers marked."""
    def number(x):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{decimals_for(x)}f}"

    def ours(variant, r, our_r, candidates):
        if not variant:
            return "—"
        n = len(candidates.split())
        return variant + (f" (r={our_r})" if our_r not in ("", r) else "") + (f", best of {n}" if n > 1 else "")

    shown = pd.DataFrame({
        "model": table["model"], "method": table["method"], "r": table["r"].astype(str),
        "ours": [ours(*x) for x in zip(table["variant"], table["r"], table["our r"], table["candidates"])],
        "column": table["column"],
        "paper": [number(p) + ("" if v or math.isnan(p) else " (unverified)")
                  for p, v in zip(table["paper"], table["verified"])],
        "ours value": table["ours cell"]})
    if mode == "values":
        shown["Δ"] = ["—" if math.isnan(d) else f"{d:+.{decimals_for(p)}f}"
                      for d, p in zip(table["Δ"], table["paper"])]
    else:
        shown["paper rank"] = table["paper rank"].astype(str).replace("<NA>", "—")
        shown["our rank"] = table["our rank"].astype(str).replace("<NA>", "—")
    return shown


def split_text(entry: dict, overlap: dict | None) -> str:
    """Whether the validation rows the selection used are disjoint from the test rows the table reports,
    per task of the table, as the data the runs trained on says (collect.selection_overlap)."""
    wanted = sorted({c["task"] for c in entry["columns"].values() if c.get("task")})
    known = {t: overlap[t] for t in wanted if overlap and t in overlap}
    if not known:
        return " (the data folders were not there to check which rows the validation split holds)"
    clean = [t for t, o in known.items() if not o["shared"]]
    text = ""
    if clean:
        text += f" on {', '.join(clean)}: validation rows disjoint from the test rows reported, so never chosen on test"
    for task, o in known.items():
        if o["shared"]:
            why = ("memorization is scored on the trained pairs, which validation samples too"
                   if o["scored_on_train"] else "e.g. `validation_from: dev`, the papers' practice of selecting on "
                   "the dev set they report")
            text += (f"{';' if text else ''} on {task}: the validation split shares {o['shared']} of its "
                     f"{o['validation']} rows with the test split reported ({why}), so the selection saw them")
    return text


def selection_text(entry: dict, overlap: dict | None = None) -> str:
    """The table's selection rule, as its caption states it."""
    seeds = ("ours = the median over seeds [min–max], as the paper reports the median of its runs"
             if entry["seeds"] == "median" else "ours = mean over seeds with 95% CI (min–max where n = 2)")
    return (" Selection: a row's candidates are all our variants of its method, rank and options (the "
            "profile's learning rates, and other swept settings such as SoRA's ξ); the one with the lowest "
            "end-of-run validation loss (mean over seeds) is reported and named under 'ours'"
            + split_text(entry, overlap) + ". " + seeds + ".")


def caption(entry: dict, profile: str, mode: str, table: pd.DataFrame | None = None,
            overlap: dict | None = None) -> str:
    text = f"{entry.get('title', entry['paper'] + ' ' + entry['table'])}. Profile {profile}."
    models = sorted({m for m in table["model"] if m}) if table is not None else []
    if mode == "values" and models:
        text += f" Compared with the paper's {', '.join(models)} rows only (the runs' base model)."
    elif mode == "values" and table is not None:
        text += " The paper does not name these rows' model: compared whatever our base model."
    if any(c.get("standard") for c in entry["columns"].values()):
        text += (f" Columns marked{STANDARD_SUFFIX} use lm-eval's standard task (its own prompts and "
                 "scoring, not the paper's protocol): for reference only.")
    if any(c.get("params") for c in entry["columns"].values()):
        text += (" Parameters in millions: the adapter alone, as the paper counts them; 'incl. head' adds a "
                 "trained task head.")
    text += selection_text(entry, overlap)
    if mode == "shape":
        return text + (" Shape only: this profile's model, data and scale differ from the paper's, so the "
                       "numbers are not comparable; compare the order of methods (ranks, 1 = best) within each column.")
    return text + " Δ = ours − paper."


def run_models(runs: pd.DataFrame, declared: str | None = None) -> pd.Series:
    """Each run row's papers.csv model (paper_models.paper_model), "" when nothing says."""
    cache = {}
    for key in runs["base_model"]:
        if key not in cache:
            cache[key] = paper_model(key, declared) or ""
    return pd.Series([cache[k] for k in runs["base_model"]], index=runs.index, dtype=str)


def write_paper_tables(runs: pd.DataFrame, out_dir: str | Path, mode: str | None = None,
                       reference: pd.DataFrame | None = None, mapping: list[dict] | None = None,
                       paper_model_name: str | None = None,
                       overlap: dict | None = None) -> dict[str, list[Path]]:
    """tables/paper_<paper>_<table>.{csv,md,tex} for every mapped table with at least one of our numbers
    (in a paper's own profile, that paper's tables only, unless `mode` forces one for all).

    Values mode compares each run with its own model's rows: the recognised base model, else
    `paper_model_name` (a profile's declaration: base_model.name / --paper-model). Runs whose base
    model neither says are never compared with the paper's numbers: when no run's does, the paper's
    tables show the method order only (shape), their caption saying why and what to declare.
    """
    reference = load_reference() if reference is None else reference
    mapping = load_mapping() if mapping is None else mapping
    profile = runs["profile"].iloc[0] if len(runs) else ""
    models = run_models(runs, paper_model_name)
    unknown = models.eq("")
    # a base model that says nothing (a local path, no base_model.name) is not the paper's model
    unnamed = runs.loc[unknown & runs["base_model"].fillna("").astype(str).ne(""), "base_model"]
    not_compared = not_compared_note(unnamed if len(unnamed) else [], profile) if unknown.any() else ""
    # A paper's own profile writes that paper's tables only (others' rows are other settings).
    own_paper = next((e["paper"] for e in mapping if comparison_mode(profile, e["paper"]) == "values"), None)
    written = {}
    for entry in mapping:
        if mode is None and own_paper is not None and entry["paper"] != own_paper:
            continue
        entry_mode = mode or comparison_mode(profile, entry["paper"])
        note = ""
        if entry_mode == "values" and len(runs) and unknown.any():
            if mode is None and unknown.all():  # no run is a paper's model: the method order only
                entry_mode, note = "shape", not_compared
            elif len(unnamed):  # the runs of a paper's model are compared, the others are not
                note = not_compared
        if entry_mode == "values":
            parts = [paper_table(runs[models.eq(m)], reference, entry, "values", m)
                     for m in sorted(set(models[~unknown]))]
            parts = [p for p in parts if len(p)]
            table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RECORD_COLUMNS)
            if not parts and len(runs):
                log.info("paper table %s %s: no rows of our model(s) %s", entry["paper"], entry["table"],
                         sorted(set(models)) or "unknown")
        else:
            table = paper_table(runs, reference, entry, "shape")
        if table["n"].sum() == 0:
            continue
        stem = Path(out_dir) / "tables" / f"paper_{entry['paper']}_{entry['table']}".replace(" ", "_")
        shown, text = display(table, entry_mode), caption(entry, profile, entry_mode, table, overlap)
        text += f" {note}" if note else ""
        text += (" " + base_model_note(runs["base_model"])) if "base_model" in runs else ""
        written[f"{entry['paper']} {entry['table']}"] = [
            write_csv(f"{stem}.csv", table),
            write_text(f"{stem}.md", f"# {entry['paper']} table {entry['table']}\n\n" + to_markdown(shown, text)),
            write_text(f"{stem}.tex", to_latex(shown, text)),
        ]
    return written
