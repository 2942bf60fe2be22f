"""ReLoRA (lora's `relora_every`): merge-and-reinit, the saved adapter, and the trainer's optimizer reset."""
from __future__ import annotations

import json

import pytest
import torch

import adapters
from adapters import lora
from conftest import tiny_llama
from test_pretrain import run, scratch, scratch_config  # noqa: F401  (scratch is a fixture)


def randomize_B(model, generator):
    """A trained-looking update: B is zero at init, so ΔW would be too."""
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            layer.lora_B.normal_(generator=generator)


def test_relora_every_zero_is_plain_lora():
    plain = adapters.apply(tiny_llama(), "lora", "all-linear", r=2)
    relora = adapters.apply(tiny_llama(), "lora", "all-linear", r=2, relora_every=3)
    formula = sum(2 * (layer.in_features + layer.out_features) for layer in adapters.adapted_modules(plain).values())
    assert adapters.num_trainable(plain) == adapters.num_trainable(relora) == formula  # the buffer is not trained
    assert adapters.adapter_info(plain)["options"]["relora_every"] == 0
    hooks = adapters.training_hooks(plain)
    assert all(hooks.after_optimizer_step(step) == {} for step in range(1, 10))
    saved = adapters.adapter_state_dict(plain)
    assert {k.rsplit(".", 1)[1] for k in saved} == {"lora_A", "lora_B"}
    assert not any(hasattr(layer, "relora_delta") for layer in adapters.adapted_modules(plain).values())


def test_merge_and_reinit_folds_each_cycle_into_the_base(tokens):
    model = adapters.apply(tiny_llama(), "lora", "all-linear", r=2, relora_every=2, dropout=0.0)
    layers = adapters.adapted_modules(model)
    W0 = {name: layer.base_layer.weight.detach().clone() for name, layer in layers.items()}
    merged = {name: torch.zeros_like(w) for name, w in W0.items()}
    hooks = adapters.training_hooks(model)
    g = torch.Generator().manual_seed(0)
    for cycle in range(3):
        randomize_B(model, g)
        for name, layer in layers.items():
            merged[name] += (layer.lora_B @ layer.lora_A).detach() * layer.scaling
        old_A = {name: layer.lora_A.detach().clone() for name, layer in layers.items()}
        before = model(tokens).logits.detach()
        assert hooks.after_optimizer_step(2 * cycle + 1) == {}
        assert hooks.after_optimizer_step(2 * cycle + 2) == {"reset_main_optimizer": True}
        torch.testing.assert_close(model(tokens).logits, before, rtol=1e-5, atol=1e-5)  # ΔW = 0 again ...
        for name, layer in layers.items():                                            # ... B = 0, A redrawn
            bound = layer.in_features ** -0.5
            assert torch.count_nonzero(layer.lora_B) == 0 and not torch.equal(layer.lora_A, old_A[name])
            assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.5 * bound
            torch.testing.assert_close(layer.relora_delta, merged[name])
            torch.testing.assert_close(layer.base_layer.weight, W0[name] + merged[name])
    # after k = 3 restarts plus a live update: a plain model with W0 + Σ ΔW_i + ΔW computes the same
    randomize_B(model, g)
    reference = tiny_llama()
    with torch.no_grad():
        for name, layer in layers.items():
            reference.get_submodule(name).weight.copy_(W0[name] + merged[name] + layer.delta_weight())
        torch.testing.assert_close(model(tokens).logits, reference(tokens).logits, rtol=1e-5, atol=1e-5)


def test_saved_adapter_rebuilds_the_model_on_a_fresh_base(tokens, tmp_path):
    model = adapters.apply(tiny_llama(), "lora", "all-linear", r=2, relora_every=1, dropout=0.0)
    hooks = adapters.training_hooks(model)
    g = torch.Generator().manual_seed(1)
    adapters.export_peft(model, tmp_path / "peft")  # nothing merged yet: still a rank-r LoRA
    for step in (1, 2):
        randomize_B(model, g)
        hooks.after_optimizer_step(step)
    randomize_B(model, g)
    expected = model(tokens).logits.detach()
    adapters.save(model, tmp_path / "adapter")
    rebuilt = adapters.load(tiny_llama(), tmp_path / "adapter")
    # equal up to fp32 round-off: the base adds the cycles one by one, a reload adds their sum
    torch.testing.assert_close(rebuilt(tokens).logits, expected, rtol=1e-5, atol=1e-5)
    assert all(torch.count_nonzero(layer.relora_delta) for layer in adapters.adapted_modules(rebuilt).values())
    with pytest.raises(ValueError, match=r"rank-r PEFT LoRA cannot carry; use adapters.export_merged"):
        adapters.export_peft(model, tmp_path / "peft2")


def test_new_A_depends_on_seed_and_step_not_on_the_global_rng():
    """DDP replicas' global RNGs drift apart (dropout); the restart must draw the same A on each."""
    def restart(seed, step, burn):
        model = adapters.apply(tiny_llama(), "lora", ["q_proj"], r=2, relora_every=1)
        torch.manual_seed(seed)  # the trainer's seed_everything
        torch.rand(burn)         # this replica's dropout masks
        lora.merge_and_reinit(model, step)
        return model.model.layers[0].self_attn.q_proj.lora_A.detach().clone()

    assert torch.equal(restart(0, 4, burn=1), restart(0, 4, burn=1000))
    assert not torch.equal(restart(0, 4, burn=1), restart(0, 8, burn=1))
    assert not torch.equal(restart(0, 4, burn=1), restart(1, 4, burn=1))


@pytest.mark.parametrize("method,options,match", [
    ("lora", {"relora_every": -2}, r"relora_every must be an integer ≥ 0 \(0 disables ReLoRA"),
    ("lora", {"relora_every": 2.5}, r"relora_every must be an integer ≥ 0"),
    ("milora", {"relora_every": 2}, r"option 'relora_every' belongs to method lora, not 'milora'"),
    ("sora", {"relora_every": 2}, r"option 'relora_every' belongs to method lora, not 'sora'"),
])
def test_bad_relora_every_is_an_error_naming_the_fix(method, options, match):
    with pytest.raises(ValueError, match=match):
        adapters.apply(tiny_llama(), method, "all-linear", r=2, **options)


def test_merging_a_merged_layer_is_refused():
    model = adapters.apply(tiny_llama(), "lora", ["q_proj"], r=2, relora_every=1)
    adapters.merge(model)
    with pytest.raises(ValueError, match="call adapters.unmerge first"):
        lora.merge_and_reinit(model, 1)


def test_twelve_step_run_resets_the_optimizer_every_four_steps(scratch, tmp_path, monkeypatch):  # noqa: F811
    asked = []
    original = lora.LoRAHooks.after_optimizer_step

    def spy(self, step):
        action = original(self, step)
        if action.get("reset_main_optimizer"):
            asked.append(step)
        return action

    monkeypatch.setattr(lora.LoRAHooks, "after_optimizer_step", spy)
    cfg = scratch_config(scratch, "lora", {"r": 4, "relora_every": 4})
    result, model, trainer = run(cfg, tmp_path)
    assert result["status"] == "ok" and result["steps"] == 12
    assert asked == [4, 8, 12]
    # the last restart (step 12) cleared the adapter's Adam state; the fully trained modules keep theirs
    names = {id(p): n for n, p in trainer.raw_model.named_parameters()}
    kept = [names[id(p)] for p in trainer.optimizer.state]
    assert kept and not any("lora_" in n for n in kept)
    assert all(n.split(".")[-2] in ("embed_tokens", "lm_head") or "norm" in n for n in kept)
    # each restart starts a new 2-step warmup on top of the linear decay (warmup 2 of 12 steps)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()
           if "lr" in json.loads(line)]
    expected = []
    for i in range(12):
        warm = min(1.0, (i - 4 * (i // 4) + 1) / 2)
        expected.append(cfg["lr"] * warm * (1.0 if i < 2 else 1 - (i - 2) / 10))
    assert lrs == pytest.approx(expected)
    deltas = [layer.relora_delta for layer in adapters.adapted_modules(model).values()]
    assert all(torch.count_nonzero(d) for d in deltas)
    plain, _, plain_trainer = run({**cfg, "method_options": {"r": 4}}, tmp_path / "plain")
    assert plain["trainable_params"] == result["trainable_params"] and plain_trainer.optimizer.state


def test_resumed_relora_run_equals_the_uninterrupted_one(scratch, tmp_path):  # noqa: F811
    """Killed after step 7 (checkpoint at 6, one restart behind it, the next at 8): the same run.

    Bitwise only with at most one restart before the checkpoint: a reload adds the cycles' sum to the
    base, the run added them one by one (fp32 round-off, as ReMoRA's)."""
    from training import train

    cfg = scratch_config(scratch, "lora", {"r": 4, "relora_every": 4}, checkpoint_every=6)
    train(cfg, tmp_path / "whole")
    assert train(cfg, tmp_path / "resumed", stop_after_steps=7)["status"] == "interrupted"
    assert train(cfg, tmp_path / "resumed")["resumed_from_step"] == 6

    def losses(out):
        return [e["loss"] for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in e]

    assert losses(tmp_path / "whole") == losses(tmp_path / "resumed")
