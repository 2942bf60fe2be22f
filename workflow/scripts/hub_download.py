"""Fetch everything a profile reads from the Hub, once, on a machine with internet.

Clusters are often air-gapped: compute nodes cannot reach the Hub. Run the `download` target on a
login node first; it fills the Hugging Face caches (HF_HOME) that the compute jobs then read with
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1:

    snakemake download --cores 1 --configfile config/paper/mora.yaml        # login node, online
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 snakemake --workflow-profile config/profiles/slurm \
        --configfile config/paper/mora.yaml                                   # compute, offline

What it fetches: the base model (a Hub id; a local path is left alone), the task data (the rule
depends on every task_data output, so the paper loaders run here and their JSONL is written), and
the dataset of every lm-eval task the profile evaluates with (tasks pointed at local files by
`eval.lm_eval_data` are read from those files instead). It writes a manifest of what it fetched.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def is_hub_id(name: str | None) -> bool:
    """'org/model' that is not a directory here (a local checkpoint needs no download)."""
    return bool(name) and not Path(name).expanduser().exists() and not name.startswith(("/", ".", "~"))


def lm_eval_tasks(config: dict) -> list[str]:
    """Every lm-eval task or group the profile evaluates with, once, in a stable order."""
    return sorted({name for names in config["eval"]["lm_eval_tasks"].values() for name in names})


def fetch_model(name: str, snapshot_download: Callable | None = None) -> dict:
    """The model's files into the Hub cache (weights, config, tokenizer; no other formats)."""
    if not is_hub_id(name):
        return {"model": name, "fetched": False, "reason": "local path"}
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    path = snapshot_download(repo_id=name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                           "tokenizer*"])
    return {"model": name, "fetched": True, "path": str(path)}


def fetch_lm_eval_data(names: list[str], lm_eval_data: dict | None) -> dict:
    """Build each lm-eval task as the evaluation will (lm-eval downloads its dataset when it builds
    a task); returns {task or group: its number of evaluation docs}."""
    from lm_eval.tasks import get_task_dict

    from evaluation.lm_eval_data import with_local_data
    from evaluation.run import task_manager_for

    if not names:
        return {}
    manager = with_local_data(task_manager_for([*names, *(lm_eval_data or {})]), lm_eval_data)

    def docs(tasks) -> int:
        total = 0
        for value in tasks.values():
            if isinstance(value, dict):  # a group: its subtasks
                total += docs(value)
            else:
                total += len(value.test_docs() if value.has_test_docs() else value.validation_docs())
        return total

    return {name: docs(get_task_dict([name], manager)) for name in names}


def fetch_nltk_data(names: list[str], download: Callable | None = None) -> list[str]:
    """IFEval's sentence checks need nltk's punkt_tab, which only nltk's downloader provides: into
    the environment's own nltk_data (on nltk's search path, and on the compute nodes' too when the
    environment is on a shared disk)."""
    from training.preflight import punkt_tab_tasks  # the DAG's check and this download: one rule

    if not punkt_tab_tasks(names):
        return []
    import sys

    if download is None:
        from nltk import download
    target = str(Path(sys.prefix) / "nltk_data")
    if not download("punkt_tab", download_dir=target, quiet=True):
        raise OSError(f"nltk could not download punkt_tab into {target} (ifeval's sentence checks need it)")
    return [f"punkt_tab -> {target}"]


def fetch(config: dict, snapshot_download: Callable | None = None) -> dict:
    """Everything a profile reads from the Hub; the task data is the rule's input (already written)."""
    names = lm_eval_tasks(config)
    return {"profile": config["profile"],
            "base_model": fetch_model(config["base_model"]["path"], snapshot_download),
            "lm_eval_tasks": fetch_lm_eval_data(names, config["eval"].get("lm_eval_data")),
            "nltk_data": fetch_nltk_data(names)}
