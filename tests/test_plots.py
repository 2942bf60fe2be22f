"""analysis/plots.py's scatter plots (metric vs trainable parameters, forgetting vs gain): labels that
never overlap, even for 40 clustered methods, every method named (label or legend), and error bars
that are the tables' interval over seeds (analysis.stats.summarize), none for one seed."""
import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.text import Text

from analysis import collect, stats
from analysis.plots import forgetting_figures, forgetting_points, metric_vs_params_figures

N_METHODS = 40


def _row(train_task, task, variant, seed, metric, value, params, hib, r=8):
    return {"profile": "synthetic", "family": "glue", "task": task, "train_task": train_task, "variant": variant,
            "method": variant.split("_")[0], "role": variant.split("_")[0], "r": None if variant == "base" else r,
            "options": "{}", "seed": seed, "source": f"lorabench_{task}", "metric": metric, "filter": "none",
            "metric_id": metric, "step": 100, "final": True, "value": value, "higher_is_better": hib,
            "trainable_params": params, "status": "ok", "reason": "", "run_dir": f"runs/{variant}/seed{seed}"}


def _zoo(seeds: int = 1) -> pd.DataFrame:
    """40 methods on sst2 in three tight clusters (same parameter count within 2%, accuracies
    within a point), LoRA among them, and a base model; `seeds` runs each."""
    rng = np.random.default_rng(0)
    names = ["lora"] + [f"m{i:02d}_{'x' * (i % 4)}" for i in range(1, N_METHODS)]
    rows = [_row("sst2", "sst2", "base", None, "acc", 0.5, 0, True)]
    for i, name in enumerate(names):
        params = [8e3, 8e4, 3e5][i % 3] * (1 + 0.02 * rng.random())
        centre = 0.80 + 0.01 * rng.random() + 0.02 * (i % 3)
        for seed in range(seeds):
            rows.append(_row("sst2", "sst2", name, seed, "acc", centre + 0.01 * rng.standard_normal(), params, True))
    return collect.to_frame(rows)


def _labels(ax) -> list[Text]:
    return [t for t in ax.texts if t.get_gid() == "label"]


def _check_readable(fig, expected: set[str], min_labels: int = 10) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = _labels(ax)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text alone, not its leader line
    for (a, box_a), (b, box_b) in itertools.combinations(zip(labels, boxes), 2):
        assert not box_a.overlaps(box_b), f"{a.get_text()!r} overlaps {b.get_text()!r}"
    points = np.vstack([ax.transData.transform(line.get_xydata()) for line in ax.lines
                        if line.get_marker() not in ("None", "_", "|")])  # the points, not error bar caps
    for label, box in zip(labels, boxes):                        # nor does any label sit on a point
        inside = (points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
        assert not inside.any(), f"{label.get_text()!r} covers a point"
    labelled = [t.get_text() for t in labels]
    legend = [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
    assert len(labelled) >= min_labels and len(labelled) == len(set(labelled))
    assert set(labelled).isdisjoint(legend)
    assert expected <= set(labelled) | set(legend), expected - set(labelled) - set(legend)


def test_forty_clustered_methods_get_labels_that_never_overlap():
    runs = _zoo()
    (task, fig), = metric_vs_params_figures(runs)
    names = set(runs.loc[runs["variant"].ne("base"), "variant"])
    _check_readable(fig, {f"{name} (r=8)" for name in names})
    labelled = {t.get_text() for t in _labels(fig.axes[0])}
    assert "lora (r=8)" in labelled  # the reference is always labelled directly
    # one seed: no error bars anywhere
    assert not [c for c in fig.axes[0].collections if (c.get_gid() or "").startswith(("xerr:", "yerr:"))]


def test_label_placement_is_deterministic():
    def placed():
        (_, fig), = metric_vs_params_figures(_zoo())
        return [(t.get_text(), t.xyann, t.get_ha(), t.get_va()) for t in _labels(fig.axes[0])]
    assert placed() == placed()


def _bars(ax, axis: str) -> dict[str, tuple[float, float]]:
    """{label: (low, high)} of the error bars along `axis`."""
    out = {}
    for c in ax.collections:
        gid = c.get_gid() or ""
        if isinstance(c, LineCollection) and gid.startswith(f"{axis}err:"):
            (segment,) = c.get_segments()
            k = 1 if axis == "y" else 0
            out[gid.split(":", 1)[1]] = (segment[0][k], segment[1][k])
    return out


def test_params_error_bars_are_the_tables_interval():
    runs = _zoo(seeds=3)
    drop = (runs["variant"].eq("m01_x") & runs["seed"].ge(1)) | (runs["variant"].eq("m02_xx") & runs["seed"].eq(2))
    runs = runs[~drop]                      # m01: one seed (no bar), m02: two (min–max, as the tables)
    (_, fig), = metric_vs_params_figures(runs)
    bars = _bars(fig.axes[0], "y")
    for variant, mine in runs[runs["variant"].ne("base")].groupby("variant"):
        summary = stats.summarize(mine["value"] * 100)
        if variant == "m01_x":
            assert f"{variant} (r=8)" not in bars and summary.kind == "single"
            continue
        assert bars[f"{variant} (r=8)"] == pytest.approx((summary.low, summary.high), rel=1e-9)
        assert summary.kind == ("range" if variant == "m02_xx" else "ci")
    assert bars["lora (r=8)"][1] - bars["lora (r=8)"][0] == pytest.approx(2 * stats.summarize(
        runs.loc[runs["variant"].eq("lora"), "value"] * 100).half_width)
    assert not _bars(fig.axes[0], "x")
    _check_readable(fig, {f"{v} (r=8)" for v in set(runs["variant"]) - {"base"}})


def _forgetting_runs(seeds: int) -> pd.DataFrame:
    """cpt_domain runs (domain perplexity, lower is better) with the general-text probe."""
    rng = np.random.default_rng(1)
    rows = [_row("cpt_domain", "cpt_domain", "base", None, "word_perplexity", 40.0, 0, False),
            _row("cpt_domain", "cpt_general", "base", None, "word_perplexity", 20.0, 0, False)]
    for i, name in enumerate(["lora", "pissa", "milora", "mora_a", "mora_b"]):
        for seed in range(seeds):
            rows.append(_row("cpt_domain", "cpt_domain", name, seed, "word_perplexity",
                             10 + i + rng.random(), 8e4, False))
            rows.append(_row("cpt_domain", "cpt_general", name, seed, "word_perplexity",
                             22 + i + 2 * rng.random(), 8e4, False))
    return collect.to_frame(rows)


def test_forgetting_error_bars_on_both_axes_are_the_tables_interval():
    runs = _forgetting_runs(seeds=3)
    (_, fig), = forgetting_figures(runs)
    ax = fig.axes[0]
    xbars, ybars = _bars(ax, "x"), _bars(ax, "y")
    points = forgetting_points(runs).set_index("variant")
    for variant in ["lora", "pissa", "milora", "mora_a", "mora_b"]:
        domain = runs[runs["variant"].eq(variant) & runs["task"].eq("cpt_domain")]
        general = runs[runs["variant"].eq(variant) & runs["task"].eq("cpt_general")]
        gain = stats.summarize((1 - domain["value"] / 40.0) * 100)
        forgetting = stats.summarize((general["value"] / 20.0 - 1) * 100)
        assert gain.kind == forgetting.kind == "ci"
        assert xbars[variant] == pytest.approx((gain.low, gain.high), rel=1e-9)
        assert ybars[variant] == pytest.approx((forgetting.low, forgetting.high), rel=1e-9)
        assert (points.loc[variant, "gain"], points.loc[variant, "forgetting_pct"]) == \
            pytest.approx((gain.mean, forgetting.mean))
    _check_readable(fig, {"lora", "pissa", "milora", "mora_a", "mora_b"}, min_labels=1)


def test_one_seed_means_no_error_bars():
    (_, fig), = forgetting_figures(_forgetting_runs(seeds=1))
    assert not _bars(fig.axes[0], "x") and not _bars(fig.axes[0], "y")
    assert {t.get_text() for t in _labels(fig.axes[0])} == {"lora", "pissa", "milora", "mora_a", "mora_b"}
    points = forgetting_points(_forgetting_runs(seeds=1))
    assert points[["gain_low", "gain_high", "forgetting_low", "forgetting_high"]].isna().all().all()
    assert set(points["n_gain"]) == set(points["n_forgetting"]) == {1}
