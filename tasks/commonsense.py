"""Commonsense reasoning.

Paper source: LLM-Adapters' commonsense_170k (instruction, input, output, answer), the MiLoRA
setting, Alpaca template; evaluation on the eight lm-eval benchmarks. The json has no canonical Hub
id, so pass `data_files=.../commonsense_170k.json` (or `hub_id=` a mirror).
Tiny source: multiple-choice questions about facts of the shared world, which the general
pretraining corpus states: train and test ask about different facts, so fine-tuning teaches the
format and the test measures recall of pretrained knowledge, like the real benchmarks.
"""
from __future__ import annotations

from tasks import hub, prompts
from tasks.sampling import carve, rng_for, with_ids
from tasks.spec import TaskSpec
from tasks.world import WORLD_SEED, build_world

BENCHMARKS = ["boolq", "piqa", "social_iqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]


def question_record(world, fact, rng) -> dict:
    options = [fact.object] + world.distractors(fact, rng)
    rng.shuffle(options)
    choices = [f" {option}" for option in options]
    label = options.index(fact.object)
    return {"prompt": prompts.QUESTION.format(question=world.question(fact)), "target": choices[label],
            "choices": choices, "label": label,
            "fact": [fact.subject, fact.relation, fact.object]}  # provenance; ignored by trainer/evaluator


def generate_tiny(seed: int, sizes: dict, world_seed: int = WORLD_SEED) -> dict:
    world = build_world(world_seed)
    rng = rng_for("commonsense", seed)
    facts = list(world.facts)
    rng.shuffle(facts)
    n_val, n_test = sizes["validation"], sizes["test"]
    total = sizes["train"] + n_val + n_test
    if total > len(facts):
        raise ValueError(f"commonsense: the world states {len(facts)} facts, one question each; "
                         f"sizes {sizes} ask for {total}")
    chosen = {"test": facts[:n_test], "validation": facts[n_test:n_test + n_val],
              "train": facts[n_test + n_val:total]}
    splits = {split: [question_record(world, fact, rng) for fact in chosen[split]]
              for split in ("train", "validation", "test")}
    return with_ids(splits, "commonsense")


def load_paper(*, hub_id: str | None = None, data_files=None, data_dir: str | None = None,
               revision: str | None = None, cache_dir: str | None = None, validation_size: int = 120,
               test_size: int = 120, seed: int = 42) -> dict:
    """LLM-Adapters holds out val_set_size=120 rows (seed 42); we hold out a test slice the same way."""
    if not (hub_id or data_files or data_dir):
        raise ValueError("commonsense_170k has no canonical Hub id: pass data_files=<path to LLM-Adapters' "
                         "commonsense_170k.json> or hub_id=<a Hub mirror>")
    rows = hub.load_split(hub_id, None, "train", data_files=data_files, data_dir=data_dir, revision=revision,
                          cache_dir=cache_dir, columns=("instruction", "input", "output", "answer"))
    records = [{"prompt": prompts.alpaca(row["instruction"], row["input"] or ""), "target": row["output"],
                "answer": row["answer"]} for row in rows]
    return with_ids(carve(records, seed, validation_size, test_size), "commonsense")


SPECS = [TaskSpec(
    name="commonsense", family="commonsense", kind="causal_lm", num_labels=None, metrics=["acc"],
    lm_eval_tasks=BENCHMARKS, required_columns=("id", "prompt", "target"),
    default_sizes={"train": 500, "validation": 60, "test": 200},
    generator=generate_tiny, paper_loader=load_paper,
    description="multiple choice about world facts stated in the pretraining corpus",
    paper_source="LLM-Adapters commonsense_170k (MiLoRA setting)",
)]
