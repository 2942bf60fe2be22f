"""The headline answer of one profile, read before any table: each claim's verdict, and for each
trained task the best method at its parameter count.

    table = best_methods(runs, summary)                 # one row per trained task
    write_headline(runs, summary, decided, out_dir)     # tables/headline.{csv,md}

Per task the score is its headline metric (the task spec's first metric) on its own test split,
mean over seeds as in the family tables. "Best" is the variant with the best mean (every variant at
it, `a = b`, when they tie); where the task knows the score of right-format output with no
knowledge (taskinfo.floor: a well-formed uuid4 scores 19.8 % of characters), a best at or below
that floor is shown as "none above the floor", not as a ranking of noise. The Pareto front
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
           "floor", "Pareto front (params: variant value)"]


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
        top = methods.max() if higher else methods.min()
        tied = sorted(methods.index[methods == top])
        best = tied[0]
        floor = taskinfo.floor(task, scores["metric_id"].iloc[0])
        cleared = floor is None or (top > floor if higher else top < floor)
        points = pd.DataFrame([{"variant": v, "trainable_params": params[v], "value": m}
                               for v, m in methods.items() if v in params])
        front = pareto_front(points, higher_is_better=higher) if len(points) else points
        records.append({
            "family": scores["family"].iloc[0], "task": task, "metric": scores["metric_id"].iloc[0],
            "n": int(scores.loc[scores["variant"] == best, "n"].iloc[0]),
            "best": " = ".join(tied) if cleared else f"none above the floor ({' = '.join(tied)} best)",
            "best value": _fmt(top),
            "best params": " = ".join(f"{int(params[v]):,}" if v in params else "—" for v in tied),
            "lora value": _fmt(by_variant["lora"]) if "lora" in by_variant else "—",
            "base value": _fmt(by_variant["base"]) if "base" in by_variant else "—",
            "floor": "—" if floor is None else _fmt(floor),
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
                                "beats every cheaper one. Lower is better for perplexities. `a = b`: a tie. "
                                "floor: what output of the right format scores with no knowledge (a well-formed "
                                "uuid4: 19.8% of characters); a best at or below it is noise, shown as none."))
    return [write_csv(tables_dir / "headline.csv", best), write_text(tables_dir / "headline.md", text)]


def rebuild(folder: str | Path) -> list[Path]:
    """tables/headline.{csv,md} of a published folder again, from its committed tables/runs.csv,
    tables/summary.csv and replication.json (`python -m analysis.publish --rebuild results/published/tiny`).
    The base model's description is kept from the folder's headline.md: the model folder it was read
    from is not published."""
    import json
    from types import SimpleNamespace

    from .collect import read_runs
    from .paper_models import base_model_note

    folder = Path(folder)
    runs = read_runs(folder / "tables" / "runs.csv")
    summary = pd.read_csv(folder / "tables" / "summary.csv")
    decided = [SimpleNamespace(**c) for c in json.loads((folder / "replication.json").read_text())["claims"]]
    profile = json.loads((folder / "provenance.json").read_text())["profile"]
    old = folder / "tables" / "headline.md"
    kept = [line for line in (old.read_text().splitlines() if old.is_file() else []) if line.startswith("Base model: ")]
    note = kept[0] if kept else base_model_note(runs.get("base_model", []))
    return write_headline(runs, summary, decided, folder, profile, note)

