"""What the analysis assumes about tasks and metrics, and the verdicts' tolerances: one place to change them.

Task facts (family, primary metric, probes) come from the task registry (`tasks.get`); the
fallbacks below only cover run directories of tasks the registry does not know (an older
results folder, a task removed since).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

FALLBACK_FAMILY = {
    "sst2": "glue", "mrpc": "glue", "cola": "glue", "qnli": "glue", "rte": "glue", "stsb": "glue",
    "qqp": "glue", "mnli": "glue", "e2e": "e2e_nlg", "commonsense": "commonsense", "math": "math",
    "instruct": "instruction_following", "uuid": "memorization", "cpt_domain": "continual_pretraining",
    "cpt_domain_qa": "continual_pretraining", "cpt_general": "continual_pretraining",
}
FALLBACK_PRIMARY = {"cola": "mcc", "stsb": "pearson", "e2e": "bleu", "math": "exact_match",
                    "instruct": "prompt_pass_rate", "uuid": "char_acc", "cpt_domain": "perplexity",
                    "cpt_general": "perplexity"}
# A task spec's metric names that are not lm-eval metric names.
METRIC_ALIASES = {"perplexity": "word_perplexity"}

# Forgetting = perplexity on general text after fine-tuning (MiLoRA's WikiText loss, MoRA's C4).
FORGETTING_TASK = "cpt_general"
FORGETTING_METRIC = "word_perplexity"
# MoRA Table 3: pretraining from scratch, perplexity on held-out text (token-level, as C4 perplexity).
PRETRAIN_TASK = "cpt_scratch"
PRETRAIN_METRIC = "token_perplexity"
MEMORIZATION_TASK = "uuid"
MEMORIZATION_METRIC = "char_acc"

# Scales follow evaluation/metrics.py: fractions in [0, 1] except these, which keep their own scale.
OWN_SCALE = ("bleu", "nist", "cider", "effective_rank", "normalized_entropy", "init_output_change",
             "live_rank_start", "live_rank_final", "retained_params", "final_loss")
# Already in points (0-100): differences of these are "points" like the ×100 fractions.
POINTS_SCALE = ("bleu",)
# Pseudo lm-eval task names for numbers that do not come from eval.json.
TRAIN_SOURCE, SPECTRUM_SOURCE, INIT_SOURCE = "train", "spectrum", "init"
NON_EVAL_SOURCES = (TRAIN_SOURCE, SPECTRUM_SOURCE, INIT_SOURCE)


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in ("perplexity", "bits_per_byte", "loss", "init_output_change"))


def is_fraction(metric: str) -> bool:
    return not (metric in OWN_SCALE or lower_is_better(metric))


def display_scale(metric: str) -> float:
    """Tables show fractions as percentages, as the papers do."""
    return 100.0 if is_fraction(metric) else 1.0


def comparison_unit(metric: str) -> str:
    """How two methods' numbers are compared: "points" (percentage points, BLEU) or "log-ratio"."""
    return "points" if is_fraction(metric) or metric in POINTS_SCALE else "log-ratio"


def to_comparison_scale(values, metric: str, higher_is_better: bool):
    """Values on the scale differences are taken on, oriented so that larger is better.

    Points: ×100 for fractions. Log-ratio: log of the value (negated when lower is better), so a
    difference of 0.1 means about 10% better, whatever the metric's own scale.
    """
    import numpy as np
    values = np.asarray(values, dtype=float)
    if comparison_unit(metric) == "points":
        scaled = values * display_scale(metric)
        return scaled if higher_is_better else -scaled
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values)
    return logs if higher_is_better else -logs


@dataclass(frozen=True)
class Tolerance:
    """A distance on each comparison scale: percentage points, or a log ratio."""
    points: float
    log_ratio: float

    def on(self, unit: str) -> float:
        return self.points if unit == "points" else self.log_ratio


@dataclass(frozen=True)
class VerdictSettings:
    confidence: float = 0.95
    # With a single seed on either side there is no CI: an effect counts only when it clears the
    # claim's boundary by at least this much (10 points, or a factor of e^0.1 ≈ 1.105).
    decisive: Tolerance = field(default_factory=lambda: Tolerance(points=10.0, log_ratio=0.1))
    # Claim 1: MoRA and LoRA runs count as parameter-matched when their counts differ by ≤ 15%.
    param_match_tolerance: float = 0.15
    # MoRA's type per rank, as the paper: rotation (6) at small r, sharing (1) from r ≥ 64.
    mora_type_small_rank: int = 6
    mora_type_large_rank: int = 1
    large_rank_from: int = 64
    # Claim 2: VeRA within this of LoRA (points, or log ratio for perplexity-like metrics) ...
    vera_margin: Tolerance = field(default_factory=lambda: Tolerance(points=5.0, log_ratio=math.log(1.05)))
    # ... or, when set, within this fraction of LoRA's score (0.05 = "95% of LoRA's score").
    vera_margin_fraction: float | None = None
    vera_min_param_ratio: float = 10.0
    # Claim 3: SoRA no worse than LoRA at the start rank by more than this (non-inferiority).
    sora_margin: Tolerance = field(default_factory=lambda: Tolerance(points=2.0, log_ratio=math.log(1.02)))
    # Claim 4: "output unchanged at init" = max |Δ logits| / max |logits| at most this (fp32 round-off).
    init_change_tolerance: float = 1e-4
    # Claim 5: the flatness measure compared (a metric of the "spectrum" rows).
    flatness_metric: str = "effective_rank"

    @classmethod
    def from_dict(cls, values: dict | None) -> "VerdictSettings":
        """Overrides from a profile's `verdicts:` section; tolerances as {points, log_ratio}."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values or {}) - set(known))
        if unknown:
            raise ValueError(f"verdict settings: unknown key(s) {unknown}; known: {', '.join(known)}")
        defaults = cls()
        parsed = {}
        for key, value in (values or {}).items():
            if isinstance(getattr(defaults, key), Tolerance):
                value = Tolerance(**{**dataclasses.asdict(getattr(defaults, key)), **value})
            parsed[key] = value
        return cls(**parsed)
