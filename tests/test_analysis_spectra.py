"""analysis/spectra.py on a tiny LLaMA with set adapter weights, and the whole CLI on a results
folder with real adapters (spectra and the MiLoRA init check need them)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import adapters
from analysis import spectra
from analysis.__main__ import main
from conftest import tiny_llama
from test_analysis_data import write_run

TARGETS = ["q_proj", "v_proj"]  # tiny LLaMA: q 32→32, v 32→16 (2 key-value heads of 8)


def test_flatness_numbers_by_hand():
    p = np.array([2 / 3, 1 / 3])
    assert spectra.effective_rank([2.0, 1.0]) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert spectra.effective_rank([2.0, 1.0]) == pytest.approx(1.889882, abs=1e-6)
    assert spectra.effective_rank([1.0, 1.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert spectra.effective_rank([3.0, 1e-9, 0.0]) == 1.0  # round-off below 1e-6 σ_1 is zero
    assert spectra.effective_rank([0.0, 0.0]) == 0.0
    assert spectra.normalized_entropy([1.0, 1.0, 0.0, 0.0]) == pytest.approx(math.log(2) / math.log(4))
    assert list(spectra.normalized_spectrum(np.array([4.0, 2.0, 1.0]))) == [1.0, 0.5, 0.25]


def lora_rank_one(seed=0):
    model = adapters.apply(tiny_llama(), "lora", TARGETS, r=2, alpha=2, dropout=0.0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g))
            layer.lora_B.zero_()
            layer.lora_B[:, 0] = torch.randn(layer.out_features, generator=g)  # one column: ΔW = b aᵀ
    return model


def multilora_two_equal(second_scale=1.0):
    """ΔW = E11 + s·E22 in every module: singular values (1, s)."""
    model = adapters.apply(tiny_llama(), "multilora", TARGETS, r=1, alpha=1, n_modules=2, dropout=0.0)
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            layer.multi_A.zero_()
            layer.multi_B.zero_()
            for i in range(2):
                layer.multi_A[i, 0, i] = 1.0
                layer.multi_B[i, i, 0] = 1.0
            layer.multi_scale.copy_(torch.tensor([1.0, second_scale]))
    return model


def original_weights(model):
    return {n: layer.base_weight_out_in().clone() for n, layer in adapters.adapted_modules(model).items()}


def test_rank_one_lora_has_effective_rank_one():
    model = lora_rank_one()
    summary = spectra.spectrum_summary(spectra.module_deltas(model, original_weights(model)))
    assert summary["effective_rank"] == pytest.approx(1.0) and summary["normalized_entropy"] == 0.0
    assert summary["spectrum"][0] == 1.0 and np.all(summary["spectrum"][1:] < 1e-6)


def test_multilora_with_equal_modules_has_effective_rank_two():
    model = multilora_two_equal()
    summary = spectra.spectrum_summary(spectra.module_deltas(model, original_weights(model)), top_k=4)
    assert summary["effective_rank"] == pytest.approx(2.0)
    # ln 2 / ln min(d_out, d_in): q 32×32 -> ln2/ln32 = 0.2, v 16×32 -> ln2/ln16 = 0.25; mean over 2 layers
    assert summary["normalized_entropy"] == pytest.approx(0.225)
    assert list(summary["spectrum"]) == pytest.approx([1.0, 1.0, 0.0, 0.0])
    p = np.array([0.75, 0.25])
    uneven = multilora_two_equal(second_scale=1 / 3)
    assert spectra.spectrum_summary(spectra.module_deltas(uneven, original_weights(uneven)))["effective_rank"] == \
        pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_saved_milora_delta_is_the_change_from_the_original_weights(tmp_path):
    model = adapters.apply(tiny_llama(), "milora", TARGETS, r=2, alpha=2, dropout=0.0)
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            layer.lora_B.add_(0.05)  # "training" moves B away from B0
    adapters.save(model, tmp_path / "adapter")
    expected = {n: layer.scaling * (layer.lora_B @ layer.lora_A - layer.lora_B0 @ layer.lora_A0)
                for n, layer in adapters.adapted_modules(model).items()}
    deltas = spectra.adapter_deltas(tiny_llama(), tmp_path / "adapter")
    assert set(deltas) == set(expected)
    for name, delta in deltas.items():
        torch.testing.assert_close(delta, expected[name].detach(), atol=1e-5, rtol=1e-4)
    for init in ("minor", "principal"):
        fresh = adapters.apply(tiny_llama(), "milora", TARGETS, r=2, alpha=2, dropout=0.0, init=init)
        adapters.save(fresh, tmp_path / init)
        assert spectra.init_output_change(tiny_llama(), tmp_path / init) < 1e-5


def test_base_of_a_pretraining_run_is_a_causal_lm(tmp_path):
    """Embeddings, norms and lm_head trained in full (MoRA Table 3) are no classifier head."""
    model = adapters.apply(tiny_llama(), "lora", TARGETS, r=2, modules_to_save=["embed_tokens", "norm", "lm_head"])
    adapters.save(model, tmp_path / "adapter")
    tiny_llama().save_pretrained(tmp_path / "base")
    base = spectra.load_base(tmp_path / "base", tmp_path / "adapter")
    assert type(base).__name__ == "LlamaForCausalLM"
    assert set(spectra.adapter_deltas(base, tmp_path / "adapter")) == set(adapters.adapted_modules(model))


def tiny_configs():
    """Tiny random models of the paper profiles' architectures: (name, config, targets, heads, causal)."""
    from transformers import DebertaV2Config, GPT2Config, RobertaConfig
    small = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    return [("deberta-v2", DebertaV2Config(**small, max_position_embeddings=32, num_labels=3),
             ["query_proj", "value_proj"], ["classifier", "pooler"], False),
            ("roberta", RobertaConfig(**small, max_position_embeddings=40, num_labels=2), ["query", "value"],
             ["classifier"], False),
            ("gpt2", GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=0,
                                eos_token_id=0), ["c_attn"], [], True)]


@pytest.mark.parametrize("name, config, targets, heads, causal", tiny_configs(), ids=[c[0] for c in tiny_configs()])
def test_base_of_classifier_and_causal_architectures(tmp_path, name, config, targets, heads, causal):
    """SoRA's DeBERTa-v2 has no causal LM class: its base is the classifier (the aggregate crashed)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    torch.manual_seed(0)
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    auto.from_config(config).save_pretrained(tmp_path / "base")
    model = adapters.apply(auto.from_pretrained(tmp_path / "base"), "milora", targets, r=2, alpha=2,
                           modules_to_save=heads)
    adapters.save(model, tmp_path / "adapter")
    base = spectra.load_base(tmp_path / "base", tmp_path / "adapter")
    expected = {"deberta-v2": "DebertaV2ForSequenceClassification", "roberta": "RobertaForSequenceClassification",
                "gpt2": "GPT2LMHeadModel"}[name]
    assert type(base).__name__ == expected and (causal or base.config.num_labels == config.num_labels)
    assert set(spectra.adapter_deltas(base, tmp_path / "adapter")) == set(adapters.adapted_modules(model))
    assert spectra.init_output_change(spectra.load_base(tmp_path / "base", tmp_path / "adapter"),
                                      tmp_path / "adapter") < 1e-5


@pytest.fixture(scope="module")
def results_with_adapters(tmp_path_factory):
    """uuid runs of LoRA (rank-1 ΔW), MultiLoRA (two modules, nearly equal) and MiLoRA, 3 seeds each."""
    root = tmp_path_factory.mktemp("cli") / "tiny"
    tiny_llama().save_pretrained(root / "base_model")
    for seed in range(3):
        for variant, model, acc in (("lora", lora_rank_one(seed), 0.40 + seed / 100),
                                    ("multilora", multilora_two_equal(1.0 - seed / 10), 0.45 + seed / 100),
                                    ("milora", adapters.apply(tiny_llama(), "milora", TARGETS, r=2, alpha=2), 0.42)):
            results = {"lorabench_uuid": {"char_acc": acc, "exact_match": 0.0}}
            run = write_run(root, "uuid", variant, seed, results=results, params=adapters.num_trainable(model))
            adapters.save(model, run / "adapter")
    return root


def test_cli_end_to_end_with_spectra(results_with_adapters, capsys):
    root = results_with_adapters
    assert main(["--results", str(root)]) == 0
    assert "verdicts: 2 file(s)" in capsys.readouterr().out
    runs = pd.read_csv(root / "tables" / "runs.csv")
    flat = runs[runs["metric"] == "effective_rank"].groupby("variant")["value"].agg(list)
    assert flat["lora"] == pytest.approx([1.0, 1.0, 1.0])
    assert flat["multilora"][0] == pytest.approx(2.0) and 1.0 < flat["multilora"][2] < 2.0
    init = runs[runs["metric"] == "init_output_change"]
    assert set(init["variant"]) == {"milora"} and (init["value"] < 1e-5).all()
    assert (root / "tables" / "spectra.csv").stat().st_size > 0
    assert (root / "plots" / "spectra_uuid.png").stat().st_size > 1000
    assert (root / "plots" / "spectra_uuid.pdf").stat().st_size > 1000
    assert "| multilora |" in (root / "tables" / "memorization.md").read_text()
    claims = {c["claim"]: c for c in json.loads((root / "replication.json").read_text())["claims"]}
    assert claims[5]["verdict"] == "holds"
    assert claims[4]["evidence"][0]["verdict"] == "holds"  # output unchanged at init; no forgetting data
    assert claims[4]["verdict"] == "inconclusive"
    assert "**Verdict: holds**" in (root / "replication.md").read_text()


def test_cli_help_and_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0 and "--results" in capsys.readouterr().out
    with pytest.raises(ValueError, match="does not exist"):
        main(["--results", str(tmp_path / "nope"), "--no-spectra"])
