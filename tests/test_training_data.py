"""Causal-LM encoding of records longer than seq_len: the prompt gives way, the target keeps its loss."""
from __future__ import annotations

import random

import pytest

from tasks.instruct import _tulu_records
from training.base_model import train_tokenizer
from training.data import IGNORE, encode_causal

WORDS = ["the", "river", "bank", "moves", "slowly", "under", "a", "grey", "sky", "while", "we", "talk", "about",
         "maps", "and", "trains", "answer", "question", "please", "explain"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def tok():
    rng = random.Random(0)
    return train_tokenizer([sentence(rng, 30) for _ in range(200)] + ["<|user|>\n<|assistant|>\n"], vocab_size=300)


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_a_long_conversation_keeps_the_last_answers_loss(tok):
    """Tülu v2: the last assistant turn's prompt is the whole history, far longer than seq_len."""
    rng = random.Random(1)
    messages = [{"role": role, "content": sentence(rng, 40)} for _ in range(6) for role in ("user", "assistant")]
    last = _tulu_records({"dataset": "sharegpt", "id": "c1", "messages": messages})[-1]
    prompt, target = ids(tok, last["prompt"]), ids(tok, last["target"])
    seq_len = 256
    assert len(prompt) > 3 * seq_len and len(target) + 2 < seq_len
    [example] = encode_causal([last], tok, seq_len, add_bos=True)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert len(example["input_ids"]) == len(example["labels"]) == seq_len
    assert [t for t in example["labels"] if t != IGNORE] == target + [eos]  # the whole answer carries loss
    kept = seq_len - 1 - len(target) - 1
    assert example["input_ids"] == [bos] + prompt[-kept:] + target + [eos]  # bos, then the newest history
    assert tok.decode(example["input_ids"][1:1 + kept]).endswith("<|assistant|>\n")


def test_only_a_target_that_alone_does_not_fit_loses_its_end(tok):
    rng = random.Random(2)
    record = {"prompt": sentence(rng, 20), "target": " " + sentence(rng, 60)}
    target = ids(tok, record["target"])
    assert len(target) > 40
    [example] = encode_causal([record], tok, 40, add_bos=True)
    assert example["input_ids"] == [tok.bos_token_id] + target[:39]  # no room for the prompt, nor the eos
    assert example["labels"] == [IGNORE] + target[:39]
    short = {"prompt": "the river", "target": " moves"}  # fits: unchanged
    [example] = encode_causal([short], tok, 40, add_bos=False)
    assert example["input_ids"] == ids(tok, "the river") + ids(tok, " moves") + [tok.eos_token_id]
    assert example["labels"] == [IGNORE] * len(ids(tok, "the river")) + ids(tok, " moves") + [tok.eos_token_id]


def test_auto_bos_follows_the_tokenizer_as_lm_eval_encodes_prompts(tok):
    """The tiny tokenizer starts text with <s> (LLaMA-2 style): training keeps it. A tokenizer that
    never adds its bos (GPT-2; SmolLM2, whose bos is <|im_start|>) trains without one, so the
    model is evaluated on prompts shaped as it was trained (lm-eval encodes with the tokenizer's
    own special tokens)."""
    import copy

    from training.data import tokenizer_adds_bos

    record = {"prompt": "the river", "target": " moves"}
    assert tokenizer_adds_bos(tok) and tok("the")["input_ids"][0] == tok.bos_token_id
    [example] = encode_causal([record], tok, 40, add_bos="auto")
    assert example["input_ids"][0] == tok.bos_token_id
    plain = copy.deepcopy(tok)
    plain._tokenizer.post_processor = None             # now it encodes text without <s>
    assert not tokenizer_adds_bos(plain) and plain("the")["input_ids"][0] != plain.bos_token_id
    [example] = encode_causal([record], plain, 40, add_bos="auto")
    assert example["input_ids"] == ids(plain, "the river") + ids(plain, " moves") + [plain.eos_token_id]
    [forced] = encode_causal([record], plain, 40, add_bos=True)
    assert forced["input_ids"][0] == plain.bos_token_id
