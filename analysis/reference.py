"""The seed papers' published numbers and the "paper | ours | Δ" tables.

    reference = load_reference()           # reference/papers.csv: one row per published cell
    mapping = load_mapping()               # reference/mapping.yaml: paper cell -> our result
    tables = paper_tables(runs, reference, mapping, mode="values")   # {(paper, table): DataFrame}

`mode` "values" compares numbers (a paper profile: same model, data and hyperparameters); "shape"
(the tiny profile, or any other setting than the paper's) compares only the ordering of methods
within each column: a paper rank and our rank replace Δ, and the caption says so.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import settings
from .files import write_csv, write_text
from .render import to_latex, to_markdown
from .stats import decimals_for, format_summary, summarize
from .values import metric_values, primary_values

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
LOWER_IS_BETTER_UNITS = ("perplexity", "loss", "M params")
# Mapping metric ids that name a computed number: the task's headline, or the built-ins' average.
SPECIAL_METRICS = {"@primary": "auto", "@builtin_mean": "builtin"}


def load_reference(path: str | Path = REFERENCE_DIR / "papers.csv") -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"table": str, "model": str}, keep_default_na=False, na_values={"r": [""]})
    frame["r"] = pd.to_numeric(frame["r"], errors="coerce").astype("Int64")
    frame["verified"] = frame["verified"].astype(str).str.lower().eq("true")
    return frame


def load_mapping(path: str | Path = REFERENCE_DIR / "mapping.yaml") -> list[dict]:
    entries = yaml.safe_load(Path(path).read_text()) or []
    for entry in entries:
        entry["table"] = str(entry["table"])
        for key in ("paper", "rows", "columns"):
            if key not in entry:
                raise ValueError(f"{path}: entry for {entry.get('paper')} table {entry['table']} lacks {key!r}")
    return entries


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


def our_values(runs: pd.DataFrame, column: dict, variant: str, r, paper_steps: list[int], mode: str) -> np.ndarray:
    """Our per-seed numbers for one paper cell, on the paper's scale."""
    task = column["task"]
    if column.get("params"):
        done = runs[runs["task"].eq(task) & runs["variant"].eq(variant) & runs["status"].eq("ok")]
        done = done if r is None else done[done["r"].eq(r)]
        return done.drop_duplicates(["train_task", "seed"])["trainable_params"].to_numpy(float) / 1e6
    step = column.get("step")
    if step is not None:
        step = _our_step(runs, task, int(step), paper_steps, mode)
        if step is None:
            return np.array([])
    for metric_id in column["metric"]:  # the first one this variant has
        if metric_id in SPECIAL_METRICS:
            found = primary_values(runs, task, source=SPECIAL_METRICS[metric_id])
        else:
            found = metric_values(runs, task, [metric_id], step)
        found = found[found["variant"].eq(variant)]
        if r is not None:
            found = found[found["r"].eq(r)]
        if len(found):
            break
    else:
        return np.array([])
    values = found["value"].to_numpy(float)
    if column.get("transform") == "log":
        return np.log(values)
    return values * settings.display_scale(found["metric"].iloc[0])


def _rank(values: pd.Series, lower_is_better: bool) -> pd.Series:
    return values.rank(ascending=lower_is_better, method="min").astype("Int64")


def paper_table(runs: pd.DataFrame, reference: pd.DataFrame, entry: dict, mode: str) -> pd.DataFrame:
    """Long format: method, r, column, paper, ours (cell), then Δ (values) or the two ranks (shape)."""
    ref = reference[reference["paper"].eq(entry["paper"]) & reference["table"].eq(entry["table"])]
    paper_ranks = sorted({int(row["r"]) for row in entry["rows"] if row.get("r") is not None})
    paper_steps = [int(c["step"]) for c in entry["columns"].values() if c.get("step") is not None]
    records = []
    for column_name, column in entry["columns"].items():
        for row in entry["rows"]:
            cell = ref[ref["method"].eq(row["method"]) & ref["column"].eq(str(column_name))]
            if row.get("r") is not None:
                cell = cell[cell["r"].eq(row["r"])]
            if row.get("model"):
                cell = cell[cell["model"].eq(row["model"])]
            if cell.empty:
                raise ValueError(f"mapping: no published value for {entry['paper']} table {entry['table']} "
                                 f"{row['method']} r={row.get('r')} {column_name}")
            variant_ranks = [int(r) for r in runs.loc[runs["variant"].eq(row["variant"]), "r"].dropna()]
            our_r = match_rank(row.get("r"), paper_ranks, variant_ranks, mode)
            values = our_values(runs, column, row["variant"], our_r, paper_steps, mode)
            summary = summarize(values)
            records.append({"method": row["method"], "r": row.get("r", ""), "variant": row["variant"],
                            "our r": "" if our_r in (None, -1) else our_r, "column": str(column_name),
                            "paper": float(cell["value"].iloc[0]), "unit": cell["unit"].iloc[0],
                            "verified": bool(cell["verified"].iloc[0]), "ours": summary.mean, "n": summary.n,
                            "ours cell": format_summary(summary)})
    table = pd.DataFrame(records)
    if mode == "values":
        table["Δ"] = table["ours"] - table["paper"]
    else:
        lower = table["unit"].isin(LOWER_IS_BETTER_UNITS)
        for source, target in (("paper", "paper rank"), ("ours", "our rank")):
            table[target] = pd.concat([_rank(group[source], bool(lower[group.index].all()))
                                       for _, group in table.groupby("column", sort=False)])
    return table


def display(table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The table as strings: numbers to the paper's precision, unverified numbers marked."""
    def number(x):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{decimals_for(x)}f}"
    shown = pd.DataFrame({
        "method": table["method"], "r": table["r"].astype(str), "ours": table["variant"] + table["our r"].map(
            lambda r: f" (r={r})" if r != "" else ""),
        "column": table["column"],
        "paper": [number(p) + ("" if v else " (unverified)") for p, v in zip(table["paper"], table["verified"])],
        "ours value": table["ours cell"]})
    if mode == "values":
        shown["Δ"] = ["—" if math.isnan(d) else f"{d:+.{decimals_for(p)}f}"
                      for d, p in zip(table["Δ"], table["paper"])]
    else:
        shown["paper rank"] = table["paper rank"].astype(str).replace("<NA>", "—")
        shown["our rank"] = table["our rank"].astype(str).replace("<NA>", "—")
    return shown


def caption(entry: dict, profile: str, mode: str) -> str:
    text = f"{entry.get('title', entry['paper'] + ' ' + entry['table'])}. Profile {profile}."
    if mode == "shape":
        return text + (" Shape only: this profile's model, data and scale differ from the paper's, so the "
                       "numbers are not comparable; compare the order of methods (ranks, 1 = best) within each column.")
    return text + " Δ = ours − paper; ours = mean over seeds with 95% CI (min–max where n = 2)."


def write_paper_tables(runs: pd.DataFrame, out_dir: str | Path, mode: str | None = None,
                       reference: pd.DataFrame | None = None,
                       mapping: list[dict] | None = None) -> dict[str, list[Path]]:
    """tables/paper_<paper>_<table>.{csv,md,tex} for every mapped table with at least one of our numbers."""
    reference = load_reference() if reference is None else reference
    mapping = load_mapping() if mapping is None else mapping
    profile = runs["profile"].iloc[0] if len(runs) else ""
    written = {}
    for entry in mapping:
        entry_mode = mode or comparison_mode(profile, entry["paper"])
        table = paper_table(runs, reference, entry, entry_mode)
        if table["n"].sum() == 0:
            continue
        stem = Path(out_dir) / "tables" / f"paper_{entry['paper']}_{entry['table']}".replace(" ", "_")
        shown, text = display(table, entry_mode), caption(entry, profile, entry_mode)
        written[f"{entry['paper']} {entry['table']}"] = [
            write_csv(f"{stem}.csv", table),
            write_text(f"{stem}.md", f"# {entry['paper']} table {entry['table']}\n\n" + to_markdown(shown, text)),
            write_text(f"{stem}.tex", to_latex(shown, text)),
        ]
    return written
