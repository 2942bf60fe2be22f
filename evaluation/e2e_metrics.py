"""The E2E NLG challenge's metric set, computed as its official script computes it.

The official tool is `measure_scores.py` of tuetschek/e2e-metrics: BLEU and NIST from the Perl
mteval-v13a script, METEOR, ROUGE-L and CIDEr from coco-caption. Every function takes
`hypotheses: list[str]` and `references: list[list[str]]` (one list per hypothesis, any number
>= 1, kept as the data has them: a duplicated reference counts twice, as in the official tool) and
returns one corpus-level number. Texts are stripped, as the script reads them line by line.

Scales (what `analysis/settings.py` and the paper tables expect):
- bleu: 0-100 (the official script prints 0-1). mteval-v13a corpus BLEU: ASCII lowercasing, 13a
  tokenisation, clipping by the max count in any one reference, closest reference length (ties ->
  shorter), mteval's default smoothing (a zero match count at order n counts as 1/2^k).
- nist: raw (E2E systems score ~8.5). mteval NIST-5: information weights from the test set's
  references; brevity penalty against total reference words / mean references per segment.
- meteor: 0-1. METEOR 1.5 (`-l en -norm`: exact, stem, synonym and paraphrase modules) on
  PTB-tokenised text; corpus-level statistics, not a mean of segment scores.
- rouge_l: 0-1. coco-caption ROUGE-L on PTB tokens: F with beta = 1.2 from the best precision and
  the best recall over the references, averaged over segments.
- cider: raw (~2.3 for E2E systems). coco-caption's "CIDEr" (already CIDEr-D's clipped tf-idf and
  Gaussian length penalty, sigma 6), idf over the test set's reference sets, x10.

METEOR and the tokenizer are the jars shipped by the PyPI package `pycocoevalcap` (the same files
as in e2e-metrics), so they need Java (`apt-get install -y default-jre-headless`, done by
setup.sh). The METEOR JVM takes ~8 CPU-seconds to load its paraphrase table (~0.6 GB RSS): it starts once
per process and scores a whole system in one round trip; `close_meteor()` stops it early.
Agreement with the official tool: tests/test_e2e_official.py.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from functools import lru_cache
from pathlib import Path

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

_TOKENIZE_13A = Tokenizer13a()
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Brevity-penalty constant of NIST (mteval-v13a): the penalty is 0.5 when the system output is
# 2/3 as long as the references.
NIST_BETA = math.log(0.5) / math.log(1.5) ** 2
JAVA_HINT = ("needs a Java runtime (`java` on PATH): `apt-get install -y default-jre-headless` "
             "(setup.sh installs it)")


def _check_inputs(hypotheses: list[str], references: list[list[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs or any(not r.strip() for r in refs):
            raise ValueError(f"reference set {i} must be a non-empty list of non-empty strings, got {refs!r}")


# -- BLEU and NIST as mteval-v13a ----------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """mteval-v13a tokenisation: whitespace runs joined, ASCII-only lowercasing (`tr/A-Z/a-z/`), 13a."""
    return _TOKENIZE_13A(" ".join(text.split()).translate(_ASCII_LOWER)).split()


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _max_ref_counts(refs: list[list[str]], n: int) -> Counter:
    """Per n-gram, the highest count in any single reference (the clipping bound)."""
    bound: Counter = Counter()
    for ref in refs:
        for gram, count in ngrams(ref, n).items():
            bound[gram] = max(bound[gram], count)
    return bound


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """mteval-v13a corpus BLEU with its default smoothing, 0-100."""
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
    if hyp_len == 0:
        return 0.0
    log_precision, smooth = 0.0, 1
    for match, total in zip(matches, totals):
        if total == 0:  # no hypothesis n-grams of this order: mteval adds log 1
            continue
        if match == 0:  # mteval: 1 / (2^k * total) for the k-th order without a match
            smooth *= 2
            log_precision += math.log(1 / (smooth * total))
        else:
            log_precision += math.log(match / total)
    brevity = min(0.0, 1 - ref_len / hyp_len)
    return 100.0 * math.exp(log_precision / max_n + brevity)


def corpus_nist(hypotheses: list[str], references: list[list[str]], max_n: int = 5) -> float:
    """mteval-v13a NIST-n (default 5), information weights from all references of the corpus."""
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
            matched_info += sum(info(g) * min(c, bound[g]) for g, c in ngrams(hyp, n).items() if bound[g])
            hyp_ngrams += max(len(hyp) - n + 1, 0)
        score += matched_info / max(hyp_ngrams, 1)

    # mteval's reference length: all reference words over the mean number of references per segment.
    mean_refs = sum(len(refs) for refs in ref_toks) / len(ref_toks)
    ratio = sum(len(h) for h in hyp_toks) / (ref_counts[()] / mean_refs)
    if ratio <= 0:
        return 0.0
    return score * math.exp(NIST_BETA * math.log(min(ratio, 1.0)) ** 2)


# -- coco-caption: PTB tokenizer, METEOR 1.5, ROUGE-L, CIDEr -------------------------------------
def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(f"E2E METEOR/ROUGE-L/CIDEr {JAVA_HINT}")
    return java


def _module_dir(module) -> Path:
    """Where a pycocoevalcap module keeps its jar (`pycocoevalcap` itself is a namespace package)."""
    return Path(module.__file__).parent


@lru_cache(maxsize=4)
def ptb_tokenize(texts: tuple[str, ...]) -> tuple[str, ...]:
    """coco-caption's tokenisation: Stanford PTBTokenizer (lowercased, one line per text), punctuation
    tokens removed. One JVM call for all texts."""
    from pycocoevalcap.tokenizer import ptbtokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

    # One text per line: the tokenizer would also break lines at these, so they become spaces.
    lines = [re.sub(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]", " ", t) for t in texts]
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines))
    try:
        jar = _module_dir(ptbtokenizer) / STANFORD_CORENLP_3_4_1_JAR
        out = subprocess.run(
            [_java(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
             "-lowerCase", "-encoding", "utf-8", f.name],
            capture_output=True, check=True, encoding="utf-8",
        ).stdout
    finally:
        os.unlink(f.name)
    tokenized = out.split("\n")[: len(texts)]
    if len(tokenized) < len(texts):
        raise RuntimeError(f"PTBTokenizer returned {len(tokenized)} lines for {len(texts)} texts")
    return tuple(" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in tokenized)


def _coco_inputs(hypotheses: list[str], references: list[list[str]]) -> tuple[dict, dict]:
    """coco-caption's (gts, res): segment index -> PTB-tokenised references / [hypothesis]."""
    _check_inputs(hypotheses, references)
    # References and hypotheses in two tokenizer calls, as coco-caption does (references cached).
    flat = ptb_tokenize(tuple(r.strip() for refs in references for r in refs))
    hyps = ptb_tokenize(tuple(h.strip() for h in hypotheses))
    gts, start = {}, 0
    for i, refs in enumerate(references):
        gts[i], start = list(flat[start : start + len(refs)]), start + len(refs)
    return gts, {i: [h] for i, h in enumerate(hyps)}


class _Meteor:
    """One `meteor-1.5.jar -stdio` process: a SCORE line per segment, then one EVAL line with all
    segments' statistics, answered with the segment scores and the corpus score (coco-caption)."""

    def __init__(self):
        from pycocoevalcap.meteor import meteor as coco_meteor

        self.stderr = tempfile.TemporaryFile()
        # coco-caption's command; the serial GC (no effect on scores) halves the JVM's memory.
        self.process = subprocess.Popen(
            [_java(), "-XX:+UseSerialGC", "-jar", "-Xmx2G", coco_meteor.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=_module_dir(coco_meteor), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )

    def _ask(self, line: str) -> str:
        self.process.stdin.write(f"{line}\n".encode("utf-8"))
        self.process.stdin.flush()
        answer = self.process.stdout.readline().decode("utf-8").strip()
        if not answer:
            self.stderr.seek(0)
            raise RuntimeError(f"METEOR 1.5 stopped: {self.stderr.read().decode(errors='replace')[-2000:]}")
        return answer

    def corpus_score(self, gts: dict, res: dict) -> float:
        stats = []
        for i in gts:
            hyp = res[i][0].replace("|||", "").replace("  ", " ")
            stats.append(self._ask(" ||| ".join(["SCORE", " ||| ".join(gts[i]), hyp])))
        self._ask(" ||| ".join(["EVAL", *stats]))  # first answer line: segment 1's score
        for _ in range(len(stats)):
            answer = self.process.stdout.readline().decode("utf-8")
        return float(answer)

    def close(self):
        self.process.kill()
        self.process.wait()
        self.stderr.close()


_meteor_lock = threading.Lock()
_meteor: _Meteor | None = None


def close_meteor() -> None:
    """Stop the METEOR JVM (it restarts on the next call)."""
    global _meteor
    with _meteor_lock:
        if _meteor is not None:
            _meteor.close()
            _meteor = None


atexit.register(close_meteor)


def meteor(hypotheses: list[str], references: list[list[str]]) -> float:
    """METEOR 1.5 corpus score (0-1) on PTB tokens, as coco-caption runs it."""
    global _meteor
    gts, res = _coco_inputs(hypotheses, references)
    with _meteor_lock:
        if _meteor is None or _meteor.process.poll() is not None:
            _meteor = _Meteor()
        try:
            return _meteor.corpus_score(gts, res)
        except Exception:
            _meteor.close()  # a half-answered exchange leaves the process out of step
            _meteor = None
            raise


def rouge_l(hypotheses: list[str], references: list[list[str]]) -> float:
    """coco-caption ROUGE-L (beta 1.2), mean over segments, 0-1."""
    from pycocoevalcap.rouge.rouge import Rouge

    return float(Rouge().compute_score(*_coco_inputs(hypotheses, references))[0])


def cider(hypotheses: list[str], references: list[list[str]]) -> float:
    """coco-caption CIDEr (its CIDEr-D form, sigma 6), mean over segments, raw scale (x10)."""
    from pycocoevalcap.cider.cider import Cider

    return float(Cider().compute_score(*_coco_inputs(hypotheses, references))[0])


def e2e_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """The five E2E metrics as the official tool computes them (scales in the module docstring)."""
    return {
        "bleu": corpus_bleu(hypotheses, references),
        "nist": corpus_nist(hypotheses, references),
        "meteor": meteor(hypotheses, references),
        "rouge_l": rouge_l(hypotheses, references),
        "cider": cider(hypotheses, references),
    }
