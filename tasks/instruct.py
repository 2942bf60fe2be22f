"""Instruction following (task `instruct`).

Paper source: `allenai/tulu-v2-sft-mixture` (dataset, id, messages) — MoRA's setting, evaluated
with lm-eval mmlu and ifeval — or `yahma/alpaca-cleaned` (instruction, input, output) — VeRA's,
with `dataset="alpaca_cleaned"`. Tulu conversations become one record per assistant turn (prompt =
the conversation so far in Tulu's chat format), so every assistant turn gets the loss once, as in
open-instruct. Conversations, not turns, are held out, so no test prompt contains a train target.
Tiny source: short instructions whose responses a machine can check; each record's `check` uses the
vocabulary of evaluation/instruction_checks.py ({"type": ..., "value": ...}).
"""
from __future__ import annotations

import random

from tasks import hub, prompts
from tasks.sampling import carve, draw_splits, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import build_world, with_article

NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _words() -> list[str]:
    w = build_world().words()
    return w["animals"] + w["foods"] + w["colors"] + w["professions"] + w["cities"]


def _statement_with(word: str, rng: random.Random) -> str:
    """A world fact sentence that contains `word`."""
    world = build_world()
    facts = world.facts_about.get(word) or [f for f in world.facts if f.object == word]
    # "Mice live in fields." states a fact about "mouse" without the word: keep sentences that use it.
    sentences = [s for f in facts for s in world.statements(f) if word.lower() in s.lower()]
    return rng.choice(sentences)


def instruction(rng: random.Random) -> dict:
    """An `instruction`, a correct `response` and the `check` that accepts it."""
    world = build_world()
    words = _words()
    word = rng.choice(words)
    kind = rng.randrange(12)
    if kind == 0:
        text, response = f"Write the word {word} in uppercase.", word.upper()
    elif kind == 1:
        text, response = f"Reverse the letters of the word {word}.", word[::-1]
    elif kind == 2:
        picked = rng.sample(words, 3)
        text, response = f"Reverse the order of these words: {' '.join(picked)}", " ".join(picked[::-1])
    elif kind == 3:
        picked = rng.sample(words, 3)
        alphabetical = sorted(picked, key=str.lower)  # "alphabetically" ignores case
        text, response = f"Sort these words alphabetically: {', '.join(picked)}", ", ".join(alphabetical)
    elif kind == 4:
        n = rng.randint(2, 4)
        text, response = f"Repeat the word {word} {NUMBER_WORDS[n]} times.", " ".join([word] * n)
    elif kind == 5:
        text, response = f"How many letters are in the word {word}?", str(len(word))
    if kind <= 5:
        return {"instruction": text, "response": response, "check": {"type": "exact", "value": response}}
    if kind == 6:
        category, pool = rng.choice([("colors", world.pools["colors"]), ("animals", world.words()["animals"]),
                                     ("foods", world.pools["foods"]), ("jobs", world.pools["professions"]),
                                     ("cities", world.cities)])
        n = rng.randint(2, 5)
        excluded = rng.choice(pool)  # "other than X" widens a small space of instructions
        items = rng.sample([x for x in pool if x != excluded], n)
        return {"instruction": f"List {NUMBER_WORDS[n]} {category} other than {excluded}.",
                "response": "\n".join(f"- {item}" for item in items), "check": {"type": "num_items", "value": n}}
    if kind == 7:
        person = rng.choice(world.people)
        fact = rng.choice(world.facts_about[person])
        starting = [s for s in world.statements(fact) if s.startswith(person)]
        return {"instruction": f"Write a sentence that starts with the name {person}.",
                "response": rng.choice(starting), "check": {"type": "starts_with", "value": person}}
    if kind == 8:
        return {"instruction": f"Write a sentence that uses the word {word}.",
                "response": _statement_with(word, rng), "check": {"type": "contains", "value": word}}
    if kind == 9:
        return {"instruction": f"Write a sentence with the word {word} in lowercase letters only.",
                "response": _statement_with(word, rng).lower(), "check": {"type": "lowercase"}}
    if kind == 10:
        subject = rng.choice(world.words()["animals"] + world.words()["professions"])
        n = rng.randint(6, 9)
        fitting = [s for f in world.facts_about[subject] for s in world.statements(f) if len(s.split()) <= n]
        return {"instruction": f"Describe {with_article(subject)} in at most {n} words.",
                "response": rng.choice(fitting), "check": {"type": "max_words", "value": n}}
    return {"instruction": f"Write a sentence with the word {word} and end it with an exclamation mark.",
            "response": _statement_with(word, rng)[:-1] + "!", "check": {"type": "ends_with", "value": "!"}}


def generate_tiny(seed: int, sizes: dict) -> dict:
    # Namespace shared with the corpus's instruction documents: no test instruction is pretrained on.
    drawn = draw_splits(instruction, lambda item: item["instruction"], sizes, rng_for("instruct", seed),
                        "instruct")
    splits = {split: [{"prompt": prompts.TINY_INSTRUCTION.format(instruction=item["instruction"]),
                       "target": item["response"], "check": item["check"]} for item in items]
              for split, items in drawn.items()}
    return with_ids(splits, "instruct")


DATASETS = {  # name -> (default hub id, columns the loader needs)
    "tulu_v2": ("allenai/tulu-v2-sft-mixture", ("messages",)),
    "alpaca_cleaned": ("yahma/alpaca-cleaned", ("instruction", "input", "output")),
}


def _tulu_records(row: dict) -> list[dict]:
    messages = row["messages"]
    return [{"prompt": prompts.tulu_history(messages[:turn]), "target": message["content"].strip(),
             "source": f"{row.get('dataset', '')}/{row.get('id', '')}#{turn}"}
            for turn, message in enumerate(messages) if message["role"] == "assistant" and message["content"].strip()]


def _alpaca_records(row: dict) -> list[dict]:
    return [{"prompt": prompts.alpaca(row["instruction"], row["input"] or ""), "target": row["output"]}]


def load_paper(*, dataset: str = "tulu_v2", hub_id: str | None = None, data_files=None,
               data_dir: str | None = None, revision: str | None = None, cache_dir: str | None = None,
               validation_size: int = 200, test_size: int = 200, seed: int = 0) -> dict:
    if dataset not in DATASETS:
        raise ValueError(f"instruct: unknown dataset {dataset!r}; use one of {sorted(DATASETS)}")
    default_hub_id, columns = DATASETS[dataset]
    rows = hub.load_split(hub_id or default_hub_id, None, "train", data_files=data_files, data_dir=data_dir,
                          revision=revision, cache_dir=cache_dir, columns=columns)
    to_records = _tulu_records if dataset == "tulu_v2" else _alpaca_records
    held_out = carve(rows, seed, validation_size, test_size)  # whole conversations stay in one split
    splits = {split: [r for row in split_rows for r in to_records(row) if r["target"]]
              for split, split_rows in held_out.items()}
    return with_ids(splits, "instruct")


SPECS = [TaskSpec(
    name="instruct", family="instruction_following", kind="causal_lm", num_labels=None,
    metrics=["pass_rate"], lm_eval_tasks=["mmlu", "ifeval"], required_columns=("id", "prompt", "target"),
    default_sizes={"train": 1000, "validation": 100, "test": 200},
    generator=generate_tiny, paper_loader=load_paper,
    description="short instructions with machine-checkable responses (exact, list, starts/ends, case, length)",
    paper_source="allenai/tulu-v2-sft-mixture (MoRA) or yahma/alpaca-cleaned (VeRA); MT-Bench/AlpacaEval "
                 "need an LLM judge and are out of scope",
)]
