"""training/devices.py: one GPU per job, claimed through lock files, on CPU with stand-in devices.

No NVIDIA driver here, so the pool is LORABENCH_GPU_COUNT stand-ins (the code path that reads
nvidia-smi / CUDA_VISIBLE_DEVICES is the same past the device list). Each holder is its own
process: it claims, prints its CUDA_VISIBLE_DEVICES and how long it waited, and holds until its
stdin closes or it is killed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training import devices

ROOT = Path(__file__).resolve().parent.parent
HOLD = """
import json, os, sys
from training import devices
try:
    claim = devices.acquire(int(sys.argv[1]), timeout_s=float(sys.argv[2]), poll_s=0.05, label="test")
except (TimeoutError, RuntimeError) as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}), flush=True)
    sys.exit(3)
print(json.dumps({"cvd": os.environ["CUDA_VISIBLE_DEVICES"], "waited": claim.waited_s}), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def pool_env(tmp_path, monkeypatch):
    def make(count: int, visible: str | None = None) -> dict:
        env = {**os.environ, devices.STANDIN_COUNT: str(count), devices.LOCK_DIR: str(tmp_path / "locks"),
               "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}   # no nvidia-smi: the stand-ins
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        return env
    return make


class Holder:
    def __init__(self, env: dict, n: int = 1, timeout_s: float = 20):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(n), str(timeout_s)], env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return json.loads(line)

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(10)

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def test_concurrent_jobs_get_distinct_devices(pool_env):
    env = pool_env(3)
    holders = [Holder(env) for _ in range(3)]
    try:
        got = [h.result() for h in holders]
        assert sorted(g["cvd"] for g in got) == ["0", "1", "2"]
        assert all(g["waited"] < 1 for g in got), got   # never waited while a device was free
    finally:
        for h in holders:
            h.release()


def test_waits_only_when_all_are_busy_and_a_sigkilled_holder_frees_its_device(pool_env):
    env = pool_env(2)
    first, second = Holder(env), Holder(env)
    try:
        first_cvd, second_cvd = first.result()["cvd"], second.result()["cvd"]
        assert {first_cvd, second_cvd} == {"0", "1"}
        third = Holder(env)                    # every device taken: it waits ...
        time.sleep(1.0)
        assert third.proc.poll() is None
        first.kill()                           # ... until a holder dies, however it dies (SIGKILL)
        got = third.result()
        assert got["cvd"] == first_cvd and got["waited"] >= 0.5
        assert "busy" in third.proc.stderr.readline()
        third.release()
    finally:
        second.release()


def test_cuda_visible_devices_is_the_pool(pool_env):
    env = pool_env(4, visible="1,3")
    a, b = Holder(env), Holder(env)
    try:
        assert sorted([a.result()["cvd"], b.result()["cvd"]]) == ["1", "3"]
        late = Holder(env, timeout_s=0.5)   # the pool is two devices, though four exist
        assert late.result()["error"] == "TimeoutError"
    finally:
        a.release(), b.release()
    too_many = Holder(pool_env(4, visible="0,1"), n=3)
    assert too_many.result()["error"] == "RuntimeError"   # more than the pool: refused at once
    assert devices.visible(env={"CUDA_VISIBLE_DEVICES": ""}, standin_count=4) == []


def test_multi_gpu_claims_all_or_nothing(pool_env):
    env = pool_env(3)
    one = Holder(env)
    try:
        assert one.result()["cvd"] == "0"
        pair = Holder(env, n=2)
        assert pair.result()["cvd"] == "1,2"
        blocked = Holder(env, n=2, timeout_s=0.5)   # one device free, two needed: none held, then gives up
        assert blocked.result()["error"] == "TimeoutError"
        single = Holder(env)                        # the free one was not hoarded by the waiting pair
        one.release()
        pair.release()
        assert single.result()["cvd"] in {"0", "1", "2"}
        single.release()
    finally:
        if one.proc.poll() is None:
            one.release()


def test_cpu_job_claims_nothing(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.claim_for_job(0) is None and devices.claim_for_job(None) is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_wrapper_cli_runs_the_command_on_its_devices(pool_env):
    env = pool_env(2)
    out = subprocess.run([sys.executable, "-m", "training.devices", "--gpus", "2", "--",
                          sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "0,1", out.stderr


@pytest.mark.gpu
def test_a_real_gpu_job_sees_only_its_device(tmp_path):
    """On a GPU machine (benchmarks/gpu_check.sh): the claimed device is the job's only one, and
    provenance records it (name, UUID, memory) as nvidia-smi and torch see it."""
    env = {**os.environ, devices.LOCK_DIR: str(tmp_path), "PYTHONPATH": str(ROOT)}
    code = ("from training import devices; c = devices.acquire(1); import json, torch; "
            "from training.files import hardware; h = hardware(); "
            "print(json.dumps({'count': torch.cuda.device_count(), 'gpus': h['gpus'], 'claimed': devices.claimed()}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["count"] == 1 and got["gpus"][0]["name"] and got["gpus"][0]["memory_gb"] > 0
    if got["claimed"][0]["uuid"]:
        assert got["gpus"][0]["uuid"] == got["claimed"][0]["uuid"]
