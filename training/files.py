"""The run's files: atomic writes, provenance, memory readings.

Every file a later stage reads is written to a temporary name and renamed into place, so a
killed job never leaves a half file that Snakemake would take as done.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import torch

from adapters._io import as_umask_allows

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lorabench", "torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors",
            "datasets", "numpy", "lm-eval")


def own_base_model(run_dir: str | Path) -> Path:
    """Where a run from `model_init: random` keeps the random base its adapter was trained on."""
    return Path(run_dir) / "base_model"


def own_base_model_if_any(run_dir: str | Path) -> Path | None:
    """That base when the run saved one (complete: config.json is written last), else None."""
    path = own_base_model(run_dir)
    return path if (path / "config.json").is_file() else None


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        as_umask_allows(tmp)  # mkstemp's 0600 would hide a shared results folder from colleagues
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


class RunDirBusy(BlockingIOError):
    """Another process is training into the same output directory."""


@contextmanager
def run_lock(out_dir: str | Path):
    """Hold <out_dir>/.lock while a run writes there: a second run into the same directory stops at
    once (RunDirBusy) instead of interleaving checkpoints and logs. The kernel drops the lock when
    its process ends, however it ends, so a killed run leaves no stale lock; a run that ends removes
    the file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunDirBusy(errno.EWOULDBLOCK, f"{out} is in use by a run that is still going ({holder}); "
                                                "wait for it to end, or give this run another --out") from None
        if path.exists() and path.stat().st_ino == os.fstat(f.fileno()).st_ino:
            break
        f.close()  # the run that held it has just ended and removed it: lock the new file
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {platform.node()}\n")
        f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        f.close()  # closing releases the lock


@contextmanager
def scratch_dir(path: str | Path):
    """A working directory at a fixed `path`, emptied first and removed after: what a killed job
    left there is cleared by the next run instead of piling up as tmpXXXX folders."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def save_model_files(model, tokenizer, directory: str | Path) -> None:
    """save_pretrained (model + tokenizer) into `directory`, beside other files; config.json lands last.

    Each file is written in a temp directory and renamed in; config.json, which marks a complete
    model (for Snakemake and for from_pretrained), is renamed only after all the weights.
    """
    directory = Path(directory)
    tmp = Path(tempfile.mkdtemp(prefix=".model.tmp-", dir=directory))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for path in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):
            os.replace(path, directory / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_log(path: str | Path) -> list[dict]:
    """The complete lines of a train_log.jsonl (a killed run may have left half a line)."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return entries


def _git(*args: str) -> str | None:
    try:
        # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh (write) the index of the checkout.
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_model": cpu_model(),
            "hostname": platform.node(), "cpu_count": os.cpu_count(),
            # the vector instruction set torch's kernels run with (results differ in the last bits
            # between AVX2 and AVX-512 machines), and any limit set on it through the environment
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
            "torch_threads": torch.get_num_threads(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "cuda_devices": []}
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
        info["gpus"] = gpu_devices()
    return info


def gpu_devices() -> list[dict[str, Any]]:
    """The physical GPUs this process runs on: torch's view (name, UUID, memory) of each visible
    device, with the index nvidia-smi gives it, from the claim training/devices.py made."""
    from . import devices

    claimed = {d["uuid"]: d for d in devices.claimed() if d.get("uuid")}
    by_entry = [d for d in devices.claimed()]
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        uuid = str(getattr(props, "uuid", "") or "")
        uuid = uuid if not uuid or uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        known = claimed.get(uuid) or (by_entry[i] if i < len(by_entry) else {})
        gpus.append({"cuda_index": i, "index": known.get("index"), "uuid": uuid or known.get("uuid"),
                     "name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                     "claimed": bool(known), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
    return gpus


def git_state() -> dict[str, Any]:
    """This checkout's commit and whether tracked files differ from it (None outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def provenance(config: dict, config_hash: str, seed: int) -> dict[str, Any]:
    return {"config_hash": config_hash, "config": config, "seed": seed, **git_state(),
            "python": sys.version.split()[0], "packages": package_versions(), "hardware": hardware(),
            "command": sys.argv}


def memory_mb(device: torch.device) -> float:
    """Memory in use now: CUDA allocated on a GPU, the process's resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return psutil.Process().memory_info().rss / 2**20


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "peak_rss"  # Linux: KiB
