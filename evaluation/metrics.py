"""The suite's metrics, as plain functions of predictions and references.

Classification (GLUE): accuracy, Matthews correlation, binary F1, Pearson, Spearman.
Math: exact match of the final number. Memorization (UUID): character accuracy, exact match.
Language modelling: perplexity from summed NLL and token count.
E2E NLG: BLEU, NIST, METEOR, ROUGE-L, CIDEr live in `evaluation.e2e_metrics` (re-exported here).

Scales follow the libraries the papers' numbers come from: fractions in [0, 1] everywhere except
BLEU (0-100, as sacrebleu and lm-eval), NIST and CIDEr (their raw scales).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import numpy as np
from scipy.stats import rankdata

from evaluation.e2e_metrics import cider, corpus_bleu, corpus_nist, e2e_scores, meteor, rouge_l

__all__ = [
    "accuracy", "matthews_corrcoef", "f1_binary", "pearson", "spearman",
    "extract_math_answer", "normalize_number", "math_exact_match",
    "char_accuracy", "exact_match", "perplexity",
    "corpus_bleu", "corpus_nist", "meteor", "rouge_l", "cider", "e2e_scores",
]  # fmt: skip


def _paired(golds: Sequence, preds: Sequence) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} references but {len(preds)} predictions")
    if len(golds) == 0:
        raise ValueError("nothing to score")


def accuracy(golds: Sequence, preds: Sequence) -> float:
    _paired(golds, preds)
    return sum(g == p for g, p in zip(golds, preds)) / len(golds)


def matthews_corrcoef(golds: Sequence[int], preds: Sequence[int]) -> float:
    """MCC (Gorodkin's multiclass form; the usual TP/TN/FP/FN formula for two classes).

    0 when either side has a single class (undefined correlation), as scikit-learn does.
    """
    _paired(golds, preds)
    labels = sorted(set(golds) | set(preds))
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)))
    for g, p in zip(golds, preds):
        confusion[index[g], index[p]] += 1
    n, correct = confusion.sum(), np.trace(confusion)
    true_per_class, pred_per_class = confusion.sum(axis=1), confusion.sum(axis=0)
    numerator = correct * n - true_per_class @ pred_per_class
    denominator = math.sqrt(
        (n**2 - pred_per_class @ pred_per_class) * (n**2 - true_per_class @ true_per_class)
    )
    return float(numerator / denominator) if denominator else 0.0


def f1_binary(golds: Sequence[int], preds: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (MRPC/QQP: 1 = paraphrase). 0 when there are no true positives."""
    _paired(golds, preds)
    tp = sum(g == positive and p == positive for g, p in zip(golds, preds))
    fp = sum(g != positive and p == positive for g, p in zip(golds, preds))
    fn = sum(g == positive and p != positive for g, p in zip(golds, preds))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson r; NaN when either side is constant (correlation undefined)."""
    _paired(xs, ys)
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else math.nan


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman rho: Pearson r of the ranks, ties sharing their average rank."""
    _paired(xs, ys)
    return pearson(rankdata(xs), rankdata(ys))


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize_number(text: str) -> str:
    """'1,234' -> '1234', '12.0' -> '12', '0.50' -> '0.5'; non-numbers come back stripped."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return text.strip()
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_math_answer(generation: str) -> str | None:
    """The number after the last '####' (GSM8K/MetaMath format), else the last number in the text."""
    if "####" in generation:
        found = _NUMBER.search(generation.rsplit("####", 1)[1])
        if found:
            return normalize_number(found.group())
    numbers = _NUMBER.findall(generation)
    return normalize_number(numbers[-1]) if numbers else None


def math_exact_match(generation: str, answer: str) -> bool:
    predicted = extract_math_answer(generation)
    return predicted is not None and predicted == normalize_number(answer)


def char_accuracy(prediction: str, reference: str) -> float:
    """Fraction of reference positions whose character the prediction reproduces.

    Position i counts when `prediction[i] == reference[i]`; a short prediction loses the missing
    positions and characters beyond the reference length are ignored (exact match catches
    those). An empty reference scores 1 only for an empty prediction.
    """
    if not reference:
        return float(prediction == "")
    return sum(p == r for p, r in zip(prediction, reference)) / len(reference)


def exact_match(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(mean NLL per token) from the summed negative log-likelihood (nats) of n_tokens."""
    if n_tokens <= 0:
        raise ValueError(f"perplexity needs a positive token count, got {n_tokens}")
    return math.exp(total_nll / n_tokens)
