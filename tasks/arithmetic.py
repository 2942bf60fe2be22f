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


def load_paper(*, hub_id: str = "meta-math/MetaMathQA", data_files=None, data_dir: str | None = None,
               revision: str | None = None, cache_dir: str | None = None, validation_size: int = 200,
               test_size: int = 200, seed: int = 0) -> dict:
    """MetaMathQA has one split; validation/test are seeded hold-outs (the papers test on gsm8k/MATH)."""
    rows = hub.load_split(hub_id, None, "train", data_files=data_files, data_dir=data_dir, revision=revision,
                          cache_dir=cache_dir, columns=("query", "response"))
    records = [{"prompt": prompts.alpaca(row["query"]), "target": row["response"],
                # every MetaMathQA response ends "The answer is: X"; "" marks a row that does not
                "answer": row["response"].rsplit(ANSWER_MARK, 1)[1].strip() if ANSWER_MARK in row["response"] else "",
                "type": row.get("type", "")} for row in rows]
    return with_ids(carve(records, seed, validation_size, test_size), "math")


SPECS = [TaskSpec(
    name="math", family="math", kind="causal_lm", num_labels=None, metrics=["exact_match"],
    lm_eval_tasks=["gsm8k", "minerva_math"], required_columns=("id", "prompt", "target", "answer"),
    default_sizes={"train": 1000, "validation": 100, "test": 200},
    generator=generate_tiny, paper_loader=load_paper,
    description="one- and two-step arithmetic word problems, answers '#### n'",
    paper_source="meta-math/MetaMathQA (MoRA, MiLoRA)",
)]
