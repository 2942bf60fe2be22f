"""The headline answer of one profile, read before any table: each claim's verdict, and for each
trained task the best method at its parameter count.

    table = best_methods(runs, summary)                 # one row per trained task
    write_headline(runs, summary, decided, out_dir)     # tables/headline.{csv,md}

Per task the score is its headline metric (the task spec's first metric) on its own test split,
mean over seeds as in the family tables. "Best" is the variant with the best mean; the Pareto front
lists, from the fewest trainable parameters up, the variants no other variant beats with as few
parameters (analysis.plots.pareto_front, as in the params plots): the answer to "which method at which parameter count". One seed decides little: the
n column says how many seeds each mean has.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import taskinfo
from .files import write_csv, write_text
from .plots import pareto_front
from .render import to_markdown

COLUMNS = ["family", "task", "metric", "n", "best", "best value", "best params", "lora value", "base value",
           "Pareto front (params: variant value)"]


def _fmt(value: float) -> str:
    """3 significant digits below 1000, whole numbers to 10⁶, then 3 significant digits (1.84e+07)."""
    if abs(value) < 1000:
        return f"{value:.3g}"
    return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.3g}"


def _task_scores(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """The task's rows for its headline metric (else its first metric), variants with a number."""
    rows = summary[(summary["task"] == task) & (summary["n"] > 0)]
    wanted = taskinfo.primary_metric(task)
    metric = wanted if wanted in set(rows["metric_id"]) else (rows["metric_id"].iloc[0] if len(rows) else None)
    return rows[rows["metric_id"] == metric]


def _params(runs: pd.DataFrame, task: str) -> dict[str, float]:
    done = runs[(runs["train_task"] == task) & runs["status"].eq("ok")].drop_duplicates(["variant", "seed"])
    return done.groupby("variant")["trainable_params"].median().dropna().to_dict()


def best_methods(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    records = []
    trained = [t for t in dict.fromkeys(runs["train_task"].dropna()) if t in set(summary["task"])]
    for task in trained:
        scores = _task_scores(summary, task)
        if scores.empty:
            continue
        higher = bool(scores["higher_is_better"].iloc[0])
        by_variant = scores.set_index("variant")["mean"]
        params = _params(runs, task)
        methods = by_variant.drop("base", errors="ignore")
        if methods.empty:
            continue
        best = methods.idxmax() if higher else methods.idxmin()
        points = pd.DataFrame([{"variant": v, "trainable_params": params[v], "value": m}
                               for v, m in methods.items() if v in params])
        front = pareto_front(points, higher_is_better=higher) if len(points) else points
        records.append({
            "family": scores["family"].iloc[0], "task": task, "metric": scores["metric_id"].iloc[0],
            "n": int(scores.loc[scores["variant"] == best, "n"].iloc[0]),
            "best": best, "best value": _fmt(methods[best]),
            "best params": f"{int(params[best]):,}" if best in params else "—",
            "lora value": _fmt(by_variant["lora"]) if "lora" in by_variant else "—",
            "base value": _fmt(by_variant["base"]) if "base" in by_variant else "—",
            "Pareto front (params: variant value)": "; ".join(
                f"{int(p.trainable_params):,}: {p.variant} {_fmt(p.value)}" for p in front.itertuples()),
        })
    return pd.DataFrame(records, columns=COLUMNS)


def verdict_rows(decided) -> pd.DataFrame:
    return pd.DataFrame([{"claim": v.claim, "verdict": v.verdict, "statement": v.statement} for v in decided],
                        columns=["claim", "verdict", "statement"])


def write_headline(runs: pd.DataFrame, summary: pd.DataFrame, decided, out_dir: str | Path, profile: str,
                   model_note: str = "") -> list[Path]:
    """tables/headline.csv (best methods) and tables/headline.md (verdicts, then best methods)."""
    tables_dir = Path(out_dir) / "tables"
    best = best_methods(runs, summary)
    text = (f"# Headline: profile `{profile}`\n\n" + (f"{model_note}\n\n" if model_note else "") + "## Verdicts\n\n"
            + to_markdown(verdict_rows(decided), "Each claim of the papers as `replication.md` decides it.")
            + "\n## Best method per task\n\n"
            + to_markdown(best, "Headline metric per task on its test split (fractions ×100), mean over n seeds; "
                                "the Pareto front lists, fewest trainable parameters first, each variant that "
                                "beats every cheaper one. Lower is better for perplexities."))
    return [write_csv(tables_dir / "headline.csv", best), write_text(tables_dir / "headline.md", text)]
