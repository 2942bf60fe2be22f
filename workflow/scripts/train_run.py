"""Snakemake entry point: train one (task, variant, seed) run or lr-sweep trial.

A result is final: a run that diverged, or whose config the model cannot take, is recorded in
train_summary.json (status diverged / failed, with its reason) and the job succeeds, so the DAG
goes on and the tables show it. A fault (out of memory, a full disk or other I/O error, a GPU
error, an interrupt: training.trainer.is_fault) fails the job without a train_summary.json, so
`snakemake` (or its --retries) runs it again, resuming from the run's last checkpoint.
"""
import json
import logging
import os
import traceback
from pathlib import Path

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
from training import warm  # noqa: E402
warm.handoff(sm)  # a CPU job runs in a warm child process where it can (training/warm.py)
logging.basicConfig(filename=sm.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
os.environ["LORABENCH_THREADS"] = str(sm.threads)
# A GPU job claims its own GPU(s) before anything touches CUDA (training/devices.py).
from training import devices  # noqa: E402

devices.claim_for_job(getattr(sm, "resources", {}).get("gpu", 0),
                      label=f"{getattr(sm, 'rule', 'job')} {dict(getattr(sm, 'wildcards', {}))}")

from training import TrainConfig, train  # noqa: E402  (after the thread setting)
from training.files import atomic_write_json  # noqa: E402
from training.trainer import is_fault  # noqa: E402

out_dir = Path(sm.params.out_dir)
summary_path = Path(sm.output.summary)
run_config = dict(sm.params.run_config)
if sm.input.get("chosen_lr"):  # a swept (task, variant): its lr is the sweep's choice, not the configured one
    run_config["lr"] = json.loads(Path(sm.input.chosen_lr[0]).read_text())["chosen_lr"]
    logging.info("lr %s, chosen by the lr sweep (%s)", run_config["lr"], sm.input.chosen_lr[0])
try:
    summary = train(TrainConfig.from_dict(run_config), out_dir)
    logging.info("run finished: %s", json.dumps({k: summary.get(k) for k in ("status", "final_loss", "wall_time_s")}))
except BaseException as error:
    if is_fault(error):  # not a result: fail the job; rerunning it resumes from the last checkpoint
        logging.error("fault, the job fails (rerun it to resume from %s/checkpoints):\n%s", out_dir,
                      traceback.format_exc())
        summary_path.unlink(missing_ok=True)
        raise
    # A result: the DAG goes on; the tables show the run as failed with its reason.
    logging.error("run failed:\n%s", traceback.format_exc())
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if previous.get("status") not in ("diverged", "failed"):
        atomic_write_json(summary_path, {**previous, "status": "failed",
                                         "reason": f"{type(error).__name__}: {error}".splitlines()[0][:300]})
