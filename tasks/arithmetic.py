"""Math word problems (task `math`).

Paper source: `meta-math/MetaMathQA` (type, query, original_question, response), the MoRA and
MiLoRA setting: Alpaca template around `query`, `response` as target, the final answer is what
follows "The answer is: "; evaluation on lm-eval's gsm8k and minerva_math.
Tiny source: one- and two-step arithmetic word problems, solved step by step and ending
GSM8K-style with `#### n`; `answer` is n.
"""
from __future__ import annotations

import random
import re

from tasks import hub, prompts
from tasks.sampling import carve, draw_splits, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import build_world

ITEMS = ["apples", "pens", "cards", "eggs", "books", "stamps", "coins", "shells", "marbles", "cookies"]
STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")


def word_problem(rng: random.Random) -> dict:
    """A problem: `question`, arithmetic `steps` ("a op b = c") and the integer `answer`."""
    name, other = rng.sample(build_world().words()["first_names"], 2)
    item = rng.choice(ITEMS)
    a, b = rng.randint(2, 20), rng.randint(2, 12)
    form = rng.randrange(6)
    if form == 0:
        q = f"{name} has {a} {item}. {name} buys {b} more. How many {item} does {name} have now?"
        steps = [(a, "+", b)]
    elif form == 1:
        a += b  # keep the result positive
        q = f"{name} has {a} {item}. {name} gives {b} to {other}. How many {item} does {name} have left?"
        steps = [(a, "-", b)]
    elif form == 2:
        q = f"{name} has {a} boxes with {b} {item} in each box. How many {item} does {name} have in total?"
        steps = [(a, "*", b)]
    elif form == 3:
        q = f"{name} shares {a * b} {item} equally among {b} friends. How many {item} does each friend get?"
        steps = [(a * b, "/", b)]
    elif form == 4:
        c = rng.randint(1, a * b - 1)
        q = (f"{name} buys {a} packs of {b} {item} and gives away {c} of them. "
             f"How many {item} does {name} have left?")
        steps = [(a, "*", b), (a * b, "-", c)]
    else:
        q = (f"{name} has {a} {item}. {other} has {b} more {item} than {name}. "
             f"How many {item} do they have together?")
        steps = [(a, "+", b), (a, "+", a + b)]
    results = [_apply(x, op, y) for x, op, y in steps]
    return {"question": q, "steps": [f"{x} {op} {y} = {r}" for (x, op, y), r in zip(steps, results)],
            "answer": results[-1]}


def _apply(x: int, op: str, y: int) -> int:
    return {"+": x + y, "-": x - y, "*": x * y, "/": x // y}[op]


def solution(problem: dict) -> str:
    """GSM8K-style: the steps, then `#### n`."""
    return " ".join(f"{step}." for step in problem["steps"]) + f" #### {problem['answer']}"


def generate_tiny(seed: int, sizes: dict) -> dict:
    # Namespace shared with the corpus's worked problems: no test problem is in the pretraining text.
    drawn = draw_splits(word_problem, lambda p: p["question"], sizes, rng_for("math", seed), "math")
    splits = {split: [{"prompt": prompts.QUESTION.format(question=p["question"]), "target": " " + solution(p),
                       "answer": str(p["answer"])} for p in problems] for split, problems in drawn.items()}
    return with_ids(splits, "math")


ANSWER_MARK = "The answer is: "
# PEFT's MetaMathQA benchmark (huggingface/peft @ 5d602fd, method_comparison/MetaMathQA/data.py)
CHAR_LIMIT = 1300   # rows with len(f"{query} {response}") above it are dropped (93.8% stay)
VALID_SIZE = 50     # GSM8K train items it validates on


def within_char_limit(query: str, response: str, limit: int = CHAR_LIMIT) -> bool:
    return len(f"{query} {response}") <= limit


def valid_indices(n_train: int, size: int = VALID_SIZE, seed: int = 0) -> list[int]:
    """The GSM8K train rows PEFT's benchmark validates on: np.random.seed(seed), a shuffled
    arange(n_train), the first `size` (numpy's legacy global generator is a RandomState)."""
    import numpy as np

    indices = np.arange(n_train)
    np.random.RandomState(seed).shuffle(indices)
    return [int(i) for i in indices[:size]]


def load_paper(*, hub_id: str = "meta-math/MetaMathQA", data_files=None, data_dir: str | None = None,
               revision: str | None = None, cache_dir: str | None = None, validation_size: int = 200,
               test_size: int = 200, seed: int = 0, template: str | None = None, max_chars: int | None = None,
               train_rows: int | None = None, loss_on_prompt: bool = False,
               validation: dict | None = None) -> dict:
    """MetaMathQA has one split; validation/test are seeded hold-outs (the papers test on gsm8k/MATH).

    Options for PEFT's MetaMathQA benchmark (config/paper/peft_method_comparison.yaml; left out, the
    MoRA/MiLoRA setting above):
      template        the prompt around `query` ("{query}" in it) instead of the Alpaca template;
      max_chars       drop rows with len(f"{query} {response}") > max_chars (theirs: 1300);
      train_rows      train on the first N rows (after the filter) in dataset order, the ones their
                      unshuffled iterator reaches; the test hold-out is carved from the rows after them;
      loss_on_prompt  train/validation records carry the whole text as target (prompt ""), so the loss
                      covers the prompt too, as their labels = input_ids do;
      validation      the validation split from another source, GSM8K-schema rows (question, answer):
                      {hub_id|data_files|data_dir, subset, split, size, shuffle_seed}, the first `size`
                      of a numpy-seeded shuffle (theirs: openai/gsm8k main train, 50, seed 0).
    """
    rows = hub.load_split(hub_id, None, "train", data_files=data_files, data_dir=data_dir, revision=revision,
                          cache_dir=cache_dir, columns=("query", "response"))
    if max_chars is not None:
        rows = [row for row in rows if within_char_limit(row["query"], row["response"], max_chars)]
    if template is not None and "{query}" not in template:
        raise ValueError(f"math: template {template!r} has no {{query}}")

    def prompt(query: str) -> str:
        return template.format(query=query) if template is not None else prompts.alpaca(query)

    records = [{"prompt": prompt(row["query"]), "target": row["response"],
                # every MetaMathQA response ends "The answer is: X"; "" marks a row that does not
                "answer": row["response"].rsplit(ANSWER_MARK, 1)[1].strip() if ANSWER_MARK in row["response"] else "",
                "type": row.get("type", "")} for row in rows]
    if validation is None and train_rows is None:
        splits = carve(records, seed, validation_size, test_size)
    else:
        head = records[:train_rows] if train_rows is not None else []
        rest = records[len(head):]
        if train_rows is not None and (len(head) < train_rows or len(rest) <= test_size):
            raise ValueError(f"math: train_rows={train_rows} and test_size={test_size} need more than "
                             f"{train_rows + test_size} rows; the source has {len(records)}")
        held = carve(rest, seed, validation_size if validation is None else 1, test_size)
        splits = {"train": head or held["train"] + ([] if validation is None else held["validation"]),
                  "validation": held["validation"], "test": held["test"]}
        if validation is not None:
            splits["validation"] = _validation_rows(validation, prompt)
    if loss_on_prompt:
        for split in ("train", "validation"):
            splits[split] = [{**r, "prompt": "", "target": r["prompt"] + r["target"]} for r in splits[split]]
    return with_ids(splits, "math")


def _validation_rows(source: dict, prompt) -> list[dict]:
    """Validation records from GSM8K-schema rows: the first `size` of a numpy-seeded shuffle."""
    options = dict(source)
    size, shuffle_seed = int(options.pop("size", VALID_SIZE)), int(options.pop("shuffle_seed", 0))
    rows = hub.source_rows(options, "math validation", ("question", "answer"), split="train")
    if size > len(rows):
        raise ValueError(f"math validation: size {size} > the source's {len(rows)} rows")
    picked = [rows[i] for i in valid_indices(len(rows), size, shuffle_seed)]
    return [{"prompt": prompt(row["question"]), "target": row["answer"],
             "answer": row["answer"].split("#### ")[-1].strip().replace(",", ""), "type": "gsm8k"}
            for row in picked]


SPECS = [TaskSpec(
    name="math", family="math", kind="causal_lm", num_labels=None, metrics=["exact_match"],
    lm_eval_tasks=["gsm8k", "minerva_math"], required_columns=("id", "prompt", "target", "answer"),
    default_sizes={"train": 1000, "validation": 100, "test": 200},
    generator=generate_tiny, paper_loader=load_paper,
    description="one- and two-step arithmetic word problems, answers '#### n'",
    paper_source="meta-math/MetaMathQA (MoRA, MiLoRA)",
)]
