"""Snakemake entry point: the base model converted from a GGUF file inside a wheel (`python -m training.gguf`)."""
import contextlib
import os
import sys

import torch

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
torch.set_num_threads(sm.threads)
from training.gguf import main  # noqa: E402

spec = sm.params.gguf
args = ["--wheel", spec["wheel"], "--file", spec["file"], "--out", os.path.dirname(sm.output[0]),
        "--dtype", spec.get("dtype") or "float32"]
if spec.get("model_max_length"):
    args += ["--model-max-length", str(spec["model_max_length"])]
if spec.get("label"):
    args += ["--label", spec["label"]]
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    sys.exit(main(args))
