"""One GPU per job: a job claims free GPUs before CUDA initialises and sees only those.

Snakemake's `gpu` resource only counts: it keeps at most N GPU jobs running, but assigns no
device, and every job's `torch.device("cuda")` is GPU 0. So each GPU job calls

    from training import devices
    devices.claim_for_job(n)        # n = the job's `gpu` resource; 0 (a CPU job): nothing happens

at the very top of its script. It takes an exclusive `fcntl.flock` on one lock file per device
(non-blocking, device after device: a job never waits while a GPU is free; only when all are taken
does it poll until one frees), keeps the file open for the life of the process (the kernel drops
the lock when the process ends, however it ends, SIGKILL included) and sets CUDA_VISIBLE_DEVICES to
the claimed devices, so the job's `cuda` is its own GPU.

The pool: the entries of an existing CUDA_VISIBLE_DEVICES (indices or UUIDs), else every GPU that
`nvidia-smi` lists (by UUID, which does not depend on CUDA's device order), else - only when the
machine has no NVIDIA driver at all - LORABENCH_GPU_COUNT stand-in devices (tests on CPU). Locks
live in LORABENCH_GPU_LOCK_DIR (default: <tmp>/lorabench-gpu-locks), one file per physical device
(its UUID), so several Snakemake runs, and manual runs started through

    python -m training.devices --gpus 4 -- accelerate launch --multi_gpu --num_processes 4 -m training ...

share one pool. A multi-GPU run claims all its devices at once or none (no half-held sets).
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STANDIN_COUNT = "LORABENCH_GPU_COUNT"    # stand-in devices where no NVIDIA driver exists (tests)
LOCK_DIR = "LORABENCH_GPU_LOCK_DIR"
POLL_S = "LORABENCH_GPU_POLL_S"          # seconds between tries while every GPU is taken
CLAIMED = "LORABENCH_GPUS"               # JSON: the devices this process claimed (provenance)


@dataclass(frozen=True)
class Device:
    entry: str                 # what CUDA_VISIBLE_DEVICES gets for it: an index or a UUID
    key: str                   # its lock file's name: the UUID when known
    index: int | None = None   # nvidia-smi's (PCI bus order) index
    uuid: str | None = None
    name: str | None = None
    memory_mb: int | None = None
    standin: bool = False


def _nvidia_smi() -> list[dict] | None:
    """Every GPU of the machine as nvidia-smi lists it; None without a driver."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    gpus = []
    for line in out.stdout.strip().splitlines():
        index, uuid, name, memory = [part.strip() for part in line.split(",", 3)]
        gpus.append({"index": int(index), "uuid": uuid, "name": name,
                     "memory_mb": int(memory) if memory.isdigit() else None})
    return gpus


def _nvml_count() -> int | None:
    """The driver's GPU count through NVML (no CUDA context); None without a driver."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    count = ctypes.c_uint()
    if nvml.nvmlInit_v2() != 0 or nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
        return None
    nvml.nvmlShutdown()
    return count.value


def visible(env: dict | None = None, standin_count: int | None = None) -> list[Device]:
    """The pool a job claims from: the GPUs this process may use, in order."""
    env = os.environ if env is None else env
    gpus = _nvidia_smi()
    if gpus is None and (count := _nvml_count()) is not None:
        gpus = [{"index": i, "uuid": None, "name": None, "memory_mb": None} for i in range(count)]
    standin = gpus is None
    if standin:  # no driver: stand-ins, for tests
        count = standin_count if standin_count is not None else int(env.get(STANDIN_COUNT) or 0)
        gpus = [{"index": i, "uuid": None, "name": f"stand-in GPU {i}", "memory_mb": None} for i in range(count)]
    by_index = {g["index"]: g for g in gpus}
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        entries = [g["uuid"] or str(g["index"]) for g in gpus]
    else:
        entries = [e.strip() for e in listed.split(",") if e.strip()]
        if "-1" in entries:  # CUDA stops at the first invalid entry
            entries = entries[:entries.index("-1")]
    pool = []
    for entry in entries:
        found = by_index.get(int(entry)) if entry.isdigit() else next(
            (g for g in gpus if g["uuid"] and g["uuid"].startswith(entry)), None)
        if found is None and not entry.startswith("MIG-"):
            continue  # not a device of this machine: CUDA ignores it too
        found = found or {"index": None, "uuid": entry, "name": None, "memory_mb": None}
        key = found["uuid"] or (f"standin{found['index']}" if standin else f"gpu{found['index']}")
        pool.append(Device(entry=entry, key=key, standin=standin, **found))
    return pool


def lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR) or Path(tempfile.gettempdir()) / "lorabench-gpu-locks")
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        try:
            path.chmod(0o1777)  # every user's jobs share the machine's GPUs
        except OSError:
            pass
    return path


def _try_lock(device: Device) -> int | None:
    """An open fd holding `device`'s lock, or None when another process holds it."""
    path = lock_dir() / f"{device.key}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file: flock works on a read-only fd too
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _holder(device: Device) -> str:
    try:
        return (lock_dir() / f"{device.key}.lock").read_text().strip() or "?"
    except OSError:
        return "?"


_HELD: list[int] = []  # open for the life of the process: closing one would drop its lock


@dataclass
class Claim:
    devices: list[Device]
    waited_s: float

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(d.entry for d in self.devices)


def acquire(n: int = 1, *, pool: list[Device] | None = None, timeout_s: float | None = None,
            poll_s: float | None = None, label: str = "", log=None, set_env: bool = True) -> Claim:
    """Claim `n` devices of the pool (all at once or none); wait only while fewer than n are free.
    Sets CUDA_VISIBLE_DEVICES to them (set_env). Raises if the pool has fewer than n devices, if
    CUDA is already initialised in this process, or after timeout_s of waiting."""
    pool = visible() if pool is None else pool
    if n > len(pool):
        listed = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(f"this job needs {n} GPU(s) and {len(pool)} are visible"
                           + (f" (CUDA_VISIBLE_DEVICES={listed})" if listed is not None else "")
                           + "; lower gpus_per_job / --gpus or run it where more GPUs are visible")
    if set_env and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        raise RuntimeError("devices.acquire: CUDA is already initialised in this process; claim the GPU "
                           "before anything touches torch.cuda (at the top of the job's script)")
    poll_s = float(os.environ.get(POLL_S, 5)) if poll_s is None else poll_s
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    start, told = time.monotonic(), False
    while True:
        held = []
        for device in pool:
            fd = _try_lock(device)
            if fd is not None:
                held.append((device, fd))
                if len(held) == n:
                    break
        if len(held) == n:
            break
        for _, fd in held:  # all or none: a half-held set could starve another multi-GPU job
            os.close(fd)
        waited = time.monotonic() - start
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"no {n} free GPU(s) of {len(pool)} after {waited:.0f} s")
        if not told:
            holders = "; ".join(f"{d.key}: {_holder(d)}" for d in pool)
            log(f"all {len(pool)} GPU(s) busy (need {n}); waiting for one to free ({holders})")
            told = True
        time.sleep(poll_s)
    info = json.dumps({"pid": os.getpid(), "job": label, "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for _, fd in held:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        except OSError:
            pass  # a read-only lock file (another user's): the lock holds all the same
    _HELD.extend(fd for _, fd in held)
    claim = Claim([d for d, _ in held], round(time.monotonic() - start, 3))
    if set_env:
        os.environ["CUDA_VISIBLE_DEVICES"] = claim.cuda_visible_devices
        if any(d.entry.isdigit() for d in claim.devices):
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices as nvidia-smi counts them
        os.environ[CLAIMED] = json.dumps([asdict(d) for d in claim.devices])
    return claim


def claim_for_job(n, label: str = "") -> Claim | None:
    """A job's claim: its `gpu` resource's worth of devices (0 / None: a CPU job, nothing)."""
    n = int(n or 0)
    if n <= 0:
        return None
    claim = acquire(n, label=label)
    print(f"{label or 'job'}: GPU(s) {claim.cuda_visible_devices} (CUDA_VISIBLE_DEVICES)"
          + (f" after waiting {claim.waited_s:.0f} s" if claim.waited_s >= 1 else ""), file=sys.stderr, flush=True)
    return claim


def count(env: dict | None = None) -> int:
    """How many GPUs a job could claim here (the local pool's size)."""
    return len(visible(env))


def claimed() -> list[dict]:
    """The devices this process claimed (as acquire recorded them), else []."""
    return json.loads(os.environ.get(CLAIMED) or "[]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.devices",
        description="Claim free GPUs from the suite's pool, then run COMMAND on them (CUDA_VISIBLE_DEVICES set); "
                    "the GPUs stay claimed until COMMAND ends. Without COMMAND: list the pool and its holders.")
    parser.add_argument("--gpus", type=int, default=1, help="how many GPUs (a multi-GPU run: its process count)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds of waiting")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        for d in visible():
            fd = _try_lock(d)
            if fd is not None:
                os.close(fd)
            print(f"{d.entry}\t{d.name or ''}\t{'free' if fd is not None else _holder(d)}")
        return 0
    claim = acquire(args.gpus, timeout_s=args.timeout, label=" ".join(command)[:200])
    print(f"CUDA_VISIBLE_DEVICES={claim.cuda_visible_devices}", file=sys.stderr, flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
