"""The tiny base model: tokenizer, pretraining on the suite's corpus, loadable by plain transformers."""
from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
import yaml

from training.base_model import build, train_tokenizer
from training.data import IGNORE, encode_causal, read_jsonl

SEQ_LEN = 64
# A reduced tiny.yaml: the same corpus and architecture family, small enough for < 60 s on 2 cores.
REDUCED = {
    "seed": 0,
    "corpus": {"n_docs": 3000, "validation_docs": 200},
    "tokenizer": {"vocab_size": 512, "min_frequency": 2},
    "model": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 128},
    "train": {"seq_len": SEQ_LEN, "batch_size": 16, "max_steps": 200, "lr": 5e-3, "schedule": "cosine",
              "warmup_steps": 20, "weight_decay": 0.1, "threads": 2, "log_every": 20},
}


def test_tokenizer_is_byte_level_with_special_tokens():
    texts = ["anna lives in oslo.", "3 plus 4 is 7.", "name: Oskar Duval\npet: dog"] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
    for text in ["Zürich, £20–25 ✓", "3 plus 4 is 7.", "tabs\tand\nnewlines"]:  # any byte string round-trips
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok("oslo")["input_ids"][0] == tok.bos_token_id  # LLaMA-style: <s> first
    pair = tok("anna", "oslo")["input_ids"]
    assert pair.count(tok.eos_token_id) == 1 and pair[-1] != tok.eos_token_id  # <s> A </s> B


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("base_model")
    return out, build(REDUCED, out)


def test_pretrained_perplexity_is_far_below_unigram(pretrained):
    out, summary = pretrained
    assert summary["status"] == "ok" and summary["wall_time_s"] < 60
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out)
    train_docs, val_docs = (read_jsonl(out / "corpus" / f"{s}.jsonl") for s in ("train", "validation"))

    def scored_tokens(records):  # the tokens the trainer's eval loss averages over: each doc's tokens + eos
        return [t for e in encode_causal(records, tok, SEQ_LEN, add_bos=True) for t in e["labels"] if t != IGNORE]

    counts = Counter(scored_tokens(train_docs))
    total, vocab = sum(counts.values()), len(tok)
    held_out = scored_tokens(val_docs)
    unigram_nll = -sum(math.log((counts[t] + 1) / (total + vocab)) for t in held_out) / len(held_out)
    unigram_ppl = math.exp(unigram_nll)
    model_ppl = summary["eval_perplexity"]
    print(f"validation perplexity {model_ppl:.2f} vs add-one unigram {unigram_ppl:.2f}")
    assert model_ppl < 0.1 * unigram_ppl, (model_ppl, unigram_ppl)


def test_plain_transformers_loads_it_and_agrees_on_the_loss(pretrained):
    """from_pretrained(DIR) with no suite code, and its validation loss equals the trainer's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out, summary = pretrained
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.config.model_type == "llama" and model.config.hidden_size == 64
    val = read_jsonl(out / "corpus" / "validation.jsonl")
    total, n = 0.0, 0
    with torch.no_grad():
        for record in val:
            tokens = [tok.bos_token_id] + tok(record["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = torch.tensor([tokens[:SEQ_LEN]])  # the trainer truncates to seq_len too
            logits = model(ids).logits[0, :-1]
            total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            n += ids.shape[1] - 1
    assert total / n == pytest.approx(summary["eval_loss"], rel=1e-4)
    prompt = tok("3 plus 4 is", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_run_files_and_config_checks(pretrained, tmp_path):
    out, summary = pretrained
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl", "train_summary.json",
            "provenance.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 512
    assert summary["method"] is None and summary["trainable_params"] == summary["model_params"]
    with pytest.raises(ValueError, match="unknown key"):
        build({**REDUCED, "tokenizer": {"vocab": 100}}, tmp_path)
    with pytest.raises(ValueError, match="unknown section"):
        build({**REDUCED, "optimizer": {}}, tmp_path)


def test_shipped_config_is_complete():
    from pathlib import Path
    config = yaml.safe_load((Path(__file__).parent.parent / "config" / "base_model" / "tiny.yaml").read_text())
    from tasks.corpus import min_docs_for_all_facts
    assert config["corpus"]["n_docs"] >= min_docs_for_all_facts()
    assert set(config) == {"seed", "corpus", "tokenizer", "model", "train"}
