"""A profile's DAG from scratch, timed per stage: warm start on, off, or both; and the same numbers.

    python benchmarks/dag_time.py [--profile config/config.yaml] [--modes warm cold] [--cores 2]
                                  [--out benchmarks/results/dag_time_cpu.md]

Each mode runs the whole DAG in its own empty working directory (a copy of config/ and .test/), then
a second, no-op `snakemake` there (nothing to do: its wall time is the planning alone). Per stage:
jobs, the sum of the jobs' wall times and the stage's span, read from Snakemake's log (the same
parser as `analysis.publish`), and the work inside them as the jobs themselves timed it (training
loops: `train_time_s` of each train_summary.json; scoring: `eval_seconds` of each eval json): job-s
minus work-s is what start-up, loading and writing still cost. The floor below which this DAG
cannot go on these cores without less work: the serial stages' spans plus the parallel stages'
work divided by the cores. With two modes, every number both runs produced (metrics, losses,
tables; speeds and memory left out) is compared: the speed-up must change none.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from analysis.publish import parse_snakemake_log, stage_times  # noqa: E402

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}
MEASURED = ("time", "per_s", "memory", "peak")  # how fast, not what: differs between any two runs


def measured(key: str) -> bool:
    return any(word in key for word in MEASURED)


def numbers(results: Path) -> dict:
    """Every number a run produces: metrics, losses, the tables' values (speeds and memory left out)."""
    import pandas as pd

    out = {}
    for path in sorted(results.glob("runs/*/*/seed*/eval*.json")) + sorted(results.glob("base_eval/*/eval.json")):
        out[str(path.relative_to(results))] = json.loads(path.read_text()).get("results")
    for path in sorted(results.glob("runs/*/*/seed*/train_summary.json")):
        summary = json.loads(path.read_text())
        out[str(path.relative_to(results))] = {k: v for k, v in summary.items() if not measured(k)}
    for path in sorted(results.glob("runs/*/*/seed*/train_log.jsonl")):
        out[str(path.relative_to(results))] = [{k: v for k, v in json.loads(line).items() if not measured(k)}
                                              for line in path.read_text().splitlines() if line.strip()]
    runs = pd.read_csv(results / "tables" / "runs.csv")
    runs = runs[~runs["metric"].astype(str).map(measured)] if "metric" in runs.columns else runs
    out["runs.csv"] = runs[[c for c in runs.columns if not measured(c)]].astype(object).fillna("NaN").to_dict("records")
    return out


def run(profile: str, mode: str, cores: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"dag_{mode}_"))
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / ".test", work / ".test")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(cores),
           "--config", f"warm_start={mode == 'warm'}", "--configfile", profile]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, env=ENV, capture_output=True, text=True)
    total = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{mode}: snakemake failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    start = time.perf_counter()
    again = subprocess.run(cmd, cwd=work, env=ENV, capture_output=True, text=True)
    noop = time.perf_counter() - start
    if again.returncode or "Nothing to be done" not in again.stdout + again.stderr:
        raise SystemExit(f"{mode}: the second run was not a no-op\n{again.stdout[-3000:]}")
    log = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))[0]  # the first: the full run
    jobs = parse_snakemake_log(log.read_text())
    results = next(p for p in (work / "results").iterdir() if (p / "tables" / "runs.csv").exists())
    return {"work": work, "wall": total, "noop": noop, "jobs": len(jobs), "stages": stage_times(jobs),
            "work_s": work_seconds(results), "numbers": numbers(results)}


def work_seconds(results: Path) -> dict:
    """Per stage, the seconds the jobs spent on their work, as they timed it themselves."""
    def total(pattern, get):
        return sum(get(json.loads(p.read_text())) or 0 for p in results.glob(pattern))
    return {"base_model": total("base_model/train_summary.json", lambda d: d.get("train_time_s")),
            "train": total("runs/*/*/seed*/train_summary.json", lambda d: d.get("train_time_s")),
            "evaluate": total("runs/*/*/seed*/eval*.json", lambda d: d.get("lorabench", {}).get("eval_seconds"))
            + total("base_eval/*/eval.json", lambda d: d.get("lorabench", {}).get("eval_seconds"))}


def floor(run: dict, cores: int) -> float:
    """Serial stages' spans + the parallel stages' (train, evaluate) own work over the cores."""
    parallel = ("train", "evaluate")
    serial = sum(s["span_seconds"] for s in run["stages"] if s["stage"] not in parallel)
    return serial + sum(run["work_s"].get(stage, 0) for stage in parallel) / cores


def minutes(seconds: float) -> str:
    return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def table(runs: dict, cores: int) -> str:
    modes = list(runs)
    stages = list(dict.fromkeys(s["stage"] for r in runs.values() for s in r["stages"]))
    head = "| stage | " + " | ".join(f"{m}: jobs | {m}: job-s | {m}: work-s | {m}: span s" for m in modes) + " |"
    lines = [head, "|---|" + "---:|" * (4 * len(modes))]
    for stage in stages:
        cells = []
        for m in modes:
            s = next((x for x in runs[m]["stages"] if x["stage"] == stage), None)
            work = runs[m]["work_s"].get(stage)
            cells += ([str(s["jobs"]), str(s["job_seconds"]), "–" if work is None else f"{work:.0f}",
                       str(s["span_seconds"])] if s else ["–"] * 4)
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **whole DAG (wall)** | " + " | ".join(
        f"{r['jobs']} | | | **{minutes(r['wall'])}**" for r in runs.values()) + " |")
    lines.append(f"| floor: serial spans + train/evaluate work ÷ {cores} cores | " + " | ".join(
        f" | | | {minutes(floor(r, cores))}" for r in runs.values()) + " |")
    lines.append("| no-op rerun (wall) | " + " | ".join(f" | | | {r['noop']:.1f} s" for r in runs.values()) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="config/config.yaml")
    parser.add_argument("--modes", nargs="+", choices=["warm", "cold"], default=["warm", "cold"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the working directories")
    args = parser.parse_args(argv)
    runs = {mode: run(args.profile, mode, args.cores) for mode in args.modes}
    text = f"{args.profile}, --cores {args.cores}, {os.cpu_count()} CPUs\n\n{table(runs, args.cores)}\n"
    if len(runs) == 2:
        first, second = (r["numbers"] for r in runs.values())
        differing = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
        text += (f"\nNumbers compared: {len(first)} files/tables; differing between the modes: "
                 f"{len(differing)}{' (' + ', '.join(differing[:10]) + ')' if differing else ''}\n")
    print(text)
    if args.out:
        args.out.write_text(f"# The DAG's time per stage (benchmarks/dag_time.py)\n\n{text}")
    for r in runs.values():
        if not args.keep:
            shutil.rmtree(r["work"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
