"""Snakemake entry point: the tiny profile's base model (`python -m training.base_model`)."""
import contextlib
import os
import sys

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
os.environ["LORABENCH_THREADS"] = str(sm.threads)
from training.base_model import main  # noqa: E402  (after the thread setting)

with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    sys.exit(main(["--config", sm.input[0], "--out", os.path.dirname(sm.output[0])]))
