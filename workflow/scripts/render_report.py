"""Snakemake entry point: render Snakemake's HTML report of this run (`snakemake --report`).

Runs a second snakemake process on the same, fully resolved config (dumped to a YAML beside the
report), with --nolock since the calling workflow holds the lock while this job runs.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
out = Path(sm.output[0])
with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=out.parent, delete=False) as handle:
    yaml.safe_dump(dict(sm.config), handle)
    config_path = handle.name
try:
    with open(sm.log[0], "w") as log:
        subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "-s", sm.params.snakefile, "-d", os.getcwd(),
                        "--configfile", config_path, "--report", str(out)],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
finally:
    Path(config_path).unlink()
