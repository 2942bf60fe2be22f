"""lorabench task families: Hub loaders for the paper profiles and seeded generators for the tiny one.

    import tasks
    tasks.available()                       # ['cola', 'commonsense', ...]
    spec = tasks.get("math")                # TaskSpec: kind, metrics, lm_eval_tasks, ...
    splits = spec.generate_tiny(seed=0)     # {"train": [...], "validation": [...], "test": [...]}
    tasks.write_splits(splits, "data/math", task="math")
    tasks.read_split("data/math/test.jsonl", "math")

The record format is documented in tasks/README.md; the pretraining corpora are in tasks.corpus.
"""
from tasks.records import read_split, read_splits, shared_rows, validate_records, write_splits
from tasks.registry import available, families, get
from tasks.spec import TaskSpec

__all__ = ["TaskSpec", "available", "families", "get", "read_split", "read_splits", "shared_rows", "validate_records",
           "write_splits"]
