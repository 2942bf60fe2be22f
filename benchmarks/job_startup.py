"""Where a tiny-profile job's time goes, and what warm start (training/warm.py) leaves of it.

    python benchmarks/job_startup.py [--rounds 3] [--out benchmarks/results/job_startup_cpu.md]

One train job and one evaluate job of the test profile (.test/config.yaml: sst2, LoRA), exactly as
Snakemake runs them: the script Snakemake generated for the job (kept with --skip-script-cleanup),
started as a new Python process.
1. Cold, profiled: a sampler thread reads the job's main-thread stack every 2 ms and files each
   sample under the innermost phase it is in: imports (Python's import machinery, lazy imports
   included), model and tokenizer loads, lm-eval's task building, dataset builds, the training
   loop, lm-eval's evaluation (requests and metrics), writes (checkpoints, adapter, JSON), other.
   The interpreter's own start (before the first line of the script) is the process's wall time
   minus the sampled time.
2. Cold vs warm, unprofiled: the same job's process wall time, rounds alternating so that machine
   noise hits both; medians side by side. Warm: a warm server already running (the first job of a
   DAG pays its start: its imports, once).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "LORABENCH_WARM_IDLE_S": "60"}
PHASES = ["interpreter start", "imports", "model and tokenizer loads", "lm-eval task building", "dataset builds",
          "training loop", "evaluation", "writes", "other"]

# Runs inside the job's process: sample the main thread, then run the job's script as __main__.
SAMPLER = r"""
import json, runpy, sys, threading, time
script, out = sys.argv[1], sys.argv[2]
sys.argv = [script]
RULES = [  # (phase, match on a frame's file name or function name); the innermost match wins
    ("imports", lambda f, n: "importlib._bootstrap" in f),
    ("writes", lambda f, n: n in ("atomic_write_json", "atomic_write_text", "save_file", "save_pretrained", "_save_checkpoint", "save_adapter")),
    ("model and tokenizer loads", lambda f, n: n in ("load_tokenizer", "load_base_model", "load_for_eval", "from_pretrained", "merge_adapter")),
    ("lm-eval task building", lambda f, n: n in ("build_task_configs", "get_task_dict", "_get_task_and_group", "load_task_or_group", "initialize_tasks") or f.endswith("lm_eval/tasks/manager.py")),
    ("dataset builds", lambda f, n: "/datasets/" in f or f.endswith("training/data.py") or n in ("download_and_prepare", "build_dataset")),
    ("evaluation", lambda f, n: n in ("simple_evaluate", "evaluate", "evaluate_run")),
    ("training loop", lambda f, n: n in ("_train_step", "run") and f.endswith("training/trainer.py")),
]
counts = {}
main = threading.main_thread().ident
stop = False
def sample():
    while not stop:
        frame = sys._current_frames().get(main)
        phase = "other"
        while frame is not None:
            f, n = frame.f_code.co_filename, frame.f_code.co_name
            hit = next((p for p, rule in RULES if rule(f, n)), None)
            if hit:
                phase = hit
                break
            frame = frame.f_back
        counts[phase] = counts.get(phase, 0) + 1
        time.sleep(0.002)
t0 = time.perf_counter()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
stop = True
thread.join()
total = time.perf_counter() - t0
n = sum(counts.values()) or 1
json.dump({"sampled_s": total, "phases": {k: total * v / n for k, v in counts.items()}, "code": code}, open(out, "w"))
"""


def snakemake(work: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2",
           "--skip-script-cleanup", *args, "--configfile", ".test/config.yaml"]  # last: it takes what follows
    result = subprocess.run(cmd, cwd=work, env=ENV, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def job_scripts(work: Path, since: float) -> dict[str, Path]:
    """The scripts Snakemake generated after `since` for the sst2/lora train and evaluate jobs."""
    found = {}
    for path in sorted((work / ".snakemake" / "scripts").glob("*.py"), key=lambda p: p.stat().st_mtime):
        text = path.read_text(errors="replace")
        if path.stat().st_mtime < since or "sst2" not in text:
            continue
        if path.name.endswith("train_run.py") and "lora" in text:
            found["train"] = path
        elif path.name.endswith("evaluate_run.py") and "lora" in text:
            found["evaluate"] = path
    return found


def wall(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def profile(script: Path, work: Path) -> dict:
    out = work / "profile.json"
    total = wall([sys.executable, "-c", SAMPLER, str(script), str(out)], work)
    data = json.loads(out.read_text())
    phases = {p: data["phases"].get(p, 0.0) for p in PHASES}
    phases["interpreter start"] = max(0.0, total - data["sampled_s"])
    return {"total": total, "phases": phases}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables (Markdown) here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="job_startup_"))
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / ".test", work / ".test")
    target = "results/test/runs/sst2/lora/seed0/eval.json"
    start = time.time()
    snakemake(work, target, "--config", "warm_start=False")
    cold = job_scripts(work, start)
    start = time.time()
    snakemake(work, target, "--forcerun", "train", "evaluate")  # warm_start: the default (true)
    warm = job_scripts(work, start)
    lines = ["## Where a job's time goes (cold: a new Python process per job, as before warm start)", "",
             "| phase | train job (s) | evaluate job (s) |", "|---|---:|---:|"]
    profiles = {kind: profile(cold[kind], work) for kind in ("train", "evaluate")}
    for phase in PHASES:
        lines.append(f"| {phase} | {profiles['train']['phases'][phase]:.2f} | {profiles['evaluate']['phases'][phase]:.2f} |")
    lines.append(f"| **total (process wall)** | **{profiles['train']['total']:.2f}** | "
                 f"**{profiles['evaluate']['total']:.2f}** |")
    wall(["python3", "-c", "pass"], work)
    for kind in ("train", "evaluate"):  # start the warm server (once), outside the timing
        wall([sys.executable, str(warm[kind])], work)
    times = {(kind, mode): [] for kind in ("train", "evaluate") for mode in ("cold", "warm")}
    for _ in range(args.rounds):
        for kind in ("train", "evaluate"):
            times[(kind, "cold")].append(wall([sys.executable, str(cold[kind])], work))
            times[(kind, "warm")].append(wall([sys.executable, str(warm[kind])], work))
    lines += ["", f"## Cold vs warm start, process wall time (median of {args.rounds} alternating rounds)", "",
              "| job | cold (s) | warm (s) | warm / cold |", "|---|---:|---:|---:|"]
    for kind in ("train", "evaluate"):
        c, w = statistics.median(times[(kind, "cold")]), statistics.median(times[(kind, "warm")])
        lines.append(f"| {kind} (sst2, LoRA, test profile) | {c:.2f} | {w:.2f} | {w / c:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(f"# Job start-up (benchmarks/job_startup.py, {os.cpu_count()} CPUs)\n\n" + text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
