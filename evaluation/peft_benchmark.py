"""PEFT's method comparison (huggingface/peft @ 5d602fd, method_comparison/MetaMathQA) as lm-eval tasks.

The benchmark trains Llama-3.2-3B on MetaMathQA and reports, per PEFT method, two numbers that the
tasks of evaluation/tasks/paper/peft_metamathqa/ reproduce (config/paper/peft_method_comparison.yaml
runs them; docs/papers.md has the settings):

- `peft_gsm8k` — "test accuracy": GSM8K test, zero-shot, the prompt
  "Question: {question} Think step by step.\\nAnswer:", greedy decoding until EOS or 300 new
  tokens (no stop strings). Their evaluate() decodes prompt and generation together, and
  get_accuracy() reads both the prediction and GSM8K's reference with parse_answer(): the text
  after the last occurrence of the first of "The answer is: ", "The answer is ", "The final answer
  is: ", "The final answer is ", "#### " that occurs anywhere in it (list order, not text order),
  once trailing ".!?" are stripped from the whole text, cut at the next newline, then " .!?$%"
  stripped off both ends. Both sides are read as Decimal ("a/b" divided, "1,000" is no number), then
  compared as floats; where a side is no number the raw strings are compared, except that a
  reference that is no number is only kept when the prediction parsed (their quirk, kept). Here
  the prediction is `doc_to_text(doc) + generation`, as their decode gives it.
- `peft_wiki_loss` — the "forgetting" inputs: the mean cross-entropy per token over the first 100
  rows of HuggingFaceFW/finewiki (train, streamed), each tokenized as their tokenizer call does
  (BOS + text, truncated to 768 tokens), every token after BOS predicted from its prefix, and the
  losses pooled over all tokens of all rows (not averaged per row). Forgetting is that loss after
  training minus the base model's ("with the adapter disabled"): the analysis subtracts the base
  model's value of the same task (mapping.yaml `transform: minus_base`).
  Through lm-eval: a `loglikelihood` request whose context is the tokenizer's BOS text and whose
  continuation is the row cut to its first 767 tokens after BOS, so that lm-eval scores exactly
  those tokens given BOS; the token count comes from the same tokenizer (`evaluation_tokenizer`,
  which evaluation.run sets around simple_evaluate).

What peft 0.21.2 (pinned here) and the suite do differently is listed in docs/papers.md.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from decimal import Decimal, DivisionByZero, InvalidOperation

TEMPLATE = "Question: {query} Think step by step.\nAnswer:"
DELIMITERS = ("The answer is: ", "The answer is ", "The final answer is: ", "The final answer is ", "#### ")
WIKI_HUB_ID = "HuggingFaceFW/finewiki"
WIKI_ROWS = 100
WIKI_MAX_TOKENS = 768        # their calculate_mean_per_token_loss(..., max_length=768), BOS included


# ---------------------------------------------------------------- answers


def parse_answer(text: str) -> str | None:
    """The answer string their parse_answer() reads from a text, or None without any delimiter."""
    text = text.strip().rstrip(".!?")
    delimiter = next((d for d in DELIMITERS if d in text), None)
    if delimiter is None:
        return None
    answer = text.rpartition(delimiter)[2].strip()
    return answer.split("\n", 1)[0].strip(" .!?$%")


def to_decimal(text: str | None) -> Decimal | None:
    """A number as their convert_to_decimal() reads it: Decimal, "a/b" divided; None otherwise."""
    if text is None:
        return None
    text = text.strip()
    try:
        if "/" in text:
            parts = text.split("/")
            if len(parts) != 2:
                return None
            top, bottom = Decimal(parts[0].strip()), Decimal(parts[1].strip())
            return None if bottom == 0 else top / bottom
        return Decimal(text)
    except (DivisionByZero, InvalidOperation, ValueError):
        return None


def _side(parsed: str | None, number: Decimal | None) -> float | str | None:
    return float(number) if number is not None else parsed


def is_correct(prediction: str, response: str) -> bool:
    """One item of their get_accuracy(): ValueError where theirs raises (a reference without answer)."""
    predicted, reference = parse_answer(prediction), parse_answer(response)
    if reference is None:
        raise ValueError(f"no answer in the reference: {response!r}")
    pred = _side(predicted, to_decimal(predicted))
    gold_number = to_decimal(reference)
    # theirs: a reference that is no number is kept only when the prediction parsed
    gold = float(gold_number) if gold_number is not None else (reference if predicted is not None else None)
    return pred is not None and gold is not None and pred == gold


def accuracy(predictions: list[str], responses: list[str]) -> float:
    if len(predictions) != len(responses):
        raise ValueError(f"Prediction length mismatch: {len(predictions)} != {len(responses)}")
    return sum(is_correct(p, r) for p, r in zip(predictions, responses)) / len(predictions)


def gsm8k_text(doc: dict) -> str:
    return TEMPLATE.format(query=doc["question"])


def gsm8k_target(doc: dict) -> str:
    return parse_answer(doc["answer"]) or ""


def gsm8k_results(doc: dict, results: list[str]) -> dict:
    # their prediction is the decoded prompt + generation
    return {"accuracy": float(is_correct(gsm8k_text(doc) + results[0], doc["answer"]))}


# ---------------------------------------------------------------- the general-text sample


def wiki_dataset(data_files=None, num_rows: int = WIKI_ROWS, hub_id: str = WIKI_HUB_ID, **_):
    """lm-eval `custom_dataset`: {"train": the first `num_rows` rows} of finewiki (streamed from the
    Hub), or of local files in its schema (`data_files`, eval.lm_eval_data)."""
    import datasets

    if data_files:
        files = data_files.get("train", next(iter(data_files.values()))) if isinstance(data_files, dict) else data_files
        builder = "parquet" if str(files if isinstance(files, str) else files[0]).endswith(".parquet") else "json"
        stream = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    else:
        stream = datasets.load_dataset(hub_id, split="train", streaming=True)
    rows = [{"text": row["text"]} for row in itertools.islice(iter(stream), num_rows)]
    if not rows:
        raise ValueError(f"{data_files or hub_id}: no rows for peft_wiki_loss")
    return {"train": datasets.Dataset.from_list(rows)}


# ---------------------------------------------------------------- the general-text loss

_TOKENIZER = None


@contextlib.contextmanager
def evaluation_tokenizer(tokenizer) -> Iterator[None]:
    """The evaluated model's tokenizer, for the tasks that count or cut tokens (peft_wiki_loss)."""
    global _TOKENIZER
    previous, _TOKENIZER = _TOKENIZER, tokenizer
    try:
        yield
    finally:
        _TOKENIZER = previous


def _tokenizer():
    if _TOKENIZER is None:
        raise RuntimeError("peft_wiki_loss needs the model's tokenizer: run it through evaluation.run.evaluate_run "
                           "(or inside evaluation.peft_benchmark.evaluation_tokenizer(tokenizer))")
    return _TOKENIZER


def _bos_id(tokenizer) -> int:
    # lm-eval's prefix token: BOS, else EOS
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def row_tokens(text: str, tokenizer=None, max_tokens: int = WIKI_MAX_TOKENS) -> list[int]:
    """The tokens of one row that carry a loss: the text's tokens after BOS, as many as fit in
    `max_tokens` with BOS (their tokenizer(..., truncation=True, max_length=768))."""
    tokenizer = tokenizer or _tokenizer()
    return tokenizer(text, add_special_tokens=False)["input_ids"][: max_tokens - 1]


def wiki_text(doc: dict) -> str:
    tokenizer = _tokenizer()
    return tokenizer.decode([_bos_id(tokenizer)])


def wiki_target(doc: dict) -> str:
    """The row cut after its last scored token (character offsets, so no text is re-spelt)."""
    tokenizer = _tokenizer()
    text = doc["text"]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    if len(ids) <= WIKI_MAX_TOKENS - 1:
        return text
    return text[: encoded["offset_mapping"][WIKI_MAX_TOKENS - 2][1]]


def wiki_results(doc: dict, results: list) -> dict:
    (result,) = results
    loglikelihood = result[0] if isinstance(result, (tuple, list)) else result
    tokenizer = _tokenizer()
    n = len(tokenizer(wiki_target(doc), add_special_tokens=False)["input_ids"])
    return {"wiki_loss": (float(loglikelihood), n)}


def pooled_loss(items: list) -> float:
    """Mean cross-entropy per token over every token of every row."""
    tokens = sum(n for _, n in items)
    return -sum(ll for ll, _ in items) / tokens if tokens else math.nan
