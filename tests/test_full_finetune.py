"""Full fine-tuning (variant `full`, method `full` = the trainer's method null): every weight trains,
the run directory holds the whole model (safetensors), the evaluation loads it in place of the base,
and the run records its parameter count, wall time and peak memory like every run."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import adapters
from training import TrainConfig, train
from training.model import full_model_dir, load_for_eval


def full_config(base, lm_task, **over) -> dict:
    return {"model": str(base), "data_dir": str(lm_task), "method": "full", "seq_len": 32, "batch_size": 8,
            "max_steps": 4, "log_every": 1, "threads": 1, "device": "cpu", "seed": 0, **over}


def test_method_full_is_null_with_its_own_defaults():
    cfg = TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "full"})
    assert cfg.method is None and cfg.lr == adapters.method_config("full")["train"]["lr"] == 2e-5
    assert TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "full", "lr": 1e-3}).lr == 1e-3
    with pytest.raises(ValueError, match="full fine-tuning takes no options"):
        TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": "full", "method_options": {"r": 8}})
    with pytest.raises(ValueError, match="takes no options"):
        adapters._registry.resolve_options("full", {"r": 8})
    assert "full" not in adapters.available() and "full" not in adapters.variants()  # `variants: all` skips it


def test_full_run_trains_every_weight_saves_and_reloads(base, lm_task, tmp_path):
    from transformers import AutoModelForCausalLM

    before = {n: p.detach().clone() for n, p in AutoModelForCausalLM.from_pretrained(base).named_parameters()}
    out = tmp_path / "run"
    summary = train(full_config(base, lm_task, lr=1e-3), out)
    assert summary["status"] == "ok" and summary["method"] is None
    # every parameter trained and counted; no adapter
    assert summary["trainable_params"] == summary["model_params"] == sum(t.numel() for t in before.values())
    assert summary["adapter_params"] is None and not (out / "adapter").exists()
    assert summary["wall_time_s"] > 0 and summary["peak_memory_mb"] > 0 and summary["memory_kind"]
    # the run directory is the model: safetensors weights, config.json, tokenizer
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    saved = load_file(str(out / "model.safetensors"))
    changed = [n for n, t in before.items() if n in saved and not torch.equal(saved[n], t)]
    assert len(changed) == len(saved) and len(saved) >= len(before) - 1  # tied lm_head may be stored once
    assert full_model_dir(out / "adapter") == out and full_model_dir(tmp_path / "nothing" / "adapter") is None

    # evaluation: load_for_eval(base config, <run>/adapter) loads the run's own model in place of the base
    eval_cfg = TrainConfig.from_dict({"model": str(base), "data_dir": str(lm_task), "method": None,
                                      "device": "cpu"})
    model, tokenizer = load_for_eval(eval_cfg, None, out / "adapter")
    trained = AutoModelForCausalLM.from_pretrained(out).eval()
    base_model = AutoModelForCausalLM.from_pretrained(base).eval()
    ids = tokenizer("3 plus 4 is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ours, reference, untrained = model(ids).logits, trained(ids).logits, base_model(ids).logits
    assert torch.equal(ours, reference) and not torch.allclose(ours, untrained)


def test_collect_reports_a_full_run_as_method_full(base, lm_task, tmp_path):
    from analysis import collect

    run_dir = tmp_path / "results" / "p" / "runs" / "lm" / "full" / "seed0"
    summary = train(full_config(base, lm_task, max_steps=2), run_dir)
    (run_dir / "eval.json").write_text(json.dumps({"results": {}}))
    rows = collect.run_rows(run_dir, "p", "lm", "full", 0, {})
    assert {(r["method"], r["role"]) for r in rows} == {("full", "full")}
    assert rows[0]["adapter_params"] == rows[0]["trainable_params"] == summary["model_params"]
    assert rows[0]["wall_time_s"] > 0 and rows[0]["peak_memory_mb"] > 0
