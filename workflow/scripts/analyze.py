"""Snakemake entry point: tables, plots and verdicts of one profile (`python -m analysis`)."""
import contextlib
import json
import os
import sys

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
from training import warm  # noqa: E402
warm.handoff(sm)  # a CPU job runs in a warm child process where it can (training/warm.py)

from analysis.__main__ import main  # noqa: E402
from analysis.paper_models import recognise  # noqa: E402

results = os.path.dirname(sm.output.replication)
args = ["--results", results, "--out", results, "--base-model", sm.params.base_model,
        "--verdict-settings", json.dumps(sm.params.verdicts)]
if sm.params.model_name:  # base_model.name: a local copy (or stand-in) of a Hub model
    args += ["--paper-model", recognise(sm.params.model_name) or sm.params.model_name]
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    sys.exit(main(args))
