"""Across-seed statistics: mean ± 95% CI (Student t), min–max below three seeds, always with n;
and the difference between two methods with its CI (paired by seed, or Welch)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Summary:
    """n values as mean with an interval: kind "ci" (n ≥ 3: mean ± t·s/√n), "range" (n = 2:
    min–max, as a CI from two seeds is too wide to say anything), "single" (n = 1), "empty"; or
    kind "median" (summarize_median: `mean` holds the median, low–high the min–max)."""
    n: int
    mean: float
    low: float
    high: float
    kind: str
    std: float = math.nan

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.kind == "ci" else math.nan

    def scaled(self, factor: float) -> "Summary":
        return Summary(self.n, self.mean * factor, self.low * factor, self.high * factor, self.kind, self.std * factor)


def _has_spread(x: np.ndarray) -> bool:
    """Values that differ by more than float round-off (equal-up-to-noise data gives no t-test)."""
    return len(x) >= 2 and float(np.ptp(x)) > 1e-9 * max(1.0, float(np.abs(x).max()))


def _finite(values) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def summarize(values, confidence: float = 0.95) -> Summary:
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, "empty")
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, mean, mean, "single")
    std = float(x.std(ddof=1))
    if n == 2:
        return Summary(2, mean, float(x.min()), float(x.max()), "range", std)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, mean - half, mean + half, "ci", std)


def summarize_median(values) -> Summary:
    """The median with the min–max range, as papers that report "the median of 5 runs" (VeRA)."""
    x = _finite(values)
    if len(x) < 2:
        return summarize(x)
    return Summary(len(x), float(np.median(x)), float(x.min()), float(x.max()), "median", float(x.std(ddof=1)))


def decimals_for(value: float) -> int:
    """Digits after the point: 1 from 10 up (85.2), 2 from 1 (8.81), 3 from 0.01 (0.734), then
    three significant digits (0.000123)."""
    magnitude = abs(value)
    if not math.isfinite(magnitude) or magnitude >= 1000 or magnitude == 0:
        return 0 if magnitude >= 1000 or not math.isfinite(magnitude) else 1
    if magnitude >= 0.01:
        return 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return 2 - math.floor(math.log10(magnitude))


def format_summary(summary: Summary, decimals: int | None = None) -> str:
    """`85.2 ± 1.3 (n=3)`, `85.2 [84.1–86.0] (n=2)`, `85.2 (n=1)`, `85.2 [83.0–86.0] (median, n=5)`, or `—`."""
    if summary.kind == "empty":
        return "—"
    d = decimals_for(summary.mean) if decimals is None else decimals
    if summary.kind == "ci":
        return f"{summary.mean:.{d}f} ± {summary.half_width:.{d}f} (n={summary.n})"
    if summary.kind == "range":
        return f"{summary.mean:.{d}f} [{summary.low:.{d}f}–{summary.high:.{d}f}] (n=2)"
    if summary.kind == "median":
        spread = f" [{summary.low:.{d}f}–{summary.high:.{d}f}]" if summary.high > summary.low else ""
        return f"{summary.mean:.{d}f}{spread} (median, n={summary.n})"
    return f"{summary.mean:.{d}f} (n=1)"


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b) with its CI. test: "paired t" (same seeds), "Welch t", or "none" (a side
    with one value, or no spread at all: no CI; low/high are NaN)."""
    estimate: float
    low: float
    high: float
    n_a: int
    n_b: int
    test: str
    p_value: float = math.nan

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def difference(a, b, seeds_a=None, seeds_b=None, confidence: float = 0.95) -> Difference:
    """Difference of means of a and b: paired by seed when seeds are given and ≥ 2 match (with some
    spread in the differences), else Welch's t-test on all values."""
    a_arr, b_arr = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if seeds_a is not None and seeds_b is not None:
        by_seed_a = {s: v for s, v in zip(seeds_a, a_arr) if math.isfinite(v)}
        by_seed_b = {s: v for s, v in zip(seeds_b, b_arr) if math.isfinite(v)}
        common = sorted(set(by_seed_a) & set(by_seed_b))
        d = np.array([by_seed_a[s] - by_seed_b[s] for s in common])
        # Identical differences on every seed give no paired CI: Welch's test below still can.
        if len(common) >= 2 and _has_spread(d):
            estimate = float(d.mean())
            result = scipy_stats.ttest_1samp(d, 0.0)
            ci = result.confidence_interval(confidence)
            return Difference(estimate, float(ci.low), float(ci.high), len(common), len(common), "paired t",
                              float(result.pvalue))
    a_arr, b_arr = _finite(a_arr), _finite(b_arr)
    if len(a_arr) == 0 or len(b_arr) == 0:
        return Difference(math.nan, math.nan, math.nan, len(a_arr), len(b_arr), "none (no values)")
    estimate = float(a_arr.mean() - b_arr.mean())
    if len(a_arr) < 2 or len(b_arr) < 2:
        return Difference(estimate, math.nan, math.nan, len(a_arr), len(b_arr), "none (n=1)")
    if not _has_spread(a_arr) and not _has_spread(b_arr):
        return Difference(estimate, math.nan, math.nan, len(a_arr), len(b_arr), "none (no spread)")
    result = scipy_stats.ttest_ind(a_arr, b_arr, equal_var=False)
    ci = result.confidence_interval(confidence)
    return Difference(estimate, float(ci.low), float(ci.high), len(a_arr), len(b_arr), "Welch t",
                      float(result.pvalue))


def decide(diff: Difference, boundary: float, decisive: float) -> str:
    """Verdict on the claim "the true difference exceeds `boundary`".

    With a CI: holds if all of it lies above the boundary, does not hold if all of it lies below,
    else inconclusive. Without one (a single seed, or no spread): holds / does not hold only when
    the estimate clears the boundary by at least `decisive`, else inconclusive.
    """
    if not math.isfinite(diff.estimate):
        return "inconclusive"
    if diff.has_ci:
        if diff.low > boundary:
            return "holds"
        return "does not hold" if diff.high < boundary else "inconclusive"
    if diff.estimate - boundary >= decisive:
        return "holds"
    return "does not hold" if boundary - diff.estimate >= decisive else "inconclusive"


def combine(verdicts: list[str]) -> str:
    """A claim made of parts: holds if every part holds, does not hold if any part does not."""
    if not verdicts:
        return "inconclusive"
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"
