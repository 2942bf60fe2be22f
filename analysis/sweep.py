"""The learning-rate sweep (config `lr_sweep`, workflow/rules/sweep.smk): the choice, its table and plot.

    choice = choose_lr("sst2", "lora", [trial_of(1e-3, summary), ...])   # what rule choose_lr writes
    write_sweep("results/tiny", "results/tiny")   # tables/lr_sweep.{csv,md}, plots/lr_sweep.{png,pdf}
    learning_rates_markdown("results/tiny")      # the "Learning rates" section of replication.md

Layout read: <results>/sweep/<task>/<variant>/chosen_lr.json, one per swept (task, variant), each
listing all its trials. The trials' own run directories beside it are never read as results: the
tables of runs come from <results>/runs/ only (collect.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .files import read_json, save_figure, write_csv, write_text
from .render import to_markdown

CRITERION = "validation eval_loss"
RULE = ("For each swept (task, variant), one run per learning rate of `lr_sweep.grid`, at the sweep's seed and "
        "with the real runs' configuration otherwise, scored by its end-of-run validation loss (`eval_loss` on "
        "the validation split; the test split is never looked at). The lowest validation loss among the runs "
        "that finished (status ok) chose the lr (ties: the smaller lr); diverged or failed runs are never "
        "chosen. All seeds of the real runs trained at the chosen lr; variants outside the grid kept their "
        "configured lr.")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def trial_of(lr: float, summary: dict) -> dict:
    """One trial as chosen_lr.json lists it, from the trial's train_summary.json."""
    status, loss = str(summary.get("status", "failed")), summary.get("eval_loss")
    trial = {"lr": float(lr), "status": status, "eval_loss": float(loss) if _finite(loss) else None}
    if status != "ok":
        trial["reason"] = str(summary.get("reason", "no reason recorded"))
    elif trial["eval_loss"] is None:  # e.g. no validation split: nothing to choose by
        trial["reason"] = "no finite validation loss (eval_loss) in train_summary.json"
    return trial


def choose_lr(task: str, variant: str, trials: list[dict]) -> dict:
    """The lr of the trial with the lowest validation loss among those with status ok.

    A diverged trial may still carry an earlier, low eval_loss, hence status ok is required, not
    just a number. Ties go to the smaller lr, the safer side of a sweep. With no trial to choose
    from, the error names the (task, variant) and every trial's reason.
    """
    candidates = [t for t in trials if t["status"] == "ok" and _finite(t.get("eval_loss"))]
    trials = sorted(trials, key=lambda t: t["lr"])
    if not candidates:
        reasons = "; ".join(f"lr {t['lr']:g}: {t['status']}" + (f" ({t['reason']})" if t.get("reason") else "")
                            for t in trials)
        raise ValueError(f"lr sweep of task {task!r}, variant {variant!r}: no trial finished with a validation "
                         f"loss, so there is no lr to choose. Trials: {reasons or 'none'}. Fix what failed or "
                         f"change lr_sweep.grid.{variant} (e.g. smaller lrs when the trials diverged).")
    best = min(candidates, key=lambda t: (t["eval_loss"], t["lr"]))
    return {"task": task, "variant": variant, "chosen_lr": best["lr"], "criterion": CRITERION, "trials": trials}


# --- reading the sweep back ----------------------------------------------------------------------
def read_sweep(results_dir: str | Path) -> pd.DataFrame:
    """One row per trial: task, variant, seed, lr, status, reason, eval_loss, chosen (empty without a sweep)."""
    rows = []
    for path in sorted(Path(results_dir).glob("sweep/*/*/chosen_lr.json")):
        choice = read_json(path)
        for trial in choice["trials"]:
            rows.append({"task": choice["task"], "variant": choice["variant"], "seed": choice.get("seed"),
                         "lr": trial["lr"], "status": trial["status"], "reason": trial.get("reason", ""),
                         "eval_loss": trial["eval_loss"] if _finite(trial["eval_loss"]) else math.nan,
                         "chosen": trial["lr"] == choice["chosen_lr"]})
    columns = ["task", "variant", "seed", "lr", "status", "reason", "eval_loss", "chosen"]
    return pd.DataFrame(rows, columns=columns).sort_values(["task", "variant", "lr"], ignore_index=True)


def _status_text(row) -> str:
    return row["status"] if not row["reason"] else f"{row['status']}: {row['reason']}"


def sweep_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The Markdown view: task, variant, lr, status, validation loss, chosen ✓."""
    return pd.DataFrame({
        "task": trials["task"], "variant": trials["variant"], "lr": trials["lr"].map(lambda lr: f"{lr:g}"),
        "status": trials.apply(_status_text, axis=1),
        "validation loss": trials["eval_loss"].map(lambda x: "" if math.isnan(x) else f"{x:.4f}"),
        "chosen": trials["chosen"].map(lambda chosen: "✓" if chosen else ""),
    })


def plot_sweep(trials: pd.DataFrame, stem: Path) -> list[Path]:
    """Validation loss vs lr (log x), one panel per task, one line per variant; the chosen lr is
    ringed, and a trial without a validation loss (diverged, failed) is an × at the panel's top."""
    tasks = sorted(trials["task"].unique())
    fig = Figure(figsize=(4.5 * len(tasks), 3.8))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        for variant, group in trials[trials["task"] == task].groupby("variant"):
            scored = group.dropna(subset=["eval_loss"])
            line, = ax.plot(scored["lr"], scored["eval_loss"], marker="o", label=variant)
            chosen = group[group["chosen"]]
            ax.scatter(chosen["lr"], chosen["eval_loss"], s=160, facecolors="none", edgecolors=line.get_color(),
                       linewidths=2, zorder=3)
            lost = group[group["eval_loss"].isna()]  # x: data coordinates, y: near the panel's top
            ax.scatter(lost["lr"], [0.96] * len(lost), marker="x", color=line.get_color(),
                       transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        lrs = trials.loc[trials["task"] == task, "lr"]
        ax.set_xlim(lrs.min() / 1.5, lrs.max() * 1.5)  # autoscaling skips the × marks (not in data coordinates)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("learning-rate sweep (ringed: chosen lr; ×: diverged or failed)", fontsize=10)
    return save_figure(fig, stem)


def write_sweep(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """tables/lr_sweep.{csv,md} and plots/lr_sweep.{png,pdf}; nothing without a sweep."""
    trials = read_sweep(results_dir)
    if trials.empty:
        return []
    out_dir = Path(out_dir)
    caption = f"Learning-rate sweep: every trial, scored by {CRITERION} (✓: the lr the real runs trained at)."
    return [write_csv(out_dir / "tables" / "lr_sweep.csv", trials),
            write_text(out_dir / "tables" / "lr_sweep.md", to_markdown(sweep_table(trials), caption)),
            *plot_sweep(trials, out_dir / "plots" / "lr_sweep")]


def learning_rates_markdown(results_dir: str | Path) -> str:
    """A "Learning rates" section: the chosen lr per task × variant and the rule; "" without a sweep."""
    trials = read_sweep(results_dir)
    if trials.empty:
        return ""
    chosen = trials[trials["chosen"]].pivot(index="task", columns="variant", values="lr")
    table = chosen.apply(lambda column: column.map(lambda lr: "–" if pd.isna(lr) else f"{lr:g}")).reset_index()
    table.columns.name = None
    lost = trials["status"].ne("ok").sum()
    seeds = ", ".join(str(s) for s in sorted(trials["seed"].dropna().unique()))
    edges = at_grid_edge(trials)
    return "\n".join([
        "## Learning rates", "",
        to_markdown(table, "Chosen learning rate per task × swept variant (–: not swept there; the configured "
                           "lr applies)."),
        f"Rule: {RULE}", "",
        f"Sweep seed: {seeds or 'not recorded'}; {len(trials)} trials, {lost} of them diverged or failed. "
        "Every trial: `tables/lr_sweep.md`, `plots/lr_sweep.png`.", "",
        *([f"At the edge of its grid (the best lr may lie beyond it; widen `lr_sweep.grid`): {', '.join(edges)}.",
           ""] if edges else []),
    ])


def at_grid_edge(trials: pd.DataFrame) -> list[str]:
    """'task/variant (lr)' for every choice that is the smallest or the largest lr tried."""
    edges = []
    for (task, variant), group in trials.groupby(["task", "variant"]):
        chosen = group.loc[group["chosen"], "lr"]
        if len(chosen) and len(group) > 1 and chosen.iloc[0] in (group["lr"].min(), group["lr"].max()):
            edges.append(f"{task}/{variant} ({chosen.iloc[0]:g})")
    return edges
