"""Bad setups found before the work, not after it.

- What an evaluation reads that no job fetches (nltk's punkt_tab for IFEval) is checked when the DAG
  is built: `snakemake -n` of an IFEval profile without it fails, naming `snakemake download`, and
  the `download` target itself is never refused. A `base_model.path` that is not there fails too.
- `LORABENCH_METHOD_DIRS` alone makes a method outside the repo importable, in a fresh process (as
  the Snakemake jobs' scripts are): the registry puts its folders on sys.path.
- A local base model that nothing names as a paper's model (no `base_model.name`) is not compared
  with the paper's numbers; its paper tables show the method order and say why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_bias_method, write_punkt_tab
import yaml

ROOT = Path(__file__).resolve().parent.parent
IFEVAL = ("config/paper/milora.yaml", "config/paper/milora_instruct.yaml")


def _snakemake(work: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--nolock", *args]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)


def _work(tmp_path: Path, overlay: dict | None = None) -> tuple[Path, list[str]]:
    """A copy of config/ and the --configfile arguments of MiLoRA's IFEval profile (plus `overlay`)."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "config", work / "config")
    files = list(IFEVAL)
    if overlay:
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        files.append("overlay.yaml")
    return work, ["--cores", "1", "--configfile", *files]


def _punkt_tab(root: Path) -> Path:
    return write_punkt_tab(root)


def _no_punkt_env(tmp_path: Path) -> dict:
    """NLTK_DATA at an empty folder, HOME without ~/nltk_data; skip where the environment has its own."""
    from training import preflight

    empty, home = tmp_path / "nltk_data", tmp_path / "home"
    empty.mkdir(), home.mkdir()
    env = {"NLTK_DATA": str(empty), "HOME": str(home)}
    found = subprocess.run([sys.executable, "-c", "from training.preflight import punkt_tab_found as f; "
                            "print(f())"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    if found.stdout.strip() == "True":
        pytest.skip(f"punkt_tab is installed in this environment ({sys.prefix}/nltk_data or a system folder)")
    assert preflight.punkt_tab_tasks(["mmlu", "ifeval"]) == ["ifeval"] and not preflight.punkt_tab_tasks(["gsm8k"])
    return env


# --- punkt_tab -------------------------------------------------------------------------------------
def test_ifeval_profile_without_punkt_tab_fails_at_dry_run_naming_download(tmp_path):
    env = _no_punkt_env(tmp_path)
    work, args = _work(tmp_path)
    result = _snakemake(work, "-n", *args, env_extra=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "punkt_tab" in out and "eval.lm_eval_tasks.instruct evaluates ifeval" in out, out[-3000:]
    assert f"snakemake download --cores 1 --configfile {' '.join(IFEVAL)}" in out, out[-3000:]
    # the command it names is not refused: `download` plans no evaluation
    result = _snakemake(work, "-n", "download", *args, env_extra=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "punkt_tab" not in result.stdout + result.stderr


def test_ifeval_profile_with_punkt_tab_plans(tmp_path):
    env = {**_no_punkt_env(tmp_path), "NLTK_DATA": str(_punkt_tab(tmp_path / "with_punkt"))}
    work, args = _work(tmp_path)
    result = _snakemake(work, "-n", *args, env_extra=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "rule evaluate:" in result.stdout


def test_a_missing_local_base_model_fails_at_dry_run(tmp_path):
    missing = tmp_path / "models" / "my-llama"
    work, args = _work(tmp_path, {"base_model": {"path": str(missing)}})
    result = _snakemake(work, "-n", *args)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and f"base_model.path {missing} does not exist" in out, out[-3000:]
    assert "overlay.yaml" in out


# --- LORABENCH_METHOD_DIRS alone -------------------------------------------------------------------
def test_method_dirs_alone_make_an_outside_module_importable_in_a_fresh_process(tmp_path):
    plugin = write_bias_method(tmp_path / "plugin", "outside_method", "outside_bias")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"LORABENCH_METHOD_DIRS": str(plugin)}
    code = ("import sys, adapters; spec = adapters._registry.get_spec('outside_bias'); "
            f"print(spec.layer_cls.__module__, {str(plugin)!r} in sys.path)")
    # run elsewhere than the plugin folder, as a job's script runs in the workdir
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["outside_method", "True"]


def test_a_method_yaml_naming_a_missing_module_says_which_yaml(tmp_path, monkeypatch):
    import adapters

    (tmp_path / "ghost.yaml").write_text("module: ghost_method\noptions: {}\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("LORABENCH_METHOD_DIRS", str(tmp_path))
    monkeypatch.setattr(adapters._registry, "_discovered", False)
    with pytest.raises(ModuleNotFoundError, match=r"ghost\.yaml: module: ghost_method is not importable.*"
                                                  r"put ghost_method\.py"):
        adapters.available()


# --- paper tables: a local model without base_model.name ---------------------------------------------
def test_paper_model_has_no_profile_fallback():
    from analysis.paper_models import not_compared_note, paper_model

    assert paper_model("/data/my-llama") is None  # once: the mora profile's LLaMA-2-7B
    assert paper_model("/data/my-llama", declared="LLaMA-2-7B") == "LLaMA-2-7B"
    assert paper_model("/data/Llama-2-7b-hf") == "LLaMA-2-7B"  # a local copy named like the repo
    note = not_compared_note(["/data/my-llama"], "mora")
    assert "/data/my-llama is not a paper model" in note and "`base_model.name: meta-llama/Llama-2-7b-hf`" in note


def _mora_runs(root: Path, base_model: str) -> Path:
    from test_analysis_data import write_run

    for variant, method, options, loss, score in (("lora_r8_lr2e-4", "lora", {"r": 8, "alpha": 16}, 1.2, 0.60),
                                                  ("mora6_r8_lr2e-4", "mora", {"r": 8, "mora_type": 6}, 1.1, 0.62)):
        write_run(root, "math", variant, 0, results={"metamath_gsm8k": {"exact_match": score}}, method=method,
                  options=options, summary_extra={"eval_loss": loss}, base_model=base_model)
    return root


def test_an_unrecognised_local_model_gets_no_paper_values_and_the_reason(tmp_path):
    import pandas as pd

    from analysis import collect, reference

    root = _mora_runs(tmp_path / "mora", "/data/my-llama")
    written = reference.write_paper_tables(collect.collect(root), root)
    assert "MoRA 1" in written
    table = pd.read_csv(root / "tables" / "paper_MoRA_1.csv")
    assert "Δ" not in table and "our rank" in table  # the method order only, no number against the paper's
    md = (root / "tables" / "paper_MoRA_1.md").read_text()
    assert "Shape only" in md and "base model /data/my-llama is not a paper model" in md
    assert "set `base_model.name: meta-llama/Llama-2-7b-hf`" in md and "Δ = ours − paper" not in md


def test_a_declared_local_model_is_compared(tmp_path):
    import pandas as pd

    from analysis import collect, reference

    root = _mora_runs(tmp_path / "mora", "/data/my-llama")
    reference.write_paper_tables(collect.collect(root), root, paper_model_name="LLaMA-2-7B")
    table = pd.read_csv(root / "tables" / "paper_MoRA_1.csv")
    lora = table[(table["method"] == "LoRA") & (table["column"] == "GSM8K")].iloc[0]
    assert (lora["model"], lora["ours"], lora["paper"]) == ("LLaMA-2-7B", pytest.approx(60.0), 64.6)
    assert lora["Δ"] == pytest.approx(60.0 - 64.6)
    assert "not a paper model" not in (root / "tables" / "paper_MoRA_1.md").read_text()
