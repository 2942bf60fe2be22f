"""Snakemake entry point: tables, plots and verdicts of one profile (`python -m analysis`).

The body runs under `__main__` only: the spectra's worker processes (spawned, analysis/spectra.py)
import this file again as `__mp_main__`, and must not start the job a second time."""
import contextlib
import json
import os
import sys

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
    from training import warm
    warm.handoff(sm)  # a CPU job runs in a warm child process where it can (training/warm.py)

    import torch

    torch.set_num_threads(1)  # the spectra run in sm.threads processes of one thread each
    from analysis.__main__ import main
    from analysis.paper_models import recognise

    results = os.path.dirname(sm.output.replication)
    args = ["--results", results, "--out", results, "--base-model", sm.params.base_model,
            "--verdict-settings", json.dumps(sm.params.verdicts), "--workers", str(sm.threads)]
    if sm.params.model_name:  # base_model.name: a local copy (or stand-in) of a Hub model
        args += ["--paper-model", recognise(sm.params.model_name) or sm.params.model_name]
    with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        sys.exit(main(args))
