"""Tiny models and data shared by the training tests (no tests here; imported by tests/test_training*.py)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from safetensors.torch import load_file

NAMES = ["anna", "ben", "clara", "david", "emma", "felix", "greta", "hugo"]
CITIES = ["oslo", "rome", "paris", "lima", "kyiv", "bern", "cairo", "quito"]
POSITIVE = ["good", "great", "lovely", "excellent", "nice", "wonderful", "pleasant", "tasty"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "poor", "dull", "horrible", "bland"]
SUBJECTS = ["the movie", "the soup", "the hotel", "the book", "the song", "the game", "the cake", "the trip"]


def documents(seed: int, n: int) -> list[str]:
    """Short facts / arithmetic / lists: enough structure for a tiny model to learn quickly."""
    rng = random.Random(seed)
    home = {n: CITIES[i] for i, n in enumerate(NAMES)}
    docs = []
    for _ in range(n):
        name = rng.choice(NAMES)
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        kind = rng.randrange(3)
        if kind == 0:
            docs.append(f"{name} lives in {home[name]}. {name} likes {rng.choice(NAMES)}.")
        elif kind == 1:
            docs.append(f"{a} plus {b} is {a + b}. {b} plus {a} is {a + b}.")
        else:
            docs.append("count: " + ", ".join(str(i) for i in range(a, a + 6)) + ".")
    return docs


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_lm_task(directory: Path, seed: int = 1, n_train: int = 48, n_val: int = 16) -> Path:
    """Prompt/target arithmetic: loss on the answer only."""
    rng = random.Random(seed)
    records = []
    for i in range(n_train + n_val):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        records.append({"id": f"ex{i}", "prompt": f"{a} plus {b} is", "target": f" {a + b}."})
    write_jsonl(directory / "train.jsonl", records[:n_train])
    write_jsonl(directory / "validation.jsonl", records[n_train:])
    return directory


def sentiment_records(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        label = rng.randrange(2)
        word = rng.choice(POSITIVE if label else NEGATIVE)
        text = f"{rng.choice(SUBJECTS)} was {rng.choice(['', 'very ', 'quite '])}{word}."
        records.append({"id": f"s{i}", "text": text, "label": label})
    return records


def make_sentiment_task(directory: Path, n_train: int = 256, n_val: int = 128) -> Path:
    write_jsonl(directory / "train.jsonl", sentiment_records(0, n_train))
    write_jsonl(directory / "validation.jsonl", sentiment_records(1, n_val))
    return directory


def make_tiny_base(directory: Path, hidden: int = 32, layers: int = 2, steps: int = 100) -> Path:
    """A tiny LLaMA briefly pretrained by training.base_model on `documents` (+ review sentences).

    Returns the directory plain `from_pretrained` loads (model + tokenizer).
    """
    from training.base_model import build

    texts = documents(0, 600) + [r["text"] for r in sentiment_records(9, 200)]
    config = {"corpus": {"validation_docs": 50}, "tokenizer": {"vocab_size": 320},
              "model": {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                        "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 64},
              "train": {"seq_len": 32, "batch_size": 8, "max_steps": steps, "lr": 1e-2, "warmup_steps": 10,
                        "threads": 1}}
    assert build(config, directory, documents=texts)["status"] == "ok"
    return directory


def read_log(out: Path) -> list[dict]:
    from training.files import read_log
    return read_log(out / "train_log.jsonl")


def train_losses(out: Path) -> list[tuple[int, float, float]]:
    """(step, loss, lr) of every training line: the columns that must not depend on timing."""
    return [(e["step"], e["loss"], e["lr"]) for e in read_log(out) if "loss" in e]


def adapter_tensors(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter" / "adapter.safetensors"))


def summary(out: Path) -> dict:
    return json.loads((out / "train_summary.json").read_text())
