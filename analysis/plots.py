"""Figures (PNG + PDF) under <out>/plots/. Every function returns the paths it wrote ([] when the
results hold nothing to plot). Figures are built with matplotlib's object API (no pyplot), so no
global backend state is touched and nothing needs a display.

- metric vs trainable parameters per task, with the Pareto front      params_<task>
- training loss per method                                            loss_<task>
- UUID character accuracy vs step per method (MoRA Table 2's shape)   uuid_accuracy
- SoRA's live rank over training                                      sora_rank_<task>
- normalised singular-value spectra of ΔW per method                  spectra_<task>
- forgetting (general-text perplexity increase) vs task gain           forgetting_<task>
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import settings, taskinfo
from .files import save_figure
from .values import metric_values, primary_values


def pareto_front(points: pd.DataFrame, x: str = "trainable_params", y: str = "value",
                 higher_is_better: bool = True) -> pd.DataFrame:
    """The points no other point beats: none has ≤ x and ≥ y (≤ y if lower is better) with one strict."""
    points = points.dropna(subset=[x, y])
    xs = points[x].to_numpy(float)
    ys = points[y].to_numpy(float) * (1 if higher_is_better else -1)
    keep = [not np.any((xs <= xs[i]) & (ys >= ys[i]) & ((xs < xs[i]) | (ys > ys[i]))) for i in range(len(points))]
    return points[keep].sort_values(x)


def _figure(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _finish(fig, ax, stem: Path) -> list[Path]:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save_figure(fig, stem)


def _label(variant: str, r) -> str:
    return variant if pd.isna(r) else f"{variant} (r={int(r)})"


def plot_metric_vs_params(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Per task: each variant's mean headline metric against its trainable parameters (log x);
    the Pareto front joins the variants nothing beats; the base model is a dashed line."""
    paths = []
    for task in sorted(runs.loc[runs["variant"].ne("base"), "train_task"].unique()):
        values = primary_values(runs, task)
        if values.empty:
            continue
        metric, hib = values["metric"].iloc[0], bool(values["higher_is_better"].iloc[0])
        scale = settings.display_scale(metric)
        means = (values.groupby(["variant", "r"], dropna=False)[["value", "trainable_params"]].mean().reset_index()
                 .assign(value=lambda f: f["value"] * scale))
        trained = means[means["variant"].ne("base")]
        if trained.empty:
            continue
        fig, ax = _figure(f"{task}: {metric} vs trainable parameters", "trainable parameters", metric)
        ax.set_xscale("log")
        ax.scatter(trained["trainable_params"], trained["value"], color="tab:blue")
        for row in trained.itertuples():
            ax.annotate(_label(row.variant, row.r), (row.trainable_params, row.value), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        front = pareto_front(trained, higher_is_better=hib)
        ax.plot(front["trainable_params"], front["value"], color="tab:red", drawstyle="steps-post",
                label="Pareto front")
        for base in means.loc[means["variant"].eq("base"), "value"]:
            ax.axhline(base, color="gray", linestyle="--", label="base model")
        paths += _finish(fig, ax, Path(out_dir) / f"params_{task}")
    return paths


def _mean_lines(ax, frame: pd.DataFrame, x: str, y: str, by: list[str]) -> None:
    """One line per group (mean over seeds), with the min–max band when there are several seeds."""
    for key, group in frame.dropna(subset=[y]).groupby(by, dropna=False):
        stats = group.groupby(x)[y].agg(["mean", "min", "max", "count"]).reset_index()
        label = _label(*key) if len(by) == 2 else str(key[0] if isinstance(key, tuple) else key)
        line, = ax.plot(stats[x], stats["mean"], label=label)
        if stats["count"].max() > 1:
            ax.fill_between(stats[x], stats["min"], stats["max"], color=line.get_color(), alpha=0.2)


def _curves_per_task(curves: pd.DataFrame, column: str, title: str, ylabel: str, prefix: str,
                     out_dir: str | Path) -> list[Path]:
    """One figure per task: `column` against step, a mean line per variant."""
    paths = []
    if curves.empty or column not in curves:
        return paths
    for task, frame in curves.dropna(subset=[column]).groupby("task"):
        fig, ax = _figure(f"{task}: {title}", "step", ylabel)
        _mean_lines(ax, frame, "step", column, ["variant"])
        paths += _finish(fig, ax, Path(out_dir) / f"{prefix}_{task}")
    return paths


def plot_loss_curves(curves: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return _curves_per_task(curves, "loss", "training loss", "loss", "loss", out_dir)


def plot_uuid_accuracy(runs: pd.DataFrame, out_dir: str | Path, task: str = settings.MEMORIZATION_TASK) -> list[Path]:
    """Character accuracy (%) at every evaluated step (eval_step<N>.json and the final eval.json)."""
    rows = runs[runs["task"].eq(task) & runs["metric_id"].eq(settings.MEMORIZATION_METRIC)
                & runs["status"].eq("ok") & runs["variant"].ne("base") & runs["step"].notna()]
    if rows.empty:
        return []
    rows = rows.drop_duplicates(["variant", "seed", "step"]).assign(
        value=lambda f: f["value"] * 100, step=lambda f: f["step"].astype(float))
    fig, ax = _figure(f"{task}: character accuracy during training", "step", "character accuracy (%)")
    _mean_lines(ax, rows, "step", "value", ["variant", "r"])
    return _finish(fig, ax, Path(out_dir) / "uuid_accuracy")


def plot_sora_rank(curves: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return _curves_per_task(curves, "live_rank_total", "SoRA live rank (non-zero gates, all modules)",
                            "live rank", "sora_rank", out_dir)


def plot_spectra(spectra: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Mean normalised singular values σ_i/σ_1 of ΔW per method (log y)."""
    paths = []
    if spectra is None or spectra.empty:
        return paths
    for task, frame in spectra.groupby("train_task"):
        fig, ax = _figure(f"{task}: normalised singular values of ΔW", "index i", "σ_i / σ_1 (mean over modules)")
        ax.set_yscale("log")
        positive = frame[frame["value"] > 0]
        _mean_lines(ax, positive, "index", "value", ["variant", "r"])
        paths += _finish(fig, ax, Path(out_dir) / f"spectra_{task}")
    return paths


def forgetting_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (trained task, variant): gain on the trained task over the base model (points, or % for
    perplexity-like metrics) and the general-text perplexity increase over the base model (%)."""
    general = metric_values(runs, settings.FORGETTING_TASK, [settings.FORGETTING_METRIC])
    points = []
    for train_task, frame in general.groupby("train_task"):
        base_ppl = frame.loc[frame["variant"].eq("base"), "value"].mean()
        task_values = primary_values(runs, train_task)
        if task_values.empty or not np.isfinite(base_ppl):
            continue
        metric, hib = task_values["metric"].iloc[0], bool(task_values["higher_is_better"].iloc[0])
        base_score = task_values.loc[task_values["variant"].eq("base"), "value"].mean()
        for variant, mine in frame[frame["variant"].ne("base")].groupby("variant"):
            score = task_values.loc[task_values["variant"].eq(variant), "value"].mean()
            if settings.comparison_unit(metric) == "points":
                gain = (score - base_score) * settings.display_scale(metric) * (1 if hib else -1)
            else:
                gain = (score / base_score - 1) * 100 * (1 if hib else -1)
            points.append({"train_task": train_task, "variant": variant, "role": mine["role"].iloc[0],
                           "gain": gain, "forgetting_pct": (mine["value"].mean() / base_ppl - 1) * 100,
                           "gain_unit": "points" if settings.comparison_unit(metric) == "points" else "% better"})
    return pd.DataFrame(points)


def plot_forgetting(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    points, paths = forgetting_points(runs), []
    if points.empty:
        return paths
    for train_task, frame in points.groupby("train_task"):
        metric = taskinfo.primary_metric(train_task)
        fig, ax = _figure(f"{train_task}: forgetting vs gain", f"gain on {train_task} {metric} over base "
                          f"({frame['gain_unit'].iloc[0]})", "general-text perplexity increase over base (%)")
        ax.scatter(frame["gain"], frame["forgetting_pct"], color="tab:purple")
        for row in frame.itertuples():
            ax.annotate(row.variant, (row.gain, row.forgetting_pct), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        paths += _finish(fig, ax, Path(out_dir) / f"forgetting_{train_task}")
    return paths


def write_plots(runs: pd.DataFrame, curves: pd.DataFrame, spectra: pd.DataFrame | None,
                out_dir: str | Path) -> dict[str, list[Path]]:
    """Every plot into <out_dir>/plots/; {plot kind: paths}."""
    plots_dir = Path(out_dir) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    return {"params": plot_metric_vs_params(runs, plots_dir), "loss": plot_loss_curves(curves, plots_dir),
            "uuid_accuracy": plot_uuid_accuracy(runs, plots_dir), "sora_rank": plot_sora_rank(curves, plots_dir),
            "spectra": plot_spectra(spectra, plots_dir), "forgetting": plot_forgetting(runs, plots_dir)}
