"""Metrics against values worked out by hand (the arithmetic is in the comments)."""

import math
import os

import pytest

from evaluation import metrics
from evaluation.e2e_metrics import NIST_BETA
from evaluation.instruction_checks import scores, validate_check
from evaluation.wordnet_setup import DEBIAN_WORDNET, LEXNAMES, find_wordnet_dir, install, load_wordnet

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


# -- E2E: BLEU ---------------------------------------------------------------------------------
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


def test_bleu_properties():
    assert metrics.corpus_bleu(["a b c d e"], [["a b c d e"]]) == pytest.approx(100.0)
    assert metrics.corpus_bleu(["x y z w"], [["a b c d"]]) == 0.0
    with pytest.raises(ValueError):
        metrics.corpus_bleu(["a"], [])


# -- E2E: NIST ---------------------------------------------------------------------------------
def test_nist_beta_gives_half_penalty_at_two_thirds_length():
    assert math.exp(NIST_BETA * math.log(2 / 3) ** 2) == pytest.approx(0.5)


def test_nist_by_hand():
    # references: "the cat", "the dog" | "a dog runs" -> 7 words;
    # counts: the 2, cat 1, dog 2, a 1, runs 1; "the cat" 1, "a dog" 1
    # info(the) = log2(7/2), info(cat) = log2(7), info(a) = log2(7), info(dog) = log2(7/2)
    # info("the cat") = log2(count(the)/count(the cat)) = 1, info("a dog") = log2(1/1) = 0
    # n=1: all 4 hypothesis words match: (2 log2(7/2) + 2 log2 7) / 4
    # n=2: "the cat" (1) + "a dog" (0) over 2 bigrams = 1/2; no hypothesis 3..5-grams
    # length: 4 words vs mean reference lengths 2 + 3 = 5 -> penalty exp(beta * ln(0.8)^2)
    hyps, refs = ["the cat", "a dog"], [["the cat", "the dog"], ["a dog runs"]]
    score = (2 * math.log2(7 / 2) + 2 * math.log2(7)) / 4 + 1 / 2
    expected = score * math.exp(NIST_BETA * math.log(0.8) ** 2)
    assert metrics.corpus_nist(hyps, refs) == pytest.approx(expected)


def test_nist_penalty_by_hand():
    # "a b" vs "a b c": info(a) = info(b) = log2 3, info("a b") = log2(1/1) = 0
    # score = log2 3 (unigrams) + 0 (bigrams); length ratio 2/3 -> penalty 1/2
    assert metrics.corpus_nist(["a b"], [["a b c"]]) == pytest.approx(math.log2(3) / 2)


# -- E2E: ROUGE-L ------------------------------------------------------------------------------
def test_rouge_l_by_hand():
    # segment 1 vs "the cat is on the mat": LCS "the cat on the mat" = 5 -> P = R = F = 5/6;
    #           vs "a cat": LCS 1 -> P 1/6, R 1/2, F = 1/4; best 5/6
    # segment 2 "a dog" vs "a dog barks loudly": LCS 2 -> P 1, R 1/2, F = 2/3
    hyps = ["the cat sat on the mat", "a dog"]
    refs = [["the cat is on the mat", "a cat"], ["a dog barks loudly"]]
    assert metrics.rouge_l(hyps, refs) == pytest.approx((5 / 6 + 2 / 3) / 2)
    assert metrics.rouge_l(["same words here"], [["Same words here"]]) == pytest.approx(1.0)


# -- E2E: CIDEr --------------------------------------------------------------------------------
def test_cider_by_hand():
    # 2 MRs, so every n-gram in one MR's references has idf = ln(2/1); unseen n-grams get ln 2
    # too (coco-caption's max(1, df)).  MR 1: "a a b" vs "a b"; MR 2: "c" vs "d" scores 0.
    # unigrams: hyp (a: 2, b: 1), ref (a: 1, b: 1) times ln 2; norms sqrt5, sqrt2 (x ln 2)
    #   classic cosine: (2 + 1) / sqrt10;  coco-caption clips: (min(2,1) + 1) / sqrt10
    # bigrams: hyp ("a a", "a b"), ref ("a b"): 1 / sqrt2 both ways; no ref 3-grams -> 0
    # coco-caption's Gaussian length penalty: exp(-(3 - 2)^2 / (2 * 6^2)) on each order
    hyps, refs = ["a a b", "c"], [["a b"], ["d"]]
    classic = 10 * (3 / math.sqrt(10) + 1 / math.sqrt(2)) / 4 / 2
    coco = 10 * (2 / math.sqrt(10) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4 / 2
    assert metrics.cider(hyps, refs, e2e_compatible=False) == pytest.approx(classic)
    assert metrics.cider(hyps, refs) == pytest.approx(coco)


def test_cider_identical_is_ten_and_averages_references():
    hyps = ["the cat sat on the mat", "a dog barks at night"]
    assert metrics.cider(hyps, [[h] for h in hyps]) == pytest.approx(10.0)
    # MR 1 equal to one of its two references: mean over references halves the unmatched one
    # (MR 2 "x" shares no n-gram with "y"): score = (10 * (1 + s) / 2 + 0) / 2 with s < 1
    assert 2.5 < metrics.cider(["a b c d", "x"], [["a b c d", "a b e f"], ["y"]]) < 5.0


# -- E2E: METEOR (WordNet from Debian's wordnet-base via NLTK_DATA) -----------------------------
@pytest.fixture(scope="module")
def wordnet_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("NLTK_DATA"):
            target = tmp_path_factory.mktemp("nltk_data")
            install(target)
            patch.setenv("NLTK_DATA", str(target))
        yield find_wordnet_dir()


def test_meteor_by_hand(wordnet_env):
    # nltk METEOR: Fmean = P R / (0.9 P + 0.1 R), penalty 0.5 (chunks / matches)^3
    # identical 6 tokens: one chunk -> 1 * (1 - 0.5 / 216)
    assert metrics.meteor([CAT_HYP], [[CAT_HYP]]) == pytest.approx(1 - 0.5 / 216)
    # "the cat sat" vs a 6-token reference: P 1, R 1/2, Fmean 0.5 / 0.95, one chunk of 3
    # (the reference has no second "the": nltk aligns greedily and could split the chunk)
    partial = (0.5 / 0.95) * (1 - 0.5 / 27)
    assert metrics.meteor(["the cat sat"], [["x y z", "the cat sat on a mat"]]) == pytest.approx(partial)
    # "dog" ~ "hound" only through WordNet (a synset holds both): P = R = 1, one chunk of 2
    synonym = 1 - 0.5 / 8
    assert metrics.meteor(["the dog"], [["the hound"]]) == pytest.approx(synonym)
    assert metrics.meteor(
        ["the dog", "the cat sat"], [["the hound"], ["the cat sat on a mat"]]
    ) == pytest.approx((synonym + partial) / 2)


def test_e2e_scores_identical_outputs(wordnet_env):
    texts = ["The Eagle is a cheap pub near the river.", "Zizzi serves French food in the city centre."]
    scores = metrics.e2e_scores(texts, [[t] for t in texts])
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["cider"] == pytest.approx(10.0)
    assert scores["meteor"] > 0.99
    assert scores["nist"] > 0


def test_wordnet_setup_copies_debian_files_and_writes_lexnames(tmp_path):
    wordnet_dir = install(tmp_path)
    lexnames = (wordnet_dir / "lexnames").read_text().splitlines()
    assert len(lexnames) == len(LEXNAMES) == 45
    assert lexnames[3] == "03\tnoun.Tops\t1" and lexnames[44] == "44\tadj.ppl\t3"
    assert (wordnet_dir / "data.noun").stat().st_size == (DEBIAN_WORDNET / "data.noun").stat().st_size
    assert not (wordnet_dir / "data.noun").is_symlink()


def test_wordnet_errors_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="apt-get install -y wordnet-base"):
        install(tmp_path / "out", source=tmp_path / "no_wordnet_here")
    import nltk

    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr("evaluation.wordnet_setup.DEFAULT_TARGET", tmp_path / "not_installed")
    with pytest.raises(RuntimeError, match="python -m evaluation.wordnet_setup"):
        load_wordnet()


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
