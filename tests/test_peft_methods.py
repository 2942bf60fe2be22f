"""Every PEFT method shipped as config/methods/<name>.yaml (`peft:`) trains, merges, saves and reloads.

Each YAML is applied to a tiny random LLaMA (64 wide, 2 layers) with the sizes it can take (TINY),
trained for a few steps through its TrainingHooks as the trainer calls them (AdaLoRA's penalty and
update_and_allocate, EVA's calibration, LoRA+'s lr multiplier from the YAML's train: block), and
checked: the loss falls; merged outputs = unmerged where the method merges; saved and reloaded on a
fresh base to the same outputs; adapters.num_trainable = PEFT's count. A few methods also run through
the real trainer and evaluation loader. Methods of peft without a YAML are in NOT_COVERED with their
reason, and a test checks each reason still holds.
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F

import adapters
from adapters import peft_method
from training import TrainConfig
from training.optim import param_groups

peft = pytest.importorskip("peft")

# Sizes the 64-wide test model takes where the YAML's (for 7B models) do not fit it.
TINY = {
    "peft_vera": {"r": 16}, "pvera": {"r": 16}, "vblora": {"vector_length": 16, "num_vectors": 32},
    "c3a": {"block_size": 16}, "miss": {"r": 8}, "oft": {"oft_block_size": 8}, "hira": {"r": 4},
    "randlora": {"r": 8}, "shira": {"r": 4}, "gralora": {"r": 8}, "fourierft": {"n_frequency": 100},
    "prompt_tuning": {"num_virtual_tokens": 4}, "prefix_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 32}, "cartridge": {"num_virtual_tokens": 4},
    "adaption_prompt": {"adapter_len": 4}, "adalora": {"tinit": 1, "tfinal": 2},
}
LR = {"adaption_prompt": 5e-2, "prompt_tuning": 5e-2, "peft_pissa": 2e-3, "olora": 2e-3}  # else 1e-2
STEPS = 6
# Not mergeable: prompt methods; Lily (PEFT: NotImplementedError); BEFT on LLaMA, which has no biases.
UNMERGEABLE = {"prompt_tuning", "prefix_tuning", "p_tuning", "cartridge", "adaption_prompt", "lily", "beft"}
SHIPPED = adapters.peft_methods()


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=64)).eval()


def batch(seed=1):
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def lm_loss(model, data):
    logits = model(**data).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), data["input_ids"][:, 1:].flatten())


def train_tiny(name, steps=STEPS):
    """(model, initial eval loss) after `steps` steps as the trainer takes them."""
    model = adapters.apply(tiny_llama(), name, "all-linear", **TINY.get(name, {}))
    hooks = adapters.training_hooks(model)
    data = batch()
    hooks.calibrate(lambda: iter([batch(2)]))  # EVA's SVD converges at once on one repeated batch
    hooks.begin_training(steps)
    model.eval()
    with torch.no_grad():
        before = lm_loss(model, data).item()
    cfg = TrainConfig.from_dict({"model": "m", "data_dir": "d", "method": name, "lr": LR.get(name, 1e-2)})
    optimizer = torch.optim.AdamW(param_groups(cfg, hooks.main_parameters(), []))
    model.train()
    for step in range(1, steps + 1):
        loss = lm_loss(model, data)
        penalty = hooks.loss_penalty()
        (loss if penalty is None else loss + penalty).backward()
        optimizer.step()
        hooks.after_optimizer_step(step)
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return model, before


@pytest.mark.parametrize("name", SHIPPED)
def test_peft_method_trains_merges_saves_and_reloads(name, tmp_path):
    model, before = train_tiny(name)
    data = batch()
    assert adapters.num_trainable(model) == model.get_nb_trainable_parameters()[0] > 0
    with torch.no_grad():
        after = lm_loss(model, data).item()
        out = model(**data).logits
    assert out.shape == (4, 16, 128)  # prompt methods: the virtual tokens' logits are cut off
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f}"
    adapters.merge(model)  # where the method cannot merge, it stays as it is (evaluated through its forward)
    assert peft_method.is_merged(model) == (name not in UNMERGEABLE)
    with torch.no_grad():
        merged = model(**data).logits
    torch.testing.assert_close(merged, out, rtol=0, atol=2e-4)
    if name == "osf":  # PEFT merges OSF but cannot unmerge it
        with pytest.raises(NotImplementedError):
            adapters.unmerge(model)
        model, _ = train_tiny(name)
    adapters.unmerge(model)
    adapters.save(model, tmp_path / "adapter")
    meta = json.loads((tmp_path / "adapter" / "lorabench.json").read_text())
    assert meta["method"] == name and meta["peft_version"] == peft.__version__
    assert adapters.read_config(tmp_path / "adapter")["method"] == name
    reloaded = adapters.load(tiny_llama(), tmp_path / "adapter").eval()
    if name != "adalora":  # AdaLoRA's saved adapter keeps only the ranks its budget allocated
        assert adapters.num_trainable(reloaded) == adapters.num_trainable(model)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**data).logits, out, rtol=0, atol=1e-5)
        # evaluation's path: load, then merge where the method merges
        evaluated = adapters.merge(adapters.load(tiny_llama(), tmp_path / "adapter")).eval()
        torch.testing.assert_close(evaluated(**data).logits, out, rtol=0, atol=2e-4)


def test_every_peft_type_is_shipped_or_listed_with_a_reason():
    shipped = {str(adapters.method_config(n)["peft"]["peft_type"]).upper() for n in SHIPPED}
    every = {t.value for t in peft.PeftType}
    assert shipped | set(peft_method.NOT_COVERED) == every
    assert not shipped & set(peft_method.NOT_COVERED)
    assert "pissa" not in SHIPPED and "lora" not in SHIPPED and "vera" not in SHIPPED  # ours keep the names
    # opt-in: `variants: all` (adapters.variants()) runs none of them
    assert not set(adapters.variants()) & set(SHIPPED)
    assert set(SHIPPED) <= set(adapters.variants(include_peft=True))


def _get_peft_model(kind, **kwargs):
    from peft import get_peft_model
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    return get_peft_model(tiny_llama(), PEFT_TYPE_TO_CONFIG_MAPPING[kind](task_type="CAUSAL_LM", **kwargs))


def test_the_reasons_for_the_methods_not_covered_still_hold():
    data = batch()
    for kind, kwargs in (("MULTITASK_PROMPT_TUNING", {"num_virtual_tokens": 4, "num_tasks": 1}),
                         ("POLY", {"r": 4, "target_modules": "all-linear"})):
        with pytest.raises(ValueError, match="task_ids"):
            _get_peft_model(kind, **kwargs)(**data)
    with pytest.raises(ValueError, match="use_cache"):
        _get_peft_model("XLORA", hidden_size=64, adapters={})
    with pytest.raises(AttributeError, match="ShadowCarrier"):
        _get_peft_model("SHADOW", target_modules="all-linear")(**data)
    with pytest.raises(RuntimeError, match="long tensor"):  # no token_indices: nothing to train
        _get_peft_model("TRAINABLE_TOKENS")(**data)
    cpt = _get_peft_model("CPT", cpt_token_ids=[1, 2, 3], cpt_mask=[1, 1, 1], cpt_tokens_type_mask=[1, 2, 2])
    assert cpt(**data).logits.shape[1] == 16 + 3  # the context rides in front; its loss needs labels + type mask
    with pytest.raises(ValueError, match="preprocess_corda"):
        _get_peft_model("LORA", init_lora_weights="corda", target_modules="all-linear")
    import inspect

    from peft.tuners.lora.loraga import preprocess_loraga
    assert "train_step" in inspect.signature(preprocess_loraga).parameters  # gradients on the base, before injection
    assert importlib.util.find_spec("bitsandbytes") is None  # LoftQ: a quantized base


# --- through the real trainer and evaluation loader ------------------------------------------------

@pytest.mark.parametrize("name", ["dora", "adalora", "prompt_tuning", "eva", "peft_pissa", "loraplus"])
def test_trainer_runs_a_peft_yaml_and_evaluation_loads_it(name, base, lm_task, tmp_path):
    from transformers import AutoModelForCausalLM

    from training import train
    from training.model import load_for_eval

    config = {"model": str(base), "data_dir": str(lm_task), "method": name, "seq_len": 32, "batch_size": 8,
              "max_steps": 4, "log_every": 1, "threads": 1, "device": "cpu", "seed": 0, "lr": 5e-3,
              "method_options": {"num_virtual_tokens": 4} if name == "prompt_tuning" else
              {"tinit": 1, "tfinal": 1} if name == "adalora" else {}}
    out = tmp_path / "run"
    summary = train(config, out)
    assert summary["status"] == "ok", summary
    assert summary["trainable_params"] > 0 and summary["adapter_params"] == summary["trainable_params"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["peft"]["version"] == peft.__version__ == provenance["packages"]["peft"]
    assert provenance["peft"]["config"]["peft_type"] == adapters.method_config(name)["peft"]["peft_type"]
    if name == "loraplus":  # the B matrices' param group at 16 x lr
        assert TrainConfig.from_dict(config).lr_multipliers == {"lora_B": 16}
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "adapter" / "lorabench.json").exists()
    eval_cfg = TrainConfig.from_dict({"model": str(base), "data_dir": str(lm_task), "method": None, "device": "cpu"})
    model, tokenizer = load_for_eval(eval_cfg, None, out / "adapter")
    trained = adapters.load(AutoModelForCausalLM.from_pretrained(base), out / "adapter").eval()
    ids = tokenizer("3 plus 4 is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(base).eval()(ids).logits
        torch.testing.assert_close(model(ids).logits, trained(ids).logits, rtol=0, atol=2e-4)
        assert not torch.allclose(model(ids).logits, plain, atol=1e-4)
    if name != "adalora":  # the saved AdaLoRA adapter keeps only its allocated ranks
        assert adapters.num_trainable(trained) == summary["trainable_params"]


def test_a_base_moving_init_resumes_exactly(base, lm_task, tmp_path):
    """PiSSA moves W to W_res: a checkpoint rebuilds W_res from the base and initial/, so the resumed
    run's losses are the uninterrupted run's."""
    from training import train
    from test_training_helpers import train_losses

    config = {"model": str(base), "data_dir": str(lm_task), "method": "peft_pissa", "seq_len": 32, "batch_size": 8,
              "max_steps": 4, "log_every": 1, "threads": 1, "device": "cpu", "seed": 0, "lr": 5e-3,
              "checkpoint_every": 2}
    train(config, tmp_path / "whole")
    assert train(config, tmp_path / "split", stop_after_steps=2)["status"] == "interrupted"
    assert train(config, tmp_path / "split")["resumed_from_step"] == 2
    whole, split = train_losses(tmp_path / "whole"), train_losses(tmp_path / "split")
    assert [s for s, _, _ in split] == [1, 2, 3, 4]
    for (_, a, _), (_, b, _) in zip(whole, split):
        assert abs(a - b) < 1e-5
