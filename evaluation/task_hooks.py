"""Functions the suite's task YAMLs reference with `!function evaluation.task_hooks.<name>`.

lm-eval calls `process_results(doc, results)` once per document and then each metric's
`aggregation(items)` once over the list of per-document items. Corpus-level metrics (BLEU,
CIDEr, MCC, Pearson, ...) therefore return their inputs from process_results and do the work in
the aggregation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from evaluation import metrics
from evaluation import instruction_checks
from tasks.memorization import eval_prompt as uuid_prompt  # noqa: F401 (the YAML's doc_to_text)


def _generation(results: list) -> str:
    return results[0].strip()


# -- E2E: items are (hypothesis, references) ---------------------------------------------------
def e2e_results(doc: dict, results: list) -> dict:
    item = (_generation(results), list(doc["references"]))
    return {name: item for name in ("bleu", "nist", "meteor", "rouge_l", "cider")}


def _split(items: list) -> tuple[list[str], list[list[str]]]:
    return [hyp for hyp, _ in items], [refs for _, refs in items]


def bleu_aggregation(items: list) -> float:
    return metrics.corpus_bleu(*_split(items))


def nist_aggregation(items: list) -> float:
    return metrics.corpus_nist(*_split(items))


def meteor_aggregation(items: list) -> float:
    return metrics.meteor(*_split(items))


def rouge_l_aggregation(items: list) -> float:
    return metrics.rouge_l(*_split(items))


def cider_aggregation(items: list) -> float:
    return metrics.cider(*_split(items))


# -- math, memorization, instruction following: per-document scores, averaged ------------------
def math_results(doc: dict, results: list) -> dict:
    return {"exact_match": float(metrics.math_exact_match(results[0], str(doc["answer"])))}


def uuid_results(doc: dict, results: list) -> dict:
    # Scored on as many characters as the value has (MoRA decodes the value's length); a model
    # that runs on past the value without stopping still gets its value right.
    value = doc["value"]
    generated = results[0][: len(value)]
    return {
        "char_acc": metrics.char_accuracy(generated, value),
        "exact_match": float(metrics.exact_match(generated, value)),
    }


def instruction_results(doc: dict, results: list) -> dict:
    # IFEval's strict and loose judgements; the instruction-level lists are averaged over all
    # instructions by lm-eval's own ifeval aggregation (see lorabench_instruction.yaml).
    return instruction_checks.scores(results[0], doc["check"], doc["prompt"])


# -- perplexity: items are (log-likelihood, units) as lm-eval's weighted_perplexity expects -----
def perplexity_results(doc: dict, results: list, count_tokens: Callable[[str], list] | None = None) -> dict:
    (result,) = results  # loglikelihood_rolling: the log-likelihood; loglikelihood: (it, is_greedy)
    loglikelihood = result[0] if isinstance(result, (tuple, list)) else result
    text = doc["target"]
    scores = {
        # Same word and byte counts as lm-eval's own loglikelihood_rolling tasks.
        "word_perplexity": (loglikelihood, len(re.split(r"\s+", text))),
        "byte_perplexity": (loglikelihood, len(text.encode("utf-8"))),
        "bits_per_byte": (loglikelihood, len(text.encode("utf-8"))),
    }
    if count_tokens is not None:
        scores["token_perplexity"] = (loglikelihood, len(count_tokens(text)))
    return scores


def token_perplexity_aggregation(items: list) -> float:
    return metrics.perplexity(-sum(ll for ll, _ in items), sum(n for _, n in items))


# -- classification: the classifier wrapper reads text and text_pair back from the context -----
def classifier_context(doc: dict) -> str:
    return json.dumps({"text": doc["text"], "text_pair": doc.get("text_pair")})


def f1_aggregation(items: list) -> float:
    golds, preds = zip(*items)
    return metrics.f1_binary(golds, preds)


def mcc_aggregation(items: list) -> float:
    golds, preds = zip(*items)
    return metrics.matthews_corrcoef(golds, preds)


def regression_results(doc: dict, results: list) -> dict:
    item = (float(results[0]), float(doc["label"]))
    return {"pearson": item, "spearman": item}


def pearson_aggregation(items: list) -> float:
    predictions, golds = zip(*items)
    return metrics.pearson(predictions, golds)


def spearman_aggregation(items: list) -> float:
    predictions, golds = zip(*items)
    return metrics.spearman(predictions, golds)
