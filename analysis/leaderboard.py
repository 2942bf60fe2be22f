"""Every method against LoRA, per task: the table that answers "does X beat LoRA here?".

    board = leaderboard(runs, summary)           # one row per (trained task, variant): COLUMNS, then
                                                 # NUMBERS (Δ and its CI as floats, for the plot)
    write_leaderboard(runs, summary, out_dir)    # tables/leaderboard.{csv,md}, plots/leaderboard_<task>.{png,pdf}

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

import numpy as np
import pandas as pd

from . import settings
from .files import save_figure, write_csv, write_text
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
                      "_higher": higher, "_delta": math.nan, "_low": math.nan, "_high": math.nan,
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
                record.update({"_delta": diff.estimate, "_low": diff.low, "_high": diff.high,
                               "Δ vs LoRA": f"{diff.estimate:+.3g}" if math.isfinite(diff.estimate) else "—",
                               "Δ 95% CI": f"[{diff.low:+.3g}, {diff.high:+.3g}]" if diff.has_ci else "—",
                               "test": diff.test, "verdict": _verdict(diff.low, diff.high, higher)})
            records.append(record)
    return pd.DataFrame(records, columns=COLUMNS + NUMBERS)


NUMBERS = ["_higher", "_delta", "_low", "_high"]   # the Δ and its CI as numbers, for the plot; not written
VERDICT_COLORS = {"better": "tab:green", "worse": "tab:red", "tie": "0.35", "—": "0.65"}


def plotted_rows(board: pd.DataFrame, task: str) -> pd.DataFrame:
    """The rows plot_leaderboard draws for `task`, bottom to top: every method but LoRA with a Δ,
    worst first (so the best is at the top)."""
    rows = board[board["task"].eq(task) & board["verdict"].ne("reference") & board["_delta"].map(math.isfinite)]
    return rows.sort_values("_delta", ascending=bool(rows["_higher"].iloc[0]) if len(rows) else True)


def plot_leaderboard(board: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """plots/leaderboard_<task>: every method's Δ vs LoRA with its 95% CI, best at the top, coloured
    by verdict; the dashed line at 0 is LoRA. One row per method, so dozens stay readable."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    written = []
    for task in dict.fromkeys(board["task"]):
        rows = plotted_rows(board, task)
        if rows.empty:
            continue
        higher = bool(rows["_higher"].iloc[0])
        fig = Figure(figsize=(6.5, 1.2 + 0.2 * len(rows)))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        for i, row in enumerate(rows.to_dict("records")):
            delta, low, high = row["_delta"], row["_low"], row["_high"]
            has_ci = math.isfinite(low) and math.isfinite(high)
            ax.errorbar(delta, i, xerr=[[delta - low], [high - delta]] if has_ci else None,
                        fmt="o", color=VERDICT_COLORS.get(row["verdict"], "0.65"), ms=4, capsize=2, lw=1)
        ax.axvline(0, color="black", ls="--", lw=0.8)
        ax.set_yticks(y, rows["variant"], fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        metric = rows["metric"].iloc[0]
        ax.set_xlabel(f"Δ {metric} vs LoRA ({'higher' if higher else 'lower'} is better), 95% CI over seeds")
        ax.set_title(f"{task}: every method's difference from LoRA (dashed line)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend([Line2D([], [], marker="o", ls="", color=c) for c in VERDICT_COLORS.values()],
                  ["better (CI clear of 0)", "worse (CI clear of 0)", "tie (CI crosses 0)", "no CI (one seed)"],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        written += save_figure(fig, Path(out_dir) / "plots" / f"leaderboard_{task}")
    return written


def write_leaderboard(runs: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, profile: str) -> list[Path]:
    board = leaderboard(runs, summary)
    figures = plot_leaderboard(board, out_dir)
    board = board[COLUMNS]
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
    return [write_csv(tables_dir / "leaderboard.csv", board), write_text(tables_dir / "leaderboard.md", text), *figures]
