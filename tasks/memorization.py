"""UUID key:value memorization (task `uuid`), MoRA's Table 2.

The format is MoRA's own data, as its authors posted the generator (kongds/MoRA issue #18, comment
of 2024-09-03; the repository, at commit de5df31, has no UUID code): keys and values are
`str(uuid.uuid4())` — 36 characters, lowercase hex in 8-4-4-4-12 groups, version nibble 4, variant
8/9/a/b — and the training text is `tokenizer(key + ":" + value)` with labels = input_ids, i.e. the
loss on the whole sequence (here: prompt "", target `key:value`), with the tokenizer's own bos and
no eos. The trainer appends an eos to every target unless the run sets `add_eos: false`, as the MoRA
paper profile does (config/paper/mora_uuid.yaml); the tiny, replication and real profiles keep the
eos (their published results were trained with it). Pairs come from a seeded RNG.

Evaluation greedily decodes after the prompt `key:` and scores the first len(value) = 36 generated
characters: character accuracy and exact match. A model that learned only the format scores
FORMAT_ONLY_CHAR_ACC = 57/288 ≈ 19.8% character accuracy (≈ 9.8% if the 4 hyphens were not
counted); MoRA does not publish how it computed its character accuracy, so read Table 2's ~10% rows
against that. Memorization is measured on the pairs that were trained on, so validation and test
are samples *of the train pairs* — the one task whose test items are in train by design.
The paper source is the same generator at MoRA's scale (10k pairs).
"""
from __future__ import annotations

import uuid

from tasks.sampling import rng_for, with_ids
from tasks.spec import TaskSpec

SEPARATOR = ":"
UUID4_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# Expected character accuracy of right-format, random-hex values: 4 hyphens and the version nibble
# always match, the variant nibble (one of 4) a quarter of the time, 30 free hex digits 1/16 each.
FORMAT_ONLY_CHAR_ACC = (4 + 1 + 1 / 4 + 30 / 16) / 36


def uuid_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (key, value) pairs of distinct uuid4 strings; same seed, same pairs."""
    rng = rng_for("uuid", seed)
    pairs, seen = [], set()
    while len(pairs) < n:
        key, value = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2))
        if key not in seen and value not in seen and key != value:
            seen.update((key, value))
            pairs.append((key, value))
    return pairs


def format_floor_char_acc() -> float:
    """Character accuracy (%) expected of a well-formed uuid4 that knows nothing of the pair: its 4
    hyphens and the version digit always match, the variant digit ([89ab]) 1 time in 4, each of the
    other 30 hex digits 1 time in 16 — (5 + 1/4 + 30/16) / 36 = 19.8 %. A method at or below it has
    learned the format, not the pairs."""
    return 100 * (4 + 1 + 1 / 4 + 30 / 16) / 36


def pair_record(key: str, value: str) -> dict:
    return {"prompt": "", "target": f"{key}{SEPARATOR}{value}", "key": key, "value": value, "answer": value}


def eval_prompt(record: dict) -> str:
    """What greedy decoding continues from; the expected continuation is record["value"]."""
    return f"{record['key']}{SEPARATOR}"


def _splits(n_pairs: int, seed: int, validation_size: int, test_size: int) -> dict:
    if validation_size > n_pairs or test_size > n_pairs:
        raise ValueError(f"uuid: validation ({validation_size}) and test ({test_size}) sample the "
                         f"{n_pairs} train pairs, so neither can be larger")
    train = [pair_record(k, v) for k, v in uuid_pairs(n_pairs, seed)]
    rng = rng_for("uuid-eval", seed)

    def sample(n: int) -> list[dict]:
        return train if n == n_pairs else [train[i] for i in sorted(rng.sample(range(n_pairs), n))]

    return with_ids({"train": train, "validation": sample(validation_size), "test": sample(test_size)}, "uuid")


def generate_tiny(seed: int, sizes: dict) -> dict:
    return _splits(sizes["train"], seed, sizes["validation"], sizes["test"])


def load_paper(*, n_pairs: int = 10_000, seed: int = 0, validation_size: int = 1000,
               test_size: int | None = None) -> dict:
    """MoRA: 10k pairs, evaluated on all of them (test_size=None)."""
    return _splits(n_pairs, seed, validation_size, n_pairs if test_size is None else test_size)


SPECS = [TaskSpec(
    name="uuid", family="memorization", kind="causal_lm", num_labels=None, metrics=["char_acc", "exact_match"],
    lm_eval_tasks=[], required_columns=("id", "prompt", "target", "key", "value", "answer"),
    default_sizes={"train": 500, "validation": 100, "test": 500},
    generator=generate_tiny, paper_loader=load_paper,
    description="uuid4 key:value pairs, loss on the whole text, greedy decode of value after 'key:'",
    paper_source="generated, 10k uuid4 pairs (MoRA Table 2)",
    scored_on_train=True,
    floors={"char_acc": format_floor_char_acc()},
)]
