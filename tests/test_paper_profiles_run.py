"""Every paper profile executed end to end on a CPU: data → train → evaluate → aggregate → report.

Each case is a real `snakemake` run of the profile's own files (config/paper/*.yaml, overlays
included), plus one test overlay that only scales it to a CPU and points it at local stand-ins:
  - the base model: a tiny random model of the paper's architecture (tests/paper_fixtures.py),
    named as the paper's model (`base_model.name`), so the paper tables compare values;
  - the data: a few rows of each Hub dataset in its exact schema, through the paper loaders;
  - lm-eval's built-in tasks: local files in each dataset's Hub schema (`eval.lm_eval_data`,
    .test/hub/lm_eval_data.yaml);
  - scale: 2 optimizer steps of batch 2, 2 evaluation items per task (16 new tokens at most), one
    seed, one of the profile's variants (the paper's method, or its LoRA baseline where another
    case runs the method; VeRA adds full fine-tuning, its table's FT row), and for GLUE one task
    (the suite's budget: ~15 minutes for all tests).
The documented one-liners (vera_large, milora_llama3) are planned in tests/test_profiles.py;
their model rows are covered by the analysis tests (tests/test_analysis_paper.py).
Everything else — the methods and their options, target modules, schedules, the evaluation
protocols, the mapping to the paper's tables — is the profile's own. Each case asserts that the
profile's paper tables were written, with a number in every "ours" cell whose variant ran.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from paper_fixtures import HUB_ARCH, paper_data, save_model, write_data

ROOT = Path(__file__).resolve().parent.parent
LM_EVAL_DATA = ROOT / ".test" / "hub" / "lm_eval_data.yaml"


@dataclass(frozen=True)
class Run:
    files: tuple[str, ...]
    variants: tuple[str, ...]
    tasks: tuple[str, ...] | None = None     # None: the profile's own
    data: tuple[tuple[str, dict], ...] = ()  # data.paper overrides beyond the common fixtures
    download: bool = False                   # run the `download` target first (README's air-gapped path)
    train: tuple[tuple[str, object], ...] = ()  # CPU-scale settings beyond TRAIN
    paper_tables: bool = True                # False: the paper publishes no table for it (family table only)
    arch: str | None = None                  # another stand-in of the same architecture (paper_fixtures.ARCHS)


RUNS = {
    "mora": Run(("config/paper/mora.yaml",), ("mora6_r8_lr2e-4",), download=True),
    "mora+biomed": Run(("config/paper/mora.yaml", "config/paper/mora_biomed.yaml"), ("mora6_r8_lr4e-4",)),
    # Table 2's columns are the profile's snapshots at steps 300/500/700/900: the run goes that far
    # (on a narrow LLaMA, r = 8).
    "mora+uuid": Run(("config/paper/mora.yaml", "config/paper/mora_uuid.yaml"), ("mora6_r8_lr5e-5",),
                     train=(("max_steps", 901), ("checkpoint_every", 450), ("log_every", 100)), arch="llama_narrow"),
    "milora": Run(("config/paper/milora.yaml",), ("milora_r32_lr3e-4",)),
    "milora+instruct": Run(("config/paper/milora.yaml", "config/paper/milora_instruct.yaml"), ("pissa_r32_lr3e-4",),
                           data=(("instruct", {"data_files": "{data}/ultrafeedback_binarized/data/train_sft-*.parquet"}),),
                           paper_tables=False),   # MiLoRA's IFEval/AlpacaEval numbers are not in papers.csv
    "milora+math": Run(("config/paper/milora.yaml", "config/paper/milora_math.yaml"), ("lora_r64_lr3e-4",)),
    "multilora": Run(("config/paper/multilora.yaml",), ("multilora_n4r16_lr1e-4",), paper_tables=False),  # none public
    "sora": Run(("config/paper/sora.yaml",), ("sora_r8_lr8e-4_xi3e-4",), tasks=("stsb",)),
    # `full` (full fine-tuning): the table's FT row, its run saved and evaluated as a whole model
    "vera": Run(("config/paper/vera.yaml",), ("vera_r1024_lr4e-3", "full"), tasks=("cola",)),
    "vera_e2e": Run(("config/paper/vera_e2e.yaml",), ("vera_r1024_lr2e-2",)),
    # PEFT's MetaMathQA benchmark (huggingface/peft @ 5d602fd): its LoRA r32 default, merged, and
    # prompt tuning, evaluated through the PEFT model's forward; validation from GSM8K train rows.
    "peft_method_comparison": Run(("config/paper/peft_method_comparison.yaml",),
                                  ("pmc_lora_rank32", "pmc_prompt_tuning_lr_0.001"),
                                  data=(("math", {"train_rows": 6, "validation": {
                                      "data_dir": "{data}/gsm8k", "subset": "main", "split": "train", "size": 4}}),)),
}

# The CPU scale every run is brought down to (the settings a profile trains with are in
# tests/test_profiles.py, checked against the papers').
TRAIN = {"device": "cpu", "dtype": "float32", "precision": "fp32", "max_steps": 2, "batch_size": 2,
         "grad_accum": 1, "seq_len": 64, "eval_batch_size": 2, "log_every": 1, "checkpoint_every": 1}


def _profile_config(run: Run) -> dict:
    from snakemake.utils import update_config

    config = {}
    for name in run.files:
        update_config(config, yaml.safe_load((ROOT / name).read_text()))
    return config


def _fill(value, data: Path):
    """`value` with "{data}" in its strings (nested too) replaced by the fixtures' folder."""
    if isinstance(value, dict):
        return {k: _fill(v, data) for k, v in value.items()}
    return value.format(data=data) if isinstance(value, str) else value


def overlay(run: Run, models: Path, data: Path) -> dict:
    """The test's own configfile for `run`: CPU scale and local stand-ins, nothing else."""
    config = _profile_config(run)
    hub_id = config["base_model"]["path"]
    arch = run.arch or HUB_ARCH[hub_id]
    tasks = list(run.tasks or config["tasks"])
    sources = paper_data(str(data))
    for task, options in run.data:
        sources[task] = {**sources[task], **_fill(options, data)}
    out = {
        "seeds": [0],
        "threads": 1,
        "variants": list(run.variants),
        "tasks": tasks,
        "base_model": {"path": str(save_model(arch, models / arch)), "name": hub_id},
        "data": {"paper": {t: sources[t] for t in tasks}},
        "train": TRAIN | dict(run.train),
        "task_train": {t: TRAIN | dict(run.train) for t in tasks},
        "eval": {"batch_size": 2, "limit": 2, "max_gen_toks": 16},
    }
    if LM_EVAL_DATA.exists():
        out["eval"]["lm_eval_data"] = {name: {split: str(ROOT / path) for split, path in splits.items()}
                                       for name, splits in yaml.safe_load(LM_EVAL_DATA.read_text())["eval"]
                                       ["lm_eval_data"].items()}
    return out


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_fixtures")
    return root / "models", write_data(root / "data")


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), *args]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)


def _failure(work: Path, result: subprocess.CompletedProcess) -> str:
    """Snakemake's tail and the tracebacks of the jobs' own logs."""
    logs = [f"--- {log}\n{log.read_text()[-4000:]}" for log in sorted(work.glob("results/*/logs/**/*.log"))
            if "Traceback" in log.read_text()]
    return "\n".join([result.stdout[-2000:], result.stderr[-3000:], *logs])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_paper_profile_runs(name, fixtures, tmp_path):
    run = RUNS[name]
    models, data = fixtures
    work = tmp_path / "work"
    shutil.copytree(ROOT / "config", work / "config")
    test_overlay = work / "test_overlay.yaml"
    test_overlay.write_text(yaml.safe_dump(overlay(run, models, data), sort_keys=False))
    args = ["--cores", "2", "--configfile", *run.files, str(test_overlay)]
    results = work / "results" / _profile_config(run)["profile"]
    if run.download:  # what a login node runs before the offline compute jobs
        result = _snakemake(work, "download", *args)
        assert result.returncode == 0, _failure(work, result)
        manifest = json.loads((results / "download.json").read_text())
        assert manifest["base_model"]["fetched"] is False  # a local checkpoint is left alone
        names = {n for ns in _profile_config(run)["eval"]["lm_eval_tasks"].values() for n in ns}
        assert set(manifest["lm_eval_tasks"]) >= names and all(n > 0 for n in manifest["lm_eval_tasks"].values())
    result = _snakemake(work, *args)
    assert result.returncode == 0, _failure(work, result)

    assert (results / "report.html").exists()
    for eval_json in results.glob("runs/*/*/seed0/eval.json"):  # evaluated where the run trained
        placement = json.loads(eval_json.read_text())["lorabench"]
        assert (placement["device"], placement["dtype"]) == ("cpu", "float32"), eval_json
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert set(runs["variant"]) >= set(run.variants) and (runs["status"] == "ok").all(), runs
    tables = sorted((results / "tables").glob("paper_*.csv"))
    if not run.paper_tables:  # the family's own table carries the run
        assert not tables and (results / "tables" / "summary.csv").exists()
        summary = pd.read_csv(results / "tables" / "summary.csv")
        assert set(run.variants) <= set(summary["variant"]), summary
        return
    assert tables, f"{name}: no paper table written; tables: {sorted(p.name for p in (results / 'tables').iterdir())}"
    for path in tables:
        table = pd.read_csv(path)
        ran = table[table["variant"].isin(run.variants)] if "variant" in table else table
        assert len(ran), f"{path.name}: no row of {run.variants}"
        assert ran["ours"].notna().all(), f"{path.name}: empty ours cells\n{ran.to_string()}"
        assert "Δ" in table, f"{path.name}: not compared by value (is the stand-in named as the paper's model?)"
    if "full" in run.variants:  # the FFT row of the paper's table: paper | ours | Δ, every parameter counted
        fft = pd.concat([pd.read_csv(p) for p in tables]).query("variant == 'full'")
        assert len(fft) and set(fft["method"]) == {"FFT"} and fft[["paper", "ours", "Δ"]].notna().all().all(), fft
        assert not (results / "runs" / run.tasks[0] / "full" / "seed0" / "adapter").exists()
        assert (results / "runs" / run.tasks[0] / "full" / "seed0" / "model.safetensors").is_file()


def test_download_fetches_hub_models_only():
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from hub_download import fetch_model

    calls = []

    def snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return f"/cache/{repo_id}"

    assert fetch_model("meta-llama/Llama-2-7b-hf", snapshot_download) == {
        "model": "meta-llama/Llama-2-7b-hf", "fetched": True, "path": "/cache/meta-llama/Llama-2-7b-hf"}
    assert "*.safetensors" in calls[0][1] and "tokenizer*" in calls[0][1]
    assert fetch_model(str(ROOT), snapshot_download)["fetched"] is False and len(calls) == 1
    assert fetch_model(None, snapshot_download)["fetched"] is False


def test_download_fetches_punkt_for_ifeval_only():
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from hub_download import fetch_nltk_data

    calls = []
    assert fetch_nltk_data(["mmlu", "gsm8k"], lambda *a, **k: calls.append(a)) == [] and not calls
    fetched = fetch_nltk_data(["mmlu", "ifeval"], lambda name, download_dir, quiet: calls.append(name) or True)
    assert calls == ["punkt_tab"] and fetched[0].endswith("nltk_data")
    with pytest.raises(OSError, match="punkt_tab"):
        fetch_nltk_data(["ifeval"], lambda *a, **k: False)


def test_evaluation_loads_on_the_configured_device_and_dtype(tmp_path):
    """What a GPU run's evaluation does, seen on a CPU: the run's dtype and device reach the model
    lm-eval wraps (workflow/scripts/evaluate_run.py -> training.model.load_for_eval)."""
    import torch

    from training.config import TrainConfig
    from training.model import load_for_eval, resolve_device

    path = save_model("gpt2", tmp_path / "gpt2")
    cfg = TrainConfig.from_dict({"model": str(path), "data_dir": "x", "task_kind": "causal_lm", "method": None,
                                 "dtype": "bfloat16", "device": "cpu"})
    model, _ = load_for_eval(cfg, None)
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu" and not model.training
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU is visible"):
            resolve_device("cuda")
