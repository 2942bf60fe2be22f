"""The learning-rate sweep (config `lr_sweep`): the choice, its tables and plot, and its place in the DAG.

The end-to-end run of a sweep (.test/config.yaml sweeps mora6 on sst2) is checked in test_workflow.py,
on the DAG that test runs anyway.
"""
import json
import math

import pandas as pd
import pytest
import yaml
from test_workflow import make_workdir, planned_jobs, snakemake

from analysis import sweep


def summary(status="ok", eval_loss=None, reason=None):
    out = {"status": status, "final_loss": 1.0}
    if eval_loss is not None:
        out["eval_loss"] = eval_loss
    if reason:
        out["reason"] = reason
    return out


# --- the choice ----------------------------------------------------------------------------------
def test_lowest_validation_loss_wins():
    trials = [sweep.trial_of(3e-3, summary(eval_loss=0.9)), sweep.trial_of(3e-4, summary(eval_loss=0.8)),
              sweep.trial_of(1e-3, summary(eval_loss=0.5))]
    choice = sweep.choose_lr("sst2", "lora", trials)
    assert choice["chosen_lr"] == 1e-3 and choice["criterion"] == "validation eval_loss"
    assert [t["lr"] for t in choice["trials"]] == [3e-4, 1e-3, 3e-3]  # listed by lr
    assert choice["task"] == "sst2" and choice["variant"] == "lora"
    json.dumps(choice, allow_nan=False)  # strict JSON


def test_a_diverged_trial_is_never_chosen_even_with_a_lower_loss():
    trials = [sweep.trial_of(1e-3, summary(eval_loss=0.7)),
              # a validation loss from before the divergence (eval_every) stays in the summary
              sweep.trial_of(1e-2, summary("diverged", eval_loss=0.1, reason="loss is nan at step 3")),
              sweep.trial_of(3e-2, summary("failed", reason="RuntimeError: out of memory"))]
    choice = sweep.choose_lr("uuid", "vera", trials)
    assert choice["chosen_lr"] == 1e-3
    listed = {t["lr"]: t for t in choice["trials"]}
    assert listed[1e-2]["status"] == "diverged" and "nan" in listed[1e-2]["reason"]
    assert listed[3e-2] == {"lr": 3e-2, "status": "failed", "eval_loss": None, "reason": "RuntimeError: out of memory"}


def test_ties_go_to_the_smaller_lr_and_a_missing_validation_loss_does_not_count():
    trials = [sweep.trial_of(1e-2, summary(eval_loss=0.5)), sweep.trial_of(1e-3, summary(eval_loss=0.5)),
              sweep.trial_of(1e-4, summary(eval_loss=math.nan)), sweep.trial_of(1e-5, summary())]
    choice = sweep.choose_lr("sst2", "lora", trials)
    assert choice["chosen_lr"] == 1e-3
    assert all("no finite validation loss" in t["reason"] for t in choice["trials"][:2])  # 1e-5, 1e-4


def test_no_finished_trial_is_an_error_naming_the_pair_and_the_reasons():
    trials = [sweep.trial_of(1e-2, summary("diverged", reason="loss is inf at step 2")),
              sweep.trial_of(1e-1, summary("failed", reason="ValueError: boom"))]
    with pytest.raises(ValueError) as error:
        sweep.choose_lr("e2e", "mora6", trials)
    message = str(error.value)
    assert "'e2e'" in message and "'mora6'" in message and "lr_sweep.grid.mora6" in message
    assert "lr 0.01: diverged (loss is inf at step 2)" in message and "lr 0.1: failed (ValueError: boom)" in message


# --- tables, plot, replication section ----------------------------------------------------------
def write_choice(root, task, variant, trials, seed=0):
    choice = sweep.choose_lr(task, variant, [sweep.trial_of(lr, s) for lr, s in trials])
    path = root / "sweep" / task / variant / "chosen_lr.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**choice, "seed": seed}))
    # a trial's own run directory beside it: never a result (collect reads runs/ only)
    trial = path.parent / "lr0.001"
    trial.mkdir()
    (trial / "train_summary.json").write_text(json.dumps(summary(eval_loss=0.5)))


def test_tables_plot_and_section_from_the_choices(tmp_path):
    write_choice(tmp_path, "sst2", "lora", [(1e-3, summary(eval_loss=0.6)), (1e-2, summary(eval_loss=0.4))])
    write_choice(tmp_path, "sst2", "vera", [(1e-2, summary(eval_loss=0.7)), (1e-1, summary("diverged", reason="nan"))])
    write_choice(tmp_path, "uuid", "lora", [(1e-3, summary(eval_loss=3.0)), (1e-2, summary(eval_loss=3.5))])
    written = sweep.write_sweep(tmp_path, tmp_path / "out")
    assert {p.name for p in written} == {"lr_sweep.csv", "lr_sweep.md", "lr_sweep.png", "lr_sweep.pdf"}
    table = pd.read_csv(tmp_path / "out" / "tables" / "lr_sweep.csv")
    assert len(table) == 6 and table["chosen"].sum() == 3
    assert table.loc[table["chosen"], "lr"].tolist() == [0.01, 0.01, 0.001]  # sst2 lora, sst2 vera, uuid lora
    md = (tmp_path / "out" / "tables" / "lr_sweep.md").read_text()
    assert "| sst2 | vera | 0.1 | diverged: nan |  |  |" in md and md.count("| ✓ |") == 3
    assert (tmp_path / "out" / "plots" / "lr_sweep.png").stat().st_size > 1000
    section = sweep.learning_rates_markdown(tmp_path)
    assert section.startswith("## Learning rates")
    assert "| sst2 | 0.01 | 0.01 |" in section and "| uuid | 0.001 | – |" in section
    assert "lowest validation loss" in section and "1 of them diverged or failed" in section
    assert "At the edge of its grid" in section and "sst2/lora (0.01)" in section and "uuid/lora (0.001)" in section


def test_a_choice_inside_the_grid_is_not_flagged(tmp_path):
    write_choice(tmp_path, "sst2", "lora", [(1e-3, summary(eval_loss=0.6)), (3e-3, summary(eval_loss=0.3)),
                                            (1e-2, summary(eval_loss=0.4))])
    assert sweep.at_grid_edge(sweep.read_sweep(tmp_path)) == []
    assert "At the edge" not in sweep.learning_rates_markdown(tmp_path)

    from analysis.collect import collect
    assert collect(tmp_path).empty  # the sweep's trials are not results


def test_no_sweep_folder_writes_nothing(tmp_path):
    assert sweep.write_sweep(tmp_path, tmp_path) == [] and sweep.learning_rates_markdown(tmp_path) == ""
    assert not (tmp_path / "tables").exists()


# --- the DAG ---------------------------------------------------------------------------------------
def with_sweep(work, lr_sweep):
    """.test/config.yaml with its lr_sweep replaced (a separate file: configfiles deep-merge)."""
    config = yaml.safe_load((work / ".test" / "config.yaml").read_text())
    config["lr_sweep"] = lr_sweep
    (work / ".test" / "sweep.yaml").write_text(yaml.safe_dump(config))
    return ".test/sweep.yaml"


def job_blocks(output: str) -> list[dict]:
    """A dry run's jobs: {"rule": name, "input": [...], "output": [...], "wildcards": "..."}."""
    jobs = []
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            jobs.append({"rule": line.split()[1].rstrip(":"), "input": [], "output": []})
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            jobs[-1][key] = value.split(", ") if key in ("input", "output") else value
    return jobs


def test_dry_run_plans_the_sweep_before_the_runs_it_sets(tmp_path):
    work, env = make_workdir(tmp_path)
    # "1e-3" is what YAML makes of an unquoted 1e-3: a string
    configfile = with_sweep(work, {"grid": {"lora": [3.0e-4, "1e-3", 3.0e-3], "vera": [1.0e-2, 3.0e-2]},
                                   "tasks": "all"})
    result = snakemake(work, "-n", "--cores", "1", "--configfile", configfile, env_extra=env)
    jobs = planned_jobs(result.stdout)
    # lora on sst2 and uuid, 3 lrs each; vera is in the grid but not trained here, so not swept
    assert jobs["sweep_train"] == 6 and jobs["choose_lr"] == 2 and jobs["train"] == 4, result.stdout[-3000:]
    blocks = job_blocks(result.stdout)
    trials = sorted(o for b in blocks if b["rule"] == "sweep_train" for o in b["output"])
    assert trials == [f"results/test/sweep/{task}/lora/lr{lr}/train_summary.json"
                      for task in ("sst2", "uuid") for lr in ("0.0003", "0.001", "0.003")]
    chosen = {o for b in blocks if b["rule"] == "choose_lr" for o in b["output"]}
    assert chosen == {"results/test/sweep/sst2/lora/chosen_lr.json", "results/test/sweep/uuid/lora/chosen_lr.json"}
    for job in (b for b in blocks if b["rule"] == "train"):
        swept = [i for i in job["input"] if i.endswith("chosen_lr.json")]
        if "variant=lora" in job["wildcards"]:
            task = job["wildcards"].split("task=")[1].split(",")[0]
            assert swept == [f"results/test/sweep/{task}/lora/chosen_lr.json"]
        else:
            assert swept == []  # mora6 is not in the grid: its configured lr, no wait
    aggregate = next(b for b in blocks if b["rule"] == "aggregate")
    assert chosen <= set(aggregate["input"])


def test_a_relative_grid_is_each_variants_own_lr_times_the_factors(tmp_path):
    """lora brings 2e-4 (config/methods/lora.yaml), mora6 3e-4 (mora.yaml); the test profile's
    variant_train does not move the anchor. An explicit grid entry wins over the relative one."""
    work, env = make_workdir(tmp_path)
    configfile = with_sweep(work, {"relative": {"variants": "all", "factors": [1, "3", 10]},
                                   "grid": {"mora6": [1.0e-3, 2.0e-3]}, "tasks": ["sst2"]})
    result = snakemake(work, "-n", "--cores", "1", "--configfile", configfile, env_extra=env)
    trials = sorted(o for b in job_blocks(result.stdout) if b["rule"] == "sweep_train" for o in b["output"])
    assert trials == sorted([f"results/test/sweep/sst2/lora/lr{lr}/train_summary.json" for lr in ("0.0002", "0.0006", "0.002")]
                            + [f"results/test/sweep/sst2/mora6/lr{lr}/train_summary.json" for lr in ("0.001", "0.002")])


@pytest.mark.parametrize("lr_sweep, message", [
    ({"relative": {"factors": [1, 0]}}, "lr_sweep.relative.factors: values must be > 0, got 0"),
    ({"relative": {"factors": [1, 1.0]}}, "lr_sweep.relative.factors: [1, 1.0] lists a factor twice"),
    ({"relative": {"variants": ["nora"], "factors": [1, 3]}}, "lr_sweep.relative.variants: unknown ['nora']"),
    ({"grid": {"nora": [1.0e-3, 1.0e-2]}}, "lr_sweep.grid: unknown variant 'nora'; known:"),
    ({"grid": {"lora": [1.0e-3, 1.0e-2]}, "tasks": ["e2e"]},
     "lr_sweep.tasks: ['e2e'] not trained by this profile (trained: sst2, uuid)"),
])
def test_sweep_config_errors_name_the_fix(tmp_path, lr_sweep, message):
    work, env = make_workdir(tmp_path)
    result = snakemake(work, "-n", "--cores", "1", "--configfile", with_sweep(work, lr_sweep), env_extra=env,
                       check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
