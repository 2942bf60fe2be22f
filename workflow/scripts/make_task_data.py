"""Snakemake entry point: write one task's train/validation/test JSONL (tiny generator or paper loader)."""
import logging
from pathlib import Path

import tasks

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
from training import warm  # noqa: E402
warm.handoff(sm)  # a CPU job runs in a warm child process where it can (training/warm.py)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
spec = tasks.get(sm.wildcards.task)
if sm.params.source == "tiny":
    splits = spec.generate_tiny(sm.params.seed, sm.params.sizes or None)
else:
    splits = spec.load_paper(**sm.params.paper)
tasks.write_splits(splits, Path(sm.output[0]).parent)
logging.info("%s: %s", spec.name, {k: len(v) for k, v in splits.items()})
