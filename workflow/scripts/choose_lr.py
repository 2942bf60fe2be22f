"""Snakemake entry point: the lr of one swept (task, variant), chosen by the trials' validation loss."""
import json
import logging
from pathlib import Path

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
from training import warm  # noqa: E402
warm.handoff(sm)  # a CPU job runs in a warm child process where it can (training/warm.py)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(message)s")

from analysis.sweep import choose_lr, trial_of  # noqa: E402
from training.files import atomic_write_json  # noqa: E402

# Inputs come in the order of params.lrs (sweep_trials in common.smk).
trials = [trial_of(lr, json.loads(Path(path).read_text())) for lr, path in zip(sm.params.lrs, sm.input)]
try:
    choice = choose_lr(sm.wildcards.task, sm.wildcards.variant, trials)
except ValueError as error:  # no lr to choose: the job fails, and the log says why
    logging.error("%s", error)
    raise
atomic_write_json(sm.output[0], {**choice, "seed": sm.params.seed})
logging.info("chose lr %g: %s", choice["chosen_lr"], json.dumps(choice["trials"]))
