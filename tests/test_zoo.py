"""config/zoo.yaml: every method of the suite, each at its own swept lr, with seeds.

The profile is planned whole (every method: 5 sweep runs, 3 seeds) and executed at CPU-test scale:
the profile's own files with an overlay that shrinks the model (.test's minute base model), the
data, the steps, the seeds (2), the relative grid (2 factors) and the variants (one of each kind: ours, a
PEFT LoRA variant, a prompt method that is evaluated unmerged, IA³, the three YAMLs the zoo resizes,
and full fine-tuning). The published run is results/published/zoo/ (README, "The zoo").
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

import adapters
from test_workflow import make_workdir, snakemake
from workflow.profile import resolve_profile

ROOT = Path(__file__).resolve().parent.parent
FACTORS = [1, 3, 10, 30, 100]
SCALED = ["lora", "vera", "dora", "prompt_tuning", "ia3", "c3a_b32", "road_g32", "vblora_v32", "full"]
SCALE = {
    "base_model": {"path": None, "pretrain_config": ".test/base_model.yaml"},
    "seeds": [0, 1],
    "variants": SCALED,
    "data": {"seed": 7, "sizes": {"sst2": {"train": 64, "validation": 16, "test": 16}}},
    "train": {"batch_size": 8, "log_every": 1},
    "task_train": {"sst2": {"max_steps": 4}},
    "eval": {"batch_size": 16},
    "lr_sweep": {"relative": {"factors": [1, 10]}},
}


def _resolved() -> dict:
    return resolve_profile(yaml.safe_load((ROOT / "config" / "zoo.yaml").read_text()), ["config/zoo.yaml"])


def method_of(config: dict, variant: str) -> str:
    defined = config.get("define_variants", {})
    if variant in defined:
        return defined[variant]["method"]
    return adapters.variants(include_peft=True, check_peft=False)[variant]["method"]


def own_lr(config: dict, variant: str) -> float:
    method = method_of(config, variant)
    own = (config.get("define_variants", {}).get(variant, {}).get("train") or {}).get("lr")
    return float(own if own is not None else adapters.method_config(method)["train"]["lr"])


def tried(config: dict, variant: str) -> set[float]:
    """The lrs the CPU-test-scale run sweeps for `variant`: the zoo's explicit grid, else own lr × 1, 10."""
    if variant in config["lr_sweep"]["grid"]:
        return {float(lr) for lr in config["lr_sweep"]["grid"][variant]}
    return {float(f"{own_lr(config, variant) * f:.3g}") for f in (1, 10)}


def test_the_zoo_has_every_method_of_the_suite():
    """Every method YAML of config/methods/ (ours, PEFT's, full fine-tuning) and every variant of
    ours, once each: a new method YAML fails here until the zoo runs it."""
    config = _resolved()
    variants = config["variants"]
    assert len(set(variants)) == len(variants)
    shipped = {p.stem for p in (ROOT / "config" / "methods").glob("*.yaml")}
    assert {method_of(config, v) for v in variants} == shipped
    ours = set(adapters.variants())
    assert ours <= set(variants), ours - set(variants)
    assert len(variants) == 54 and len(adapters.peft_methods()) == 45


def test_the_dry_run_plans_every_method_at_its_lrs_and_three_seeds(tmp_path):
    work, env = make_workdir(tmp_path)
    result = snakemake(work, "-n", "--cores", "2", "--configfile", "config/zoo.yaml", env_extra=env)
    config = _resolved()
    trials = re.findall(r"results/zoo/sweep/sst2/([\w-]+)/lr([0-9.e+-]+)/train_summary\.json", result.stdout)
    runs = re.findall(r"output: results/zoo/runs/sst2/([\w-]+)/seed(\d+)/train_summary\.json", result.stdout)
    planned = {}
    for variant, lr in set(trials):
        planned.setdefault(variant, set()).add(float(lr))
    assert set(planned) == set(config["variants"])
    explicit = config["lr_sweep"]["grid"]  # the methods whose first sweep chose an end of the grid
    assert 0 < len(explicit) < len(planned)
    for variant, lrs in planned.items():   # its own lr times each factor, to 3 significant digits
        relative = {float(f"{own_lr(config, variant) * f:.3g}") for f in FACTORS}
        if variant in explicit:            # ... and two more lrs beyond the end the first sweep chose
            assert lrs == {float(lr) for lr in explicit[variant]} and relative < lrs and len(lrs) >= 7, variant
        else:
            assert lrs == relative, variant
    assert sorted(set(runs)) == sorted((v, s) for v in config["variants"] for s in "012")


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    work, env = make_workdir(tmp_path_factory.mktemp("zoo"))
    (work / "scale.yaml").write_text(yaml.safe_dump(SCALE))
    result = snakemake(work, "--cores", "2", "--configfile", "config/zoo.yaml", "scale.yaml", env_extra=env,
                       check=False)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(work.glob("results/zoo/logs/**/*.log"))
                     if "Traceback" in p.read_text())
    assert result.returncode == 0, result.stderr[-3000:] + logs
    return work / "results" / "zoo"


def test_every_method_trains_at_its_swept_lr_and_is_evaluated(zoo_run):
    config = _resolved()
    runs = pd.read_csv(zoo_run / "tables" / "runs.csv")
    trained = runs[runs["variant"] != "base"]
    assert sorted(set(zip(trained["variant"], trained["seed"]))) == sorted((v, s) for v in SCALED for s in (0, 1))
    assert (trained["status"] == "ok").all(), trained[trained["status"] != "ok"][["variant", "status"]]
    assert (trained["trainable_params"] > 0).all()
    from safetensors import safe_open   # full fine-tuning trains every weight of the model it saves

    with safe_open(str(zoo_run / "runs" / "sst2" / "full" / "seed0" / "model.safetensors"), "pt") as weights:
        saved = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    assert trained.loc[trained["variant"] == "full", "trainable_params"].eq(saved).all()
    for variant in SCALED:
        chosen = json.loads((zoo_run / "sweep" / "sst2" / variant / "chosen_lr.json").read_text())
        assert chosen["chosen_lr"] in tried(config, variant), variant
        for seed in (0, 1):
            summary = json.loads((zoo_run / "runs" / "sst2" / variant / f"seed{seed}" / "train_summary.json").read_text())
            provenance = json.loads((zoo_run / "runs" / "sst2" / variant / f"seed{seed}" / "provenance.json").read_text())
            assert provenance["config"]["lr"] == chosen["chosen_lr"], (variant, seed, summary)


def test_the_leaderboard_compares_every_method_with_tuned_lora(zoo_run):
    board = pd.read_csv(zoo_run / "tables" / "leaderboard.csv")
    assert sorted(board["variant"]) == sorted(SCALED)
    assert (board["n"] == 2).all() and set(board["task"]) == {"sst2"}
    others = board[board["variant"] != "lora"]
    assert board.loc[board["variant"] == "lora", "verdict"].item() == "reference"
    assert others["verdict"].isin(["better", "worse", "tie"]).all(), others[["variant", "verdict"]]
    assert others["Δ 95% CI"].str.match(r"^\[[+-]").all() and (others["test"] != "—").all()
    text = (zoo_run / "tables" / "leaderboard.md").read_text()
    assert "LoRA at the lr the profile gave it (the sweep's choice" in text
    sweep = (zoo_run / "tables" / "lr_sweep.md").read_text()
    config = _resolved()
    for variant in SCALED:   # 2 lrs, or the zoo's explicit grid (7) where it has one (ia3, prompt_tuning)
        assert sweep.count(f"| sst2 | {variant} |") == len(tried(config, variant)), variant
    assert (zoo_run / "plots" / "params_sst2.png").stat().st_size > 10_000
