"""cpt_scratch end to end: MoRA Table 3's pretraining from scratch (random init, packed rows, embeddings /
norms / lm_head trained whole) with LoRA, MoRA, ReLoRA and ReMoRA."""
from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

import adapters
import tasks
from adapters.mora import square_rank
from training import TrainConfig
from training.base_model import train_tokenizer
from training.trainer import Trainer

# The embeddings, every RMSNorm and the output head (LLaMA's names; "norm" is the final model.norm).
SAVE = ["embed_tokens", "norm", "input_layernorm", "post_attention_layernorm", "lm_head"]
MODEL = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 64}
VOCAB = 320


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The tiny cpt_scratch splits (small sizes) and a tokenizer trained on their train text."""
    root = tmp_path_factory.mktemp("scratch")
    splits = tasks.get("cpt_scratch").generate_tiny(0, {"train": 300, "validation": 16, "test": 16})
    tasks.write_splits(splits, root / "data", task="cpt_scratch")
    train_tokenizer([r["target"] for r in splits["train"]], VOCAB).save_pretrained(root / "tokenizer")
    return root


def scratch_config(root, method: str, options: dict, **overrides) -> dict:
    return {"model_init": "random", "model": "", "tokenizer": str(root / "tokenizer"), "model_config": MODEL,
            "data_dir": str(root / "data"), "pack": True, "seq_len": 32, "batch_size": 8, "max_steps": 12,
            "lr": 1e-2, "warmup_steps": 2, "threads": 1, "method": method, "method_options": options,
            "modules_to_save": SAVE, **overrides}


def run(cfg: dict, out) -> tuple[dict, torch.nn.Module, Trainer]:
    trainer = Trainer(TrainConfig.from_dict(cfg), out)
    return trainer.run(), trainer.raw_model, trainer


def interrupted_and_whole(cfg: dict, root, stop_after: int, checkpoint: int) -> tuple[list, list]:
    """The logged losses of `cfg` run straight through and of the same run killed after `stop_after`
    steps and rerun (it must resume from the checkpoint at step `checkpoint`)."""
    import json

    from training import train

    train(cfg, root / "whole")
    assert train(cfg, root / "resumed", stop_after_steps=stop_after)["status"] == "interrupted"
    assert train(cfg, root / "resumed")["resumed_from_step"] == checkpoint

    def losses(out):
        return [e["loss"] for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in e]

    return losses(root / "whole"), losses(root / "resumed")


@pytest.mark.parametrize("method,options", [
    ("lora", {"r": 4}),
    ("lora", {"r": 4, "relora_every": 5}),                    # ReLoRA
    ("mora", {"r": 4, "mora_type": 1}),
    ("mora", {"r": 4, "mora_type": 1, "remora_every": 5}),    # ReMoRA
], ids=["lora", "relora", "mora1", "remora"])
def test_scratch_pretraining_trains_adapter_and_embeddings_norms_head(scratch, tmp_path, method, options):
    result, model, _ = run(scratch_config(scratch, method, options), tmp_path)
    assert result["status"] == "ok" and result["final_loss"] < math.log(VOCAB) - 0.5  # it learns, from chance
    d, f, n = MODEL["hidden_size"], MODEL["intermediate_size"], MODEL["num_hidden_layers"]
    shapes = [(d, d)] * 4 + [(d, f), (d, f), (f, d)]   # q k v o, gate up down (d_in, d_out)
    r = options["r"]
    per_block = sum(r * (i + o) if method == "lora" else square_rank(i, o, r, 1) ** 2 for i, o in shapes)
    saved = 2 * VOCAB * d + (2 * n + 1) * d             # embed_tokens + lm_head (untied), the norms
    assert result["trainable_params"] == n * per_block + saved
    block_norms = [f"model.layers.{i}.{k}" for i in range(n) for k in ("input_layernorm", "post_attention_layernorm")]
    assert adapters.adapter_info(model)["modules_to_save"] == ["model.embed_tokens", *block_norms, "model.norm",
                                                               "lm_head"]
    # the run's random base + its adapter rebuild the trained model (merged restarts included)
    rebuilt = adapters.load(AutoModelForCausalLM.from_pretrained(tmp_path / "base_model"), tmp_path / "adapter")
    probe = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(probe).logits, model.eval()(probe).logits, rtol=1e-5, atol=1e-5)
