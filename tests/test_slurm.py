"""The SLURM profile for real: `.test/config.yaml` through `--workflow-profile` on a one-node
SLURM cluster (.ci/slurm.sh: slurm-wlm, munge, slurmdbd + MariaDB), against the same profile run
locally; and a training job cancelled mid-training (scancel), retried, resuming from its checkpoint.

The profile is config/profiles/slurm/config.v8+.yaml, fitted to the test cluster when the test
runs (cluster_profile): its account and partitions, runtimes and memory the one node can give, one
thread per job (the node has few CPUs, and the test profile's jobs use one), and no GPU request
(`gpu`, `cpus_per_gpu`: the node has no GPU; SLURM would refuse `--gpus=1`). Every other key of
the profile is kept as it is: `retries: 1` is what retries the cancelled job.

Cluster: the one `.ci/run` started (its env file sourced: SLURM_CONF set), else one started here
with `.ci/slurm.sh start` (root: it runs the daemons and installs missing packages with apt) and
stopped at the end of the session. `pytest -m slurm` selects these tests.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SNAKEFILE = ROOT / "Snakefile"
SLURM_SH = ROOT / ".ci" / "slurm.sh"
PROFILE = ROOT / "config" / "profiles" / "slurm" / "config.v8+.yaml"
STATE = Path(os.environ.get("LORABENCH_SLURM_DIR", "/tmp/lorabench-slurm"))
GPU_KEYS = ("gpu", "gpu_model", "cpus_per_gpu", "gres")
RUNTIME_MIN, MEM_MB = 15, 1000            # per job: the test cluster's node is small
CANCELLED = ("sst2", "lora", "0")         # the training job cancelled mid-training (task, variant, seed)
# On top of .test/config.yaml, in both runs: its sst2 part only (every rule of the DAG and the lr
# sweep stay; a SLURM job costs ~20-40 s here, mostly the two Snakemake start-ups around each job,
# so the uuid task's six more jobs would double the test), and a checkpoint after every step, so
# that the cancelled job has one to resume from (the runs have 4 steps; checkpoints change no number).
OVERLAY = {"tasks": ["sst2"], "train": {"checkpoint_every": 1}}
# Columns that measure the machine (time, speed, memory), not the result: left out of the comparison.
MEASURED = ("wall_time", "wall time", "tokens_per_s", "memory")

pytestmark = pytest.mark.slurm


def _env(**extra):
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "LORABENCH_THREADS": "1", **extra}


def _read_env_file(path: Path) -> dict:
    """`export A=1 B=2` (the env file .ci/slurm.sh writes) as a dict."""
    pairs = path.read_text().split()
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def _answers(env: dict) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def cluster():
    """The test cluster's environment (SLURM_CONF, LORABENCH_SLURM_ACCOUNT/PARTITION)."""
    env_file = STATE / "env"
    if os.environ.get("SLURM_CONF") and os.environ.get("LORABENCH_SLURM_ACCOUNT") and _answers(_env()):
        yield _env()  # started by .ci/run (or by hand, env sourced)
        return
    if env_file.exists() and _answers(_env(**_read_env_file(env_file))):
        yield _env(**_read_env_file(env_file))  # running, env not sourced
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM test cluster is running and starting one needs root (.ci/slurm.sh start runs "
                    "munged, MariaDB, slurmdbd, slurmctld and slurmd as root); run `sudo .ci/slurm.sh start` "
                    f"and `. {env_file}`, then pytest -m slurm")
    started = time.perf_counter()
    result = subprocess.run(["bash", str(SLURM_SH), "start"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f".ci/slurm.sh start failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    print(f"\nSLURM test cluster started in {time.perf_counter() - started:.1f} s")
    try:
        yield _env(**_read_env_file(env_file))
    finally:
        subprocess.run(["bash", str(SLURM_SH), "stop"], capture_output=True, text=True, timeout=300)


def cluster_profile(folder: Path, account: str, partition: str) -> Path:
    """config/profiles/slurm fitted to the test cluster, written to `folder` (a workflow profile)."""
    profile = yaml.safe_load(PROFILE.read_text())

    def fit(resources: dict) -> dict:
        out = {key: value for key, value in resources.items() if key not in GPU_KEYS}
        if "slurm_account" in out:
            out["slurm_account"] = account
        if "slurm_partition" in out:
            out["slurm_partition"] = partition
        if "runtime" in out:
            out["runtime"] = min(out["runtime"], RUNTIME_MIN)
        if "mem_mb" in out:
            out["mem_mb"] = min(out["mem_mb"], MEM_MB)
        return out

    profile["default-resources"] = fit(profile["default-resources"])
    profile["set-resources"] = {rule: fit(resources) for rule, resources in profile["set-resources"].items()}
    profile["set-threads"] = dict.fromkeys(profile["set-threads"], 1)
    # the plugin's first status check 40 s after a submission (its default) is for busy clusters;
    # here a job takes seconds
    profile["slurm-init-seconds-before-status-checks"] = 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.v8+.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def _workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    shutil.copytree(ROOT / "config", path / "config")
    shutil.copytree(ROOT / ".test", path / ".test")
    (path / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY))
    return path


def _command(work: Path, profile: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(work), "--workflow-profile",
            str(profile), "--configfile", ".test/config.yaml", "overlay.yaml", *extra]


def _failed(result, what) -> str:
    return f"{what} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def profile(cluster, tmp_path_factory):
    return cluster_profile(tmp_path_factory.mktemp("profile"), cluster["LORABENCH_SLURM_ACCOUNT"],
                           cluster["LORABENCH_SLURM_PARTITION"])


@pytest.fixture(scope="module")
def local_run(profile, cluster, tmp_path_factory):
    """The same profile, run locally (`--executor local`, the jobs as the cluster runs them: one thread)."""
    work = _workdir(tmp_path_factory.mktemp("local") / "work")
    started = time.perf_counter()
    result = subprocess.run(_command(work, profile, "--executor", "local", "--cores", "2"), cwd=work,
                            env=cluster, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, _failed(result, "the local run")
    print(f"\nlocal run: {time.perf_counter() - started:.1f} s")
    return work


def _squeue(env) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of the cluster's jobs; the plugin's comment names the rule and wildcards."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=env, capture_output=True, text=True,
                         timeout=30).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") >= 2]


def _sacct(env, job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id], env=env, capture_output=True,
                         text=True, timeout=30).stdout
    return out.strip().split()[0] if out.strip() else ""


def cancel_mid_training(proc, env, run_dir: Path, comment: str, timeout=600) -> str:
    """Wait for the SLURM job whose comment is `comment` to write its first checkpoint, freeze its
    processes (SIGSTOP, so that the cancel lands mid-training however fast the run's last steps
    are), scancel it; its id. SLURM continues stopped tasks before it terminates them."""
    deadline = time.monotonic() + timeout
    job_id = None
    while job_id is None:
        assert proc.poll() is None, "snakemake ended before the training job ran"
        assert time.monotonic() < deadline, f"no SLURM job {comment} within {timeout} s"
        job_id = next((j for j, state, c in _squeue(env) if c == comment and state == "RUNNING"), None)
        time.sleep(0.2)
    checkpoints = run_dir / "checkpoints"
    while not (checkpoints.is_dir() and any(checkpoints.glob("step_*"))):
        assert not (run_dir / "train_summary.json").exists(), f"{run_dir} finished before a checkpoint was seen"
        assert time.monotonic() < deadline and proc.poll() is None, f"no checkpoint in {checkpoints}"
        time.sleep(0.005)
    pids = subprocess.run(["scontrol", "listpids", job_id], env=env, capture_output=True, text=True,
                          timeout=30).stdout.split()[1::5]  # columns PID JOBID STEPID LOCALID GLOBALID
    for pid in pids:
        if pid.isdigit():
            try:
                os.kill(int(pid), signal.SIGSTOP)
            except ProcessLookupError:
                pass
    assert not (run_dir / "train_summary.json").exists(), "the run finished before it could be cancelled"
    subprocess.run(["scancel", job_id], env=env, check=True, timeout=30)
    return job_id


@pytest.fixture(scope="module")
def slurm_run(profile, cluster, tmp_path_factory):
    """The test profile through the SLURM executor, its sst2/lora training job cancelled mid-training."""
    work = _workdir(tmp_path_factory.mktemp("slurm") / "work")
    task, variant, seed = CANCELLED
    run_dir = work / "results" / "test" / "runs" / task / variant / f"seed{seed}"
    started = time.perf_counter()
    with subprocess.Popen(_command(work, profile), cwd=work, env=cluster, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        try:
            cancelled = cancel_mid_training(proc, cluster, run_dir, f"rule_train_wildcards_{task}_{variant}_{seed}")
            output, _ = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=60)
    assert proc.returncode == 0, f"the SLURM run failed:\n{output[-6000:]}"
    print(f"\nSLURM run: {time.perf_counter() - started:.1f} s")
    return work, cancelled, output


def _tables(work: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted((work / "results" / "test" / "tables").glob("*.csv")):
        frame = pd.read_csv(path)
        tables[path.name] = frame.drop(columns=[c for c in frame.columns if any(m in c for m in MEASURED)])
    return tables


def test_slurm_run_has_the_local_runs_tables(local_run, slurm_run):
    work, _, output = slurm_run
    local, remote = _tables(local_run), _tables(work)
    assert set(local) == set(remote) and "runs.csv" in local and "summary.csv" in local
    for name, frame in local.items():
        pd.testing.assert_frame_equal(remote[name], frame, check_exact=True, obj=name)
    runs = remote["runs.csv"]
    assert (runs["status"] == "ok").all() and len(runs[runs["variant"] != "base"]) > 0
    for eval_json in sorted((local_run / "results" / "test" / "runs").glob("*/*/seed*/eval.json")):
        twin = work / eval_json.relative_to(local_run)
        assert json.loads(twin.read_text())["results"] == json.loads(eval_json.read_text())["results"], twin
    # the jobs ran as SLURM jobs
    assert "SLURM run ID" in output and "has been submitted with SLURM jobid" in output


def test_a_job_cancelled_mid_training_is_retried_and_resumes(local_run, slurm_run, cluster):
    work, cancelled, output = slurm_run
    task, variant, seed = CANCELLED
    assert _sacct(cluster, cancelled) == "CANCELLED", f"job {cancelled}: {_sacct(cluster, cancelled)}"
    run = Path("results") / "test" / "runs" / task / variant / f"seed{seed}"
    summary = json.loads((work / run / "train_summary.json").read_text())
    # resumed, not restarted: the retry started at the cancelled attempt's checkpoint
    assert summary["status"] == "ok" and summary["resumed_from_step"] is not None, summary
    assert 1 <= summary["resumed_from_step"] < summary["total_steps"] == summary["steps"]
    whole = json.loads((local_run / run / "train_summary.json").read_text())
    assert whole["resumed_from_step"] is None
    for key in ("final_loss", "trainable_params", "tokens_seen", "steps"):
        assert summary.get(key) == whole.get(key), key
    # the log's losses equal the uninterrupted run's, step for step
    losses = [(e["step"], e.get("loss")) for e in map(json.loads, (work / run / "train_log.jsonl").open())]
    assert losses == [(e["step"], e.get("loss")) for e in map(json.loads, (local_run / run / "train_log.jsonl").open())]
    assert json.loads((work / run / "eval.json").read_text())["results"] == \
        json.loads((local_run / run / "eval.json").read_text())["results"]
    # Snakemake saw the cancelled job fail and submitted the job again (retries: 1)
    assert f"SLURM-job '{cancelled}' failed" in output, output[-6000:]
    logs = sorted((work / ".snakemake" / "slurm_logs" / "rule_train" / f"{task}_{variant}_{seed}").glob("*.log"))
    assert [log.stem for log in logs] == [cancelled], logs  # the failed attempt's log is kept, the retry's removed
    assert f"JOB {cancelled} ON" in logs[0].read_text() and "CANCELLED" in logs[0].read_text()
