"""Snakemake entry point: evaluate one run (or the bare base model) with lm-eval, into one eval.json.

The adapter is merged into the base weights in memory; the model is loaded once and evaluated on
the run's task and the probe tasks that share its training data (continual pretraining).
"""
import json
import logging
import os
from collections import Counter
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

import torch  # noqa: E402

import evaluation  # noqa: E402
import tasks  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.files import atomic_write_json, own_base_model_if_any, scratch_dir  # noqa: E402
from training.model import load_for_eval  # noqa: E402

torch.set_num_threads(sm.threads)
task_names, data_dirs, run_dir = sm.params.tasks, sm.params.data_dirs, sm.params.run_dir
out_path = Path(sm.output[0])
spec = tasks.get(task_names[0])
provenance = {"task": spec.name, "variant": sm.wildcards.get("variant", "base"),
              "seed": sm.wildcards.get("seed"), "base_model": sm.params.base_model}

summary = json.loads((Path(run_dir) / "train_summary.json").read_text()) if run_dir else {"status": "ok"}
if summary.get("status") != "ok":
    # Nothing to evaluate: the tables show the run as failed with the trainer's reason.
    atomic_write_json(out_path, {"results": {}, "lorabench": {**provenance, "status": summary.get("status"),
                                                              "reason": summary.get("reason", "")}})
    raise SystemExit(0)

kind = "causal_lm" if spec.kind == "causal_lm" else "classification"
eval_cfg = sm.params.eval_cfg


def load_model(adapter_dir: Path | None):
    """The base model with the adapter merged in, on the run's device and in its dtype; a run from
    random init brings its own base. A classifier head the base model lacks (the bare-base row) is
    initialised from the seed, so that row is the same on every evaluation."""
    own_base = own_base_model_if_any(run_dir) if run_dir else None
    cfg = TrainConfig.from_dict({"model": str(own_base or sm.params.base_model), "data_dir": data_dirs[0],
                                 "task_kind": kind, "method": None, "seed": int(sm.params.seed),
                                 **sm.params.placement})
    torch.manual_seed(cfg.seed)
    return load_for_eval(cfg, spec.num_labels, adapter_dir)


def majority_class_accuracy() -> float | None:
    """The accuracy of always answering the test split's most frequent label (classification only):
    the floor the bare-base row, an untrained head, is read against."""
    if spec.kind != "classification" or spec.num_labels in (None, 1):
        return None
    lines = (Path(data_dirs[0]) / "test.jsonl").read_text().splitlines()
    labels = [json.loads(line)["label"] for line in lines if line.strip()]
    limit = eval_cfg["limit"]
    labels = labels[:limit] if isinstance(limit, int) else labels
    return max(Counter(labels).values()) / len(labels) if labels else None


def evaluate(model, tokenizer, names, directories, tmp: Path) -> dict:
    """One eval.json-shaped dict over several suite tasks (the run's task and its probes)."""
    merged: dict = {}
    for name, directory in zip(names, directories):
        part = evaluation.evaluate_run(model, tokenizer, name, directory, tmp / f"{name}.json",
                                       provenance=provenance, limit=eval_cfg["limit"],
                                       batch_size=eval_cfg["batch_size"], max_gen_toks=eval_cfg["max_gen_toks"],
                                       lm_eval_tasks=eval_cfg["lm_eval_tasks"].get(name, []),
                                       lm_eval_data=eval_cfg["lm_eval_data"],
                                       paper_protocol=eval_cfg.get("paper_protocol"))
        for key, value in part.items():
            if isinstance(value, dict) and key != "lorabench":
                merged.setdefault(key, {}).update(value)
            else:
                merged.setdefault(key, value)
        logging.info("%s: %s", name, json.dumps(part.get("results", {}))[:2000])
    return merged


# A fixed scratch folder: what a killed evaluation left there is cleared, not kept as tmpXXXX/.
with scratch_dir(out_path.parent / ".eval_tmp") as tmp:
    # Learning curves: the weights the trainer saved at its snapshot_steps, on the run's own task.
    snapshots = sorted((Path(run_dir) / "snapshots").glob("step*"), key=lambda p: int(p.name[4:])) if run_dir else []
    for stale in out_path.parent.glob("eval_step*.json") if run_dir else []:
        stale.unlink()
    for snapshot in snapshots:
        step = int(snapshot.name[4:])
        model, tokenizer = load_model(snapshot / "adapter")
        result = evaluate(model, tokenizer, task_names[:1], data_dirs[:1], Path(tmp))
        result["lorabench"] = {**result.get("lorabench", {}), **provenance, "status": "ok", "step": step,
                               "tasks": task_names[:1]}
        atomic_write_json(out_path.parent / f"eval_step{step}.json", result)
    model, tokenizer = load_model(Path(run_dir) / "adapter" if run_dir else None)
    provenance.update(device=str(model.device), dtype=str(model.dtype).removeprefix("torch."))
    merged = evaluate(model, tokenizer, task_names, data_dirs, Path(tmp))
merged["lorabench"] = {**merged.get("lorabench", {}), **provenance, "status": "ok", "tasks": task_names}
if not run_dir:
    merged["lorabench"]["majority_class_accuracy"] = majority_class_accuracy()
atomic_write_json(out_path, merged)
