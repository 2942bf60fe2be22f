"""The official recipes of issue 20 against numbers from the official code (run in a scratch script
outside the suite, pasted here):

1. ReLoRA's optimizer reset — Guitaricet/relora @ 176f37633fe02019835387258ddabcf6d91e328d
   peft_pretraining/training_utils.py (magnitude_pruning_, random_pruning_, optimizer_reset,
   get_cosine_schedule_with_multiple_warmups) in torchrun_main.py's order: optimizer.step(),
   scheduler.step(), update_step += 1, merge-and-reinit and optimizer reset when
   update_step % relora == 1 (after step kT + 1). Its default reset (`--reset_optimizer_on_relora
   True`) is random_pruning_ at 0.999, `--optimizer_magnitude_pruning r` the magnitude one; both
   zero exp_avg and exp_avg_sq in place and keep the step count. The toy's model and its merge (the
   redrawn A's) are lorabench's on both sides; torch 2.13.0 (CPU).
   The MoRA paper's ReLoRA and ReMoRA rows (Table 3) ran on kongds/MoRA @ de5df312cee84e86508aa0e3c9a2fc271487c2e9
   train.py ResetReloraCallback instead (the Adam state deleted, merge after step kT): the trainer's
   default, `optimizer_reset: delete` (tests/test_relora.py).
2. MiLoRA's init on a half-precision base — sufenlp/MiLoRA @ 4740756d5d74700527d799a8d4a0c40dc9e92235
   svd_init.py initialize_lora_layer(p.data.float(), r, "min") and `base.weight.data -= delta`, on
   a fixed 6×10 bfloat16 / float16 weight: A, B are float32.
3. UUID training text — kongds/MoRA issue #18 (the authors' data code, comment of 2024-09-03):
   tokenizer(key + ':' + value), labels = input_ids: the tokenizer's bos, no eos.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import adapters
from adapters import lora
from training.config import TrainConfig
from training.optim import LRSchedule
from training.trainer import magnitude_threshold, reset_optimizer_state
from test_pretrain import run, scratch, scratch_config  # noqa: F401  (scratch is a fixture)

# --- numbers from the official code -------------------------------------------------------------
OFFICIAL_MAGNITUDE = {"mag_0.999_exp_avg": {"n": 2, "first": [337, 393], "sum": 8.03149700164795}, "mag_0.999_exp_avg_sq": {"n": 2, "first": [885, 1016], "sum": 0.0019984631799161434}, "mag_0.9_exp_avg": {"n": 200, "first": [7, 17, 23, 45, 59], "sum": 30.327564239501953}, "mag_0.9_exp_avg_sq": {"n": 200, "first": [9, 26, 31, 43, 56], "sum": 0.17844651639461517}}
OFFICIAL_RANDOM_SEED5_KEPT = [1291, 1500]
OFFICIAL_TOY_LRS = [0.0, 0.003333333333333333, 0.006666666666666666, 0.01, 0.009969572609838743, 0.009878701917609208, 0.009728616793536588, 0.009521346881455355, 0.009259695151358214, 0.0089471999940354, 0.0, 0.0038750000000000004, 0.007750000000000001, 0.0072823589471762065, 0.006790614547199907, 0.006281416799501187, 0.005761651730097141, 0.00523834826990286, 0.004718583200498814, 0.0042093854528000955, 0.0, 0.0014063931686687317, 0.0028127863373374634, 0.0024119126295906995, 0.0020528000059645995, 0.0017403048486417869, 0.0014786531185446454, 0.0012713832064634126, 0.001121298082390793, 0.0010304273901612566]
OFFICIAL_TOY_MAGNITUDE = {"probe": [3.90321683883667, -0.8954125642776489, 5.835287094116211, -2.6562719345092773], "loss12": 0.902144730091095, "loss13": 31.32940673828125, "loss30": 9.694656372070312}
OFFICIAL_TOY_RANDOM = {"probe": [-0.17992080748081207, -0.03422102332115173, 0.08907142281532288, -0.24212974309921265], "loss12": 0.902144730091095, "loss13": 1.232112169265747, "loss30": 0.8872119188308716}
OFFICIAL_MILORA_BF16 = {"A": [[0.1359846591949463, -0.06818784028291702, -0.0922202318906784, -0.03625474125146866, -0.0913231298327446, -0.18244627118110657, -0.23999308049678802, 0.06401684135198593, 0.08545560389757156, -0.23393821716308594], [-0.1279408484697342, -0.03542446717619896, -0.07251015305519104, 0.07047830522060394, 0.1323883831501007, 0.03702562674880028, -0.052097395062446594, 0.1639045923948288, -0.047866519540548325, -0.04612686485052109]], "B": [[0.011147899553179741, 0.02792949415743351], [-0.003539398545399308, -0.13614849746227264], [-0.004323474131524563, 0.13818712532520294], [0.04759858921170235, -0.1934100091457367], [-0.40433600544929504, 0.008715074509382248], [0.18000780045986176, 0.06963074952363968]], "residual": [[-0.11083984375, -0.11328125, -0.02197265625, -0.044921875, 0.08251953125, 0.0703125, -0.02734375, -0.216796875, 0.03271484375, -0.1220703125], [0.0179443359375, 0.0257568359375, 0.00176239013671875, 0.1328125, 0.1298828125, -0.0203857421875, -0.1435546875, -0.1474609375, 0.050537109375, 0.072265625], [0.078125, -0.150390625, -0.0245361328125, 0.17578125, 0.056396484375, -0.064453125, -0.01116943359375, -0.004058837890625, 0.1455078125, 0.1630859375], [0.0634765625, -0.087890625, -0.07080078125, 0.0185546875, -0.0194091796875, 0.040771484375, 0.04541015625, 0.039794921875, 0.050537109375, 0.04638671875], [0.0458984375, 0.0517578125, -0.0654296875, -0.010009765625, 0.021240234375, 0.080078125, -0.0458984375, -0.03466796875, -0.02197265625, -0.0023956298828125], [0.09521484375, 0.1435546875, -0.1279296875, -0.017822265625, 0.0517578125, 0.1630859375, -0.1162109375, -0.07763671875, -0.06005859375, -0.004730224609375]]}
OFFICIAL_MILORA_FP16 = {"A": [[0.13170422613620758, -0.058027949184179306, -0.08200664073228836, -0.03213784098625183, -0.08869088441133499, -0.19207966327667236, -0.24547560513019562, 0.06331700831651688, 0.0822715237736702, -0.23263423144817352], [-0.12779583036899567, -0.035840343683958054, -0.07233268767595291, 0.06943043321371078, 0.13218596577644348, 0.03694888576865196, -0.05281010642647743, 0.16390644013881683, -0.04808514565229416, -0.045076314359903336]], "B": [[0.004485836252570152, 0.027841486036777496], [0.006935651879757643, -0.13601569831371307], [-0.008672472089529037, 0.13785436749458313], [0.03430734574794769, -0.19318729639053345], [-0.4077678620815277, 0.00871162861585617], [0.1754751354455948, 0.06949169188737869]], "residual": [[-0.109619140625, -0.11395263671875, -0.022674560546875, -0.045196533203125, 0.08160400390625, 0.06903076171875, -0.0290374755859375, -0.2164306640625, 0.033203125, -0.1240234375], [0.0167083740234375, 0.026336669921875, 0.002716064453125, 0.1334228515625, 0.1302490234375, -0.01837158203125, -0.1407470703125, -0.147705078125, 0.049560546875, 0.0748291015625], [0.07861328125, -0.151123046875, -0.0248870849609375, 0.1754150390625, 0.0560302734375, -0.0653076171875, -0.01218414306640625, -0.0037059783935546875, 0.146240234375, 0.162841796875], [0.06536865234375, -0.08929443359375, -0.072509765625, 0.017669677734375, -0.0206756591796875, 0.03857421875, 0.042205810546875, 0.040740966796875, 0.051971435546875, 0.04339599609375], [0.044586181640625, 0.055877685546875, -0.061767578125, -0.00846099853515625, 0.0220947265625, 0.07550048828125, -0.048919677734375, -0.03472900390625, -0.02294921875, -0.0024871826171875], [0.09686279296875, 0.1417236328125, -0.130126953125, -0.0185699462890625, 0.050933837890625, 0.1636962890625, -0.1162109375, -0.07745361328125, -0.05908203125, -0.00600433349609375]]}
# the UUID pair uuid_pairs(40, 0)[0] through a BPE tokenizer trained on the 40 pairs (it adds bos 1, eos is 2)
OFFICIAL_UUID_IDS = [1, 69, 20, 23, 67, 26, 24, 271, 15, 70, 27, 262, 15, 284, 24, 21, 15, 27, 27, 24, 70, 15, 267,
                     291, 71, 71, 27, 72, 271, 21, 25, 28, 26, 67, 19, 25, 72, 68, 25, 24, 15, 20, 67, 20, 23, 15, 265,
                     21, 72, 15, 26, 71, 20, 67, 15, 18, 72, 68, 27, 69, 24, 289, 71, 70, 22, 69]


# --- 1. ReLoRA's optimizer reset ----------------------------------------------------------------
def moments():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(40, 50, generator=g)
    return m, torch.rand(40, 50, generator=g) ** 2 * 1e-3


def prune(tensors: dict, how: str, ratio: float, generator=None) -> dict:
    """Our reset on an Adam state holding `tensors` (copies), as the trainer calls it."""
    p = nn.Parameter(torch.zeros(40, 50))
    opt = torch.optim.AdamW([p])
    opt.state[p] = {"step": torch.tensor(7.0), **{k: v.clone() for k, v in tensors.items()}}
    reset_optimizer_state(opt, [p], how, ratio, generator)
    return opt.state[p]


@pytest.mark.parametrize("ratio", [0.999, 0.9])
def test_magnitude_pruning_keeps_what_the_official_function_keeps(ratio):
    m, v = moments()
    state = prune({"exp_avg": m, "exp_avg_sq": v}, "prune_magnitude", ratio)
    assert state["step"].item() == 7.0   # the step count stays
    for name in ("exp_avg", "exp_avg_sq"):
        official = OFFICIAL_MAGNITUDE[f"mag_{ratio}_{name}"]
        kept = state[name].flatten().nonzero().flatten().tolist()
        assert len(kept) == official["n"] and kept[:5] == official["first"]
        assert state[name].sum().item() == pytest.approx(official["sum"], rel=1e-6)


def test_magnitude_threshold_beyond_torch_quantile_limit_is_the_same_quantile():
    t = torch.randn(3000)
    assert magnitude_threshold(t, 0.999) == torch.quantile(t.abs(), 0.999)
    big = torch.randn(2 ** 24 + 3, generator=torch.Generator().manual_seed(1))
    k = 0.999 * (big.numel() - 1)
    ordered = big.abs().sort().values
    expected = ordered[int(k)] + (k - int(k)) * (ordered[int(k) + 1] - ordered[int(k)])
    assert magnitude_threshold(big, 0.999).item() == pytest.approx(expected.item(), rel=1e-6)


def test_random_pruning_draws_as_the_official_function_given_the_same_stream():
    m, v = moments()
    state = prune({"exp_avg": m}, "prune_random", 0.999, torch.Generator().manual_seed(5))
    assert state["exp_avg"].flatten().nonzero().flatten().tolist() == OFFICIAL_RANDOM_SEED5_KEPT
    assert torch.equal(state["exp_avg"].flatten()[OFFICIAL_RANDOM_SEED5_KEPT], m.flatten()[OFFICIAL_RANDOM_SEED5_KEPT])


def test_delete_drops_the_state_and_its_step_count():
    m, v = moments()
    p = nn.Parameter(torch.zeros(40, 50))
    opt = torch.optim.AdamW([p])
    opt.state[p] = {"step": torch.tensor(7.0), "exp_avg": m, "exp_avg_sq": v}
    reset_optimizer_state(opt, [p], "delete", 0.999)
    assert p not in opt.state


def toy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    return adapters.apply(model, "lora", ["0", "2"], r=2, alpha=4, dropout=0.0, relora_every=10, relora_offset=1)


def batch(s):
    g = torch.Generator().manual_seed(100 + s)
    return torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)


@pytest.mark.parametrize("how,official", [("prune_magnitude", OFFICIAL_TOY_MAGNITUDE),
                                          ("prune_random", OFFICIAL_TOY_RANDOM)], ids=["magnitude", "random"])
def test_thirty_step_toy_relora_matches_the_official_loop(how, official):
    """30 steps, reset every 10, the trainer's order: lr from LRSchedule (restart_schedule relora),
    step, the hooks (relora_offset 1: the cycle restarts after step kT, the merge and reset after
    kT + 1), our reset. The official run's random pruning drew from torch.manual_seed(1000 + step)."""
    model = toy()
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    for group in opt.param_groups:
        group["base_lr"] = 1e-2
    cfg = TrainConfig(model="m", data_dir="d", method=None, schedule="cosine", warmup_steps=3, warmup_start="hf",
                      restart_warmup_steps=2, restart_schedule="relora", min_lr_ratio=0.1)
    schedule, hooks = LRSchedule(cfg, 30), adapters.training_hooks(model)
    lrs, losses, resets = [], [], []
    for s in range(30):
        lrs.append(1e-2 * schedule.apply(s, opt))
        x, y = batch(s)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        action = hooks.after_optimizer_step(s + 1)
        opt.zero_grad()
        if action.get("reset_main_optimizer"):
            resets.append(s + 1)
            reset_optimizer_state(opt, params, how, 0.999, torch.Generator().manual_seed(1000 + s + 1))
        if action.get("restart_schedule", action.get("reset_main_optimizer")):
            schedule.restart(s + 1)
    assert resets == [11, 21]
    assert lrs == pytest.approx(OFFICIAL_TOY_LRS, rel=1e-12, abs=1e-15)
    assert [losses[11], losses[12], losses[29]] == pytest.approx(
        [official["loss12"], official["loss13"], official["loss30"]], rel=1e-4)
    probe = model(torch.linspace(-1, 1, 8)[None]).detach().flatten()
    torch.testing.assert_close(probe, torch.tensor(official["probe"]), rtol=1e-4, atol=1e-5)
    assert all(opt.state[p]["step"].item() == 30 for p in params)   # pruning kept the step count


def test_first_step_after_a_pruned_reset_at_adam_step_2000_is_2_94_times_a_fresh_one():
    """Pruning keeps Adam's step count: its bias correction is ≈ 1, the pruned moments 0, so the next
    update is 0.1/√(0.001/(1 − 0.999^2001)) ≈ 2.94 lr per entry instead of a fresh Adam's lr."""
    def first_update(how):
        p = nn.Parameter(torch.zeros(1000))
        opt = torch.optim.AdamW([p], lr=1.0, weight_decay=0.0)
        g = torch.Generator().manual_seed(0)
        for _ in range(2000):
            p.grad = torch.randn(1000, generator=g)
            opt.step()
        reset_optimizer_state(opt, [p], how, 0.999, torch.Generator().manual_seed(0))
        before = p.detach().clone()
        p.grad = torch.randn(1000, generator=g)
        opt.step()
        return (p.detach() - before).abs().median().item()

    ratio = first_update("prune_random") / first_update("delete")
    assert ratio == pytest.approx(0.1 / (0.001 / (1 - 0.999 ** 2001)) ** 0.5, rel=1e-3)
    assert ratio == pytest.approx(2.94, abs=0.005)


def test_trainer_runs_the_official_relora_recipe(scratch, tmp_path, monkeypatch):  # noqa: F811
    """Guitaricet/relora's recipe through the trainer: restart_schedule relora, relora_offset 1,
    prune_random 0.999: merges after steps 5 and 9 (every 4), steps 4 and 8 (0-based) at lr 0, the
    adapter's Adam step count never restarts."""
    merged = []
    original = lora.merge_and_reinit
    monkeypatch.setattr(lora, "merge_and_reinit", lambda model, step: merged.append(step) or original(model, step))
    cfg = scratch_config(scratch, "lora", {"r": 4, "relora_every": 4, "relora_offset": 1}, restart_schedule="relora",
                         restart_warmup_steps=2, optimizer_reset="prune_random", warmup_start="hf")
    result, _, trainer = run(cfg, tmp_path)
    assert result["status"] == "ok" and merged == [5, 9]
    lrs = [e["lr"] for e in map(json.loads, (tmp_path / "train_log.jsonl").read_text().splitlines()) if "lr" in e]
    assert lrs[0] == lrs[4] == lrs[8] == 0.0 and lrs[5] > 0 and lrs[9] > 0
    names = {id(p): n for n, p in trainer.raw_model.named_parameters()}
    steps = {names[id(p)]: s["step"].item() for p, s in trainer.optimizer.state.items()}
    assert steps and all(s == 12 for n, s in steps.items() if "lora_" in n)


# --- 2. MiLoRA on a half-precision base -----------------------------------------------------------
@pytest.mark.parametrize("dtype,official", [(torch.bfloat16, OFFICIAL_MILORA_BF16), (torch.float16, OFFICIAL_MILORA_FP16)],
                         ids=["bf16", "fp16"])
def test_milora_factors_are_the_official_float32_ones_on_a_half_base(dtype, official):
    g = torch.Generator().manual_seed(0)
    weight = (torch.randn(6, 10, generator=g) * 0.1).to(dtype)
    layer = nn.Linear(10, 6, bias=False, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
    model = adapters.apply(nn.Sequential(layer), "milora", ["0"], r=2, alpha=2, dropout=0.0, init="minor")
    adapted = adapters.adapted_modules(model)["0"]
    assert adapted.lora_A.dtype == adapted.lora_B.dtype == adapted.lora_A0.dtype == torch.float32
    assert adapted.base_layer.weight.dtype == dtype
    torch.testing.assert_close(adapted.lora_A.detach(), torch.tensor(official["A"]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(adapted.lora_B.detach(), torch.tensor(official["B"]), rtol=1e-5, atol=1e-6)
    # the residual base: the official fp32 W0 − B A rounded once to the half dtype; ours rounds the
    # float64 difference (at most one ulp apart, where the fp32 product sits next to a midpoint)
    ours, theirs = adapted.base_layer.weight.float(), torch.tensor(official["residual"])
    ulp = torch.finfo(dtype).eps * theirs.abs().clamp_min(torch.finfo(dtype).tiny)
    assert ((ours - theirs).abs() <= ulp).all() and (ours == theirs).float().mean() > 0.9
    x = torch.randn(3, 10, generator=g).to(dtype)
    assert model(x).dtype == dtype   # the sum comes back in the base's dtype
    adapters.merge(model)
    assert adapted.base_layer.weight.dtype == dtype


# --- 3. UUID training text -----------------------------------------------------------------------
def test_uuid_training_example_is_the_official_one_with_add_eos_false():
    from tasks.memorization import pair_record, uuid_pairs
    from training.base_model import train_tokenizer
    from training.data import IGNORE, encode_causal

    pairs = uuid_pairs(40, 0)
    tok = train_tokenizer([k + ":" + v for k, v in pairs], 300)
    record = pair_record(*pairs[0])
    [official] = encode_causal([record], tok, 96, "auto", add_eos=False)
    assert official["input_ids"] == OFFICIAL_UUID_IDS
    # labels = input_ids: every token after the bos is a target (the bos's own label never enters the loss)
    assert official["labels"][0] == IGNORE and official["labels"][1:] == OFFICIAL_UUID_IDS[1:]
    [ours] = encode_causal([record], tok, 96, "auto")   # add_eos true: the tiny/replication/real profiles'
    assert ours["input_ids"] == OFFICIAL_UUID_IDS + [tok.eos_token_id]
    assert TrainConfig(model="m", data_dir="d", method=None).add_eos is True
