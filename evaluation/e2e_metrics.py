"""The official E2E NLG metric set over multiple references per meaning representation.

Every function takes `hypotheses: list[str]` and `references: list[list[str]]` (one list of
references per hypothesis, any number >= 1) and returns one corpus-level number.

How each relates to the E2E challenge script (tuetschek/e2e-metrics, `measure_scores.py`):
- BLEU: own implementation of the script's mteval-v13a-style corpus BLEU (its `pymteval`):
  lowercased, 13a tokenisation, clipping against the max count in any one reference, closest
  reference length (ties -> shorter), 4-gram geometric mean. Scale 0-100. One deliberate
  difference: a corpus with zero matches at some n scores 0 (sacrebleu, no smoothing) where the
  script floors the count at 1e-15.
- NIST: own implementation of mteval/`pymteval` NIST-5 (information weights from the test set's
  references, brevity penalty with beta = ln(0.5)/ln(1.5)^2). Raw scale (E2E reports ~8.5).
  Hypotheses shorter than n contribute 0 n-grams (the script lets that count go negative).
- METEOR: nltk's `meteor_score` with WordNet, max over references per segment, averaged. Scale 0-1.
  The script runs METEOR 1.5 (Java) with paraphrase tables and computes corpus-level statistics, so
  numbers differ somewhat from nltk's (no paraphrase module, segment average).
- ROUGE-L: rouge-score's `rougeL` F1, max over references per segment, averaged. Scale 0-1.
  The script uses coco-caption's ROUGE-L (F with beta=1.2, precision and recall maximised
  separately over references), so numbers differ slightly.
- CIDEr: own implementation of coco-caption's `CiderScorer`, which the script runs. Raw scale
  (E2E reports ~2.3). Note that coco-caption's "CIDEr" already carries two CIDEr-D changes
  (clipped tf-idf numerator, Gaussian length penalty sigma=6); `e2e_compatible=False` gives the
  original formula of Vedantam et al. (plain tf-idf cosine). Tokens are lowercased with
  punctuation dropped, approximating the PTB tokenizer coco-caption calls.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

_TOKENIZE_13A = Tokenizer13a()
# Brevity-penalty constant of NIST (mteval-v13a): the penalty is 0.5 when the system output is
# 2/3 as long as the references.
NIST_BETA = math.log(0.5) / math.log(1.5) ** 2


def tokenize(text: str) -> list[str]:
    """mteval-v13a tokenisation, lowercased (the E2E script scores case-insensitively)."""
    return _TOKENIZE_13A(text.strip()).lower().split()


def tokenize_coco(text: str) -> list[str]:
    """Tokens for ROUGE-L/CIDEr: like coco-caption's PTB tokenizer, punctuation-only tokens go."""
    return [t for t in tokenize(text) if any(ch.isalnum() for ch in t)]


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _check_inputs(hypotheses: list[str], references: list[list[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every hypothesis needs at least one reference")


def _max_ref_counts(refs: list[list[str]], n: int) -> Counter:
    """Per n-gram, the highest count in any single reference (the clipping bound)."""
    bound: Counter = Counter()
    for ref in refs:
        for gram, count in ngrams(ref, n).items():
            bound[gram] = max(bound[gram], count)
    return bound


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU (0-100) with any number of references per segment."""
    _check_inputs(hypotheses, references)
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_toks, ref_toks = tokenize(hyp), [tokenize(r) for r in refs]
        for n in range(1, max_n + 1):
            bound = _max_ref_counts(ref_toks, n)
            matches[n - 1] += sum(min(c, bound[g]) for g, c in ngrams(hyp_toks, n).items())
            totals[n - 1] += max(len(hyp_toks) - n + 1, 0)
        hyp_len += len(hyp_toks)
        ref_len += min((abs(len(r) - len(hyp_toks)), len(r)) for r in ref_toks)[1]
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(log_precision)


def corpus_nist(hypotheses: list[str], references: list[list[str]], max_n: int = 5) -> float:
    """NIST-n (default 5) with information weights from all references of the corpus."""
    _check_inputs(hypotheses, references)
    hyp_toks = [tokenize(h) for h in hypotheses]
    ref_toks = [[tokenize(r) for r in refs] for refs in references]

    # Info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn)), counted over every reference sentence;
    # the count of the empty prefix is the number of reference words.
    ref_counts: Counter = Counter()
    for refs in ref_toks:
        for ref in refs:
            ref_counts[()] += len(ref)
            for n in range(1, max_n + 1):
                ref_counts.update(ngrams(ref, n))

    def info(gram: tuple) -> float:
        return math.log2(ref_counts[gram[:-1]] / ref_counts[gram])

    score = 0.0
    for n in range(1, max_n + 1):
        matched_info, hyp_ngrams = 0.0, 0
        for hyp, refs in zip(hyp_toks, ref_toks):
            bound = _max_ref_counts(refs, n)
            for gram, count in ngrams(hyp, n).items():
                if bound[gram]:
                    matched_info += info(gram) * min(count, bound[gram])
            hyp_ngrams += max(len(hyp) - n + 1, 0)
        if hyp_ngrams:
            score += matched_info / hyp_ngrams

    hyp_len = sum(len(h) for h in hyp_toks)
    mean_ref_len = sum(sum(len(r) for r in refs) / len(refs) for refs in ref_toks)
    ratio = min(hyp_len / mean_ref_len, 1.0) if mean_ref_len else 1.0
    penalty = math.exp(NIST_BETA * math.log(ratio) ** 2) if ratio > 0 else 0.0
    return penalty * score


@lru_cache(maxsize=1)
def _rouge_l_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(hypotheses: list[str], references: list[list[str]]) -> float:
    """Mean over segments of the best ROUGE-L F1 against any reference (0-1)."""
    _check_inputs(hypotheses, references)
    scorer = _rouge_l_scorer()
    best = [scorer.score_multi(refs, hyp)["rougeL"].fmeasure for hyp, refs in zip(hypotheses, references)]
    return sum(best) / len(best)


def meteor(hypotheses: list[str], references: list[list[str]]) -> float:
    """Mean over segments of nltk METEOR (max over references), using WordNet via NLTK_DATA."""
    from nltk.translate.meteor_score import meteor_score

    from evaluation.wordnet_setup import load_wordnet

    _check_inputs(hypotheses, references)
    wordnet = load_wordnet()
    scores = [
        meteor_score([tokenize(r) for r in refs], tokenize(hyp), wordnet=wordnet)
        for hyp, refs in zip(hypotheses, references)
    ]
    return sum(scores) / len(scores)


def cider(
    hypotheses: list[str],
    references: list[list[str]],
    max_n: int = 4,
    sigma: float = 6.0,
    e2e_compatible: bool = True,
) -> float:
    """CIDEr with document frequencies over the corpus's reference sets, x10, mean over n-orders."""
    _check_inputs(hypotheses, references)
    hyp_toks = [tokenize_coco(h) for h in hypotheses]
    ref_toks = [[tokenize_coco(r) for r in refs] for refs in references]

    # Document = one meaning representation: an n-gram counts once per MR, whichever refs hold it.
    doc_freq: Counter = Counter()
    for refs in ref_toks:
        doc_freq.update({g for ref in refs for n in range(1, max_n + 1) for g in ngrams(ref, n)})
    log_docs = math.log(len(ref_toks))

    def tfidf(tokens: list[str], n: int) -> tuple[dict, float]:
        vec = {g: tf * (log_docs - math.log(max(1.0, doc_freq[g]))) for g, tf in ngrams(tokens, n).items()}
        return vec, math.sqrt(sum(v * v for v in vec.values()))

    def similarity(hyp: list[str], ref: list[str], n: int) -> float:
        (vec_h, norm_h), (vec_r, norm_r) = tfidf(hyp, n), tfidf(ref, n)
        if norm_h == 0 or norm_r == 0:
            return 0.0
        if not e2e_compatible:
            return sum(v * vec_r.get(g, 0.0) for g, v in vec_h.items()) / (norm_h * norm_r)
        dot = sum(min(v, vec_r.get(g, 0.0)) * vec_r.get(g, 0.0) for g, v in vec_h.items())
        # coco-caption measures length in bigrams (tokens - 1): the same gap for non-empty texts.
        length_gap = len(hyp) - len(ref)
        return dot / (norm_h * norm_r) * math.exp(-(length_gap**2) / (2 * sigma**2))

    per_mr = []
    for hyp, refs in zip(hyp_toks, ref_toks):
        per_order = [sum(similarity(hyp, ref, n) for ref in refs) / len(refs) for n in range(1, max_n + 1)]
        per_mr.append(10.0 * sum(per_order) / max_n)
    return sum(per_mr) / len(per_mr)


def e2e_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    return {
        "bleu": corpus_bleu(hypotheses, references),
        "nist": corpus_nist(hypotheses, references),
        "meteor": meteor(hypotheses, references),
        "rouge_l": rouge_l(hypotheses, references),
        "cider": cider(hypotheses, references),
    }
