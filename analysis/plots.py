"""Figures (PNG + PDF) under <out>/plots/. Every function returns the paths it wrote ([] when the
results hold nothing to plot). Figures are built with matplotlib's object API (no pyplot), so no
global backend state is touched and nothing needs a display.

- metric vs trainable parameters per task, with the Pareto front      params_<task>
- training loss per method                                            loss_<task>
- UUID character accuracy vs step per method (MoRA Table 2's shape)   uuid_accuracy
- SoRA's live rank over training                                      sora_rank_<task>
- normalised singular-value spectra of ΔW per method                  spectra_<task>
- forgetting (general-text perplexity increase) vs task gain           forgetting_<task>

The two scatter plots (params_, forgetting_) stay readable with dozens of methods: labels are placed
where they overlap no other label, marker or leader line (place_labels measures them with the
renderer), the Pareto front and LoRA first; a method whose label finds no room gets a marker of its
own in the legend beside the axes. Error bars are the tables' interval over seeds (stats.summarize:
95% CI, the min–max for two seeds), none for one seed. Perplexity-like metrics get a log y axis.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from . import settings, taskinfo
from .files import save_figure
from .stats import summarize
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
    fig = Figure(figsize=(6, 4), dpi=DPI)
    FigureCanvasAgg(fig)  # a renderer to measure text with (label placement), still no pyplot
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


# --- scatter plots with labels that do not overlap ---------------------------------------------------------
DPI = 120                   # as save_figure writes PNGs: what is measured here is what the file shows
LABEL_SIZE = 7              # points
MARKER_SIZE = 5             # points
RINGS = (5, 10, 17, 25, 35, 47)  # label offsets from the point (points); beyond the first: a leader line
MAX_LABELS = 24             # more direct labels than this crowd the axes: the rest go to the legend
LEGEND_MARKERS = ("s", "^", "v", "D", "P", "X", "<", ">", "p", "h", "*", "d")
LEGEND_COLORS = ("tab:orange", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black")


def _directions() -> list[tuple[float, float]]:
    """Unit offsets in order of preference: right, then above/below-right, above, below, then left;
    16 directions, so a crowded point still finds a gap."""
    angles = [0, 30, -30, 60, -60, 90, -90, 120, -120, 150, -150, 180, 15, -15, 165, -165]
    return [(float(np.cos(np.radians(a))), float(np.sin(np.radians(a)))) for a in angles]


def _alignment(dx: float, dy: float) -> tuple[str, str]:
    ha = "left" if dx > 0.3 else "right" if dx < -0.3 else "center"
    va = "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center"
    return ha, va


def _box(anchor: np.ndarray, size: tuple[float, float], ha: str, va: str) -> np.ndarray:
    """[x0, y0, x1, y1] of a text of `size` (display units) aligned ha/va at `anchor`."""
    w, h = size
    x0 = anchor[0] - {"left": 0, "center": w / 2, "right": w}[ha]
    y0 = anchor[1] - {"bottom": 0, "center": h / 2, "top": h}[va]
    return np.array([x0, y0, x0 + w, y0 + h])


def _any_inside(points: np.ndarray, boxes: np.ndarray, pad: float) -> bool:
    """Whether any of `points` (n × 2) lies inside any of `boxes` (m × 4) grown by `pad`."""
    points, boxes = np.asarray(points).reshape(-1, 2), np.asarray(boxes).reshape(-1, 4)
    if not len(points) or not len(boxes):
        return False
    x, y = points[:, None, 0], points[:, None, 1]
    return bool(np.any((x > boxes[:, 0] - pad) & (x < boxes[:, 2] + pad)
                       & (y > boxes[:, 1] - pad) & (y < boxes[:, 3] + pad)))


def _overlaps(box: np.ndarray, boxes: np.ndarray, pad: float) -> bool:
    boxes = np.asarray(boxes).reshape(-1, 4)
    return bool(np.any((box[0] - pad < boxes[:, 2]) & (boxes[:, 0] < box[2] + pad)
                       & (box[1] - pad < boxes[:, 3]) & (boxes[:, 1] < box[3] + pad)))


def _distances(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest point of `box` (0 inside)."""
    dx = np.maximum.reduce([box[0] - points[:, 0], np.zeros(len(points)), points[:, 0] - box[2]])
    dy = np.maximum.reduce([box[1] - points[:, 1], np.zeros(len(points)), points[:, 1] - box[3]])
    return np.hypot(dx, dy)


def place_labels(ax, xs, ys, texts: list[str], order: list[int], must: set[int] = frozenset(), bars=(),
                 max_labels: int = MAX_LABELS) -> list:
    """Where to write each point's label so that no label overlaps another label or a marker, and no
    leader line crosses a label or another point's marker (measured with the figure's renderer, in
    display units; the axes limits must be final). Points are tried in `order` (most important
    first), each at rings of offsets around it, never nearer to another point than to its own
    (or, with a leader line, than the second ring) (16 directions, nearest first; on each ring a spot
    clear of the error bars `bars`, data-space segments ((x0, y0), (x1, y1)), before one across
    them). A point in `must` that finds no such spot may have its leader cross markers (inside a
    tight cluster there is no other way out). A point that finds no spot, or comes after
    `max_labels` placed labels (and is not in `must`), gets None: the caller lists it in a legend.
    Deterministic.

    Returns per point None or (offset in points (dx, dy), ha, va, leader line: bool)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72                                    # display units per point
    anchors = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    frame = ax.get_window_extent(renderer)
    half = (MARKER_SIZE / 2 + 1) * px
    markers = np.column_stack([anchors - half, anchors + half])
    pad = 1.5 * px
    ends = [ax.transData.transform(np.asarray(bar, float)) for bar in bars]
    bar_boxes = np.array([[*(e.min(axis=0) - 2 * px), *(e.max(axis=0) + 2 * px)] for e in ends]).reshape(-1, 4)
    sizes = []
    for text in texts:
        probe = Text(0, 0, text, fontsize=LABEL_SIZE)
        probe.set_figure(fig)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
    boxes, leaders, result = np.empty((0, 4)), np.empty((0, 2)), [None] * len(texts)
    candidates = [(ring, radius, direction, clear) for ring, radius in enumerate(RINGS)
                  for clear in (True, False) for direction in _directions()]

    def spot(i: int, strict: bool):
        # points apart from this one: not those whose markers overlap its own (no label or leader could)
        apart = np.abs(anchors - anchors[i]).max(axis=1) > 2 * half
        others = markers[apart] if strict else np.empty((0, 4))  # markers a leader must not cross
        for ring, radius, (dx, dy), clear in candidates:
            ha, va = _alignment(dx, dy)
            box = _box(anchors[i] + np.array([dx, dy]) * radius * px, sizes[i], ha, va)
            if (box[0] < frame.x0 or box[1] < frame.y0 or box[2] > frame.x1 or box[3] > frame.y1
                    or (clear and _overlaps(box, bar_boxes, 0))
                    or _overlaps(box, boxes, pad) or _overlaps(box, markers, 0) or _any_inside(leaders, box, pad)):
                continue
            near = _distances(anchors[apart], box)       # a label beside another point would name it
            if len(near) and near.min() <= min(_distances(anchors[i:i + 1], box)[0], RINGS[1] * px) + pad:
                continue
            segment = np.empty((0, 2))
            if ring > 0:  # the leader: from the point to the label's centre, up to the label
                centre = (box[:2] + box[2:]) / 2
                samples = anchors[i] + np.linspace(0, 1, 32)[:, None] * (centre - anchors[i])
                outside = ~np.array([_any_inside(p, box, 2 * pad) or _any_inside(p, markers[i], 0) for p in samples])
                segment = samples[outside]
                if _any_inside(segment, boxes, pad) or _any_inside(segment, others, 0):
                    continue
            return box, segment, (dx * radius, dy * radius), ha, va, ring > 0
        return None

    for i in order:
        if len(boxes) >= max_labels and i not in must:
            continue
        found = spot(i, strict=True) or (spot(i, strict=False) if i in must else None)
        if found:
            box, segment, offset, ha, va, leader = found
            boxes, leaders = np.vstack([boxes, box]), np.vstack([leaders, segment])
            result[i] = (offset, ha, va, leader)
    return result


def _fix_limits(ax, xs, ys, margin: float = 0.08) -> None:
    """Autoscale to these data (error bar ends included) with room for labels, then freeze the limits
    so that display positions measured for label placement stay valid."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (np.isfinite(xs) & np.isfinite(ys) & ((xs > 0) if ax.get_xscale() == "log" else True)
          & ((ys > 0) if ax.get_yscale() == "log" else True))
    ax.update_datalim(np.column_stack([xs[ok], ys[ok]]))
    ax.margins(x=margin, y=margin + 0.04)
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())


def _readable_log_ticks(ax) -> None:
    """A log axis spanning less than a decade gets a few plain ticks (2.44M), not crowded ×10^k labels."""
    for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "log" and high / low < 10:
            axis.set_major_locator(ticker.MaxNLocator(4))
            axis.set_major_formatter(ticker.EngFormatter(sep=""))
            axis.set_minor_locator(ticker.NullLocator())


def _error_bar(ax, x: float, y: float, axis: str, low: float, high: float, color, text: str) -> None:
    """One error bar from low to high on `axis` ("x" or "y"); its LineCollection's gid is
    "<axis>err:<label>" (tests read it)."""
    if axis == "y":
        container = ax.errorbar([x], [y], yerr=[[y - low], [high - y]], fmt="none", ecolor=color,
                                elinewidth=0.8, capsize=2, alpha=0.8)
    else:
        container = ax.errorbar([x], [y], xerr=[[x - low], [high - x]], fmt="none", ecolor=color,
                                elinewidth=0.8, capsize=2, alpha=0.8)
    container.lines[2][0].set_gid(f"{axis}err:{text}")


def labelled_scatter(ax, points: pd.DataFrame, color: str, order: list[int], must: set[int] = frozenset(),
                     lines=()) -> None:
    """Points (columns x, y, text, and x_low/x_high, y_low/y_high: an error bar where both are
    finite) with their labels placed by `place_labels`, clear of the error bars and of `lines`
    (horizontal or vertical data-space segments already drawn) where they can be; points whose label
    finds no room get a marker of their own, listed in the legend. Labels carry gid "label"."""
    points = points.reset_index(drop=True)
    intervals = [[(axis, row.get(f"{axis}_low", np.nan), row.get(f"{axis}_high", np.nan)) for axis in ("x", "y")
                  if np.isfinite(row.get(f"{axis}_low", np.nan)) and np.isfinite(row.get(f"{axis}_high", np.nan))]
                 for row in points.to_dict("records")]
    bars = [((x, low), (x, high)) if axis == "y" else ((low, y), (high, y))    # kept clear of labels if possible
            for x, y, mine in zip(points["x"], points["y"], intervals) for axis, low, high in mine]
    spots = place_labels(ax, points["x"], points["y"], list(points["text"]), order, must, [*bars, *lines])
    unlabelled = sorted((i for i, spot in enumerate(spots) if spot is None), key=lambda i: points["text"][i])
    styles = {i: (LEGEND_MARKERS[k % len(LEGEND_MARKERS)], LEGEND_COLORS[k % len(LEGEND_COLORS)])
              for k, i in enumerate(unlabelled)}
    for i in [*(i for i in range(len(points)) if spots[i] is not None), *unlabelled]:  # legend: by name
        row = points.iloc[i]
        marker, point_color = styles.get(i, ("o", color))
        for axis, low, high in intervals[i]:
            _error_bar(ax, row["x"], row["y"], axis, low, high, point_color, row["text"])
        ax.plot([row["x"]], [row["y"]], linestyle="none", marker=marker, markersize=MARKER_SIZE, color=point_color,
                markeredgecolor="white", markeredgewidth=0.5, label=row["text"] if i in styles else "_nolegend_",
                zorder=3)
        if spots[i] is not None:
            offset, ha, va, leader = spots[i]
            ax.annotate(row["text"], (row["x"], row["y"]), xytext=offset, textcoords="offset points",
                        fontsize=LABEL_SIZE, ha=ha, va=va, gid="label", annotation_clip=False, zorder=4,
                        bbox=dict(boxstyle="square,pad=0.05", facecolor="white", edgecolor="none", alpha=0.7),
                        arrowprops=dict(arrowstyle="-", color="0.45", lw=0.6, shrinkA=0, shrinkB=2)
                        if leader else None)


def _outside_legend(ax) -> None:
    """The legend right of the axes, in as many columns as it needs: it never covers a point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=7,
                  ncol=int(np.ceil(len(handles) / 18)), frameon=False, handletextpad=0.3, columnspacing=0.8)


def _interval(values, scale: float = 1.0) -> tuple[float, float, float, int]:
    """mean, low, high, n as the tables give them (stats.summarize: 95% CI from three values, the
    min–max from two); low/high NaN for one value: no error bar."""
    summary = summarize(np.asarray(list(values), float) * scale)
    if summary.kind in ("ci", "range"):
        return summary.mean, summary.low, summary.high, summary.n
    return summary.mean, math.nan, math.nan, summary.n


def metric_summaries(values: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, r) of primary_values: trainable params, and the metric on the display scale as
    mean, low, high (the tables' interval) and n."""
    metric = values["metric"].iloc[0]
    scale = settings.display_scale(metric)
    rows = []
    for (variant, r), group in values.groupby(["variant", "r"], dropna=False, sort=True):
        mean, low, high, n = _interval(group["value"], scale)
        rows.append({"variant": variant, "r": r, "trainable_params": group["trainable_params"].mean(),
                     "role": group["role"].iloc[0], "value": mean, "low": low, "high": high, "n": n})
    return pd.DataFrame(rows)


def metric_vs_params_figures(runs: pd.DataFrame):
    """(task, Figure) per task: each variant's mean headline metric against its trainable parameters (log x;
    log y for perplexity-like metrics, which the tables compare as ratios), with
    the tables' interval over seeds as an error bar (95% CI; min–max for two seeds; none for one);
    the Pareto front joins the variants nothing beats; the base model is a dashed line. The front
    and LoRA are labelled first, then the rest best first, as far as they fit without overlap; the
    others are listed in the legend with a marker each."""
    for task in sorted(runs.loc[runs["variant"].ne("base"), "train_task"].unique()):
        values = primary_values(runs, task)
        if values.empty:
            continue
        metric, hib = values["metric"].iloc[0], bool(values["higher_is_better"].iloc[0])
        means = metric_summaries(values)
        trained = means[means["variant"].ne("base") & means["value"].notna()
                        & means["trainable_params"].gt(0)].reset_index(drop=True)   # a log axis
        if trained.empty:
            continue
        bases = list(means.loc[means["variant"].eq("base"), "value"].dropna())
        fig, ax = _figure(f"{task}: {metric} vs trainable parameters", "trainable parameters", metric)
        ax.set_xscale("log")
        if settings.comparison_unit(metric) == "log-ratio":   # perplexities: compared as ratios, shown so
            ax.set_yscale("log")
        _fix_limits(ax, [*trained["trainable_params"]] * 3 + [trained["trainable_params"].iloc[0]] * len(bases),
                    [*trained["value"], *trained["low"], *trained["high"], *bases])
        _readable_log_ticks(ax)
        front = pareto_front(trained, higher_is_better=hib)
        ax.plot(front["trainable_params"], front["value"], color="tab:red", drawstyle="steps-post", lw=1,
                label="Pareto front", zorder=2)
        lines = [((x0, y0), (x1, y0)) for x0, x1, y0 in zip(front["trainable_params"], front["trainable_params"][1:],
                                                             front["value"])]
        lines += [((x1, y0), (x1, y1)) for x1, y0, y1 in zip(front["trainable_params"][1:], front["value"],
                                                             front["value"][1:])]
        for base in bases:
            ax.axhline(base, color="gray", linestyle="--", label="base model")
            lines.append(((ax.get_xlim()[0], base), (ax.get_xlim()[1], base)))
        first = set(front.index) | set(trained.index[trained["role"].eq("lora")])
        best = trained["value"] * (-1 if hib else 1)
        order = sorted(trained.index, key=lambda i: (i not in first, best[i], trained["variant"][i]))
        points = pd.DataFrame({"x": trained["trainable_params"], "y": trained["value"],
                               "text": [_label(v, r) for v, r in zip(trained["variant"], trained["r"])],
                               "y_low": trained["low"], "y_high": trained["high"]})
        labelled_scatter(ax, points, "tab:blue", order, must=set(trained.index[trained["role"].eq("lora")]), lines=lines)
        _outside_legend(ax)
        yield task, fig


def plot_metric_vs_params(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return [path for task, fig in metric_vs_params_figures(runs)
            for path in save_figure(fig, Path(out_dir) / f"params_{task}")]


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
    perplexity-like metrics) and the general-text perplexity increase over the base model (%), each
    the mean over seeds with the tables' interval (gain_low/high, forgetting_low/high: 95% CI, the
    min–max for two seeds, NaN for one) and its n. Per seed, each is taken against the base model's
    mean, so the means are those of the mean scores."""
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
            scores = task_values.loc[task_values["variant"].eq(variant), "value"].to_numpy(float)
            if settings.comparison_unit(metric) == "points":
                gains = (scores - base_score) * settings.display_scale(metric) * (1 if hib else -1)
            else:
                gains = (scores / base_score - 1) * 100 * (1 if hib else -1)
            gain, gain_low, gain_high, n_gain = _interval(gains)
            forgetting, low, high, n = _interval((mine["value"].to_numpy(float) / base_ppl - 1) * 100)
            points.append({"train_task": train_task, "variant": variant, "role": mine["role"].iloc[0],
                           "gain": gain, "gain_low": gain_low, "gain_high": gain_high, "n_gain": n_gain,
                           "forgetting_pct": forgetting, "forgetting_low": low, "forgetting_high": high,
                           "n_forgetting": n,
                           "gain_unit": "points" if settings.comparison_unit(metric) == "points" else "% better"})
    return pd.DataFrame(points)


def forgetting_figures(runs: pd.DataFrame):
    """(trained task, Figure) per trained task: general-text forgetting against the gain on the task, error bars on both
    axes where there are several seeds. Labelled first: LoRA and the front of the trade-off (no
    variant gains more and forgets less), then the rest by name, as far as they fit."""
    points = forgetting_points(runs)
    if points.empty:
        return
    for train_task, frame in points.groupby("train_task"):
        frame = frame.dropna(subset=["gain", "forgetting_pct"]).reset_index(drop=True)
        if frame.empty:
            continue
        metric = taskinfo.primary_metric(train_task)
        fig, ax = _figure(f"{train_task}: forgetting vs gain", f"gain on {train_task} {metric} over base "
                          f"({frame['gain_unit'].iloc[0]})", "general-text perplexity increase over base (%)")
        _fix_limits(ax, [*frame["gain"], *frame["gain_low"], *frame["gain_high"], *frame["gain"], *frame["gain"]],
                    [*frame["forgetting_pct"], *frame["forgetting_pct"], *frame["forgetting_pct"],
                     *frame["forgetting_low"], *frame["forgetting_high"]])
        first = set(pareto_front(frame, x="forgetting_pct", y="gain").index) | set(frame.index[frame["role"].eq("lora")])
        order = sorted(frame.index, key=lambda i: (i not in first, frame["variant"][i]))
        labelled_scatter(ax, pd.DataFrame({"x": frame["gain"], "y": frame["forgetting_pct"], "text": frame["variant"],
                                           "x_low": frame["gain_low"], "x_high": frame["gain_high"],
                                           "y_low": frame["forgetting_low"], "y_high": frame["forgetting_high"]}),
                         "tab:purple", order, must=set(frame.index[frame["role"].eq("lora")]))
        _outside_legend(ax)
        yield train_task, fig


def plot_forgetting(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return [path for task, fig in forgetting_figures(runs)
            for path in save_figure(fig, Path(out_dir) / f"forgetting_{task}")]


def write_plots(runs: pd.DataFrame, curves: pd.DataFrame, spectra: pd.DataFrame | None,
                out_dir: str | Path) -> dict[str, list[Path]]:
    """Every plot into <out_dir>/plots/; {plot kind: paths}."""
    plots_dir = Path(out_dir) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    return {"params": plot_metric_vs_params(runs, plots_dir), "loss": plot_loss_curves(curves, plots_dir),
            "uuid_accuracy": plot_uuid_accuracy(runs, plots_dir), "sora_rank": plot_sora_rank(curves, plots_dir),
            "spectra": plot_spectra(spectra, plots_dir), "forgetting": plot_forgetting(runs, plots_dir)}
