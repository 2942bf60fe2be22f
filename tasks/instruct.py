"""Instruction following (task `instruct`).

Paper source: `allenai/tulu-v2-sft-mixture` (dataset, id, messages) — MoRA's setting, evaluated
with lm-eval mmlu and ifeval — or `yahma/alpaca-cleaned` (instruction, input, output) — VeRA's,
with `dataset="alpaca_cleaned"`. Tulu conversations become one record per assistant turn (prompt =
the conversation so far in Tulu's chat format), so every assistant turn gets the loss once, as in
open-instruct. Conversations, not turns, are held out, so no test prompt contains a train target.
Tiny source: short instructions on the world's vocabulary whose responses lm-eval's IFEval
instruction checkers verify. Each record's `check` holds IFEval's two fields,
`{"instruction_id_list": [...], "kwargs": [{...}, ...]}` (ids of lm_eval/tasks/ifeval/
instructions_registry.py, one kwargs dict per id); every tiny target passes all its checks.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import cache

from tasks import hub, prompts
from tasks.sampling import carve, draw_splits, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import build_world, with_article

NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
# IFEval's change_case checkers also ask langdetect whether the response is English. Seeded, its
# answer for a text is fixed; evaluation/instruction_checks.py seeds it with this value too.
LANGDETECT_SEED = 0


@cache
def is_english(text: str) -> bool:
    """langdetect's verdict as IFEval's change_case checkers take it (undetectable counts as English)."""
    import langdetect  # only the tiny source's case instructions need it

    langdetect.DetectorFactory.seed = LANGDETECT_SEED
    try:
        return langdetect.detect(text) == "en"
    except langdetect.LangDetectException:
        return True


def count_words(text: str) -> int:
    """Words as IFEval counts them: runs of letters, digits and underscores ("It's" is two)."""
    return len(re.findall(r"\w+", text))


def _check(*instructions: tuple[str, dict]) -> dict:
    return {"instruction_id_list": [i for i, _ in instructions], "kwargs": [k for _, k in instructions]}


def _words() -> list[str]:
    w = build_world().words()
    return w["animals"] + w["foods"] + w["colors"] + w["professions"] + w["cities"]


def _statements_with(word: str) -> list[str]:
    """World fact sentences that contain `word`."""
    world = build_world()
    facts = world.facts_about.get(word) or [f for f in world.facts if f.object == word]
    # "Mice live in fields." states a fact about "mouse" without the word: keep sentences that use it.
    return [s for f in facts for s in world.statements(f) if word.lower() in s.lower()]


def _sentence(word: str, rng: random.Random, english: Callable[[str], bool] | None) -> dict | None:
    """A sentence using `word`, with up to four of IFEval's format constraints on top."""
    case = rng.choice([None, None, "upper", "lower"])
    wrap = rng.choice([None, None, "quotes", "title"])
    exclaim, no_comma = rng.random() < 1 / 3, rng.random() < 1 / 4
    text, checks = [f"Write a sentence that uses the word {word}."], [("keywords:existence", {"keywords": [word]})]
    if case:
        text.append("Use capital letters only." if case == "upper" else "Use lowercase letters only.")
        checks.append(("change_case:english_capital" if case == "upper" else "change_case:english_lowercase", {}))
    if exclaim:
        text.append("End it with an exclamation mark.")
        checks.append(("startend:end_checker", {"end_phrase": "!"}))
    if wrap == "quotes":
        text.append("Wrap it in double quotation marks.")
        checks.append(("startend:quotation", {}))
    elif wrap == "title":
        text.append("Give it a title in double angular brackets, like <<title>>.")
        checks.append(("detectable_format:title", {}))
    if no_comma:
        text.append("Do not use commas.")
        checks.append(("punctuation:no_comma", {}))
    sentences = [s for s in _statements_with(word) if not (no_comma and "," in s)]
    for sentence in rng.sample(sentences, len(sentences)):
        response = sentence[:-1] + "!" if exclaim else sentence
        if wrap == "title":
            response = f"<<{word[0].upper() + word[1:]}>>\n{response}"
        response = {"upper": response.upper(), "lower": response.lower()}.get(case, response)
        if wrap == "quotes":
            response = f'"{response}"'
        if not case or english is None or english(response):
            return {"instruction": " ".join(text), "response": response, "check": _check(*checks)}
    return None  # no sentence reads as English in that case: the caller draws another instruction


def instruction(rng: random.Random, english: Callable[[str], bool] | None = None) -> dict:
    """An `instruction`, a correct `response` and the IFEval `check` that accepts it.

    `english` vets case-constrained responses as IFEval's checker will (`is_english`); the tiny
    task passes it, the pretraining corpus (which needs no guarantee) leaves it out.
    """
    world = build_world()
    words = _words()
    while True:
        word = rng.choice(words)
        kind = rng.randrange(8)
        if kind <= 3:
            item = _sentence(word, rng, english)
            if item is not None:
                return item
            continue
        if kind == 4:
            n = rng.randint(2, 4)
            return {"instruction": f"Repeat the word {word} {NUMBER_WORDS[n]} times.",
                    "response": " ".join([word] * n),
                    "check": _check(("keywords:frequency", {"keyword": word, "frequency": n, "relation": "at least"}),
                                    ("length_constraints:number_words",
                                     {"num_words": n * count_words(word) + 1, "relation": "less than"}))}
        if kind == 5:
            category, pool = rng.choice([("colors", world.pools["colors"]), ("animals", world.words()["animals"]),
                                         ("foods", world.pools["foods"]), ("jobs", world.pools["professions"]),
                                         ("cities", world.cities)])
            n = rng.randint(2, 5)
            excluded = rng.choice(pool)  # "other than X" widens a small space of instructions
            allowed = [x for x in pool if not re.search(rf"\b{excluded}\b", x, flags=re.IGNORECASE)]
            items = rng.sample(allowed, n)
            return {"instruction": f"List {NUMBER_WORDS[n]} {category} other than {excluded} as a bulleted list.",
                    "response": "\n".join(f"- {item}" for item in items),
                    "check": _check(("detectable_format:number_bullet_lists", {"num_bullets": n}),
                                    ("keywords:forbidden_words", {"forbidden_words": [excluded]}))}
        if kind == 6:
            person = rng.choice(world.people)
            fact = rng.choice(world.facts_about[person])
            starting = [s for s in world.statements(fact) if s.startswith(person)]
            first = person.split()[0].lower()
            return {"instruction": f"Write a sentence that starts with the name {person}.",
                    "response": rng.choice(starting),
                    "check": _check(("length_constraints:nth_paragraph_first_word",
                                     {"num_paragraphs": 1, "nth_paragraph": 1, "first_word": first}),
                                    ("keywords:existence", {"keywords": [person]}))}
        subject = rng.choice(world.words()["animals"] + world.words()["professions"])
        n = rng.randint(7, 10)  # every subject has a fact in 6 words
        fitting = [s for f in world.facts_about[subject] for s in world.statements(f) if count_words(s) < n]
        return {"instruction": f"Describe {with_article(subject)} in less than {n} words.",
                "response": rng.choice(fitting),
                "check": _check(("length_constraints:number_words", {"num_words": n, "relation": "less than"}))}


def generate_tiny(seed: int, sizes: dict) -> dict:
    # Namespace shared with the corpus's instruction documents: no test instruction is pretrained on.
    drawn = draw_splits(lambda rng: instruction(rng, english=is_english), lambda item: item["instruction"], sizes,
                        rng_for("instruct", seed), "instruct")
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
    metrics=["prompt_pass_rate", "inst_pass_rate", "prompt_pass_rate_loose", "inst_pass_rate_loose"],
    lm_eval_tasks=["mmlu", "ifeval"], required_columns=("id", "prompt", "target"),
    default_sizes={"train": 1000, "validation": 100, "test": 200},
    generator=generate_tiny, paper_loader=load_paper,
    description="short instructions whose responses lm-eval's IFEval instruction checkers verify (case, "
                "keywords, ending, quotes, title, commas, bullets, first word, word counts)",
    paper_source="allenai/tulu-v2-sft-mixture (MoRA) or yahma/alpaca-cleaned (VeRA); MT-Bench/AlpacaEval "
                 "need an LLM judge and are out of scope",
)]
