"""How far a profile's numbers and verdicts move when the same commit runs again elsewhere.

    cells, by_task, claims = compare(analysed_dirs, labels)
    write_spread(analysed_dirs, labels, out_dir, trained)      # spread.md, spread.csv, spread_claims.csv
    rebuild("results/published/tiny")                          # spread.md again from the committed files

Each analysed folder is one run of the same profile (another machine or torch thread count:
training on a CPU is bit-reproducible on one machine and thread count, not across them). A cell is
one (task, headline metric, variant) mean; its move is the difference of a rerun to the first run on
the comparison scale of analysis.settings: percentage points for fractions and BLEU, |log ratio|
for perplexities (0.1 ≈ 10%). Per task and rerun: the median and largest move, and whether the best
method is the same. Per claim: the verdict in each run, and whether it is stable.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import settings, taskinfo
from .files import write_csv, write_text
from .render import to_markdown


def _headline_cells(analysed: Path) -> pd.DataFrame:
    summary = pd.read_csv(analysed / "tables" / "summary.csv")
    summary = summary[summary["n"] > 0]
    keep = summary["metric_id"] == summary["task"].map(taskinfo.primary_metric)
    return summary[keep][["family", "task", "metric_id", "higher_is_better", "variant", "mean", "scale"]]


def best_variants(values: pd.Series, higher: bool) -> list[str]:
    """Every variant at the best value (a tie is a tie, not whichever row came first), sorted."""
    best = values.max() if higher else values.min()
    return sorted(values.index[values == best])


def per_task(cells: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per task and rerun: median and largest move, where, and the best method(s) in the first run
    and the rerun (`a = b` for a tie). same best: yes (the same set), partly (the sets share a
    variant: a tie appeared, went or changed members), no (nothing in common)."""
    rows = []
    for (family, task, metric), group in cells.groupby(["family", "task", "metric_id"], sort=False):
        trained = group[group["variant"] != "base"].set_index("variant")
        higher = bool(group["higher_is_better"].iloc[0])
        first = best_variants(trained[labels[0]], higher)
        for label in labels[1:]:
            move = group[f"move {label}"]
            best = best_variants(trained[label], higher)
            same = "yes" if best == first else "partly" if set(best) & set(first) else "no"
            rows.append({"family": family, "task": task, "metric": metric, "rerun": label,
                         "unit": group["unit"].iloc[0], "cells": len(group), "moved": int((move > 0).sum()),
                         "median move": round(float(move.median()), 3), "largest move": round(float(move.max()), 3),
                         "largest at": group.loc[move.idxmax(), "variant"],
                         "best method": " = ".join(first) if same == "yes" else f"{' = '.join(first)} → {' = '.join(best)}",
                         "same best": same})
    return pd.DataFrame(rows)


def compare(analysed: list[Path], labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frames = [_headline_cells(a).rename(columns={"mean": label}) for a, label in zip(analysed, labels)]
    key = ["family", "task", "metric_id", "higher_is_better", "variant", "scale"]
    cells = frames[0]
    for frame in frames[1:]:
        cells = cells.merge(frame, on=key, how="inner")
    unit = [settings.comparison_unit(m) for m in cells["metric_id"]]
    moves = {}
    for label in labels[1:]:  # each rerun against the first run
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.abs(np.log(cells[label].to_numpy(float) / cells[labels[0]].to_numpy(float)))
        points = np.abs(cells[label].to_numpy(float) - cells[labels[0]].to_numpy(float))  # display scale already
        moves[f"move {label}"] = np.where(np.array(unit) == "points", points, log_ratio)
    cells = cells.assign(unit=unit, **moves)
    cells["move"] = cells[list(moves)].max(axis=1)

    verdicts = []
    for analysed_dir in analysed:
        claims = json.loads((analysed_dir / "replication.json").read_text())["claims"]
        verdicts.append({c["claim"]: c["verdict"] for c in claims})
    claims = pd.DataFrame([{"claim": claim, **{label: v.get(claim, "—") for label, v in zip(labels, verdicts)},
                            "stable": "yes" if len({v.get(claim) for v in verdicts}) == 1 else "no"}
                           for claim in verdicts[0]])
    return cells, per_task(cells, labels), claims


def _commits(trained: dict) -> str:
    """Every commit the runs were trained at, and whether the tree had uncommitted changes."""
    short = [(c or "?")[:7] for c in trained.get("git_commits", [])]
    text = f"commit {short[0]}" if len(short) == 1 else f"{len(short)} commits ({', '.join(short)})"
    return text + (" with uncommitted changes" if trained.get("git_dirty") else "")


def _isa(machines: list[dict]) -> str:
    """The CPU and instruction set the runs computed with, as provenance recorded them."""
    machine = machines[0] if machines else {}
    isa = machine.get("cpu_capability") or "instruction set not recorded"
    limits = ", ".join(f"{k}={v}" for k, v in (machine.get("isa_limits") or {}).items())
    return f"{machine.get('cpu_model', '?')} ({isa}{f'; {limits}' if limits else ''})"


def render(cells: pd.DataFrame, by_task: pd.DataFrame, claims: pd.DataFrame, labels: list[str],
           trained: list[dict]) -> str:
    runs_text = "; ".join(f"`{label}`: {_commits(t)}, "
                          f"{'/'.join(map(str, t.get('threads_per_job') or ['?']))} torch thread(s) per job, "
                          f"{_isa(t.get('machines') or [{}])}" for label, t in zip(labels, trained))
    shown = cells.assign(**{label: cells[label].map(lambda v: f"{v:.4g}") for label in labels},
                         **{c: cells[c].round(3) for c in cells if c.startswith("move")}).drop(columns=["move"])
    return (f"# How much the `{labels[0]}` numbers move on a rerun\n\nRuns compared: {runs_text}.\n\n"
            "A move is the largest difference to the first run: percentage points (fractions ×100, BLEU) "
            "or |log ratio| (perplexities; 0.1 ≈ 10%). One seed per cell unless the profile has more. "
            "`moved`: the cells whose move is not 0. A best method `a = b` is a tie.\n\n"
            "## Verdicts\n\n" + to_markdown(claims) +
            "\n## Per task (headline metric)\n\n" + to_markdown(by_task) +
            "\n## Every cell\n\n" + to_markdown(shown.drop(columns=["higher_is_better", "scale"])))


def write_spread(analysed: list[Path], labels: list[str], out_dir: Path, trained: list[dict]) -> list[Path]:
    cells, by_task, claims = compare(analysed, labels)
    out_dir = Path(out_dir)
    return [write_csv(out_dir / "spread.csv", cells), write_csv(out_dir / "spread_claims.csv", claims),
            write_text(out_dir / "spread.md", render(cells, by_task, claims, labels, trained))]


def rebuild(folder: Path) -> list[Path]:
    """spread.md again from a published folder's own spread.csv, spread_claims.csv and provenance.json
    (the reruns' run folders are not needed): `python -m analysis.publish --rebuild results/published/tiny`."""
    folder = Path(folder)
    cells = pd.read_csv(folder / "spread.csv")
    claims = pd.read_csv(folder / "spread_claims.csv", dtype=str)
    labels = [c for c in claims.columns if c not in ("claim", "stable")]
    info = json.loads((folder / "provenance.json").read_text())
    trained = [info["trained"], *(r["trained"] for r in info.get("reruns", []))]
    return [write_text(folder / "spread.md", render(cells, per_task(cells, labels), claims, labels, trained))]

