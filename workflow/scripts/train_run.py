"""Snakemake entry point: train one (task, variant, seed) run or lr-sweep trial; failures are recorded, not raised."""
import json
import logging
import os
import traceback
from pathlib import Path

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
os.environ["LORABENCH_THREADS"] = str(sm.threads)

from training import TrainConfig, train  # noqa: E402  (after the thread setting)
from training.files import atomic_write_json  # noqa: E402

out_dir = Path(sm.params.out_dir)
run_config = dict(sm.params.run_config)
if sm.input.get("chosen_lr"):  # a swept (task, variant): its lr is the sweep's choice, not the configured one
    run_config["lr"] = json.loads(Path(sm.input.chosen_lr[0]).read_text())["chosen_lr"]
    logging.info("lr %s, chosen by the lr sweep (%s)", run_config["lr"], sm.input.chosen_lr[0])
try:
    summary = train(TrainConfig.from_dict(run_config), out_dir)
    logging.info("run finished: %s", json.dumps({k: summary.get(k) for k in ("status", "final_loss", "wall_time_s")}))
except Exception as error:  # the DAG goes on; the tables show the run as failed with its reason
    logging.error("run failed:\n%s", traceback.format_exc())
    summary_path = Path(sm.output.summary)
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if previous.get("status") not in ("diverged", "failed"):
        atomic_write_json(summary_path, {**previous, "status": "failed",
                                         "reason": f"{type(error).__name__}: {error}".splitlines()[0][:300]})
