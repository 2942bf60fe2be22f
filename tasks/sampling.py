"""Seeded sampling shared by the generators and loaders.

The one idea here is a fixed *evaluation partition*: whether an item (a sentence, a problem, an
instruction, a meaning representation, a document) may be used for evaluation is decided by a hash
of its content, not by the seed. Generators put partition items only into validation/test and the
rest only into train, and the pretraining corpus never emits partition items. So, for every seed,
no test item appears in train or, verbatim, in the base model's pretraining corpus.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Hashable

SPLITS = ("train", "validation", "test")


def rng_for(*parts: object) -> random.Random:
    """An RNG whose stream depends only on `parts` (str seeds hash with SHA-512: stable across runs)."""
    return random.Random(":".join(str(p) for p in parts))


def in_eval_partition(namespace: str, key: str, one_in: int = 4) -> bool:
    """True for about 1 in `one_in` keys of `namespace`, decided by content alone."""
    return zlib.crc32(f"{namespace}\x1f{key}".encode()) % one_in == 0


def draw_splits(make_item: Callable[[random.Random], dict], key_of: Callable[[dict], Hashable],
                sizes: dict[str, int], rng: random.Random, namespace: str, one_in: int = 4) -> dict:
    """Draw unique items until every split is full: partition items → validation/test, others → train."""
    need_train, n_val = sizes["train"], sizes["validation"]
    need_eval = n_val + sizes["test"]
    train: list[dict] = []
    evals: list[dict] = []
    seen: set = set()
    max_draws = 100 * (need_train + need_eval * one_in) + 1000
    for _ in range(max_draws):
        if len(train) == need_train and len(evals) == need_eval:
            break
        item = make_item(rng)
        key = key_of(item)
        if key in seen:
            continue
        seen.add(key)
        bucket, need = (evals, need_eval) if in_eval_partition(namespace, str(key), one_in) else (train, need_train)
        if len(bucket) < need:
            bucket.append(item)
    if len(train) < need_train or len(evals) < need_eval:
        raise ValueError(
            f"{namespace}: only {len(train)} train and {len(evals)} validation+test unique items after "
            f"{max_draws} draws for sizes {sizes}; the generator's item space is too small, ask for fewer.")
    return {"train": train, "validation": evals[:n_val], "test": evals[n_val:]}


def carve(rows: list, seed: int, validation_size: int, test_size: int) -> dict[str, list]:
    """Seeded hold-out of validation and test rows from one list (for sources with a single split)."""
    if validation_size < 1 or test_size < 1 or validation_size + test_size >= len(rows):
        raise ValueError(f"cannot hold out validation_size={validation_size} and test_size={test_size} from "
                         f"{len(rows)} rows: each must be >= 1 and together leave at least one train row")
    order = list(range(len(rows)))
    rng_for("carve", seed).shuffle(order)
    test = sorted(order[:test_size])
    validation = sorted(order[test_size:test_size + validation_size])
    train = sorted(order[test_size + validation_size:])
    return {"train": [rows[i] for i in train], "validation": [rows[i] for i in validation],
            "test": [rows[i] for i in test]}


def with_ids(splits: dict[str, list[dict]], task: str) -> dict[str, list[dict]]:
    """Give every record an `id` `<task>-<split>-<n>` (first key, for readable JSONL)."""
    return {split: [{"id": f"{task}-{split}-{i:05d}", **record} for i, record in enumerate(records)]
            for split, records in splits.items()}
