"""Snakemake entry point: fetch a profile's model and lm-eval datasets (workflow/scripts/hub_download.py)."""
import json
import logging

from training.files import atomic_write_json
from hub_download import fetch  # workflow/scripts/ is on the script's sys.path

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
manifest = fetch(sm.config)
logging.info("fetched: %s", json.dumps(manifest))
atomic_write_json(sm.output[0], manifest)
