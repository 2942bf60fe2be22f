"""The five claims of docs/papers.md, decided from the tidy results table (issue #6).

    verdicts = decide_claims(runs)                          # list[Verdict]
    write_replication(verdicts, "results/tiny", "tiny")     # replication.md + replication.json

Every comparison puts the two methods' per-seed numbers on one scale where larger is better:
percentage points for fractions (×100) and BLEU, the log of the value for everything else (negated
when lower is better, e.g. perplexity), so 0.1 means "about 10% better". The difference A − B gets
a 95% CI from a paired t-test when both sides have ≥ 2 common seeds, else from Welch's t-test.
A claim "A − B > boundary" (boundary 0: superiority; −margin: non-inferiority) then
- holds when the whole CI lies above the boundary, does not hold when it lies below, else is
  inconclusive;
- with one seed on a side (or no spread at all) there is no CI: it holds / does not hold only when
  the estimate clears the boundary by the decisive distance (VerdictSettings.decisive: 10 points,
  or 0.1 in log ratio), else it is inconclusive.
A claim made of several comparisons (ranks, tasks, parts) holds when all hold and does not hold
when any does not (stats.combine). Settings that cannot test a claim (no runs, runs not
parameter-matched, VeRA not 10× smaller) make that comparison inconclusive, with a note.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import settings
from .files import write_json, write_text
from .render import to_markdown
from .settings import VerdictSettings
from .stats import combine, decide, difference, format_summary, summarize
from .values import metric_values, primary_values

STATEMENTS = {
    1: "MoRA beats LoRA on UUID memorization at equal trainable parameters (MoRA Table 2's shape).",
    2: "VeRA comes close to LoRA with an order of magnitude fewer trainable parameters.",
    3: "SoRA ends with fewer non-zero ranks than it started with, at no loss against LoRA of the start rank.",
    4: "MiLoRA leaves the model's output unchanged at init, and forgets less than PiSSA-style (principal) init.",
    5: "MultiLoRA's ΔW has a flatter normalised singular spectrum than LoRA's.",
    6: "Pretraining from scratch (MoRA Table 3): MoRA reaches lower perplexity than LoRA, and ReMoRA lower "
       "than ReLoRA.",
}
# Claim 6 is not one of docs/papers.md's five; it is the pretraining comparison of MoRA's Table 3.
# Its pairs, (A, B) = A should reach lower perplexity than B; a pair missing from the run is skipped.
PRETRAIN_PAIRS = (("mora", "lora"), ("remora", "relora"), ("remora", "mora"))


@dataclass
class Verdict:
    claim: int
    statement: str
    verdict: str
    rule: str
    evidence: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _num(x: float, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:+.{digits}f}"


def compare(setting: str, a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], metric: str,
            higher_is_better: bool, boundary: float, s: VerdictSettings) -> dict:
    """One evidence row: A and B across seeds, A − B on the comparison scale, its CI, the verdict."""
    unit = settings.comparison_unit(metric)
    diff = difference(settings.to_comparison_scale(a["value"], metric, higher_is_better),
                      settings.to_comparison_scale(b["value"], metric, higher_is_better),
                      [int(x) for x in a["seed"]], [int(x) for x in b["seed"]], s.confidence)
    scale = settings.display_scale(metric)
    return {"setting": setting, "metric": metric,
            names[0]: format_summary(summarize(a["value"] * scale, s.confidence)),
            names[1]: format_summary(summarize(b["value"] * scale, s.confidence)),
            "A − B": _num(diff.estimate),
            "95% CI": f"[{_num(diff.low)}, {_num(diff.high)}]" if diff.has_ci else "none",
            "unit": unit, "test": diff.test, "p": "—" if math.isnan(diff.p_value) else f"{diff.p_value:.3g}",
            "boundary": _num(boundary), "verdict": decide(diff, boundary, s.decisive.on(unit))}


def _options(frame: pd.DataFrame) -> pd.Series:
    return frame["options"].map(lambda text: json.loads(text) if isinstance(text, str) and text else {})


def _mean_params(frame: pd.DataFrame) -> float:
    return float(frame.drop_duplicates(["train_task", "variant", "seed"])["trainable_params"].mean())


# --- claim 1 -----------------------------------------------------------------------------------
def claim_mora_memorization(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    rule = ("Per run, character accuracy averaged over the evaluation steps both methods have "
            "(eval_step<N>.json and the final eval); MoRA − LoRA > 0 at each rank both ran, with MoRA's "
            f"type as the paper's (type {s.mora_type_small_rank} below r = {s.large_rank_from}, type "
            f"{s.mora_type_large_rank} from there) when present; runs parameter-matched within "
            f"{s.param_match_tolerance:.0%}.")
    verdict = Verdict(1, STATEMENTS[1], "inconclusive", rule)
    rows = runs[runs["task"].eq(settings.MEMORIZATION_TASK) & runs["metric_id"].eq(settings.MEMORIZATION_METRIC)
                & runs["status"].eq("ok") & runs["step"].notna()]
    rows = rows.drop_duplicates(["variant", "seed", "step"])
    lora, mora = rows[rows["role"].eq("lora")], rows[rows["role"].eq("mora")]
    mora = mora.assign(mora_type=_options(mora).map(lambda o: o.get("mora_type")))
    ranks = sorted(set(lora["r"].dropna()) & set(mora["r"].dropna()))
    if not ranks:
        verdict.notes.append(f"no {settings.MEMORIZATION_TASK} runs of both LoRA and MoRA at a common rank")
        return verdict
    parts = []
    for r in ranks:
        lora_r, mora_r = lora[lora["r"].eq(r)], mora[mora["r"].eq(r)]
        wanted = s.mora_type_large_rank if r >= s.large_rank_from else s.mora_type_small_rank
        if mora_r["mora_type"].eq(wanted).any():
            mora_r = mora_r[mora_r["mora_type"].eq(wanted)]
        else:
            verdict.notes.append(f"r={r}: no MoRA type {wanted} run; compared {sorted(mora_r['variant'].unique())}")
        for variant, mine in mora_r.groupby("variant"):
            steps = sorted(set(mine["step"]) & set(lora_r["step"]))
            a = mine[mine["step"].isin(steps)].groupby("seed")["value"].mean().reset_index()
            b = lora_r[lora_r["step"].isin(steps)].groupby("seed")["value"].mean().reset_index()
            row = compare(f"r={r}: {variant} vs lora, steps {', '.join(str(int(x)) for x in steps)}", a, b,
                          ("MoRA", "LoRA"), settings.MEMORIZATION_METRIC, True, 0.0, s)
            ratio = _mean_params(mine) / _mean_params(lora_r)
            row["params MoRA/LoRA"] = f"{ratio:.3f}"
            if abs(ratio - 1) > s.param_match_tolerance:
                row["verdict"] = "inconclusive"
                verdict.notes.append(f"r={r}: {variant} has {ratio:.2f}× LoRA's parameters: not parameter-matched")
            verdict.evidence.append(row)
            parts.append(row["verdict"])
    verdict.verdict = combine(parts)
    return verdict


# --- claims 2, 3(b): non-inferiority of a method against LoRA -------------------------------------
def _margin(tolerance, fraction: float | None, lora_values: pd.Series, metric: str) -> float:
    unit = settings.comparison_unit(metric)
    if fraction is not None and unit == "points":
        return fraction * abs(lora_values.mean() * settings.display_scale(metric))
    return tolerance.on(unit)


def _tasks_with(runs: pd.DataFrame, role_a: str, role_b: str) -> list[str]:
    done = runs[runs["status"].eq("ok")]
    tasks_of = lambda role: set(done.loc[done["role"].eq(role), "train_task"])  # noqa: E731
    return sorted(tasks_of(role_a) & tasks_of(role_b))


def claim_vera_close_to_lora(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    margin_text = (f"{s.vera_margin_fraction:.0%} of LoRA's score" if s.vera_margin_fraction is not None
                   else f"{s.vera_margin.points:g} points (log ratio {s.vera_margin.log_ratio:.3f})")
    rule = (f"Per task, the headline metric: VeRA − LoRA > −margin, margin = {margin_text} (non-inferiority), "
            f"and LoRA/VeRA trainable parameters ≥ {s.vera_min_param_ratio:g}; every task and LoRA rank must hold.")
    verdict = Verdict(2, STATEMENTS[2], "inconclusive", rule)
    parts = []
    for task in _tasks_with(runs, "vera", "lora"):
        values = primary_values(runs, task)
        vera = values[values["role"].eq("vera")]
        for r, lora in values[values["role"].eq("lora")].groupby("r", dropna=False):
            if vera.empty or lora.empty:
                continue
            metric, hib = vera["metric"].iloc[0], bool(vera["higher_is_better"].iloc[0])
            margin = _margin(s.vera_margin, s.vera_margin_fraction, lora["value"], metric)
            row = compare(f"{task} vs lora r={r}", vera, lora, ("VeRA", "LoRA"), metric, hib, -margin, s)
            ratio = lora["trainable_params"].mean() / vera["trainable_params"].mean()
            row["params LoRA/VeRA"] = f"{ratio:.1f}"
            if ratio < s.vera_min_param_ratio:
                row["verdict"] = "inconclusive"
                verdict.notes.append(f"{task}, LoRA r={r}: VeRA has only {ratio:.1f}× fewer parameters than "
                                     f"LoRA (the claim needs ≥ {s.vera_min_param_ratio:g}×): this setting "
                                     "does not test it")
            verdict.evidence.append(row)
            parts.append(row["verdict"])
    if not parts:
        verdict.notes.append("no task with successful runs of both VeRA and LoRA")
    verdict.verdict = combine(parts)
    return verdict


def claim_sora_prunes(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    rule = ("(a) in every SoRA run the live rank (non-zero gates summed over modules) at the end is below "
            "the start rank r_max × modules; (b) per task, SoRA − LoRA(r = SoRA's r_max) > −margin "
            f"({s.sora_margin.points:g} points, log ratio {s.sora_margin.log_ratio:.3f}) on the headline metric.")
    verdict = Verdict(3, STATEMENTS[3], "inconclusive", rule)
    sora = runs[runs["role"].eq("sora") & runs["status"].eq("ok") & runs["source"].eq(settings.TRAIN_SOURCE)]
    ranks = sora.pivot_table(index=["train_task", "seed"], columns="metric", values="value", aggfunc="first")
    parts = []
    if {"live_rank_start", "live_rank_final"} <= set(ranks.columns):
        ranks = ranks.dropna(subset=["live_rank_start", "live_rank_final"])
        shrank = ranks["live_rank_final"] < ranks["live_rank_start"]
        part = "holds" if shrank.all() else "does not hold" if not shrank.any() else "inconclusive"
        part = part if len(ranks) else "inconclusive"
        verdict.evidence.append({"setting": "(a) live rank start → end", "runs": len(ranks),
                                 "start → end": "; ".join(
                                     f"{t} seed {sd}: {int(v.live_rank_start)} → {int(v.live_rank_final)}"
                                     for (t, sd), v in ranks.iterrows()),
                                 "verdict": part})
        parts.append(part)
    else:
        verdict.notes.append("no SoRA run recorded its live rank (train_log.jsonl live_rank_total)")
        parts.append("inconclusive")
    compared = False
    for task in _tasks_with(runs, "sora", "lora"):
        values = primary_values(runs, task)
        for r_max, mine in values[values["role"].eq("sora")].groupby("r"):
            lora = values[values["role"].eq("lora") & values["r"].eq(r_max)]
            if lora.empty:
                verdict.notes.append(f"{task}: no LoRA run at SoRA's start rank r={r_max}")
                continue
            metric, hib = mine["metric"].iloc[0], bool(mine["higher_is_better"].iloc[0])
            margin = _margin(s.sora_margin, None, lora["value"], metric)
            row = compare(f"(b) {task}, r={r_max}", mine, lora, ("SoRA", "LoRA"), metric, hib, -margin, s)
            verdict.evidence.append(row)
            parts.append(row["verdict"])
            compared = True
    if not compared:
        verdict.notes.append("no task with SoRA and LoRA at SoRA's start rank")
        parts.append("inconclusive")
    verdict.verdict = combine(parts)
    return verdict


# --- claim 4 -----------------------------------------------------------------------------------
def claim_milora_init_and_forgetting(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    rule = ("(a) the recorded output change at init, max |Δ logits| / max |logits|, is ≤ "
            f"{s.init_change_tolerance:g} in every MiLoRA run; (b) per trained task, general-text "
            f"{settings.FORGETTING_METRIC} ({settings.FORGETTING_TASK}) after fine-tuning: MiLoRA lower than PiSSA, "
            "compared as log(PiSSA) − log(MiLoRA) > 0.")
    verdict = Verdict(4, STATEMENTS[4], "inconclusive", rule)
    parts = []
    init = runs[runs["role"].eq("milora") & runs["metric"].eq("init_output_change") & runs["status"].eq("ok")]
    init = init.drop_duplicates(["train_task", "seed"])
    if init.empty:
        verdict.notes.append("no MiLoRA run has a recorded output change at init (trainer's init_output_change "
                             "or the analysis measurement, which needs the base model)")
        parts.append("inconclusive")
    else:
        worst = float(init["value"].max())
        part = "holds" if worst <= s.init_change_tolerance else "does not hold"
        verdict.evidence.append({"setting": "(a) output change at init", "runs": len(init),
                                 "max relative change": f"{worst:.2e}", "tolerance": f"{s.init_change_tolerance:g}",
                                 "verdict": part})
        parts.append(part)
    general = metric_values(runs, settings.FORGETTING_TASK, [settings.FORGETTING_METRIC])
    compared = False
    for train_task, frame in general.groupby("train_task"):
        milora, pissa = frame[frame["role"].eq("milora")], frame[frame["role"].eq("pissa")]
        if milora.empty or pissa.empty:
            continue
        row = compare(f"(b) trained on {train_task}", milora, pissa, ("MiLoRA", "PiSSA"),
                      settings.FORGETTING_METRIC, False, 0.0, s)
        verdict.evidence.append(row)
        parts.append(row["verdict"])
        compared = True
    if not compared:
        verdict.notes.append(f"no {settings.FORGETTING_TASK} {settings.FORGETTING_METRIC} of both MiLoRA and "
                             "PiSSA runs")
        parts.append("inconclusive")
    verdict.verdict = combine(parts)
    return verdict


# --- claim 5 -----------------------------------------------------------------------------------
def claim_multilora_flatter(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    rule = (f"Per trained task and LoRA rank, the ΔW spectrum's {s.flatness_metric} (mean over modules; "
            "analysis/spectra.py): MultiLoRA − LoRA > 0 in log ratio.")
    verdict = Verdict(5, STATEMENTS[5], "inconclusive", rule)
    flat = runs[runs["source"].eq(settings.SPECTRUM_SOURCE) & runs["metric"].eq(s.flatness_metric)
                & runs["status"].eq("ok")]
    parts = []
    for task, frame in flat.groupby("train_task"):
        multi = frame[frame["role"].eq("multilora")]
        for r, lora in frame[frame["role"].eq("lora")].groupby("r", dropna=False):
            if multi.empty:
                continue
            row = compare(f"{task} vs lora r={r}", multi, lora, ("MultiLoRA", "LoRA"), s.flatness_metric, True, 0.0, s)
            row["params MultiLoRA/LoRA"] = f"{multi['trainable_params'].mean() / lora['trainable_params'].mean():.3f}"
            verdict.evidence.append(row)
            parts.append(row["verdict"])
    if not parts:
        verdict.notes.append("no spectra of both MultiLoRA and LoRA runs (spectra need the base model and adapters)")
    verdict.verdict = combine(parts)
    return verdict


# --- claim 6 (MoRA Table 3) ---------------------------------------------------------------------
def claim_mora_pretraining(runs: pd.DataFrame, s: VerdictSettings) -> Verdict:
    pairs = ", ".join(f"{a} < {b}" for a, b in PRETRAIN_PAIRS)
    rule = (f"On {settings.PRETRAIN_TASK} (from random init), held-out {settings.PRETRAIN_METRIC} after "
            f"training, each pair that ran ({pairs}): log(B) − log(A) > 0.")
    verdict = Verdict(6, STATEMENTS[6], "inconclusive", rule)
    values = metric_values(runs, settings.PRETRAIN_TASK, [settings.PRETRAIN_METRIC])
    values = values[values["train_task"].eq(settings.PRETRAIN_TASK)]
    parts = []
    for a, b in PRETRAIN_PAIRS:
        mine, other = values[values["role"].eq(a)], values[values["role"].eq(b)]
        if mine.empty or other.empty:
            continue
        row = compare(f"{a} vs {b}", mine, other, (a, b), settings.PRETRAIN_METRIC, False, 0.0, s)
        row["params A/B"] = f"{mine['trainable_params'].mean() / other['trainable_params'].mean():.3f}"
        verdict.evidence.append(row)
        parts.append(row["verdict"])
    if not parts:
        verdict.notes.append(f"no {settings.PRETRAIN_TASK} runs of a pair above (the pretraining comparison "
                             "needs LoRA/MoRA/ReLoRA/ReMoRA variants under task_variants: cpt_scratch, see config/replication.yaml)")
    verdict.verdict = combine(parts)
    return verdict


CLAIMS = (claim_mora_memorization, claim_vera_close_to_lora, claim_sora_prunes,
          claim_milora_init_and_forgetting, claim_multilora_flatter, claim_mora_pretraining)


def decide_claims(runs: pd.DataFrame, s: VerdictSettings | None = None) -> list[Verdict]:
    s = s or VerdictSettings()
    return [claim(runs, s) for claim in CLAIMS]


# --- output ------------------------------------------------------------------------------------
def to_dict(verdicts: list[Verdict], profile: str, s: VerdictSettings | None = None) -> dict:
    """JSON-ready: the report reads it."""
    return {"profile": profile, "settings": dataclasses.asdict(s or VerdictSettings()),
            "claims": [dataclasses.asdict(v) for v in verdicts]}


def to_markdown_report(verdicts: list[Verdict], profile: str, extra: str = "", model_note: str = "") -> str:
    """replication.md; `extra`: Markdown sections put after the claims (e.g. the chosen learning rates);
    `model_note`: which base model the runs fine-tuned (analysis.paper_models.base_model_note)."""
    lines = [f"# Replication of the seed papers' claims: profile `{profile}`", "",
             "Computed from `tables/runs.csv` by `analysis/verdicts.py`; each verdict is holds, does not hold "
             "or inconclusive. Differences are A − B on a scale where larger means A is better: percentage "
             "points, or the log ratio of the values (0.1 ≈ 10% better)." + (f" {model_note}" if model_note else ""), "",
             to_markdown(pd.DataFrame([{"claim": v.claim, "statement": v.statement, "verdict": v.verdict}
                                       for v in verdicts]))]
    for v in verdicts:
        lines += [f"## Claim {v.claim}: {v.statement}", "", f"**Verdict: {v.verdict}**", "", f"Rule: {v.rule}", ""]
        if v.evidence:
            lines.append(to_markdown(pd.DataFrame(v.evidence).fillna("")))
        lines += [f"- {note}" for note in v.notes] + [""]
    if extra:
        lines.append(extra)
    lines += ["## How verdicts are decided", "", (__doc__ or "").split("\n\n", 2)[-1].strip(), ""]
    return "\n".join(lines)


def write_replication(verdicts: list[Verdict], out_dir: str | Path, profile: str,
                      s: VerdictSettings | None = None, extra: str = "", model_note: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    return [write_text(out_dir / "replication.md", to_markdown_report(verdicts, profile, extra, model_note)),
            write_json(out_dir / "replication.json", to_dict(verdicts, profile, s))]
