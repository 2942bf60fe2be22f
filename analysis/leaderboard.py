"""Every method against LoRA, per task: the table that answers "does X beat LoRA here?".

    board = leaderboard(runs, summary)           # one row per (trained task, variant)
    write_leaderboard(runs, summary, out_dir)    # tables/leaderboard.{csv,md}

Per trained task, on its headline metric (the one analysis.headline ranks by): each variant's mean
and 95% CI over its seeds, its trainable parameters, and its difference from LoRA, A − LoRA on the
display scale, with the 95% CI of that difference (paired by seed where ≥ 2 seeds match, else Welch's
t; analysis.stats.difference). The verdict reads that CI: *better* or *worse* where it clears 0 in
the metric's direction, *tie* where it crosses 0, *—* where there is none (one seed, or no spread).
LoRA is at whatever learning rate the profile gave it: the lr sweep's choice where the profile
sweeps, so every method meets LoRA at its own tuned lr. Rows are ranked by mean, best first.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import settings
from .files import write_csv, write_text
from .headline import _fmt, _params, _task_scores
from .render import to_markdown
from .stats import difference
from .tables import eval_rows

REFERENCE = "lora"
COLUMNS = ["task", "metric", "rank", "variant", "n", "mean", "95% CI (min–max if n = 2)", "trainable params", "Δ vs LoRA",
           "Δ 95% CI", "test", "verdict"]


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "tie"


def leaderboard(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    records = []
    values = eval_rows(runs)
    for task in [t for t in dict.fromkeys(runs["train_task"].dropna()) if t in set(summary["task"])]:
        scores = _task_scores(summary, task)
        scores = scores[scores["variant"] != "base"]
        if scores.empty:
            continue
        metric = scores["metric_id"].iloc[0]
        higher = bool(scores["higher_is_better"].iloc[0])
        scale = settings.display_scale(scores["metric"].iloc[0])
        rows = values[(values["task"] == task) & (values["train_task"] == task) & (values["metric_id"] == metric)]
        per_seed = {v: (g["value"].to_numpy(float) * scale, g["seed"].tolist()) for v, g in rows.groupby("variant")}
        params = _params(runs, task)
        ranked = scores.sort_values("mean", ascending=not higher)
        for rank, row in enumerate(ranked.itertuples(), start=1):
            record = {"task": task, "metric": metric, "rank": rank, "variant": row.variant, "n": int(row.n),
                      "mean": _fmt(row.mean),
                      "95% CI (min–max if n = 2)": (f"[{_fmt(row.low)}, {_fmt(row.high)}]" if row.kind == "ci" else
                                                    f"{_fmt(row.low)}–{_fmt(row.high)}" if row.kind == "range" else "—"),
                      "trainable params": f"{int(params[row.variant]):,}" if row.variant in params else "—",
                      "Δ vs LoRA": "—", "Δ 95% CI": "—", "test": "—", "verdict": "—"}
            if row.variant == REFERENCE:
                record["verdict"] = "reference"
            elif REFERENCE in per_seed and row.variant in per_seed:
                (a, seeds_a), (b, seeds_b) = per_seed[row.variant], per_seed[REFERENCE]
                diff = difference(a, b, seeds_a, seeds_b)
                record.update({"Δ vs LoRA": f"{diff.estimate:+.3g}" if math.isfinite(diff.estimate) else "—",
                               "Δ 95% CI": f"[{diff.low:+.3g}, {diff.high:+.3g}]" if diff.has_ci else "—",
                               "test": diff.test, "verdict": _verdict(diff.low, diff.high, higher)})
            records.append(record)
    return pd.DataFrame(records, columns=COLUMNS)


def write_leaderboard(runs: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, profile: str) -> list[Path]:
    board = leaderboard(runs, summary)
    tables_dir = Path(out_dir) / "tables"
    counts = board["verdict"].value_counts()
    text = (f"# Leaderboard: profile `{profile}`\n\n"
            + to_markdown(board, "Per task, its headline metric (fractions ×100; lower is better for perplexities), "
                                 "mean and 95% CI over n seeds, ranked best first; Δ vs LoRA = variant − LoRA with its "
                                 "95% CI (paired by seed where ≥ 2 match, else Welch); better / worse: the CI clears 0 "
                                 "in the metric's direction; tie: it crosses 0; —: no CI (one seed). LoRA at the lr "
                                 "the profile gave it (the sweep's choice where it sweeps).")
            + f"\nBetter than LoRA: {int(counts.get('better', 0))}; ties: {int(counts.get('tie', 0))}; "
              f"worse: {int(counts.get('worse', 0))}; undecided (no CI): "
              f"{int(counts.get('—', 0))} of {len(board) - int(counts.get('reference', 0))} comparisons.\n")
    return [write_csv(tables_dir / "leaderboard.csv", board), write_text(tables_dir / "leaderboard.md", text)]
