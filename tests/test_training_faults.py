"""Faults fail the job and the rerun resumes; results (diverged, a bad config) are final; snapshots stay.

The Snakemake entry point workflow/scripts/train_run.py runs in-process with a stand-in for the
`snakemake` object: a fault raises out of it (Snakemake's job exits non-zero and is rerun), a result
returns normally with train_summary.json written (the job succeeds, the DAG goes on).
"""
from __future__ import annotations

import errno
import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import adapters
from training.trainer import Trainer, is_fault

from test_training_helpers import adapter_tensors

TRAIN_RUN = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "train_run.py"


def run_config(base, task, **overrides) -> dict:
    return {"model": str(base), "data_dir": str(task), "seq_len": 24, "batch_size": 8, "max_steps": 6,
            "checkpoint_every": 2, "lr": 2e-2, "warmup_steps": 2, "threads": 1, "method": "lora",
            "method_options": {"r": 4}, "eval_at_end": False, **overrides}


class Names(dict):
    """Snakemake's named lists: items by attribute, and .get."""
    __getattr__ = dict.__getitem__


def train_job(out: Path, run_config: dict) -> None:
    """The train rule's script, as Snakemake runs it (minus the subprocess)."""
    job = SimpleNamespace(log=[str(out.parent / f"{out.name}.log")], threads=1, input=Names(),
                          output=Names(summary=str(out / "train_summary.json")),
                          params=SimpleNamespace(out_dir=str(out), run_config=run_config))
    runpy.run_path(str(TRAIN_RUN), init_globals={"snakemake": job})


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir()) if (out / "checkpoints").exists() else []


def summary(out: Path) -> dict:
    return json.loads((out / "train_summary.json").read_text())


@pytest.fixture(autouse=True)
def _threads_env(monkeypatch):
    monkeypatch.setenv("LORABENCH_THREADS", "1")  # train_run.py sets it; restored after each test


def fail_at_step(monkeypatch, step: int, error: BaseException) -> None:
    real = Trainer._train_step

    def failing(self):
        if self.counters["step"] == step - 1:
            raise error
        return real(self)
    monkeypatch.setattr(Trainer, "_train_step", failing)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   KeyboardInterrupt()], ids=["oom", "interrupt"])
def test_a_fault_fails_the_job_and_the_rerun_resumes(base, lm_task, tmp_path, monkeypatch, error):
    out, cfg = tmp_path / "run", run_config(base, lm_task)
    with monkeypatch.context() as patch:
        fail_at_step(patch, 5, error)
        with pytest.raises(type(error)):
            train_job(out, cfg)
    assert not (out / "train_summary.json").exists()  # Snakemake sees no output: the job is rerun
    assert checkpoints(out) == ["step_00000004"] and not (out / "adapter").exists()
    train_job(out, cfg)  # the rerun (or --retries), the outage over
    done = summary(out)
    assert (done["status"], done["steps"], done["resumed_from_step"]) == ("ok", 6, 4)
    assert checkpoints(out) == [] and (out / "adapter" / "adapter.safetensors").exists()


def test_a_full_disk_at_the_final_save_fails_the_job_and_keeps_the_checkpoint(base, lm_task, tmp_path, monkeypatch):
    out, cfg = tmp_path / "run", run_config(base, lm_task)
    real_save = adapters.save

    def full_disk(model, directory):
        if Path(directory) == out / "adapter":  # the final weights; checkpoints still fit
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))
        return real_save(model, directory)
    with monkeypatch.context() as patch:
        patch.setattr(adapters, "save", full_disk)
        with pytest.raises(OSError) as raised:
            train_job(out, cfg)
    assert raised.value.errno == errno.ENOSPC
    assert not (out / "train_summary.json").exists() and checkpoints(out) == ["step_00000004"]
    train_job(out, cfg)
    assert (summary(out)["status"], summary(out)["resumed_from_step"]) == ("ok", 4)


def test_a_diverged_run_is_a_result(base, lm_task, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = Trainer._loss_sum

    def nan_at_step_3(self, batch):
        loss, logits = real(self, batch)
        return (loss * float("nan"), logits) if self.counters["step"] == 2 else (loss, logits)
    monkeypatch.setattr(Trainer, "_loss_sum", nan_at_step_3)
    train_job(out, run_config(base, lm_task))  # returns: the job succeeds
    result = summary(out)
    assert (result["status"], result["diverged_step"], result["steps"]) == ("diverged", 3, 2)
    assert "loss is nan at step 3" in result["reason"]


def test_a_config_the_model_cannot_take_is_a_result(base, lm_task, tmp_path):
    out = tmp_path / "run"
    train_job(out, run_config(base, lm_task, method_options={"r": 1000}))  # 32-wide layers
    result = summary(out)
    assert result["status"] == "failed" and "r=1000 exceeds" in result["reason"]


@pytest.mark.parametrize("error,fault", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), True),
    (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasGemmEx`"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (FileNotFoundError("data/train.jsonl not found"), True),  # a lost mount: rerun once it is back
    (MemoryError(), True), (KeyboardInterrupt(), True), (SystemExit(1), True),
    (ValueError("r=1000 exceeds the layer's rank"), False),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x32 and 64x32)"), False),
    (RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu"), False),
    (KeyError("target"), False),
])
def test_faults_and_results(error, fault):
    assert is_fault(error) is fault


# --- snapshots (MoRA Table 2's learning curve) --------------------------------------------------
def test_snapshots_survive_checkpoint_cleanup_and_resuming(base, lm_task, tmp_path):
    """Kill at step 6 of 8 (checkpoints every 2), rerun: snapshots 3, 5 (before) and 7 (after the
    resume) are all there after the run deletes its checkpoints, each the uninterrupted run's."""
    from training import train
    cfg = run_config(base, lm_task, max_steps=8, snapshot_steps=[3, 5, 7], schedule="constant")
    assert train(cfg, tmp_path / "killed", stop_after_steps=6)["status"] == "interrupted"
    assert sorted(p.name for p in (tmp_path / "killed" / "snapshots").iterdir()) == ["step3", "step5"]
    assert train(cfg, tmp_path / "killed")["resumed_from_step"] == 6
    assert train(cfg, tmp_path / "straight")["status"] == "ok"
    for run in ("killed", "straight"):
        assert checkpoints(tmp_path / run) == []
        assert sorted(p.name for p in (tmp_path / run / "snapshots").iterdir()) == ["step3", "step5", "step7"]
    for step in (3, 5, 7):
        killed, straight = (adapter_tensors(tmp_path / run / "snapshots" / f"step{step}") for run in ("killed", "straight"))
        assert killed.keys() == straight.keys() and all(torch.equal(killed[k], straight[k]) for k in killed)
    three, seven = (adapter_tensors(tmp_path / "straight" / "snapshots" / f"step{s}") for s in (3, 7))
    assert not all(torch.equal(three[k], seven[k]) for k in three)
