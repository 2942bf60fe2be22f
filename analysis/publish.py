"""Publish a finished run: `results/published/<profile>/`, small enough to commit, browsable with no run.

    python -m analysis.publish results/tiny                          # → results/published/tiny/
    python -m analysis.publish results/tiny --rerun results/tiny_t2  # + spread.md: how numbers move

The analysis is re-run on the run's files with the current code and the verdict settings the run's
own aggregate job recorded in replication.json (--reuse-analysis: taken as the DAG's aggregate job
wrote it). A selection is copied: tables as Markdown and CSV (runs.csv, summary.csv, headline, per
family, paper-vs-ours, lr sweep), `replication.md|json`, the headline plots as PNG, and
`provenance.json`: the commits that trained and analysed, the machine, the package versions, the
threads per job, and the wall time per stage read from the Snakemake log of the run. No adapters,
checkpoints or raw curves. `--rerun` adds `spread.md|csv`: the same profile run again (another
machine, instruction set or thread count) and how far each number and verdict moved. The folder is
replaced in one rename; `results/published/README.md` is rebuilt from every published profile.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from . import spread as spread_mod
from .files import read_json, write_json, write_text
from .pipeline import run_analysis
from .settings import VerdictSettings

PUBLISHED = Path("results/published")
SKIP_TABLES = {"train_curves.csv", "spectra.csv"}       # raw curves: in the run, not in the published folder
SKIP_PLOTS = ("loss_",)                                 # loss curves: per run, not headline results
STAGES = {"task_data": "data", "base_model": "base_model",
          "sweep_train": "lr_sweep", "choose_lr": "lr_sweep", "train": "train",
          "evaluate": "evaluate", "evaluate_base": "evaluate", "aggregate": "aggregate", "report": "report"}
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


# --- the Snakemake log: wall time per stage ----------------------------------------------------------------
def parse_snakemake_log(text: str) -> pd.DataFrame:
    """One row per finished job: rule, jobid, start, end (datetimes, 1 s resolution)."""
    stamp, pending, starts, rows = None, None, {}, []
    for line in text.splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif (m := _START.match(line)) and stamp is not None:
            pending = (m.group(1), stamp)
        elif (m := _JOBID.match(line)) and pending is not None:
            starts[int(m.group(1))] = pending
            pending = None
        elif (m := _DONE.match(line)) and stamp is not None and int(m.group(1)) in starts:
            rule, start = starts.pop(int(m.group(1)))
            rows.append({"rule": rule, "jobid": int(m.group(1)), "start": start, "end": stamp})
    return pd.DataFrame(rows, columns=["rule", "jobid", "start", "end"])


def stage_times(jobs: pd.DataFrame) -> list[dict]:
    """Per stage: jobs, the sum of their wall times, and the span from the first start to the last end."""
    if jobs.empty:
        return []
    jobs = jobs.assign(stage=jobs["rule"].map(STAGES).fillna(jobs["rule"]),
                       seconds=(jobs["end"] - jobs["start"]).dt.total_seconds())
    groups = sorted(jobs.groupby("stage", sort=False), key=lambda item: item[1]["start"].min())  # by first start
    return [{"stage": stage, "jobs": len(group), "job_seconds": round(group["seconds"].sum()),
             "span_seconds": round((group["end"].max() - group["start"].min()).total_seconds())}
            for stage, group in groups]


def find_run_log(results_dir: Path, log_dir: Path = Path(".snakemake/log")) -> Path | None:
    """The newest Snakemake log in which this profile's training and aggregation both finished."""
    marker = f"results/{results_dir.name}/"
    for path in sorted(log_dir.glob("*.snakemake.log"), reverse=True):
        text = path.read_text(encoding="utf-8", errors="replace")
        if marker in text and "(Rule: aggregate)" in text and "(Rule: train)" in text:
            return path
    return None


def run_timing(log_path: Path | None) -> dict:
    if log_path is None:
        return {"snakemake_log": None, "note": "no Snakemake log of a full run found; pass --log"}
    text = log_path.read_text(encoding="utf-8", errors="replace")
    jobs = parse_snakemake_log(text)
    command = re.search(r"^\s+Command: (.+)$", text, re.M)
    elapsed = re.search(r"^Elapsed time: (\S+)$", text, re.M)
    total = (jobs["end"].max() - jobs["start"].min()).total_seconds() if len(jobs) else None
    return {"snakemake_log": log_path.name, "command": command.group(1) if command else None,
            "jobs": len(jobs), "wall_seconds": round(total) if total is not None else None,
            "elapsed": elapsed.group(1) if elapsed else None, "stages": stage_times(jobs)}


# --- provenance ----------------------------------------------------------------------------------------------
def run_provenance(results_dir: Path) -> dict:
    """What the runs recorded: commits, machines, package versions, threads per job."""
    records = [read_json(p) for p in sorted(results_dir.glob("runs/*/*/seed*/provenance.json"))]
    records = [r for r in records if r]
    if not records:
        return {"runs": 0}

    def distinct(get):
        values = []
        for record in records:
            value = get(record)
            if value not in values:
                values.append(value)
        return values

    hardware = distinct(lambda r: {k: v for k, v in (r.get("hardware") or {}).items() if k != "torch_threads"})
    return {"runs": len(records), "git_commits": distinct(lambda r: r.get("git_commit")),
            "git_dirty": any(r.get("git_dirty") for r in records),
            "machines": hardware, "threads_per_job": distinct(lambda r: (r.get("config") or {}).get("threads")),
            "python": distinct(lambda r: r.get("python")), "packages": distinct(lambda r: r.get("packages"))}


def provenance(results_dir: Path, log_path: Path | None) -> dict:
    from training.files import cpu_model, git_state  # the commit of this code, wherever the command runs

    return {"profile": results_dir.name, "results": str(results_dir),
            "trained": run_provenance(results_dir), "timing": run_timing(log_path),
            "published": {**git_state(), "date": datetime.now().isoformat(timespec="seconds"),
                          "cpu_model": cpu_model(), "cpu_count": os.cpu_count()}}


# --- the published folder --------------------------------------------------------------------------------------
def _select(analysed: Path, out: Path) -> None:
    for path in sorted((analysed / "tables").glob("*")):
        if path.suffix in (".md", ".csv") and path.name not in SKIP_TABLES:
            shutil.copy2(path, out / "tables" / path.name)
    for path in sorted((analysed / "plots").glob("*.png")):
        if not path.name.startswith(SKIP_PLOTS):
            shutil.copy2(path, out / "plots" / path.name)
    for name in ("replication.md", "replication.json"):
        shutil.copy2(analysed / name, out / name)


def profile_settings(results_dir: Path) -> VerdictSettings:
    """The verdict settings the profile's own aggregate job used (replication.json records them)."""
    recorded = read_json(results_dir / "replication.json")
    if recorded is None:
        raise SystemExit(f"{results_dir}: no replication.json — the run has not finished its aggregate job; "
                         f"finish it with `snakemake --cores all` (and its --configfile) first")
    return VerdictSettings.from_dict(recorded.get("settings") or {})


def _analyse(results_dir: Path, out: Path, spectra: bool, paper_model: str | None, reuse: bool) -> Path:
    """The analysed folder of a run: the analysis run again here, or (reuse) the run's own aggregate
    outputs, when the DAG has just written them with this code."""
    if reuse:
        if not (results_dir / "tables" / "headline.md").is_file():
            raise SystemExit(f"{results_dir}: its tables were aggregated by older code (no tables/headline.md); "
                             f"publish without --reuse-analysis to analyse it again")
        return results_dir
    run_analysis(results_dir, out, spectra=spectra, settings=profile_settings(results_dir), paper_model=paper_model)
    return out


def publish(results_dir: str | Path, out_dir: str | Path | None = None, reruns: list[Path] = (),
            log_path: Path | None = None, spectra: bool = True, paper_model: str | None = None,
            reuse: bool = False, top_ups: list[Path] = ()) -> Path:
    results_dir = Path(results_dir)
    if not (results_dir / "runs").is_dir():
        raise SystemExit(f"{results_dir}: no runs/ folder — run `snakemake --cores all` for this profile first")
    out = Path(out_dir) if out_dir else PUBLISHED / results_dir.name
    log_path = log_path or find_run_log(results_dir)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        tmp = Path(tmp)
        staging = tmp / "folder"
        (staging / "tables").mkdir(parents=True)
        (staging / "plots").mkdir()
        analysed_main = _analyse(results_dir, tmp / "analysed", spectra, paper_model, reuse)
        _select(analysed_main, staging)
        info = provenance(results_dir, log_path)
        if top_ups:  # later invocations that completed the same results folder (e.g. after widening a grid)
            info["timing"]["top_ups"] = [run_timing(path) for path in top_ups]
        info["analysis"] = ("the run's own aggregate job" if reuse
                            else "run again at publishing, with the verdict settings the run recorded")
        if reruns:
            analysed = [analysed_main]
            for i, rerun in enumerate(reruns):
                analysed.append(_analyse(rerun, tmp / f"rerun{i}", spectra, paper_model, reuse))
            labels = [results_dir.name]
            for i, rerun in enumerate(reruns, start=1):  # column names: unique even for one folder twice
                labels.append(rerun.name if rerun.name not in labels else f"{rerun.name} (rerun {i})")
            info["reruns"] = [{"results": str(r), "trained": run_provenance(r), "timing": run_timing(find_run_log(r))}
                              for r in reruns]
            spread_mod.write_spread(analysed, labels, staging, [info["trained"], *(r["trained"] for r in info["reruns"])])
        write_json(staging / "provenance.json", info)
        out.parent.mkdir(parents=True, exist_ok=True)
        old = tmp / "old"
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
    write_index(out.parent)
    return out


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _provenance_line(info: dict) -> str:
    trained, timing = info.get("trained", {}), info.get("timing", {})
    machines = trained.get("machines") or [{}]
    machine = machines[0]
    commits = ", ".join((c or "?")[:7] for c in trained.get("git_commits", []))
    wall = timing.get("wall_seconds")
    wall_text = f"{_duration(wall)}, {timing.get('jobs')} jobs" if wall else "wall time unknown"
    for top_up in timing.get("top_ups", []):
        wall_text += f"; then {top_up.get('jobs')} jobs in {_duration(top_up.get('wall_seconds') or 0)} to complete it"
    cpu = machine.get("cpu_model") or info.get("published", {}).get("cpu_model", "?")
    return (f"trained at commit {commits} on {machine.get('cpu_count', '?')} × {cpu} "
            f"({machine.get('platform', '?')}), {'/'.join(map(str, trained.get('threads_per_job') or ['?']))} "
            f"torch thread(s) per job; "
            f"{wall_text}; published at {(info.get('published', {}).get('git_commit') or '?')[:7]}")


def write_index(published: Path) -> Path:
    """results/published/README.md: per profile, where it came from, the headline, and the spread."""
    parts = ["# Published results\n",
             "Results of finished runs, committed so they can be read without running anything. Each "
             "folder is one profile: `tables/headline.md` first (the verdicts and each task's best method), "
             "then `replication.md`, `tables/`, `plots/` and `provenance.json`. Regenerate one with "
             "`python -m analysis.publish results/<profile>` after `snakemake --cores all` for that profile; "
             "the notebook opens these unless `LORABENCH_RESULTS` points at another folder.\n"]
    for folder in sorted(p for p in published.iterdir() if (p / "provenance.json").is_file()):
        info = json.loads((folder / "provenance.json").read_text())
        parts.append(f"\n## `{folder.name}`\n\n{_provenance_line(info)}.\n")
        headline = folder / "tables" / "headline.md"
        if headline.is_file():
            body = headline.read_text().split("\n", 1)[1]          # drop its title
            parts.append(body.replace("\n## ", "\n### "))
        board = folder / "tables" / "leaderboard.md"
        tally = next((line for line in board.read_text().splitlines() if line.startswith("Better than LoRA:")),
                     None) if board.is_file() else None
        if tally:
            parts.append(f"\nEvery method against LoRA, with 95% CIs: [`{folder.name}/tables/leaderboard.md`]"
                         f"({folder.name}/tables/leaderboard.md). {tally}\n")
        if (folder / "spread.md").is_file():
            parts.append(f"\nHow much these numbers move on a rerun: [`{folder.name}/spread.md`]({folder.name}/spread.md).\n")
    return write_text(published / "README.md", "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a finished run: results/<profile>")
    parser.add_argument("--out", type=Path, help="default: results/published/<profile>")
    parser.add_argument("--rerun", type=Path, action="append", default=[],
                        help="another finished run of the same profile (other machine / threads): adds spread.md")
    parser.add_argument("--log", type=Path, help="the run's Snakemake log (default: the newest full run's in .snakemake/log)")
    parser.add_argument("--top-up", type=Path, action="append", default=[],
                        help="the Snakemake log of a later invocation that completed the same run (a widened lr "
                             "grid, say); recorded as timing.top_ups, the full run's timing stays --log's")
    parser.add_argument("--no-spectra", action="store_true", help="skip the measurements that load models")
    parser.add_argument("--paper-model", help="as `python -m analysis --paper-model` (a profile with base_model.name)")
    parser.add_argument("--reuse-analysis", action="store_true",
                        help="copy the runs' own tables, plots and verdicts (the DAG's aggregate job, this code) "
                             "instead of analysing them again")
    parser.add_argument("--rebuild", action="store_true",
                        help="RESULTS is a published folder: write its headline.md|csv and spread.md again from "
                             "its own committed tables (runs.csv, summary.csv, spread*.csv, replication.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.rebuild:
        from . import headline

        written = headline.rebuild(args.results)
        if (args.results / "spread.csv").is_file():
            written += spread_mod.rebuild(args.results)
        print("\n".join(map(str, written)))
        return 0
    out = publish(args.results, args.out, args.rerun, args.log, spectra=not args.no_spectra, paper_model=args.paper_model,
                  reuse=args.reuse_analysis, top_ups=args.top_up)
    print(f"published {args.results} → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
