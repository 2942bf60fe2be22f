"""The training recipes of the official code, as the paper profiles run them, against its numbers.

References (numbers computed with torch 2.13 on CPU, pasted below):
- transformers 5.23.0 (this project's): get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup,
  stepped in the HF Trainer's order (the lr of a step is the one before scheduler.step()).
- transformers 4.37.2: its legacy AdamW (transformers.optimization.AdamW, correct_bias=True; the same
  step as the 4.14.1 the SoRA repository pins) and get_linear_schedule_with_warmup.
- TsinghuaC3I/SoRA @ c275ac237b68b888a918cf9dad36d3827e46f616: run_glue.py (the main scheduler from
  src/util.py create_optimizer_and_scheduler over int(num_train_epochs * (len(train) / train_batch_size))
  steps, warmup TrainingArguments.get_warmup_steps = ⌈ratio · total⌉; the gates' own
  get_linear_schedule_with_warmup with warmup int(epochs · (len(train) / batch) · ratio)) and
  src/trainer.py (max_steps = ⌈epochs · batches per epoch⌉), run under transformers 4.37.2.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml

from adapters import sora
from training import TrainConfig
from training.optim import HFLegacyAdamW, LRSchedule, make_optimizer, param_groups
from training.trainer import Trainer
from test_pretrain import interrupted_and_whole, scratch, scratch_config  # noqa: F401  (scratch is a fixture)
from test_relora import (CALLBACK_COSINE_T24_W4_EVERY8_RW3, CALLBACK_LINEAR_T20_W2_EVERY6_RW2,
                         RELORA_T24_W4_EVERY8_RW3_MIN01, schedule_factors)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(model="m", data_dir="d", method=None, **kw)


# --- 1. the first warmup ------------------------------------------------------------------------------
# transformers 5.23.0, lr 1: get_linear_schedule_with_warmup(4, 20), get_cosine_schedule_with_warmup(5, 24)
# (5 = TrainingArguments' ⌈0.2 · 24⌉), get_linear_schedule_with_warmup(0, 10)
HF_LINEAR_T20_W4 = [0.0, 0.25, 0.5, 0.75, 1.0, 0.9375, 0.875, 0.8125, 0.75, 0.6875, 0.625, 0.5625, 0.5, 0.4375,
                    0.375, 0.3125, 0.25, 0.1875, 0.125, 0.0625]
HF_COSINE_T24_W5 = [
    0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.9931806517013612, 0.9729086208503173, 0.9397368756032445, 0.8945702546981968,
    0.8386407858128706, 0.7734740790612136, 0.7008477123264848, 0.6227427435703996, 0.5412896727361662,
    0.4587103272638339, 0.37725725642960045, 0.29915228767351537, 0.22652592093878665, 0.16135921418712956,
    0.10542974530180327, 0.06026312439675552, 0.02709137914968268, 0.006819348298638839]
HF_LINEAR_T10_W0 = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


@pytest.mark.parametrize("official,total,keys", [
    (HF_LINEAR_T20_W4, 20, dict(schedule="linear", warmup_steps=4)),
    (HF_COSINE_T24_W5, 24, dict(schedule="cosine", warmup_ratio=0.2)),
    (HF_LINEAR_T10_W0, 10, dict(schedule="linear")),
], ids=["linear", "cosine-ratio", "no-warmup"])
def test_hf_warmup_is_transformers_schedule_at_every_step(official, total, keys):
    hf = LRSchedule(cfg(warmup_start="hf", **keys), total)
    assert [hf.factor(i) for i in range(total)] == pytest.approx(official, rel=1e-12, abs=0)
    ahead = LRSchedule(cfg(**keys), total)           # TrainConfig's default: one step ahead in the warmup
    assert cfg(**keys).warmup_start == "one_ahead"
    w = ahead.warmup
    assert [ahead.factor(i) for i in range(total)] == pytest.approx(official[1:w + 1] + official[w:], rel=1e-12)


@pytest.mark.parametrize("official,total,every,keys", [
    (CALLBACK_COSINE_T24_W4_EVERY8_RW3, 24, 8, dict(schedule="cosine", warmup_steps=4, restart_warmup_steps=3)),
    (CALLBACK_LINEAR_T20_W2_EVERY6_RW2, 20, 6, dict(schedule="linear", warmup_steps=2, restart_warmup_steps=2)),
    (RELORA_T24_W4_EVERY8_RW3_MIN01, 24, 8, dict(schedule="cosine", warmup_steps=4, restart_warmup_steps=3,
                                                  restart_schedule="relora", min_lr_ratio=0.1)),
], ids=["mora-callback-cosine", "mora-callback-linear", "relora-jagged"])
def test_restarts_with_hf_warmup_match_the_official_at_every_step_first_warmup_included(official, total, every, keys):
    """tests/test_relora.py's official lrs (kongds/MoRA de5df31, Guitaricet/relora 176f376): with
    warmup_start hf the first warmup agrees too, not only what follows it."""
    assert schedule_factors(total, every, warmup_start="hf", **keys) == pytest.approx(official, rel=1e-12, abs=1e-15)


# --- 2. the legacy AdamW ------------------------------------------------------------------------------
# transformers 4.37.2 AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8), groups [W: weight decay 0.1, b: 0],
# get_linear_schedule_with_warmup(3, 37), 40 steps (the last 3 at lr 0) of the regression in `mini_run`.
LEGACY = {
    torch.float64: ([-0.22561157096713533, -0.08939898168062711, -0.07535468960981637, -0.18980739761188015,
                     -0.16539261848881723, 0.01026358492691792, 0.00982583184076186, 0.04901764185246676,
                     0.06468073348836065, 0.18277944147041644, 0.08490008173396872, 0.10593042349602491,
                     0.17832537925241235, 0.23873314114517666, 0.3132701733325117],
                    [-0.0034409078556742606, -0.03487342866763895, 0.029498128424516774]),
    torch.float32: ([-0.2256116420030594, -0.08939902484416962, -0.07535472512245178, -0.18980737030506134,
                     -0.16539260745048523, 0.01026357524096966, 0.00982583593577147, 0.04901764169335365,
                     0.06468076258897781, 0.1827794462442398, 0.0849001333117485, 0.1059303805232048,
                     0.17832539975643158, 0.23873314261436462, 0.31327024102211],
                    [-0.0034408853389322758, -0.03487345576286316, 0.029498141258955002]),
}


def mini_run(dtype, optimizer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """y ≈ x Wᵀ + b on 16 fixed rows in 4 mini-batches, 40 steps, lr on the hf linear schedule."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(16, 3, generator=g, dtype=torch.float64).to(dtype)
    w = torch.nn.Parameter((torch.arange(15, dtype=torch.float64).view(3, 5) / 20 - 0.3).to(dtype))
    b = torch.nn.Parameter(torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64).to(dtype))
    config = cfg(lr=1e-2, weight_decay=0.1, warmup_steps=3, warmup_start="hf", optimizer=optimizer)
    groups = param_groups(config, [("w", w), ("b", b)], [])       # decay on the matrix only
    opt = make_optimizer(config, groups)
    schedule = LRSchedule(config, 37)
    for s in range(40):
        k = s % 4
        loss = ((x[4 * k:4 * k + 4] @ w.T + b - y[4 * k:4 * k + 4]) ** 2).mean()
        loss.backward()
        schedule.apply(s, opt)
        opt.step()
        opt.zero_grad()
    return w.detach().flatten(), b.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_legacy_adamw_is_transformers_4_adamw_over_40_steps(dtype):
    w, b = mini_run(dtype, "adamw_hf_legacy")
    official_w, official_b = (torch.tensor(v, dtype=dtype) for v in LEGACY[dtype])
    torch.testing.assert_close(w, official_w, rtol=0, atol=1e-7 if dtype == torch.float32 else 1e-12)
    torch.testing.assert_close(b, official_b, rtol=0, atol=1e-7 if dtype == torch.float32 else 1e-12)
    # torch.optim.AdamW on the same run lands 9e-5 away (ε after the bias correction, decay first)
    w_torch, _ = mini_run(dtype, "adamw_torch")
    assert 5e-5 < (w_torch - official_w).abs().max().item() < 2e-4


def test_optimizer_option_picks_the_class():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    groups = param_groups(cfg(), [("w", p)], [])
    assert type(make_optimizer(cfg(), groups)) is torch.optim.AdamW
    assert type(make_optimizer(cfg(optimizer="adamw_hf_legacy"), groups)) is HFLegacyAdamW
    with pytest.raises(ValueError, match="optimizer must be one of adamw_torch, adamw_hf_legacy"):
        cfg(optimizer="adamw")
    with pytest.raises(ValueError, match="warmup_start must be one of hf, one_ahead"):
        cfg(warmup_start="zero")
    with pytest.raises(ValueError, match="schedule_total must be one of run, epochs_floor"):
        cfg(schedule_total="epochs")


# --- 3. SoRA's schedules: run_glue.py's, 37 examples, batch 8, 8 epochs, warmup ratio 0.06, lr 1e-3 ----
# int(8 · 37/8) = 37 schedule steps of the ⌈8 · ⌈37/8⌉⌉ = 40 the Trainer runs; main warmup ⌈0.06 · 37⌉ = 3,
# the gates' int(8 · 37/8 · 0.06) = 2. (At the official GLUE sizes: RTE 3890 of 3900 steps, warmups 234 and
# 233; STS-B 14372 of 14380, warmups 863 and 862.)
OFFICIAL_MAIN_LRS = [
    0.0, 0.0003333333333333333, 0.0006666666666666666, 0.001, 0.0009705882352941176, 0.0009411764705882353,
    0.0009117647058823529, 0.0008823529411764706, 0.0008529411764705882, 0.0008235294117647058,
    0.0007941176470588235, 0.0007647058823529411, 0.0007352941176470589, 0.0007058823529411765,
    0.0006764705882352942, 0.0006470588235294118, 0.0006176470588235294, 0.0005882352941176471,
    0.0005588235294117647, 0.0005294117647058824, 0.0005, 0.00047058823529411766, 0.0004411764705882353,
    0.0004117647058823529, 0.00038235294117647055, 0.00035294117647058826, 0.0003235294117647059,
    0.00029411764705882356, 0.0002647058823529412, 0.00023529411764705883, 0.00020588235294117645,
    0.00017647058823529413, 0.00014705882352941178, 0.00011764705882352942, 8.823529411764706e-05,
    5.882352941176471e-05, 2.9411764705882354e-05, 0.0, 0.0, 0.0]
OFFICIAL_GATE_LRS = [
    0.0, 0.0005, 0.001, 0.0009714285714285714, 0.0009428571428571429, 0.0009142857142857143,
    0.0008857142857142857, 0.0008571428571428571, 0.0008285714285714286, 0.0008, 0.0007714285714285715,
    0.0007428571428571429, 0.0007142857142857143, 0.0006857142857142857, 0.0006571428571428571,
    0.0006285714285714285, 0.0006, 0.0005714285714285714, 0.0005428571428571428, 0.0005142857142857142,
    0.0004857142857142857, 0.00045714285714285713, 0.00042857142857142855, 0.0004, 0.00037142857142857143,
    0.00034285714285714285, 0.00031428571428571427, 0.0002857142857142857, 0.0002571428571428571,
    0.00022857142857142857, 0.0002, 0.00017142857142857143, 0.00014285714285714284, 0.00011428571428571428,
    8.571428571428571e-05, 5.714285714285714e-05, 2.857142857142857e-05, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def data37(scratch, tmp_path_factory):  # noqa: F811
    """37 unpacked training rows of the scratch task (a partial last batch of 5 at batch 8)."""
    root = tmp_path_factory.mktemp("data37")
    lines = (scratch / "data" / "train.jsonl").read_text().splitlines()
    (root / "train.jsonl").write_text("\n".join(lines[:37]) + "\n")
    (root / "validation.jsonl").write_text((scratch / "data" / "validation.jsonl").read_text())
    return root


def sora_recipe(scratch, data37, **overrides) -> dict:  # noqa: F811
    return scratch_config(scratch, "sora", {"r": 4, "gate_schedule": "official"}, data_dir=str(data37),
                          pack=False, max_steps=None, epochs=8, warmup_steps=0, warmup_ratio=0.06, lr=1e-3,
                          warmup_start="hf", schedule_total="epochs_floor", optimizer="adamw_hf_legacy",
                          **overrides)


def test_sora_paper_recipe_runs_the_official_main_and_gate_lrs_at_every_step(scratch, data37, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    gate_lrs = []
    original = sora.GateAdam.step

    def spy(self, closure=None):
        gate_lrs.append(self.param_groups[0]["lr"])
        return original(self, closure)

    monkeypatch.setattr(sora.GateAdam, "step", spy)
    trainer = Trainer(TrainConfig.from_dict(sora_recipe(scratch, data37)), tmp_path)
    assert type(trainer.optimizer) is HFLegacyAdamW
    result = trainer.run()
    assert result["status"] == "ok" and result["steps"] == 40
    lrs = [e["lr"] for e in map(json.loads, (tmp_path / "train_log.jsonl").read_text().splitlines()) if "lr" in e]
    assert lrs == pytest.approx(OFFICIAL_MAIN_LRS, rel=1e-12, abs=1e-18)
    assert gate_lrs == pytest.approx(OFFICIAL_GATE_LRS, rel=1e-12, abs=1e-18)


def test_sora_paper_recipe_resumes_to_the_same_run(scratch, data37, tmp_path):  # noqa: F811
    config = sora_recipe(scratch, data37, checkpoint_every=20)
    whole, resumed = interrupted_and_whole(config, tmp_path, stop_after=25, checkpoint=20)
    assert whole == resumed


# --- the profiles ---------------------------------------------------------------------------------------
def validated(*configfiles: str) -> dict:
    from snakemake.utils import update_config, validate

    from workflow.profile import ROOT, resolve_profile

    config = {}
    for name in configfiles:
        update_config(config, yaml.safe_load((ROOT / name).read_text()))
    config = resolve_profile(copy.deepcopy(config), configfiles)
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.mark.parametrize("files", [(), ("config/config.yaml",), ("config/replication.yaml",), ("config/real.yaml",),
                                   ("config/real_forgetting.yaml",)],
                         ids=["default", "tiny", "replication", "real", "real_forgetting"])
def test_published_profiles_keep_the_one_ahead_warmup_and_torch_adamw(files):
    train = validated(*files)["train"]
    assert train["warmup_start"] == "one_ahead"
    assert "optimizer" not in train and "schedule_total" not in train    # TrainConfig's: adamw_torch, run


@pytest.mark.parametrize("profile", ["milora", "mora", "multilora", "vera", "vera_e2e"])
def test_paper_profiles_take_the_hf_warmup_from_the_schema(profile):
    assert validated(f"config/paper/{profile}.yaml")["train"]["warmup_start"] == "hf"


def test_sora_paper_profile_runs_the_official_recipe():
    config = validated("config/paper/sora.yaml")
    assert {k: config["train"][k] for k in ("warmup_start", "schedule_total", "optimizer")} == {
        "warmup_start": "hf", "schedule_total": "epochs_floor", "optimizer": "adamw_hf_legacy"}
    soras = {name: v for name, v in config["define_variants"].items() if v["method"] == "sora"}
    assert len(soras) == 4 and all(v["options"]["gate_schedule"] == "official" for v in soras.values())
