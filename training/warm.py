"""Warm start for the DAG's short CPU jobs: the imports paid once, not once per job.

A tiny-profile job spends most of its life importing torch, transformers and lm-eval (about 6 s of
a 9 s evaluation; benchmarks/job_startup.py measures it). Snakemake starts every job as a new
Python process, so a 132-job DAG pays that start-up 130 times. Here the first job starts a *warm
server*: a process that imports the third-party libraries once (nothing of this project) and then,
for each job, forks a child that runs the job's script with the job's own working directory,
environment, `sys.path`, arguments and standard streams. The job's own process only relays: it
hands its stdin/stdout/stderr to the child, forwards SIGINT/SIGTERM/SIGHUP to it, and exits with
the child's exit status. To Snakemake nothing changed: one process per job, its outputs, its exit
code, its log.

    sm = snakemake
    from training import warm
    warm.handoff(sm)   # returns only where the job must run in this process (then it runs as before)

Why the numbers cannot change: the child executes the same script file with the same inputs; the
project's modules are imported fresh in every child (the server never imports them, so an edited
file is always the one that runs); only third-party modules arrive already imported. Seeds are set
by the jobs, as before. tests/test_warm.py runs the test profile both ways and compares every
output number.

When it is not used (the job runs in its own process, as without this module): a GPU job (its
device is claimed before CUDA starts, in its own process: training/devices.py), a job inside a
SLURM allocation, `warm_start: false` in the profile, `LORABENCH_WARM=0` in the environment, or
when the server cannot start. A server serves one Python executable and one environment (the
socket's name hashes both, with the site-packages' modification time, so a `pip install` gets a
new server) and exits after `IDLE_S` seconds without a job. If the job's process is killed
(SIGKILL), its child notices the closed connection and ends at once; its exit status never
reaches Snakemake, which has already failed the job.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV_SWITCH = "LORABENCH_WARM"          # "0": never hand off
CHILD_FLAG = "LORABENCH_WARM_CHILD"    # set in a child: its script runs there, it does not hand off again
IDLE_S = float(os.environ.get("LORABENCH_WARM_IDLE_S", "90"))
START_TIMEOUT_S = 120.0
# What a job imports anyway (the trainer, lm-eval's evaluation, the analysis), imported once by the
# server. Names that fail to import are skipped; nothing of this project is listed.
PRELOAD = (
    "numpy", "pandas", "yaml", "safetensors.torch", "torch", "torch.nn.functional", "datasets",
    "transformers", "transformers.modeling_utils", "transformers.generation",
    "transformers.models.llama.modeling_llama", "transformers.models.llama.configuration_llama",
    "transformers.models.auto.tokenization_auto", "transformers.models.auto.modeling_auto",
    "transformers.tokenization_utils_fast", "transformers.optimization", "tokenizers",
    "lm_eval", "lm_eval.evaluator", "lm_eval.tasks", "lm_eval.api.task", "lm_eval.api.registry",
    "lm_eval.models.huggingface", "lm_eval.utils", "sacrebleu", "nltk", "scipy.stats",
    "matplotlib", "matplotlib.pyplot",
)
# Environment variables that differ between jobs of one run without changing what an import does.
_VOLATILE = {"PWD", "OLDPWD", "SHLVL", "_", "LORABENCH_THREADS", CHILD_FLAG}


# --- the job's side ----------------------------------------------------------------------------------------------
def enabled(sm) -> bool:
    """Whether this job may run in a warm child (see the module docstring for when it may not)."""
    config = getattr(sm, "config", None) or {}
    gpus = int((getattr(sm, "resources", None) or {}).get("gpu", 0) or 0)
    return (os.environ.get(ENV_SWITCH, "1") != "0" and not os.environ.get(CHILD_FLAG)
            and bool(config.get("warm_start", False)) and gpus == 0 and "SLURM_JOB_ID" not in os.environ
            and sys.platform.startswith("linux") and hasattr(socket, "send_fds"))


def handoff(sm) -> None:
    """Run this job's script in a warm child and exit with its status; return where it cannot."""
    if not enabled(sm):
        return
    try:
        conn = _connect()
    except OSError as error:
        print(f"warm start unavailable ({error}); running the job in its own process", file=sys.stderr)
        return
    script = os.path.abspath(sys.argv[0])
    message = {"script": script, "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
               "path": sys.path}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        _send(conn, message, fds=[0, 1, 2])
        status = _relay(conn)
    except OSError as error:  # the server went away before the child started: run here
        print(f"warm start failed ({error}); running the job in its own process", file=sys.stderr)
        return
    raise SystemExit(status)


def _relay(conn: socket.socket) -> int:
    """Forward signals to the child until it reports its exit status; 1 if it died without one."""
    reader = conn.makefile("r", encoding="utf-8")
    first = reader.readline()
    if not first.startswith("pid "):
        raise OSError("the warm server started no child")
    pid = int(first.split()[1])

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    line = reader.readline()
    if line.startswith("exit "):
        return int(line.split()[1])
    print(f"the job's process (pid {pid}, warm start) ended without an exit status: killed?", file=sys.stderr)
    return 1


def socket_path() -> Path:
    """One server per Python executable, environment and installed-package state."""
    site = next((p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)), "")
    env = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE)
    key = json.dumps([sys.executable, sys.prefix, site, os.stat(site).st_mtime_ns if site else 0, env])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lorabench-warm-{os.getuid()}-{digest}.sock"


def _connect() -> socket.socket:
    """A connection to this environment's server, started first where none listens (OSError if it cannot)."""
    path = socket_path()
    conn = _try_connect(path)
    if conn is not None:
        return conn
    # One job starts the server; the others wait on the lock, then connect to it.
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _try_connect(path)
        if conn is not None:
            return conn
        server_log = open(f"{path}.log", "w")  # noqa: SIM115 (the server's, kept open by it)
        server = subprocess.Popen(
            [sys.executable, "-c", f"import runpy; runpy.run_path({__file__!r}, run_name='__warm_server__')",
             str(path)],
            cwd="/", stdin=subprocess.DEVNULL, stdout=server_log, stderr=server_log, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != CHILD_FLAG})
        server_log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise OSError(f"the warm server exited ({server.returncode}); its log: {path}.log")
            conn = _try_connect(path)
            if conn is not None:
                return conn
            time.sleep(0.05)
        server.kill()
        raise OSError(f"the warm server did not start in {START_TIMEOUT_S:.0f} s; its log: {path}.log")


def _try_connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    return conn


def _send(conn: socket.socket, message: dict, fds: list[int]) -> None:
    body = json.dumps(message).encode()
    socket.send_fds(conn, [struct.pack("!Q", len(body))], fds)
    conn.sendall(body)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _flags, _addr = socket.recv_fds(conn, 8, 3)
    size = struct.unpack("!Q", header)[0]
    chunks, received = [], 0
    while received < size:
        chunk = conn.recv(min(1 << 20, size - received))
        if not chunk:
            raise OSError("the job's process closed the connection")
        chunks.append(chunk)
        received += len(chunk)
    return json.loads(b"".join(chunks)), fds


# --- the server's side -------------------------------------------------------------------------------------------
def serve(path: Path, idle_s: float = IDLE_S) -> None:
    """Import PRELOAD, then fork one child per connection until idle for `idle_s` seconds."""
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path.with_name(f"{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    listener.bind(str(staging))
    listener.listen(64)
    os.replace(staging, path)  # appears complete: a job connects only to a listening server
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(f"warm server {os.getpid()} ready: {path}", flush=True)
    try:
        while select.select([listener], [], [], idle_s)[0]:
            conn, _ = listener.accept()
            try:
                message, fds = _receive(conn)
            except (OSError, ValueError, struct.error):
                conn.close()
                continue
            if os.fork() == 0:
                listener.close()
                _child(conn, message, fds)  # never returns
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        path.unlink(missing_ok=True)
        print(f"warm server {os.getpid()}: idle {idle_s:.0f} s, exiting", flush=True)


def _child(conn: socket.socket, message: dict, fds: list[int]) -> None:
    """Become the job: its streams, directory, environment, path and arguments; run its script."""
    import runpy
    import threading
    import traceback

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(message["env"])
    os.environ[CHILD_FLAG] = "1"
    sys.path[:] = message["path"]
    sys.argv[:] = message["argv"]
    conn.sendall(f"pid {os.getpid()}\n".encode())

    def watch() -> None:  # the job's process is gone (killed): so is the job
        with contextlib.suppress(OSError):
            while conn.recv(1024):
                pass
        os._exit(137)

    threading.Thread(target=watch, daemon=True).start()
    code = 0
    try:
        runpy.run_path(message["script"], run_name="__main__")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 (reported as the job's failure, as Python would)
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        conn.sendall(f"exit {code}\n".encode())
    os._exit(code)


if __name__ == "__warm_server__":
    serve(Path(sys.argv[1]))
