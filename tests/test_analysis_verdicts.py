"""analysis/verdicts.py: every claim can come out holds, does not hold and inconclusive, decided
from tidy tables built here with numbers whose differences and CIs are easy to follow."""
import json

from analysis import settings
from analysis.collect import to_frame
from analysis.settings import VerdictSettings
from analysis.collect import role_of
from analysis.verdicts import (claim_milora_init_and_forgetting, claim_mora_memorization, claim_mora_pretraining,
                               claim_multilora_flatter, claim_sora_prunes, claim_vera_close_to_lora, decide_claims, write_replication)
from test_analysis_data import row, series

S = VerdictSettings()


# --- claim 1: MoRA vs LoRA on UUID memorization -------------------------------------------------
def uuid_runs(mora, lora, mora_params=990, **mora_kw):
    return to_frame(series("uuid", "mora6", "char_acc", mora, role="mora", params=mora_params,
                           options={"r": 8, "mora_type": 6}, **mora_kw)
                    + series("uuid", "lora", "char_acc", lora))


def test_claim1_holds_does_not_hold_inconclusive():
    held = claim_mora_memorization(uuid_runs([0.90, 0.92, 0.91], [0.40, 0.42, 0.41]), S)
    assert held.verdict == "holds" and held.evidence[0]["A − B"] == "+50.000"
    assert held.evidence[0]["test"] == "Welch t"  # equal per-seed differences: no paired CI
    assert claim_mora_memorization(uuid_runs([0.40, 0.42, 0.41], [0.90, 0.92, 0.91]), S).verdict == "does not hold"
    single = claim_mora_memorization(uuid_runs([0.45], [0.41]), S)  # 4 points from one seed: not decisive
    assert single.verdict == "inconclusive" and single.evidence[0]["test"] == "none (n=1)"
    assert claim_mora_memorization(uuid_runs([0.55], [0.41]), S).verdict == "holds"  # 14 points ≥ 10


def test_claim1_needs_parameter_matched_runs_and_picks_the_papers_type():
    unmatched = claim_mora_memorization(uuid_runs([0.90, 0.92, 0.91], [0.40, 0.42, 0.41], mora_params=2000), S)
    assert unmatched.verdict == "inconclusive" and "not parameter-matched" in unmatched.notes[0]
    # at r = 8 the paper's MoRA is type 6: a poor type-1 variant at the same rank is not compared
    type6, type1 = {"r": 8, "mora_type": 6}, {"r": 8, "mora_type": 1}
    runs = to_frame(series("uuid", "mora6", "char_acc", [0.90, 0.92, 0.91], role="mora", options=type6)
                    + series("uuid", "mora1", "char_acc", [0.1, 0.1, 0.1], role="mora", options=type1)
                    + series("uuid", "lora", "char_acc", [0.40, 0.42, 0.41]))
    verdict = claim_mora_memorization(runs, S)
    assert verdict.verdict == "holds" and [e["setting"].split(":")[1].split()[0] for e in verdict.evidence] == ["mora6"]


def test_claim1_averages_the_curve_over_common_steps():
    rows = []
    for step, (m, l) in {10: (0.3, 0.1), 20: (0.6, 0.2), 30: (0.9, 0.4)}.items():
        for seed, jitter in enumerate((0.0, 0.01, 0.02)):
            rows += [row("uuid", "mora6", seed, "char_acc", m + jitter, role="mora", step=step, final=step == 30),
                     row("uuid", "lora", seed, "char_acc", l + jitter, step=step, final=step == 30)]
    # LoRA has no step 40: not part of the comparison
    rows += [row("uuid", "mora6", s, "char_acc", 0.0, role="mora", step=40, final=False) for s in range(3)]
    verdict = claim_mora_memorization(to_frame(rows), S)
    assert verdict.evidence[0]["setting"].endswith("steps 10, 20, 30")
    assert verdict.evidence[0]["A − B"] == f"{(0.6 - 0.7 / 3) * 100:+.3f}"


# --- claim 2: VeRA close to LoRA with 10x fewer parameters ----------------------------------------
def glue_runs(vera, lora, vera_params=50):
    return to_frame(series("sst2", "vera", "acc", vera, params=vera_params, r=256)
                    + series("sst2", "lora", "acc", lora))


def test_claim2_holds_does_not_hold_inconclusive():
    close = claim_vera_close_to_lora(glue_runs([0.80, 0.81, 0.82], [0.81, 0.82, 0.83]), S)
    # −1 point, Welch CI ±2.776·√(2/3) = ±2.27: above the −5 margin
    assert close.verdict == "holds" and close.evidence[0]["boundary"] == "-5.000"
    assert close.evidence[0]["params LoRA/VeRA"] == "20.0"
    far = claim_vera_close_to_lora(glue_runs([0.60, 0.61, 0.62], [0.81, 0.82, 0.83]), S)
    assert far.verdict == "does not hold"
    big = claim_vera_close_to_lora(glue_runs([0.80, 0.81, 0.82], [0.81, 0.82, 0.83], vera_params=200), S)
    assert big.verdict == "inconclusive" and "only 5.0× fewer" in big.notes[0]
    assert claim_vera_close_to_lora(to_frame([]), S).verdict == "inconclusive"


def test_claim2_margin_as_a_fraction_of_loras_score():
    runs = glue_runs([0.76, 0.77, 0.78], [0.81, 0.82, 0.83])  # −5 points; 5% of 82 = 4.1
    assert claim_vera_close_to_lora(runs, VerdictSettings(vera_margin_fraction=0.05)).verdict == "inconclusive"
    assert claim_vera_close_to_lora(runs, VerdictSettings(vera_margin_fraction=0.10)).verdict == "holds"


# --- claim 3: SoRA prunes ranks without losing to LoRA ----------------------------------------------
def sora_runs(final_rank, sora, lora, lora_r=8):
    rows = series("sst2", "sora", "acc", sora) + series("sst2", "lora", "acc", lora, r=lora_r)
    for seed in range(len(sora)):
        rows += [row("sst2", "sora", seed, "live_rank_start", 16.0),
                 row("sst2", "sora", seed, "live_rank_final", final_rank)]
    return to_frame(rows)


def test_claim3_holds_does_not_hold_inconclusive():
    held = claim_sora_prunes(sora_runs(9.0, [0.82, 0.83, 0.84], [0.81, 0.82, 0.83]), S)
    assert held.verdict == "holds" and held.evidence[0]["start → end"].startswith("sst2 seed 0: 16 → 9")
    kept = claim_sora_prunes(sora_runs(16.0, [0.82, 0.83, 0.84], [0.81, 0.82, 0.83]), S)
    assert kept.verdict == "does not hold" and kept.evidence[0]["verdict"] == "does not hold"
    worse = claim_sora_prunes(sora_runs(9.0, [0.70, 0.71, 0.72], [0.81, 0.82, 0.83]), S)
    assert worse.verdict == "does not hold" and worse.evidence[1]["verdict"] == "does not hold"
    other_rank = claim_sora_prunes(sora_runs(9.0, [0.82, 0.83, 0.84], [0.81, 0.82, 0.83], lora_r=4), S)
    assert other_rank.verdict == "inconclusive" and "no LoRA run at SoRA's start rank r=8" in other_rank.notes[0]


# --- claim 4: MiLoRA unchanged at init, forgets less than PiSSA -------------------------------------
def milora_runs(init_change, milora_ppl, pissa_ppl):
    kw = {"task": "cpt_general", "train_task": "cpt_domain"}
    rows = [row("cpt_domain", "milora", s, "init_output_change", init_change, source=settings.INIT_SOURCE)
            for s in range(3)] if init_change is not None else []
    rows += [row(seed=s, variant="milora", metric="word_perplexity", value=v, **kw) for s, v in enumerate(milora_ppl)]
    rows += [row(seed=s, variant="pissa", metric="word_perplexity", value=v, **kw) for s, v in enumerate(pissa_ppl)]
    return to_frame(rows)


def test_claim4_holds_does_not_hold_inconclusive():
    held = claim_milora_init_and_forgetting(milora_runs(1e-7, [20.0, 21.0, 22.5], [30.0, 31.0, 33.0]), S)
    assert held.verdict == "holds" and held.evidence[0]["max relative change"] == "1.00e-07"
    assert held.evidence[1]["unit"] == "log-ratio" and held.evidence[1]["verdict"] == "holds"
    changed = claim_milora_init_and_forgetting(milora_runs(0.5, [20.0, 21.0, 22.5], [30.0, 31.0, 33.0]), S)
    assert changed.verdict == "does not hold" and changed.evidence[0]["verdict"] == "does not hold"
    forgets_more = claim_milora_init_and_forgetting(milora_runs(1e-7, [30.0, 31.0, 33.0], [20.0, 21.0, 22.5]), S)
    assert forgets_more.verdict == "does not hold"
    unmeasured = claim_milora_init_and_forgetting(milora_runs(None, [20.0, 21.0, 22.5], [30.0, 31.0, 33.0]), S)
    assert unmeasured.verdict == "inconclusive" and "no MiLoRA run has a recorded output change" in unmeasured.notes[0]


# --- claim 5: MultiLoRA's spectrum is flatter --------------------------------------------------------
def spectrum_runs(multi, lora):
    kw = {"source": settings.SPECTRUM_SOURCE}
    return to_frame(series("sst2", "multilora", "effective_rank", multi, **kw)
                    + series("sst2", "lora", "effective_rank", lora, **kw))


def test_claim5_holds_does_not_hold_inconclusive():
    assert claim_multilora_flatter(spectrum_runs([6.0, 6.2, 5.9], [2.0, 2.1, 1.9]), S).verdict == "holds"
    assert claim_multilora_flatter(spectrum_runs([2.0, 2.1, 1.9], [6.0, 6.2, 5.9]), S).verdict == "does not hold"
    close = claim_multilora_flatter(spectrum_runs([2.1], [2.0]), S)  # log(2.1/2) = 0.049 < 0.1
    assert close.verdict == "inconclusive" and close.evidence[0]["A − B"] == "+0.049"
    assert claim_multilora_flatter(spectrum_runs([3.0], [2.0]), S).verdict == "holds"  # log 1.5 = 0.405


# --- claim 6: MoRA Table 3, pretraining from scratch ----------------------------------------------
def pretrain_runs(ppl: dict):
    rows = []
    for variant, values in ppl.items():
        rows += series("cpt_scratch", variant, "token_perplexity", values, role=variant)
    return to_frame(rows)


def test_claim6_holds_does_not_hold_inconclusive():
    held = claim_mora_pretraining(pretrain_runs({"mora": [20.0, 20.5, 19.8], "lora": [30.0, 30.4, 29.9],
                                                 "remora": [18.0, 18.2, 17.9], "relora": [28.0, 28.5, 27.7]}), S)
    assert held.verdict == "holds"
    assert [e["setting"] for e in held.evidence] == ["mora vs lora", "remora vs relora", "remora vs mora"]
    # log(30/20) = 0.405 on the first pair
    assert held.evidence[0]["A − B"] == f"{sum(map(__import__('math').log, (30.0 / 20.0, 30.4 / 20.5, 29.9 / 19.8))) / 3:+.3f}"
    worse = claim_mora_pretraining(pretrain_runs({"mora": [30.0, 30.4, 29.9], "lora": [20.0, 20.5, 19.8]}), S)
    assert worse.verdict == "does not hold" and len(worse.evidence) == 1  # pairs that did not run are skipped
    close = claim_mora_pretraining(pretrain_runs({"mora": [20.0], "lora": [21.0]}), S)  # log 1.05 < 0.1, n = 1
    assert close.verdict == "inconclusive"
    none = claim_mora_pretraining(pretrain_runs({"lora": [20.0]}), S)
    assert none.verdict == "inconclusive" and "task_variants" in none.notes[0]


def test_restart_variants_have_their_own_role():
    assert role_of("mora", {"mora_type": 1, "remora_every": 50}) == "remora"
    assert role_of("mora", {"mora_type": 1, "remora_every": 0}) == "mora"
    assert role_of("lora", {"r": 8, "relora_every": 50}) == "relora"
    assert role_of("milora", {"init": "principal"}) == "pissa"


def test_replication_files(tmp_path):
    runs = to_frame(uuid_runs([0.90, 0.92, 0.91], [0.40, 0.42, 0.41]).to_dict("records")
                    + spectrum_runs([2.0, 2.1, 1.9], [6.0, 6.2, 5.9]).to_dict("records"))
    verdicts = decide_claims(runs)
    assert [v.verdict for v in verdicts] == ["holds", "inconclusive", "inconclusive", "inconclusive", "does not hold",
                                             "inconclusive"]
    md_path, json_path = write_replication(verdicts, tmp_path, "tiny")
    md = md_path.read_text()
    assert "| 1 | MoRA beats LoRA" in md and "**Verdict: does not hold**" in md and "## How verdicts are decided" in md
    data = json.loads(json_path.read_text())
    assert data["profile"] == "tiny" and [c["verdict"] for c in data["claims"]][0] == "holds"
    assert data["settings"]["decisive"] == {"points": 10.0, "log_ratio": 0.1}
