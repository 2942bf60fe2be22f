"""Warm start (training/warm.py): a job runs in a child of a process that imported the libraries once.

What a job must keep: its exit status, its streams, directory, environment and arguments, a kill
that ends it, a forwarded SIGTERM, a traceback on failure; where it may not be warm (GPU, SLURM,
switched off) it runs in its own process. And the DAG's outputs are the same numbers both ways.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workflow import make_workdir, snakemake

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from dag_time import numbers  # noqa: E402  (every number of a run; the DAG benchmark compares the same)

# A job script as Snakemake would run it, with a stand-in `snakemake` object.
JOB = """
import os, signal, sys, time
class Job:
    config = {"warm_start": os.environ.get("WARM_CONFIG", "1") == "1"}
    resources = {"gpu": int(os.environ.get("GPUS", "0"))}
from training import warm
warm.handoff(Job())
print("preloaded", "torch" in sys.modules, "pid", os.getpid(), "cwd", os.getcwd(), "argv", sys.argv[1:],
      "probe", os.environ.get("PROBE"), flush=True)
mode = os.environ.get("MODE", "exit")
if mode == "raise":
    raise ValueError("boom from the job")
if mode == "wait":
    signal.signal(signal.SIGTERM, lambda *_: (open("got_term", "w").close(), sys.exit(143)))
    open("pid.tmp", "w").write(str(os.getpid()))
    os.replace("pid.tmp", "pid")                     # whole, so the test never reads it half-written
    time.sleep(120)
sys.exit(int(os.environ.get("CODE", "0")))
"""


def job(tmp_path, wait=True, **env):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PROBE": "probe-value", "LORABENCH_WARM_IDLE_S": "30",
                "OMP_WAIT_POLICY": "PASSIVE", **env}
    process = subprocess.Popen([sys.executable, str(script), "arg1"], cwd=tmp_path, env=full_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return process
    out, err = process.communicate(timeout=300)
    return process.pid, process.returncode, out, err


def test_a_job_runs_warm_with_its_own_directory_environment_arguments_and_exit_status(tmp_path):
    pid, code, out, err = job(tmp_path, CODE="3")
    assert code == 3, err
    fields = out.split()
    assert fields[fields.index("preloaded") + 1] == "True"          # torch came with the process
    assert int(fields[fields.index("pid") + 1]) != pid              # a child of the warm server ran it
    assert fields[fields.index("cwd") + 1] == str(tmp_path)
    assert "['arg1']" in out and "probe-value" in out
    pid2, code2, out2, _ = job(tmp_path)                            # the same server serves the next job
    assert code2 == 0 and "preloaded True" in out2


@pytest.mark.parametrize("env", [{"LORABENCH_WARM": "0"}, {"GPUS": "1"}, {"WARM_CONFIG": "0"},
                                 {"SLURM_JOB_ID": "7"}], ids=["switched-off", "gpu-job", "config-off", "slurm"])
def test_where_it_may_not_be_warm_the_job_runs_in_its_own_process(tmp_path, env):
    pid, code, out, err = job(tmp_path, **env)
    assert code == 0, err
    assert f"preloaded False pid {pid} " in out


def test_a_failing_job_fails_with_its_traceback(tmp_path):
    _, code, _, err = job(tmp_path, MODE="raise")
    assert code == 1
    assert "ValueError: boom from the job" in err and "Traceback" in err


def wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_sigterm_reaches_the_job_and_a_killed_job_process_takes_its_child_along(tmp_path):
    process = job(tmp_path, wait=False, MODE="wait")
    assert wait_for(lambda: (tmp_path / "pid").exists()), process.communicate()
    child = int((tmp_path / "pid").read_text())
    assert child != process.pid
    process.send_signal(signal.SIGTERM)                     # Snakemake stopping a job
    assert process.wait(timeout=60) == 143 and (tmp_path / "got_term").exists()
    (tmp_path / "pid").unlink()
    process = job(tmp_path, wait=False, MODE="wait")
    assert wait_for(lambda: (tmp_path / "pid").exists())
    child = int((tmp_path / "pid").read_text())
    process.kill()                                          # SIGKILL: no signal can be forwarded
    process.wait(timeout=60)
    assert wait_for(lambda: not alive(child), timeout=30), "the warm child outlived its killed job"


def test_the_test_profile_gives_the_same_numbers_warm_and_cold(finished_run, tmp_path):
    """The speed-up changes no number: .test/config.yaml run with warm start (the session's run, the
    default) and without it."""
    warm_work, _ = finished_run
    work, env = make_workdir(tmp_path)
    snakemake(work, "--cores", "2", "--configfile", ".test/config.yaml", "--config", "warm_start=False",
              env_extra=env)
    warm, cold = numbers(warm_work / "results" / "test"), numbers(work / "results" / "test")
    assert len(warm) > 10 and warm.keys() == cold.keys()
    for key in warm:
        assert warm[key] == cold[key], key
