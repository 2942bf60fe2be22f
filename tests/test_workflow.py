"""The Snakemake DAG end to end on the reduced config (.test/config.yaml), plus dry-run properties.

The workflow runs in a temporary working directory (a copy of config/ and .test/), so the tests
never touch the repository's results/ or lock its .snakemake/.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_bias_method

from analysis import publish

ROOT = Path(__file__).resolve().parent.parent
SNAKEFILE = ROOT / "Snakefile"


def snakemake(workdir, *args, env_extra=None, check=True):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           **(env_extra or {})}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    counts, in_stats = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats"):
            in_stats, counts = True, {}
            continue
        parts = line.split()
        if in_stats and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif in_stats and counts and not parts:
            in_stats = False
    return counts


def make_workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / ".test", work / ".test")
    methods = tmp_path / "methods"           # an override dir: editing lora.yaml here edits the method
    methods.mkdir()
    shutil.copy(ROOT / "config" / "methods" / "lora.yaml", methods / "lora.yaml")
    return work, {"LORABENCH_METHOD_DIRS": str(methods)}


# finished_run: conftest.py (one run of .test/config.yaml per session, shared with test_warm).


def test_dag_runs_end_to_end(finished_run):
    work, _ = finished_run
    results = work / "results" / "test"
    runs = pd.read_csv(results / "tables" / "runs.csv")
    ok = runs[runs["status"] == "ok"]
    assert set(ok["variant"]) >= {"lora", "mora6", "base"}
    assert set(ok["task"]) >= {"sst2", "uuid"}
    acc = ok[(ok["task"] == "sst2") & (ok["metric"] == "acc") & (ok["variant"] != "base")]
    assert len(acc) == 2 and acc["value"].between(0, 1).all()
    char_acc = ok[(ok["task"] == "uuid") & (ok["metric"] == "char_acc")]
    assert len(char_acc) == 3  # lora, mora6 and the base model
    for variant in ("lora", "mora6"):
        run = results / "runs" / "sst2" / variant / "seed0"
        summary = json.loads((run / "train_summary.json").read_text())
        assert summary["status"] == "ok" and summary["trainable_params"] > 0
        assert (run / "adapter" / "adapter.safetensors").exists()
        assert json.loads((run / "eval.json").read_text())["results"]["lorabench_sst2"]["acc,none"] >= 0
        assert (run / "provenance.json").exists() and (run / "train_log.jsonl").exists()
    for name in ("glue.md", "glue.tex", "glue.csv", "memorization.md"):
        assert (results / "tables" / name).stat().st_size > 0
    assert (results / "plots" / "uuid_accuracy.png").exists()
    assert "Claim 1" in (results / "replication.md").read_text()
    report = (results / "report.html").read_text(errors="ignore")
    assert len(report) > 100_000 and "replication" in report.lower()


def test_spectra_in_worker_processes_are_the_numbers_of_one_process(finished_run, monkeypatch):
    """The aggregate job measures the runs' ΔW spectra in worker processes (`threads: 8`, lowered to
    --cores 2 here): the same numbers, bit for bit, as one process of one thread measuring each run
    in turn, and the DAG's own spectra.csv is them."""
    import numpy as np
    import torch

    from analysis.collect import collect
    from analysis.spectra import measure_runs

    work, _ = finished_run
    monkeypatch.chdir(work)   # runs.csv names run folders relative to the working directory
    results = Path("results/test")
    runs = collect(results)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = measure_runs(runs, results / "base_model", results)
        two = measure_runs(runs, results / "base_model", results, workers=2)
    finally:
        torch.set_num_threads(threads)
    assert len(one[0]) >= 4 and set(one[0]["metric"]) >= {"effective_rank", "normalized_entropy"}
    pd.testing.assert_frame_equal(one[0], two[0])
    pd.testing.assert_frame_equal(one[1], two[1])
    assert one[2] == two[2]
    dag = pd.read_csv(results / "tables" / "spectra.csv")
    assert np.array_equal(dag["value"].to_numpy(), one[1]["value"].to_numpy())


def test_publish_a_finished_run_with_its_provenance_and_a_rerun_spread(finished_run):
    """`python -m analysis.publish results/<profile>` (README): the folder a fresh clone browses."""
    work, env = finished_run
    cmd = [sys.executable, "-m", "analysis.publish", "results/test", "--rerun", "results/test", "--no-spectra"]
    result = subprocess.run(cmd, cwd=work, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = work / "results" / "published" / "test"
    info = json.loads((out / "provenance.json").read_text())
    stages = {s["stage"]: s for s in info["timing"]["stages"]}
    runs = pd.read_csv(out / "tables" / "runs.csv")
    trained = runs[runs["variant"] != "base"].drop_duplicates(["train_task", "variant", "seed"])
    assert stages["train"]["jobs"] == len(trained) == info["trained"]["runs"]   # the log of the run that trained them
    assert stages["evaluate"]["jobs"] >= len(trained) and info["timing"]["wall_seconds"] > 0
    assert info["timing"]["command"].endswith("--configfile .test/config.yaml")
    assert info["trained"]["threads_per_job"] == [1] and len(info["published"]["git_commit"]) == 40
    assert (out / "replication.md").read_text() == (work / "results" / "test" / "replication.md").read_text()
    assert "| 1 |" in (out / "tables" / "headline.md").read_text() and list(out.glob("plots/*.png"))
    assert not list(out.rglob("*.safetensors")) and not list(out.glob("plots/loss_*"))
    spread = pd.read_csv(out / "spread.csv")
    assert len(spread) and (spread["move"] == 0).all()          # the same run twice: nothing moves
    assert "| 1 | " in (out / "spread.md").read_text() and "| yes |" in (out / "spread.md").read_text()
    index = (work / "results" / "published" / "README.md").read_text()
    assert "## `test`" in index and "spread.md" in index
    # right after a DAG run, its own aggregate outputs can be published as they are; a later
    # invocation that completed the folder (here: the same log again) is recorded as a top-up
    log = publish.find_run_log(work / "results" / "test", work / ".snakemake" / "log")
    cmd = [sys.executable, "-m", "analysis.publish", "results/test", "--reuse-analysis", "--out", "reused",
           "--top-up", str(log)]
    result = subprocess.run(cmd, cwd=work, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("tables/headline.md", "tables/runs.csv", "replication.json"):
        assert (work / "reused" / name).read_text() == (work / "results" / "test" / name).read_text()
    timing = json.loads((work / "reused" / "provenance.json").read_text())["timing"]
    assert timing["top_ups"] == [publish.run_timing(log)] and timing["top_ups"][0]["jobs"] > 0
    wall = timing["top_ups"][0]["wall_seconds"]
    assert f"then {timing['top_ups'][0]['jobs']} jobs in {wall // 60} min {wall % 60:02d} s to complete it" in \
        (work / "README.md").read_text()   # the index beside the published folder


def test_lr_sweep_chose_the_lr_the_runs_trained_at(finished_run):
    """.test/config.yaml sweeps mora6 on sst2 over two lrs (one written `3e-3`, a YAML string)."""
    work, _ = finished_run
    results = work / "results" / "test"
    choice = json.loads((results / "sweep" / "sst2" / "mora6" / "chosen_lr.json").read_text())
    assert [t["lr"] for t in choice["trials"]] == [3e-4, 3e-3] and choice["chosen_lr"] in (3e-4, 3e-3)
    assert all(t["status"] == "ok" and t["eval_loss"] > 0 for t in choice["trials"])
    provenance = json.loads((results / "runs" / "sst2" / "mora6" / "seed0" / "provenance.json").read_text())
    assert provenance["config"]["lr"] == choice["chosen_lr"]
    assert sorted(p.name for p in (results / "sweep").glob("*/*")) == ["mora6"]  # nothing else swept
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert not runs["run_dir"].astype(str).str.contains("/sweep/").any()  # trials are not results
    assert len(pd.read_csv(results / "tables" / "lr_sweep.csv")) == 2
    assert (results / "plots" / "lr_sweep.png").exists()


def test_second_run_has_nothing_to_do(finished_run):
    work, env = finished_run
    result = snakemake(work, "-n", "--cores", "2", "--configfile", ".test/config.yaml", env_extra=env)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_editing_one_method_yaml_reruns_only_its_jobs(finished_run):
    work, env = finished_run
    lora_yaml = Path(env["LORABENCH_METHOD_DIRS"]) / "lora.yaml"
    lora_yaml.write_text(lora_yaml.read_text().replace("dropout: 0.05", "dropout: 0.1"))
    result = snakemake(work, "-n", "--cores", "2", "--configfile", ".test/config.yaml", env_extra=env)
    jobs = planned_jobs(result.stdout)
    assert jobs == {"train": 2, "evaluate": 2, "aggregate": 1, "report": 1, "all": 1, "total": 7}, result.stdout[-3000:]
    planned_variants = {part.split("=")[1] for line in result.stdout.splitlines() if "wildcards:" in line
                        for part in line.split(",") if part.strip().startswith("variant=")}
    assert planned_variants == {"lora"}


def test_a_method_from_a_fixture_joins_the_dag_without_rule_edits(tmp_path):
    work, env = make_workdir(tmp_path)
    plugin = write_bias_method(tmp_path / "plugin", "fixture_method", "fixture_bias", "train:\n  lr: 1.0e-3\n")
    env["LORABENCH_METHOD_DIRS"] += os.pathsep + str(plugin)  # alone: the registry imports fixture_method from it
    config = (work / ".test" / "config.yaml").read_text().replace("variants: [lora, mora6]", "variants: all")
    (work / ".test" / "config.yaml").write_text(config)
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml", env_extra=env)
    assert "runs/sst2/fixture_bias/seed0/train_summary.json" in result.stdout
    import adapters
    n_variants = len(adapters.variants()) + 1
    assert planned_jobs(result.stdout)["train"] == 2 * n_variants


def test_variant_seeds_give_one_variant_more_seeds(tmp_path):
    """`variant_seeds` (config/real.yaml: claim 1's two methods at 8 seeds): that variant's runs at
    its seeds, the others at `seeds`; a variant the profile lacks is an error at planning."""
    work, env = make_workdir(tmp_path)
    (work / "more.yaml").write_text("variant_seeds: {mora6: [0, 1, 2]}\n")
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml", "more.yaml", env_extra=env)
    planned = set(re.findall(r"runs/(\w+)/(\w+)/seed(\d+)/train_summary.json", result.stdout))
    assert planned == {(t, "lora", "0") for t in ("sst2", "uuid")} | {(t, "mora6", s) for t in ("sst2", "uuid")
                                                                    for s in "012"}
    (work / "more.yaml").write_text("variant_seeds: {nora: [0, 1]}\n")
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml", "more.yaml", env_extra=env,
                       check=False)
    assert result.returncode != 0 and "config variant_seeds: 'nora' is not a variant" in result.stdout + result.stderr


def test_a_bad_peft_variant_fails_at_planning_only_where_a_profile_uses_it(tmp_path):
    """PEFT YAMLs are checked by PEFT (importing it costs seconds), so planning checks the PEFT
    variants a profile uses: a bad option there fails `snakemake -n` naming the variant; the same
    YAML unused plans."""
    work, env = make_workdir(tmp_path)
    (tmp_path / "methods" / "peft_bad.yaml").write_text("peft: {peft_type: LORA, r: 4, bogus_option: 1}\n")
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml", env_extra=env)
    assert "peft_bad" not in result.stdout
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml", "--config",
                       "variants=[lora,peft_bad]", env_extra=env, check=False)
    assert result.returncode != 0
    assert "variant 'peft_bad'" in result.stdout + result.stderr and "bogus_option" in result.stdout + result.stderr


def test_unknown_variant_in_config_is_a_clear_error(tmp_path):
    work, env = make_workdir(tmp_path)
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml",
                       "--config", "variants=[lora,nora]", env_extra=env, check=False)
    assert result.returncode != 0
    assert "unknown ['nora']; known:" in result.stdout + result.stderr


def test_config_schema_rejects_bad_keys(tmp_path):
    work, env = make_workdir(tmp_path)
    result = snakemake(work, "-n", "--cores", "1", "--configfile", ".test/config.yaml",
                       "--config", "threads=0", env_extra=env, check=False)
    assert result.returncode != 0 and "threads" in result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(SNAKEFILE)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Lints for" not in result.stdout + result.stderr
