"""SoRA's gate optimisation against numbers from the official code.

Reference: TsinghuaC3I/SoRA @ c275ac237b68b888a918cf9dad36d3827e46f616 — src/sparse_optimizer.py
(SparseAdamW: the gate steps, the masked threshold, _build_lambda_list) and src/trainer.py
(compute_loss: the L1 term) — run with torch 2.13 and transformers 4.37.2 (its AdamW base class and
get_linear_schedule_with_warmup; the same AdamW as the 4.14.1 the SoRA repository pins).
The main optimizer (transformers' legacy AdamW) and run_glue.py's schedules: tests/test_official_recipes.py.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import adapters
from adapters import sora
from adapters._registry import resolve_options
from training.config import TrainConfig
from training.optim import LRSchedule
from test_pretrain import run, scratch, scratch_config  # noqa: F401  (scratch is a fixture)

# Gates, and the fixed gradient of step s (0-based): C_i (1 + s/10), sign flipped on odd s for odd i.
G0 = [0.5, -0.2, 1e-3, -4e-4, 2e-4, 0.05, -0.9, 0.0]
C = [1e-5, -2e-3, 3e-2, 1e-4, -5e-6, 0.1, -1.0, 0.0]
XI = 3e-4


def grad(s: int) -> torch.Tensor:
    return torch.tensor([c * (1 + 0.1 * s) * (-1) ** (s * (i % 2)) for i, c in enumerate(C)])


# SparseAdamW(sparse_lambda=3e-4, lr=1e-3) under get_linear_schedule_with_warmup(warmup 0, total 10)
OFFICIAL_ONE_STEP = [0.49945974349975586, -0.19871556758880615, 0.0, -0.0008597468840889633, 0.0,
                     0.04870031401515007, -0.8986999988555908, 0.0]
OFFICIAL_TEN_STEPS = [0.4947790801525116, -0.19576478004455566, -0.001845796126872301, 0.0, 0.0,
                      0.04574798792600632, -0.8914522528648376, 0.0]
# the same with warmup 3 of 12 steps: the lrs transformers' schedule gave, then the gates
OFFICIAL_WARMUP_LRS = [0.0, 1e-3 / 3, 2e-3 / 3, 1e-3] + [1e-3 * (12 - s) / 9 for s in range(4, 10)]
OFFICIAL_WARMUP_TEN_STEPS = [0.4942742586135864, -0.19669945538043976, -0.0030149691738188267, 0.0, 0.0,
                             0.04669753834605217, -0.891249418258667, 0.0]


def one_gate_module(values) -> tuple[nn.Module, sora.SoRAHooks]:
    model = nn.ModuleDict({"proj": nn.Linear(8, 8)})
    adapters.apply(model, "sora", ["proj"], r=len(values), xi=XI, xi_max=XI, gate_lr=None)
    with torch.no_grad():
        model["proj"].sora_gate.copy_(torch.tensor(values))
    return model, adapters.training_hooks(model)


@pytest.mark.parametrize("steps,expected", [(1, OFFICIAL_ONE_STEP), (10, OFFICIAL_TEN_STEPS)])
def test_gate_steps_on_the_run_schedule_match_official_sparse_adamw(steps, expected):
    model, hooks = one_gate_module(G0)
    hooks.begin_training(10)
    gate_optimizers = hooks.scheduled_optimizers(1e-3)   # gate_lr null: the run's lr, on its schedule
    schedule = LRSchedule(TrainConfig(model="m", data_dir="d", method=None, lr=1e-3), total_steps=10)
    for s in range(steps):
        model["proj"].sora_gate.grad = grad(s)
        schedule.apply(s, *gate_optimizers)
        hooks.after_optimizer_step(s + 1)
    torch.testing.assert_close(model["proj"].sora_gate.detach(), torch.tensor(expected), rtol=0, atol=1e-9)


def test_ten_gate_steps_through_a_warmup_match_official():
    """The official warmup starts at lr 0: so does ours with warmup_start hf (the paper profiles')."""
    model, hooks = one_gate_module(G0)
    [gate_optimizer] = hooks.scheduled_optimizers(1e-3)
    schedule = LRSchedule(TrainConfig(model="m", data_dir="d", method=None, lr=1e-3, warmup_steps=3,
                                      warmup_start="hf"), total_steps=12)
    for s, lr in enumerate(OFFICIAL_WARMUP_LRS):
        model["proj"].sora_gate.grad = grad(s)
        schedule.apply(s, gate_optimizer)
        assert gate_optimizer.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12, abs=0)
        hooks.after_optimizer_step(s + 1)
    torch.testing.assert_close(model["proj"].sora_gate.detach(), torch.tensor(OFFICIAL_WARMUP_TEN_STEPS),
                               rtol=0, atol=1e-9)


def test_gate_epsilon_goes_where_the_official_puts_it():
    g = nn.Parameter(torch.zeros(1))
    g.grad = torch.tensor([1e-5])
    sora.GateAdam([g], lr=1e-3, eps=1e-6).step()
    assert g.item() == pytest.approx(-0.00024025306629482657, rel=1e-6)   # official first step
    h = nn.Parameter(torch.zeros(1))
    h.grad = torch.tensor([1e-5])
    torch.optim.Adam([h], lr=1e-3, eps=1e-8).step()
    assert h.item() == pytest.approx(-9.99e-4, rel=1e-3)                  # torch's Adam: 4x the step
    with pytest.raises(ValueError, match="SoRA gate lr unset: set the option gate_lr"):
        sora.GateAdam([g], lr=None).step()


def test_reference_threshold_is_the_official_masked_sequence():
    xi = 3e-4
    g = torch.tensor([0.5, 5e-4, -7e-4, 3e-4, -3e-4, 6.5e-4, 1e-4])
    sora.soft_threshold_(g, xi)                             # default: reference
    torch.testing.assert_close(g, torch.tensor([0.5 - xi, 0.0, -7e-4 + xi, 3e-4, -3e-4, 6.5e-4 - xi, 0.0]),
                               rtol=0, atol=1e-9)           # |g| = ξ exactly survives, as the official ops leave it
    t = torch.tensor([0.5, 5e-4, -7e-4, 1e-4])
    sora.soft_threshold_(t, xi, mode="textbook")
    torch.testing.assert_close(t, torch.tensor([0.5 - xi, 5e-4 - xi, -7e-4 + xi, 0.0]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind,xi,xi_max,n,expected", [
    ("linear", 1e-4, 1e-2, 4, [0.0001, 0.0034000000000000002, 0.006700000000000001, 0.01]),
    ("log_linear", 1e-4, 1e-2, 4, [0.0001, 0.003410901949254279, 0.006710877991449757, 0.009999999999999893]),
    ("exp_linear", 1e-4, 1e-2, 4, [0.0001, 0.0004641588833612784, 0.0021544346900318864, 0.010000000000000004]),
    # scripts/run_glue_sora_schedule_dense.sh: sparse_lambda_2 0 → max_lambda 7e-4 in 7 values
    ("linear", 0.0, 7e-4, 7, [0.0, 0.00011666666666666667, 0.00023333333333333333, 0.00035,
                              0.00046666666666666666, 0.0005833333333333333, 0.0007]),
    ("log_linear", 0.0, 7e-4, 7, [0.0, 0.00011670069973785277, 0.0002333877820115384, 0.0003500612499986504,
                                  0.00046672110687589216, 0.0005833673558181897, 0.0007000000000000238]),
])
def test_xi_schedules_have_the_official_names_and_values(kind, xi, xi_max, n, expected):
    options = resolve_options("sora", dict(xi=xi, xi_max=xi_max, xi_schedule=kind, xi_rounds=n, round_steps=1))
    assert sora.xi_values(options) == pytest.approx(expected, rel=1e-12, abs=0)
    in_run = resolve_options("sora", dict(xi=xi, xi_max=xi_max, xi_schedule=kind, xi_rounds=n, round_mode="in_run"))
    assert [sora.xi_at(s, 10 * n, in_run) for s in (1, 10, 11, 10 * n)] == pytest.approx(
        [expected[0], expected[0], expected[1], expected[-1]], rel=1e-12)
    assert {sora.xi_at(s, 10 * n, options) for s in range(1, 10 * n + 1)} == {xi}   # official: ξ0 all run
    with pytest.raises(ValueError, match="exp_linear needs xi > 0"):
        resolve_options("sora", dict(xi=0.0, xi_max=1e-3, xi_schedule="exp_linear", xi_rounds=3, round_steps=1))
    with pytest.raises(ValueError, match="round_mode official with xi_rounds > 1 needs round_steps ≥ 1"):
        resolve_options("sora", dict(xi_schedule=kind, xi_rounds=3))


def test_later_rounds_after_the_run_match_official_rounds_at_lr_zero():
    """run_glue.py's schedule: rounds 2, 3 reuse the finished schedulers (lr 0); 4 steps each here."""
    start = [0.05, -0.031, 0.02, 0.5, -0.07, 0.011, 0.0, -0.2]
    official = [0.0, 0.0, 0.0, 0.3799999952316284, 0.0, 0.0, 0.0, -0.07999999821186066]  # after round 3
    official_round2_live = 5
    model = nn.ModuleDict({"proj": nn.Linear(8, 8)})
    adapters.apply(model, "sora", ["proj"], r=8, xi=0.0, xi_max=0.02, xi_schedule="linear", xi_rounds=3,
                   round_steps=4, gate_lr=1e-3)
    with torch.no_grad():
        model["proj"].sora_gate.copy_(torch.tensor(start))
    hooks = adapters.training_hooks(model)
    hooks.begin_training(1)
    hooks.after_optimizer_step(1)    # no gradient: the run's own step leaves the gates; ξ0 = 0
    torch.testing.assert_close(model["proj"].sora_gate.detach(), torch.tensor(official), rtol=0, atol=1e-9)
    assert hooks.log_stats()["rounds"] == [{"xi": 0.01, "live_rank_total": official_round2_live},
                                           {"xi": 0.02, "live_rank_total": 2}]


def test_l1_term_is_the_official_global_mean_over_modules():
    """6 modules of 8 gates (sizes differ): λ Σ|g| / 48, not λ Σ_modules mean_module |g| (6x)."""
    model = nn.ModuleDict({f"m{k}": nn.Linear(8 + k, 16 - k) for k in range(6)})
    adapters.apply(model, "sora", [f"m{k}" for k in range(6)], r=8, l1_lambda=10.0)
    with torch.no_grad():
        for k in range(6):
            model[f"m{k}"].sora_gate.copy_(torch.tensor([(k + 1) * math.sin(i + 3 * k) / 4 for i in range(8)]))
    penalty = adapters.training_hooks(model).loss_penalty()
    assert penalty.item() == pytest.approx(5.156068325042725, rel=1e-6)   # official compute_loss, λ = 10


def test_paper_param_count_subtracts_two_hidden_per_zero_gate():
    model = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 12), "head": nn.Linear(4, 2)})
    adapters.apply(model, "sora", ["a", "b"], r=4, modules_to_save=["head"])
    with torch.no_grad():
        model["a"].sora_gate[:1] = 0.0
        model["b"].sora_gate[:3] = 0.0
    exact = sora.param_counts(model)
    assert exact == {"initial": 4 * (9 + 17), "retained": 3 * 9 + 1 * 17}
    # A, B of both layers + the head (10 weights and biases), minus 4 zero gates × 2 × 4
    assert sora.paper_param_count(model, hidden_size=4) == 4 * 8 + 4 * 16 + 10 - 4 * 2 * 4


def test_trainer_runs_the_gates_on_the_main_schedule_and_clips_them(scratch, tmp_path, monkeypatch):  # noqa: F811
    import training.trainer as trainer_module
    gate_lrs, clipped = [], []
    original_step, original_clip = sora.GateAdam.step, torch.nn.utils.clip_grad_norm_

    def spy_step(self, closure=None):
        gate_lrs.append(self.param_groups[0]["lr"])
        return original_step(self, closure)

    def spy_clip(params, max_norm, *args, **kwargs):
        params = list(params)
        clipped.append({id(p) for p in params})
        return original_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(sora.GateAdam, "step", spy_step)
    monkeypatch.setattr(trainer_module.torch.nn.utils, "clip_grad_norm_", spy_clip)
    cfg = scratch_config(scratch, "sora", {"r": 4}, max_steps=6, max_grad_norm=0.1)
    result, model, trainer = run(cfg, tmp_path)
    assert result["status"] == "ok"
    lrs = [e["lr"] for e in map(json.loads, (tmp_path / "train_log.jsonl").read_text().splitlines()) if "lr" in e]
    assert gate_lrs == pytest.approx(lrs) and len(lrs) == 6      # gate lr = main lr, warmup and decay
    gates = {id(g) for g in sora.gate_parameters(model)}
    assert len(clipped) == 6 and all(gates <= ids for ids in clipped)
