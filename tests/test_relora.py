"""ReLoRA (lora's `relora_every`): merge-and-reinit, the saved adapter, and the trainer's optimizer reset."""
from __future__ import annotations

import json

import pytest
import torch

import adapters
from adapters import lora
from conftest import tiny_llama
from test_pretrain import interrupted_and_whole, run, scratch, scratch_config  # noqa: F401  (scratch is a fixture)


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
    # the official callback's restarts (warmup 2 of 12 steps, restart warmup 50): after a reset at step
    # r the first step keeps the old rate ρ, then ρ·j/50 (the warmup outlasts the 4-step cycles)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()
           if "lr" in json.loads(line)]
    rho4 = 1 - 2 / 10
    rho8 = rho4 * 4 / 50     # the rate step 8 would have had: j = 4 steps into the restart warmup
    expected = [0.5, 1.0, 1.0, 1 - 1 / 10, rho4, rho4 / 50, rho4 * 2 / 50, rho4 * 3 / 50,
                rho8, rho8 / 50, rho8 * 2 / 50, rho8 * 3 / 50]
    assert lrs == pytest.approx([cfg["lr"] * f for f in expected])
    deltas = [layer.relora_delta for layer in adapters.adapted_modules(model).values()]
    assert all(torch.count_nonzero(d) for d in deltas)
    plain, _, plain_trainer = run({**cfg, "method_options": {"r": 4}}, tmp_path / "plain")
    assert plain["trainable_params"] == result["trainable_params"] and plain_trainer.optimizer.state


def test_resumed_relora_run_equals_the_uninterrupted_one(scratch, tmp_path):  # noqa: F811
    """Killed after step 7 (checkpoint at 6, one restart behind it, the next at 8): the same run.

    Bitwise only with at most one restart before the checkpoint: a reload adds the cycles' sum to the
    base, the run added them one by one (fp32 round-off, as ReMoRA's)."""
    cfg = scratch_config(scratch, "lora", {"r": 4, "relora_every": 4}, checkpoint_every=6)
    whole, resumed = interrupted_and_whole(cfg, tmp_path, stop_after=7, checkpoint=6)
    assert whole == resumed


# --- the lr schedule around restarts, against the official code --------------------------------------
# kongds/MoRA @ de5df312cee84e86508aa0e3c9a2fc271487c2e9 train.py ResetReloraCallback (is_pretrain) on
# transformers 4.37.2's get_{cosine,linear}_schedule_with_warmup, driven in the HF Trainer's order
# (optimizer.step, lr_scheduler.step, global_step += 1, on_step_end); the lr of every step.
CALLBACK_COSINE_T24_W4_EVERY8_RW3 = [
    0.0, 0.25, 0.5, 0.75, 1.0, 0.9938441702975689, 0.9755282581475768, 0.9455032620941839, 0.9045084971874737,
    0.30150283239582454, 0.6030056647916491, 0.9045084971874737, 0.8913668106619933, 0.8527054981383259,
    0.790771414572194, 0.7091639437792271, 0.6126258153308257, 0.20420860511027522, 0.40841721022055044,
    0.6126258153308257, 0.554125255563136, 0.40096880173042954, 0.2116570136003962, 0.05850055976768978]
CALLBACK_LINEAR_T20_W2_EVERY6_RW2 = [
    0.0, 0.5, 1.0, 0.9444444444444444, 0.8888888888888888, 0.8333333333333334, 0.7777777777777778,
    0.3888888888888889, 0.7777777777777778, 0.7129629629629629, 0.6481481481481481, 0.5833333333333334,
    0.5185185185185185, 0.25925925925925924, 0.5185185185185185, 0.43209876543209874, 0.345679012345679,
    0.25925925925925924, 0.1728395061728395, 0.08641975308641975]
# Guitaricet/relora @ 176f37633fe02019835387258ddabcf6d91e328d peft_pretraining/training_utils.py,
# get_scheculer("cosine_restarts", min_lr_ratio 0.1) (kongds/MoRA's training_utils.py has the same)
RELORA_T24_W4_EVERY8_RW3_MIN01 = [
    0.0, 0.25, 0.5, 0.75, 1.0, 0.994459753267812, 0.9779754323328191, 0.9509529358847655, 0.0,
    0.2514319082942653, 0.5028638165885306, 0.7542957248827961, 0.6890576474687263, 0.6203955092681039, 0.55,
    0.47960449073189604, 0.0, 0.0772673161553512, 0.1545346323107024, 0.23180194846605365, 0.18594235253127372,
    0.1490470641152345, 0.12202456766718092, 0.10554024673218806]


def schedule_factors(total, every, **cfg):
    from training.config import TrainConfig
    from training.optim import LRSchedule

    schedule = LRSchedule(TrainConfig(model="m", data_dir="d", method=None, **cfg), total_steps=total)
    factors = []
    for i in range(total):
        factors.append(schedule.factor(i))
        if (i + 1) % every == 0:
            schedule.restart(i + 1)   # the trainer, when the hooks ask for a reset after step i + 1
    return factors


@pytest.mark.parametrize("official,total,every,cfg", [
    (CALLBACK_COSINE_T24_W4_EVERY8_RW3, 24, 8, dict(schedule="cosine", warmup_steps=4, restart_warmup_steps=3)),
    (CALLBACK_LINEAR_T20_W2_EVERY6_RW2, 20, 6, dict(schedule="linear", warmup_steps=2, restart_warmup_steps=2)),
    (RELORA_T24_W4_EVERY8_RW3_MIN01, 24, 8, dict(schedule="cosine", warmup_steps=4, restart_warmup_steps=3,
                                                  restart_schedule="relora", min_lr_ratio=0.1)),
], ids=["mora-callback-cosine", "mora-callback-linear", "relora-jagged"])
def test_restart_schedule_matches_the_official_lr_at_every_step(official, total, every, cfg):
    ours = schedule_factors(total, every, **cfg)
    w = cfg["warmup_steps"]
    # the first warmup: transformers' runs i/w from a zero-lr step, ours (i + 1)/w; the same afterwards
    assert ours[:w] == pytest.approx(official[1:w + 1], rel=1e-12)
    assert ours[w:] == pytest.approx(official[w:], rel=1e-12)


def test_restart_schedule_mean_lr_in_the_paper_setting():
    """MoRA Table 3: 10k steps, warmup 1000, restart every 2000; official callback's mean lr/lr0 0.6174
    (restart warmup 50; 0.6087 with 1000); the no-restart cosine's 0.5."""
    mean = lambda **kw: sum(schedule_factors(10000, 2000, schedule="cosine", warmup_steps=1000, **kw)) / 10000
    assert mean(restart_warmup_steps=50) == pytest.approx(0.6174024201523145, abs=1e-4)
    assert mean(restart_warmup_steps=1000) == pytest.approx(0.6087156879484944, abs=1e-4)
