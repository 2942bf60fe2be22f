"""Task records → token ids → length-bucketed, padded batches.

Record format (the contract with tasks/): JSONL splits train/validation/test.jsonl, every
record has an `id`; causal-LM records have `prompt` and `target` (loss on the target tokens
only; prompt "" for plain text), classification records `text`, optional `text_pair` and
`label` (int, or float for regression).

The order of batches is a pure function of (seed, epoch), so a resumed run only needs the
position (epoch, batch index) to see exactly the batches an uninterrupted run would see.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tasks.records import jsonl_records

from .config import InputError

IGNORE = -100            # label of tokens that carry no loss (prompt, padding)
BUCKET_BATCHES = 50      # sort by length within windows of this many batches: little padding, still shuffled


# The columns a record of each task kind needs, and the types they take.
COLUMNS = {"causal_lm": {"prompt": (str,), "target": (str,)},
           "classification": {"text": (str,), "label": (int, float)}}
REGENERATE = "fix that line, or regenerate the split: python -m tasks --task <task> --source tiny|paper --out DIR"


class DataError(InputError):
    """A data file breaks the record format; the message names the file, the line and the fix."""


def read_jsonl(path: str | Path, task_kind: str | None = None) -> list[dict]:
    """The records of a JSONL split; with `task_kind`, each is checked for that kind's columns."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the task's data directory needs {path.name}")
    columns = COLUMNS.get(task_kind, {})
    records = []
    try:
        lines = list(jsonl_records(path, REGENERATE))
    except ValueError as error:  # bad JSON: bad input, exit 2
        raise DataError(str(error)) from None
    for n, record in lines:
        for column, types in columns.items():
            if column not in record:
                raise DataError(f"{path}: line {n} (id={record.get('id')!r}) has no {column!r}; a {task_kind} "
                                f"record needs {sorted(columns)}; {REGENERATE}")
            value = record[column]
            if isinstance(value, bool) or not isinstance(value, types):
                raise DataError(f"{path}: line {n} (id={record.get('id')!r}): {column!r} must be "
                                f"{' or '.join(t.__name__ for t in types)}, got {value!r}; {REGENERATE}")
        records.append(record)
    return records


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether the tokenizer starts plain text with its bos token (e.g. LLaMA-2's <s>); lm-eval
    encodes prompts that way, so a model trained with the other convention is evaluated off it
    (SmolLM2's bos is <|im_start|>, which its tokenizer never adds to plain text)."""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def encode_causal(records: list[dict], tokenizer, seq_len: int, add_bos: bool | str,
                  add_eos: bool = True) -> list[dict]:
    """[bos] prompt target [eos] in at most seq_len tokens; labels IGNORE on bos and prompt.
    add_bos "auto": bos only where the tokenizer adds it itself (tokenizer_adds_bos); add_eos False:
    no eos (kongds/MoRA's UUID data).

    Too long, the prompt loses its oldest tokens (a long conversation keeps its last turns and the
    answer's loss); only a target that alone does not fit loses its end (then no prompt is left).
    """
    if add_bos == "auto":
        add_bos = tokenizer_adds_bos(tokenizer)
    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else []
    prompts = tokenizer([r["prompt"] for r in records], add_special_tokens=False)["input_ids"]
    targets = tokenizer([r["target"] for r in records], add_special_tokens=False)["input_ids"]
    examples = []
    for prompt, target in zip(prompts, targets):
        target = (target + eos)[:seq_len - len(bos)]
        context = bos + prompt[max(len(prompt) + len(bos) + len(target) - seq_len, 0):]  # the newest that fit
        examples.append({"input_ids": context + target, "labels": [IGNORE] * len(context) + target})
    if not any(any(t != IGNORE for t in e["labels"][1:]) for e in examples):
        raise ValueError(f"no target token survives truncation to seq_len={seq_len}: raise seq_len")
    return examples


def pack(examples: list[dict], seq_len: int) -> list[dict]:
    """Concatenate encoded examples and cut the stream into full rows of seq_len (the tail is dropped).

    For pretraining on short documents: no padding and longer context per row. Attention crosses
    document boundaries, as in GPT-style packing; each document still starts with its own bos.
    """
    ids = [t for e in examples for t in e["input_ids"]]
    labels = [t for e in examples for t in e["labels"]]
    rows = [{"input_ids": ids[i:i + seq_len], "labels": labels[i:i + seq_len]}
            for i in range(0, len(ids) - seq_len + 1, seq_len)]
    if not rows:
        raise ValueError(f"packing: {len(ids)} tokens in all do not fill one row of seq_len={seq_len}")
    return rows


def encode_classification(records: list[dict], tokenizer, seq_len: int, regression: bool) -> list[dict]:
    texts = [r["text"] for r in records]
    pairs = [r["text_pair"] for r in records] if "text_pair" in records[0] else None
    ids = tokenizer(texts, pairs, truncation=True, max_length=seq_len)["input_ids"]
    return [{"input_ids": i, "label": float(r["label"]) if regression else int(r["label"])}
            for i, r in zip(ids, records)]


def infer_num_labels(records: list[dict]) -> int:
    """1 (regression) when any label is a float, else max int label + 1."""
    labels = [r["label"] for r in records]
    if any(isinstance(x, float) for x in labels):
        return 1
    return max(labels) + 1


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    tokens: int        # non-padding tokens (throughput)
    units: int         # what the loss averages over: target tokens (causal LM) or examples

    def to(self, device) -> "Batch":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.labels), self.tokens, self.units)


def collate(examples: list[dict], pad_id: int) -> Batch:
    width = max(len(e["input_ids"]) for e in examples)
    n = len(examples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for i, e in enumerate(examples):
        input_ids[i, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        attention_mask[i, : len(e["input_ids"])] = 1
    if "labels" in examples[0]:  # causal LM: token labels, shifted by the loss
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        for i, e in enumerate(examples):
            labels[i, : len(e["labels"])] = torch.tensor(e["labels"])
        units = int((labels[:, 1:] != IGNORE).sum())
    else:
        values = [e["label"] for e in examples]
        labels = torch.tensor(values, dtype=torch.float32 if isinstance(values[0], float) else torch.long)
        units = n
    return Batch(input_ids, attention_mask, labels, int(attention_mask.sum()), units)


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled index batches of similar lengths: shuffle, sort within windows, shuffle the batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    window = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class BatchStream:
    """Endless micro-batches over epochs; `position` is all a checkpoint needs to resume it.

    With several processes (DDP) each takes every `world`-th batch of the same global order.
    """

    def __init__(self, examples: list[dict], batch_size: int, pad_id: int, seed: int,
                 rank: int = 0, world: int = 1):
        if len(examples) < batch_size * world:
            raise ValueError(f"{len(examples)} training examples cannot fill one batch of {batch_size} "
                             f"on each of {world} processes: lower batch_size")
        self.examples, self.batch_size, self.pad_id, self.seed = examples, batch_size, pad_id, seed
        self.rank, self.world = rank, world
        self.lengths = [len(e["input_ids"]) for e in examples]
        self.epoch, self.index = 0, 0
        self._batches = self._plan(0)

    def _plan(self, epoch: int) -> list[np.ndarray]:
        batches = epoch_batches(self.lengths, self.batch_size, self.seed, epoch)
        usable = len(batches) - len(batches) % self.world  # every process the same number of steps
        return batches[self.rank:usable:self.world]

    @property
    def batches_per_epoch(self) -> int:
        return len(self._batches)

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def seek(self, position: dict) -> None:
        self.epoch, self.index = position["epoch"], position["index"]
        self._batches = self._plan(self.epoch)

    def next(self) -> Batch:
        if self.index == len(self._batches):
            self.seek({"epoch": self.epoch + 1, "index": 0})
        batch = collate([self.examples[i] for i in self._batches[self.index]], self.pad_id)
        self.index += 1
        return batch


def eval_batches(examples: list[dict], batch_size: int, pad_id: int, max_batches: int | None) -> list[Batch]:
    """Fixed batches sorted by length (little padding); the first `max_batches` of them in data order."""
    if max_batches is not None:
        examples = examples[: max_batches * batch_size]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    return [collate([examples[i] for i in order[s:s + batch_size]], pad_id)
            for s in range(0, len(order), batch_size)]
