"""Per task family: method × metrics, with trainable parameters, wall time and peak memory.

    summary = aggregate(runs)                 # one row per (family, task, metric, variant): n, mean, CI
    paths = write_family_tables(runs, out)    # tables/<family>.{csv,md,tex} and tables/summary.csv

Cells: `85.2 ± 1.3 (n=3)` (mean ± 95% CI, Student t), `85.2 [84.1–86.0] (n=2)` (min–max),
`85.2 (n=1)`; a variant whose runs all failed shows `<status>: <reason>`, one with some failed
runs gets `; <k> failed: <reason>` after its numbers. Fractions are shown ×100.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import settings
from .files import write_csv, write_text
from .paper_models import base_model_note
from .render import to_latex, to_markdown
from .stats import format_summary, summarize

RUN_KEY = ["train_task", "variant", "seed"]


def eval_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Final evaluation numbers of successful runs (no training or measured numbers)."""
    keep = (runs["final"] & runs["status"].eq("ok") & runs["metric"].ne("")
            & ~runs["source"].isin(settings.NON_EVAL_SOURCES))
    return runs[keep]


def run_statuses(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop_duplicates(RUN_KEY)[RUN_KEY + ["family", "status", "reason"]]


def failure_text(failed: pd.DataFrame) -> str:
    first = failed.iloc[0]
    text = f"{first['status']}: {first['reason']}" if first["reason"] else str(first["status"])
    return text + (f" (×{len(failed)})" if len(failed) > 1 else "")


def variant_order(variants) -> list[str]:
    """base first, then LoRA (the baseline), then the rest by name."""
    return sorted(set(variants), key=lambda v: (v != "base", not v.startswith("lora"), v))


def aggregate(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (family, task, metric_id, variant): n, mean, low, high, kind on the display scale."""
    evals, statuses = eval_rows(runs), run_statuses(runs)
    columns = evals.drop_duplicates(["family", "task", "metric_id"])[["family", "task", "metric_id", "metric",
                                                                      "higher_is_better"]]
    records = []
    for col in columns.itertuples(index=False):
        in_column = evals[(evals["task"] == col.task) & (evals["metric_id"] == col.metric_id)]
        train_tasks = set(in_column["train_task"])
        scale = settings.display_scale(col.metric)
        family_variants = statuses.loc[statuses["train_task"].isin(train_tasks), "variant"]
        for variant in variant_order(family_variants):
            values = in_column.loc[in_column["variant"] == variant, "value"]
            summary = summarize(values * scale, confidence)
            failed = statuses[statuses["train_task"].isin(train_tasks) & (statuses["variant"] == variant)
                              & statuses["status"].ne("ok")]
            cell = format_summary(summary)
            if len(failed) and summary.kind == "empty":
                cell = failure_text(failed)
            elif len(failed):
                cell = cell.rstrip(")") + f"; {len(failed)} failed: {failure_text(failed.iloc[:1])})"
            records.append({**col._asdict(), "variant": variant, "n": summary.n, "mean": summary.mean,
                            "low": summary.low, "high": summary.high, "kind": summary.kind, "scale": scale,
                            "n_failed": len(failed), "failures": failure_text(failed) if len(failed) else "",
                            "cell": cell})
    return pd.DataFrame(records, columns=["family", "task", "metric_id", "metric", "higher_is_better", "variant",
                                          "n", "mean", "low", "high", "kind", "scale", "n_failed", "failures", "cell"])


def run_counts(runs: pd.DataFrame) -> str:
    """`3 ok`, `1 ok, 1 diverged`, `2 ok (2: no eval.json)`: every run shows, even in a family
    without metric columns."""
    done = runs.drop_duplicates(RUN_KEY)
    counts = done["status"].value_counts()
    ordered = [("ok", counts.get("ok", 0))] + sorted((k, v) for k, v in counts.items() if k != "ok")
    text = ", ".join(f"{v} {k}" for k, v in ordered if v)
    notes = done.loc[done["status"].eq("ok") & done["reason"].ne(""), "reason"].value_counts()
    return text + "".join(f" ({v}: {k})" for k, v in notes.items())


def format_count(values) -> str:
    """Trainable parameters: `78,080`, or `min–max` when the family's tasks differ (e.g. heads)."""
    values = sorted({int(v) for v in values if v == v})
    if not values:
        return "—"
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}–{values[-1]:,}"


def resource_cells(runs: pd.DataFrame, variant: str, confidence: float) -> dict[str, str]:
    """Trainable params, wall time, peak memory over the variant's successful runs in the family."""
    done = runs[(runs["variant"] == variant) & runs["status"].eq("ok")].drop_duplicates(RUN_KEY)
    if variant == "base":
        return {"trainable params": "0", "wall time (s)": "—", "peak memory (MB)": "—"}
    return {"trainable params": format_count(done["trainable_params"]),
            "wall time (s)": format_summary(summarize(done["wall_time_s"], confidence)),
            "peak memory (MB)": format_summary(summarize(done["peak_memory_mb"], confidence))}


def family_table(runs: pd.DataFrame, summary: pd.DataFrame, family: str, confidence: float = 0.95) -> pd.DataFrame:
    """Rows: variants; columns: variant, method, r, one per (task, metric), then the costs."""
    fam_runs = runs[runs["family"] == family]
    fam_summary = summary[summary["family"] == family]
    several_tasks = fam_summary["task"].nunique() > 1
    rows = []
    for variant in variant_order(fam_runs["variant"]):
        mine = fam_runs[fam_runs["variant"] == variant]
        ranks = sorted({int(r) for r in mine["r"].dropna()})
        row = {"variant": variant, "method": mine["role"].iloc[0],
               "r": "/".join(map(str, ranks)) if ranks else "—", "runs": run_counts(mine)}
        for cell in fam_summary.itertuples(index=False):
            label = f"{cell.task} {cell.metric_id}" if several_tasks else cell.metric_id
            if cell.variant == variant:
                row[label] = cell.cell
        rows.append({**row, **resource_cells(fam_runs, variant, confidence)})
    table = pd.DataFrame(rows)
    return table.fillna("—")


def caption(family: str, profile: str, model_note: str = "") -> str:
    return (f"{family} ({profile} profile): mean ± 95% CI over seeds (Student t), [min–max] where n = 2, "
            f"n = number of seeds; fractions shown ×100; failed runs show their reason." + (f" {model_note}" if model_note else ""))


def write_family_tables(runs: pd.DataFrame, out_dir: str | Path, confidence: float = 0.95,
                        summary: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """tables/<family>.{csv,md,tex} per family and tables/summary.csv (`summary`: aggregate(runs)
    when already computed); returns {family: paths}."""
    tables_dir = Path(out_dir) / "tables"
    summary = aggregate(runs, confidence) if summary is None else summary
    written = {"summary": [write_csv(tables_dir / "summary.csv", summary)]}
    profile = runs["profile"].iloc[0] if len(runs) else ""
    for family in sorted(runs["family"].dropna().unique()):
        table = family_table(runs, summary, family, confidence)
        text = caption(family, profile, base_model_note(runs.loc[runs["family"] == family, "base_model"]))
        written[family] = [
            write_csv(tables_dir / f"{family}.csv", table),
            write_text(tables_dir / f"{family}.md", f"# {family}\n\n" + to_markdown(table, text)),
            write_text(tables_dir / f"{family}.tex", to_latex(table, text, label=f"tab:{family}")),
        ]
    return written
