"""Metrics against values worked out by hand (the arithmetic is in the comments)."""

import math

import pytest

from evaluation import metrics
from evaluation import e2e_metrics
from evaluation.e2e_metrics import NIST_BETA
from evaluation.instruction_checks import scores, validate_check

# -- classification ---------------------------------------------------------------------------
# golds/preds: TP = 2 (items 0, 1), FN = 1 (item 2), TN = 2 (items 3, 4), FP = 1 (item 5)
GOLDS = [1, 1, 1, 0, 0, 0]
PREDS = [1, 1, 0, 0, 0, 1]


def test_accuracy():
    assert metrics.accuracy(GOLDS, PREDS) == pytest.approx(4 / 6)
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_mcc_binary_by_hand():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(3*3*3*3) = 1/3
    assert metrics.matthews_corrcoef(GOLDS, PREDS) == pytest.approx(1 / 3)
    assert metrics.matthews_corrcoef(GOLDS, GOLDS) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef(GOLDS, [1 - g for g in GOLDS]) == pytest.approx(-1.0)
    assert metrics.matthews_corrcoef(GOLDS, [1] * 6) == 0.0  # constant prediction: undefined -> 0


def test_mcc_multiclass_by_hand():
    # confusion (rows gold, cols pred): gold 0 -> pred 0 twice, gold 1 -> pred 2, gold 2 -> pred 2.
    # n = 4, correct = 3, gold counts t = (2, 1, 1), pred counts p = (2, 0, 2)
    # (3*4 - t.p) / sqrt((16 - p.p)(16 - t.t)) = (12 - 6) / sqrt(8 * 10) = 6 / sqrt(80)
    golds, preds = [0, 1, 2, 0], [0, 2, 2, 0]
    assert metrics.matthews_corrcoef(golds, preds) == pytest.approx(6 / math.sqrt(80))
    from sklearn.metrics import matthews_corrcoef

    assert metrics.matthews_corrcoef(golds, preds) == pytest.approx(matthews_corrcoef(golds, preds))


def test_f1_binary_by_hand():
    # 2TP / (2TP + FP + FN) = 4 / 6
    assert metrics.f1_binary(GOLDS, PREDS) == pytest.approx(2 / 3)
    assert metrics.f1_binary([0, 0], [0, 0]) == 0.0  # no positives at all


def test_pearson_by_hand():
    # x - mean = (-1, 0, 1); y - mean(13/3) = (-7/3, -1/3, 8/3)
    # sum dx*dy = 5, sum dx^2 = 2, sum dy^2 = 114/9 -> r = 5 / sqrt(228/9) = 15 / sqrt(228)
    assert metrics.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228))
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_spearman_by_hand_with_ties():
    # ranks x = (1, 2.5, 2.5, 4), ranks y = (1, 3, 2, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # sum dx*dy = 4.5, sum dx^2 = 4.5, sum dy^2 = 5 -> rho = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    assert metrics.spearman([1, 2, 3], [10, 20, 300]) == pytest.approx(1.0)


# -- math ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "generation, expected",
    [
        ("She has 3 + 4 = 7 apples.\n#### 1,234", "1234"),  # number after ####, commas dropped
        ("Step 1: 12 / 2 = 6. #### 7 and then 9", "7"),  # first number after the last ####
        ("So the answer is 12.0.", "12"),  # no ####: last number; trailing .0 and full stop go
        ("It costs $0.50 in total", "0.5"),
        ("#### -5", "-5"),
        ("no digits here", None),
    ],
)
def test_extract_math_answer(generation, expected):
    assert metrics.extract_math_answer(generation) == expected


def test_math_exact_match():
    assert metrics.math_exact_match("10 + 2 = 12\n#### 12", "12")
    assert metrics.math_exact_match("#### 1,000.00", "1000")
    assert not metrics.math_exact_match("#### 13", "12")
    assert not metrics.math_exact_match("I don't know", "12")


# -- memorization ------------------------------------------------------------------------------
def test_char_accuracy_by_hand():
    assert metrics.char_accuracy("abxd", "abcd") == 0.75  # 3 of 4 positions
    assert metrics.char_accuracy("ab", "abcd") == 0.5  # missing positions count as wrong
    assert metrics.char_accuracy("abcdef", "abcd") == 1.0  # beyond the reference: ignored ...
    assert not metrics.exact_match("abcdef", "abcd")  # ... but not exact
    value = "123e4567-e89b-12d3-a456-426614174000"
    assert metrics.char_accuracy(value[:-2] + "11", value) == pytest.approx(34 / 36)
    assert metrics.exact_match(f" {value}\n", value)
    assert metrics.char_accuracy("", "") == 1.0


def test_uuid_format_only_predictor_scores_the_chance_level():
    """Right format, random hex: (4 hyphens + version 4 + 1/4 variant + 30/16 hex) / 36 = 57/288
    ≈ 19.79% character accuracy (3.125/32 ≈ 9.77% were the hyphens not counted), no exact match."""
    import random
    import uuid

    from evaluation.task_hooks import uuid_results
    from tasks.memorization import FORMAT_ONLY_CHAR_ACC

    rng = random.Random(0)

    def uuid4():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    scored = [uuid_results({"key": uuid4(), "value": uuid4()}, [uuid4() + "\n"]) for _ in range(4000)]
    char_acc = sum(s["char_acc"] for s in scored) / len(scored)
    assert FORMAT_ONLY_CHAR_ACC == pytest.approx(57 / 288)
    assert char_acc == pytest.approx(57 / 288, abs=0.002)  # 3 standard errors (0.039 / sqrt(4000) each)
    assert sum(s["exact_match"] for s in scored) == 0
    unformatted = [uuid_results({"value": uuid4()}, [uuid4().replace("-", "")]) for _ in range(2000)]
    assert sum(s["char_acc"] for s in unformatted) / 2000 < 0.09  # the format is worth ~13 points


def test_perplexity_from_summed_nll():
    # 3 tokens, each with probability 1/2: NLL = 3 ln 2 -> perplexity 2
    assert metrics.perplexity(3 * math.log(2), 3) == pytest.approx(2.0)
    assert metrics.perplexity(0.0, 5) == 1.0
    with pytest.raises(ValueError):
        metrics.perplexity(1.0, 0)


# -- E2E: BLEU (mteval-v13a) -----------------------------------------------------------------
CAT_HYP = "The cat sat on the mat"
CAT_REFS = ["the cat sat on a mat", "a cat sat on the mat"]


def test_bleu_single_segment_by_hand():
    # unigrams: "the" appears twice but at most once in any one reference -> 5/6 clipped matches;
    # bigrams 5/5, trigrams 4/4, 4-grams 3/3 (each found in one reference or the other);
    # lengths 6 vs 6 -> BP 1.  BLEU = 100 * (5/6 * 1 * 1 * 1) ** (1/4)
    assert metrics.corpus_bleu([CAT_HYP], [CAT_REFS]) == pytest.approx(100 * (5 / 6) ** 0.25)


def test_bleu_corpus_with_brevity_penalty_by_hand():
    # segment 2 "a dog" vs "a dog barks loudly": unigrams 2/2, bigrams 1/1, no 3- or 4-grams.
    # corpus: 7/8, 6/6, 4/4, 3/3; hypothesis length 8, reference length 6 + 4 = 10
    # BP = exp(1 - 10/8); BLEU = 100 * exp(-0.25) * (7/8) ** (1/4)
    hyps, refs = [CAT_HYP, "a dog"], [CAT_REFS, ["a dog barks loudly"]]
    expected = 100 * math.exp(-0.25) * (7 / 8) ** 0.25
    assert metrics.corpus_bleu(hyps, refs) == pytest.approx(expected)

    import sacrebleu

    # sacrebleu needs the same number of reference streams: repeat the single reference
    streams = [[CAT_REFS[0], "a dog barks loudly"], [CAT_REFS[1], "a dog barks loudly"]]
    reference = sacrebleu.corpus_bleu(hyps, streams, lowercase=True, tokenize="13a", smooth_method="none")
    assert metrics.corpus_bleu(hyps, refs) == pytest.approx(reference.score)


def test_bleu_mteval_smoothing_and_ascii_lowercasing():
    # No match at any order: mteval counts the k-th order without a match as 1 / (2^k * total):
    # 1/(2*4), 1/(4*3), 1/(8*2), 1/(16*1); same lengths -> BP 1
    expected = 100 * (1 / 8 * 1 / 12 * 1 / 16 * 1 / 16) ** 0.25
    assert metrics.corpus_bleu(["x y z w"], [["a b c d"]]) == pytest.approx(expected)
    # "a b c" vs "a b d": 2/3 unigrams, 1/2 bigrams, trigram 0/1 -> 1/(2*1); no 4-grams -> log 1
    assert metrics.corpus_bleu(["a b c"], [["a b d"]]) == pytest.approx(100 * (2 / 3 * 1 / 2 * 1 / 2) ** 0.25)
    # mteval lowercases A-Z only (`tr/[A-Z]/[a-z]/`): "CAFÉ" stays "cafÉ", no match with "café"
    assert metrics.corpus_bleu(["CAFE ROUGE"], [["cafe rouge"]]) == pytest.approx(100.0)
    assert metrics.corpus_bleu(["CAFÉ ROUGE"], [["café rouge"]]) < 100.0
    assert metrics.corpus_bleu(["a b c d e"], [["a b c d e"]]) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        metrics.corpus_bleu(["a"], [])
    with pytest.raises(ValueError, match="reference set 0"):
        metrics.corpus_bleu(["a"], [[""]])


# -- E2E: NIST (mteval-v13a) -----------------------------------------------------------------
def test_nist_beta_gives_half_penalty_at_two_thirds_length():
    assert math.exp(NIST_BETA * math.log(2 / 3) ** 2) == pytest.approx(0.5)


def test_nist_by_hand():
    # references: "the cat", "the dog" | "a dog runs" -> 7 words;
    # counts: the 2, cat 1, dog 2, a 1, runs 1; "the cat" 1, "a dog" 1
    # info(the) = log2(7/2), info(cat) = log2(7), info(a) = log2(7), info(dog) = log2(7/2)
    # info("the cat") = log2(count(the)/count(the cat)) = 1, info("a dog") = log2(1/1) = 0
    # n=1: all 4 hypothesis words match: (2 log2(7/2) + 2 log2 7) / 4
    # n=2: "the cat" (1) + "a dog" (0) over 2 bigrams = 1/2; no hypothesis 3..5-grams
    # length (mteval): 7 reference words / 1.5 references per segment = 14/3 vs 4 hypothesis words
    hyps, refs = ["the cat", "a dog"], [["the cat", "the dog"], ["a dog runs"]]
    score = (2 * math.log2(7 / 2) + 2 * math.log2(7)) / 4 + 1 / 2
    expected = score * math.exp(NIST_BETA * math.log(4 / (14 / 3)) ** 2)
    assert metrics.corpus_nist(hyps, refs) == pytest.approx(expected)


def test_nist_penalty_by_hand():
    # "a b" vs "a b c": info(a) = info(b) = log2 3, info("a b") = log2(1/1) = 0
    # score = log2 3 (unigrams) + 0 (bigrams); length ratio 2/3 -> penalty 1/2
    assert metrics.corpus_nist(["a b"], [["a b c"]]) == pytest.approx(math.log2(3) / 2)
    # a duplicated reference counts twice (as in the official tool): counts double, so the
    # information weights stay; 6 reference words over 2 references -> the same length 3
    assert metrics.corpus_nist(["a b"], [["a b c", "a b c"]]) == pytest.approx(math.log2(3) / 2)


# -- E2E: coco-caption ROUGE-L and CIDEr on PTB tokens ----------------------------------------
def test_ptb_tokenize_lowercases_and_drops_punctuation():
    # As coco-caption: £ -> #, quotes and "..." dropped; brackets stay, as -lrb- / -rrb- (lowercased,
    # so coco-caption's punctuation list, which has -LRB-, misses them).
    texts = ("It isn't cheap (£20-25), it's \"kid-friendly\"...", "", "Café Sicilia!")
    assert e2e_metrics.ptb_tokenize(texts) == (
        "it is n't cheap -lrb- # 20-25 -rrb- it 's kid-friendly", "", "café sicilia")


def test_rouge_l_by_hand():
    # coco-caption: F = (1 + 1.2^2) P R / (R + 1.2^2 P), with P and R each maximised over references.
    # "a b c d" vs "a b" (P 1/2, R 1) and vs "a b c d e f g h" (P 1, R 1/2): max P = max R = 1
    assert metrics.rouge_l(["a b c d"], [["a b", "a b c d e f g h"]]) == pytest.approx(1.0)
    # "a dog" vs "a dog barks loudly": LCS 2 -> P 1, R 1/2; vs "the dog": P 1/2, R 1/2
    f = 2.44 * 1 * 0.5 / (0.5 + 1.44 * 1)
    # segment 2: case and punctuation go with the PTB tokenizer -> 1; the corpus score is the mean
    hyps, refs = ["a dog", "Same words, here."], [["a dog barks loudly", "the dog"], ["same words here"]]
    assert metrics.rouge_l(hyps, refs) == pytest.approx((f + 1) / 2)


def test_cider_by_hand():
    # 2 MRs, so every n-gram in one MR's references has idf = ln(2/1); unseen n-grams get ln 2
    # too (coco-caption's max(1, df)).  MR 1: "a a b" vs "a b"; MR 2: "c" vs "d" scores 0.
    # unigrams: hyp (a: 2, b: 1), ref (a: 1, b: 1) times ln 2; norms sqrt5, sqrt2 (x ln 2)
    #   coco-caption clips the numerator: (min(2,1) + 1) / sqrt10 (plain cosine: 3 / sqrt10)
    # bigrams: hyp ("a a", "a b"), ref ("a b"): 1 / sqrt2; no ref 3-grams -> 0
    # coco-caption's Gaussian length penalty (lengths in bigrams): exp(-(2 - 1)^2 / (2 * 6^2))
    hyps, refs = ["a a b", "c"], [["a b"], ["d"]]
    coco = 10 * (2 / math.sqrt(10) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4 / 2
    assert metrics.cider(hyps, refs) == pytest.approx(coco)


def test_cider_identical_is_ten_and_averages_references():
    hyps = ["the cat sat on the mat", "a dog barks at night"]
    assert metrics.cider(hyps, [[h] for h in hyps]) == pytest.approx(10.0)
    # MR 1 equal to one of its two references: mean over references halves the unmatched one
    # (MR 2 "x" shares no n-gram with "y"): score = (10 * (1 + s) / 2 + 0) / 2 with s < 1
    assert 2.5 < metrics.cider(["a b c d", "x"], [["a b c d", "a b e f"], ["y"]]) < 5.0


# -- E2E: METEOR 1.5 (Java) -------------------------------------------------------------------
def test_meteor_by_hand():
    # METEOR 1.5, `-l en`: alpha 0.85, beta 0.2, gamma 0.6, delta 0.75 (content vs function words),
    # match weights exact 1, synonym 0.8. Fmean = P R / (alpha P + (1 - alpha) R);
    # penalty gamma (chunks / matches)^beta, none when one chunk covers both texts.
    assert metrics.meteor([CAT_HYP], [[CAT_HYP.lower()]]) == pytest.approx(1.0)
    # "the dog" vs "the hound": "the" (function word) exact, dog ~ hound (WordNet synonym):
    # P = R = (0.75 * 0.8 + 0.25 * 1) / (0.75 + 0.25) = 0.85, one chunk covering both -> 0.85
    assert metrics.meteor(["the dog"], [["the hound"]]) == pytest.approx(0.85)
    # "the dog" vs "the cat": only "the": P = R = 0.25; 1 chunk / 1 match -> penalty 0.6 -> 0.1
    assert metrics.meteor(["the dog"], [["the cat"]]) == pytest.approx(0.1)


def test_meteor_is_corpus_level_not_a_segment_mean():
    hyps = ["the cat sat on the mat", "a dog barks"]
    refs = [["the cat is on the mat"], ["a dog barks loudly at night"]]
    segments = [metrics.meteor([h], [r]) for h, r in zip(hyps, refs)]
    corpus = metrics.meteor(hyps, refs)
    assert min(segments) < corpus < max(segments)
    assert abs(corpus - sum(segments) / 2) > 1e-3


def test_e2e_scores_identical_outputs():
    texts = ["The Eagle is a cheap pub near the river.", "Zizzi serves French food in the city centre."]
    scores = metrics.e2e_scores(texts, [[t] for t in texts])
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["cider"] == pytest.approx(10.0)
    assert scores["meteor"] == pytest.approx(1.0)
    assert scores["nist"] > 0


def test_java_missing_names_the_fix(monkeypatch):
    monkeypatch.setattr(e2e_metrics.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="default-jre-headless"):
        metrics.rouge_l(["never tokenized before"], [["so no cached tokens"]])


# -- instruction checks: lm-eval's IFEval checkers ----------------------------------------------
def ifeval(*instructions):
    return {"instruction_id_list": [i for i, _ in instructions], "kwargs": [k for _, k in instructions]}


BULLETS = "detectable_format:number_bullet_lists"
WORDS = "length_constraints:number_words"
FIRST_WORD = "length_constraints:nth_paragraph_first_word"
# 16 probes where the suite's former bespoke checks and IFEval's differ or are easily confused; the
# expected strict / loose verdicts are worked out by hand from lm_eval/tasks/ifeval/instructions.py.
PROBES = [
    ("1. apple\n2. pear\n3. plum", ifeval((BULLETS, {"num_bullets": 3})), False, False),  # numbered: not bullets
    ("- apple\n- pear\n- plum", ifeval((BULLETS, {"num_bullets": 3})), True, True),
    ("* apple\n* pear", ifeval((BULLETS, {"num_bullets": 2})), True, True),
    ("-apple\n-pear", ifeval((BULLETS, {"num_bullets": 2})), True, True),  # any line starting with "-"
    ("It's a dog-friendly place.", ifeval((WORDS, {"num_words": 5, "relation": "less than"})), False, False),  # 6 \w+ runs
    ("one two three", ifeval((WORDS, {"num_words": 3, "relation": "less than"})), False, False),  # strictly less
    ("one two", ifeval((WORDS, {"num_words": 3, "relation": "less than"})), True, True),
    ("I love my Dog", ifeval(("startend:end_checker", {"end_phrase": "dog"})), True, True),  # case-insensitive
    ('"Wow!"', ifeval(("startend:end_checker", {"end_phrase": "!"})), True, True),  # quotes stripped first
    ("Wow!\nThanks.", ifeval(("startend:end_checker", {"end_phrase": "!"})), False, True),  # loose drops the last line
    ("I like concatenation", ifeval(("keywords:forbidden_words", {"forbidden_words": ["cat"]})), True, True),  # \bcat\b
    ("Red is bold", ifeval(("keywords:forbidden_words", {"forbidden_words": ["red"]})), False, False),
    ("Cats are nice", ifeval(("keywords:existence", {"keywords": ["cat"]})), True, True),  # a bare substring search
    ('"Ben lives here."', ifeval((FIRST_WORD, {"num_paragraphs": 1, "nth_paragraph": 1, "first_word": "Ben"})),
     True, True),  # quote stripped, lower-cased
    ("Ben, the baker.\n\nHe bakes.", ifeval((FIRST_WORD, {"num_paragraphs": 1, "nth_paragraph": 1,
                                                          "first_word": "ben"})), False, True),  # 2 paragraphs; loose: 1
    ("**the cat sleeps on the warm mat and the dog runs after the ball in the garden**",
     ifeval(("change_case:english_lowercase", {}), ("punctuation:no_comma", {})), True, True),
]


@pytest.mark.parametrize("response, check, strict, loose", PROBES)
def test_instruction_pass_rates_are_ifevals_verdicts(response, check, strict, loose):
    from lm_eval.tasks.ifeval.utils import process_results

    ours = scores(response, check, prompt="p")
    assert (ours["prompt_pass_rate"], ours["prompt_pass_rate_loose"]) == (strict, loose)
    theirs = process_results({"key": 0, "prompt": "p", **check}, [response])
    assert ours == {"prompt_pass_rate": theirs["prompt_level_strict_acc"], "inst_pass_rate": theirs["inst_level_strict_acc"],
                    "prompt_pass_rate_loose": theirs["prompt_level_loose_acc"],
                    "inst_pass_rate_loose": theirs["inst_level_loose_acc"]}


def test_instruction_level_counts_each_instruction():
    check = ifeval(("keywords:existence", {"keywords": ["cat"]}), ("punctuation:no_comma", {}),
                   ("startend:quotation", {}))
    assert scores("A cat, a dog.", check) == {"prompt_pass_rate": False, "inst_pass_rate": [True, False, False],
                                              "prompt_pass_rate_loose": False,
                                              "inst_pass_rate_loose": [True, False, False]}


def test_instruction_check_validation():
    with pytest.raises(ValueError, match="unknown instruction id 'rhymes'"):
        validate_check(ifeval(("rhymes", {})))
    with pytest.raises(ValueError, match=r"needs kwargs \['num_bullets'\]"):
        validate_check(ifeval((BULLETS, {})))  # IFEval would draw the number at random
    with pytest.raises(ValueError, match="one kwargs dict per instruction id"):
        validate_check({"instruction_id_list": [BULLETS], "kwargs": []})
    with pytest.raises(ValueError, match="bad kwargs"):
        validate_check(ifeval((WORDS, {"num_words": 3, "relation": "at most"})))
    with pytest.raises(ValueError, match="'instruction_id_list' and 'kwargs' lists"):
        validate_check({"type": "lowercase"})
