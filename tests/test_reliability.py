"""Issue 13: fail before the first job, never run planted code, never turn an outage into a result.

One test (or two) per item: the bare-base GLUE row is the same on every evaluation; a bad training
section fails the DAG build, naming the file and the key; bad data and bad configs make
`python -m training` exit 2 naming the file, the line or key and the fix, leaving no summary; a
pickle planted in a run's checkpoint is never executed; run files follow the umask; two runs into
one --out do not race; a run stuck at the uniform-output loss is flagged.
"""
from __future__ import annotations

import json
import math
import os
import runpy
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import tasks
from training import train
from training.__main__ import main as train_main
from training.files import run_lock

from test_training_helpers import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
EVALUATE_RUN = ROOT / "workflow" / "scripts" / "evaluate_run.py"


def run_config(base, task, **overrides) -> dict:
    return {"model": str(base), "data_dir": str(task), "seq_len": 24, "batch_size": 8, "max_steps": 3,
            "lr": 2e-2, "threads": 1, "method": "lora", "method_options": {"r": 4}, "eval_at_end": False,
            **overrides}


# --- 1. the bare-base row ------------------------------------------------------------------------
class Names(dict):
    """Snakemake's named lists: items by attribute, and .get."""
    __getattr__ = dict.__getitem__


def evaluate_base(base: Path, data: Path, out: Path, seed: int) -> dict:
    """The evaluate_base rule's script, as Snakemake runs it (minus the subprocess)."""
    job = SimpleNamespace(
        log=[str(out.parent / "evaluate.log")], threads=1, wildcards=Names(), output=[str(out)],
        params=SimpleNamespace(tasks=["sst2"], data_dirs=[str(data)], base_model=str(base), run_dir=None, seed=seed,
                               placement={"device": "cpu"},
                               eval_cfg={"limit": 24, "batch_size": 8, "max_gen_toks": None, "lm_eval_tasks": {},
                                         "lm_eval_data": {}}))
    runpy.run_path(str(EVALUATE_RUN), init_globals={"snakemake": job})
    return json.loads(out.read_text())


def test_bare_base_glue_row_is_the_same_on_every_evaluation(base, tmp_path):
    """The base model has no classifier head; the one it gets is drawn from the profile's seed, so the
    base row does not change from one evaluation to the next (before: 50 / 62.5 / 37.5 / 43.75)."""
    data = tmp_path / "sst2"
    tasks.write_splits(tasks.get("sst2").generate_tiny(3, {"train": 8, "validation": 8, "test": 24}), data)
    first = evaluate_base(base, data, tmp_path / "a" / "eval.json", seed=0)
    (tmp_path / "b" / ".eval_tmp" / "left-by-a-killed-job").mkdir(parents=True)
    second = evaluate_base(base, data, tmp_path / "b" / "eval.json", seed=0)
    assert first["results"] == second["results"] and first["results"]["lorabench_sst2"]["acc,none"] is not None
    labels = [json.loads(line)["label"] for line in (data / "test.jsonl").read_text().splitlines()]
    majority = max(labels.count(0), labels.count(1)) / len(labels)
    assert first["lorabench"]["majority_class_accuracy"] == pytest.approx(majority)
    # The scratch folder is fixed and removed: no tmpXXXX/ of a killed evaluation survives a rerun.
    assert [p.name for p in (tmp_path / "b").iterdir() if p.is_dir()] == []


# --- 2. the DAG refuses a bad training section before any job ----------------------------------
def test_dag_refuses_bad_training_sections(tmp_path):
    from test_profiles import _run_dry

    work = tmp_path / "work"
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / ".test", work / ".test")
    overlays = {"lr": "train: {lr: fast}\n",
                "key": "train: {max_step: 3}\n",
                "rank": "define_variants: {lora_big: {method: lora, options: {r: 100000}}}\nvariants: [lora, lora_big]\n",
                "peft": "variants: [lora, c3a]\n"}
    jobs = {}
    for name, text in overlays.items():
        (work / ".test" / f"{name}.yaml").write_text(text)
        jobs[name] = ["-s", str(ROOT / "Snakefile"), "-d", str(work), "--dry-run", "--nolock", "--cores", "1",
                      "--configfile", str(work / ".test" / "config.yaml"), str(work / ".test" / f"{name}.yaml")]
    results = _run_dry(jobs, tmp_path)
    for name, expected in {
        "lr": ["config: lr must be a number, got 'fast'", ".test/lr.yaml: train)"],
        "key": ["unknown key 'max_step'", "(did you mean 'max_steps'?)", ".test/key.yaml: train"],
        # the tiny base model is built by a job: its shapes come from the pretrain config
        "rank": ["r=100000 exceeds the layer's rank", "use r ≤ 32", "define_variants.lora_big"],
        # a PEFT method: PEFT's own check, run on a meta model
        "peft": ["(c3a) cannot adapt llama", "the block size is 256", "choose sizes that divide",
                 "config/methods/c3a.yaml"],
    }.items():
        assert results[name].returncode != 0, results[name].output[-2000:]
        assert all(text in results[name].output for text in expected), (name, results[name].output[-2000:])
        assert "Job stats" not in results[name].output  # refused while planning: no job ran


# --- 3. bad data and bad configs: exit 2, the file, the line or key, the fix --------------------
BAD_INPUTS = {  # name: (config overrides, data edit, what the message must say)
    "json line 3": ({}, "broken", ["train.jsonl: line 3 is not valid JSON", "regenerate the split"]),
    "no target": ({}, "no target", ["train.jsonl: line 5 (id='ex4') has no 'target'", "regenerate the split"]),
    "r 0": ({"method_options": {"r": 0}}, None, ["run.yaml: config: method_options (lora): r must be a positive integer",
                                               "lora.yaml's default"]),
    "mora_type": ({"method": "mora", "method_options": {"mora_type": 5}}, None, ["mora_type must be one of"]),
    "rank": ({"method_options": {"r": 100000}}, None, ["r=100000 exceeds", "use r ≤ 32"]),
    "peft shape": ({"method": "vblora", "method_options": {}}, None, ["(vblora) cannot adapt llama",
                                                                     "must be divisible by `vector_length` 256"]),
    "lr fast": ({"lr": "fast"}, None, ["run.yaml: config: lr must be a number, got 'fast'"]),
    "yaml": ({}, "yaml", ["run.yaml: not valid YAML at line", "fix the syntax"]),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_2_naming_file_and_line(name, base, lm_task, tmp_path, capsys):
    overrides, edit, expected = BAD_INPUTS[name]
    data = tmp_path / "data"
    shutil.copytree(lm_task, data)
    lines = (data / "train.jsonl").read_text().splitlines()
    if edit == "broken":
        lines[2] = lines[2][:-1]  # the closing brace
    if edit == "no target":
        record = json.loads(lines[4])
        del record["target"]
        lines[4] = json.dumps(record)
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    config = tmp_path / "run.yaml"
    import yaml
    config.write_text(yaml.safe_dump(run_config(base, data, **overrides)) + ("method_options: {r: 4\n" if edit == "yaml" else ""))
    out = tmp_path / "out"
    assert train_main(["--config", str(config), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "Traceback" not in message
    assert all(text in message for text in expected), message
    assert not (out / "train_summary.json").exists()  # bad input leaves no result behind


# --- 4. a planted pickle is never executed ------------------------------------------------------
class Payload:
    """What an attacker would plant: unpickling it runs code (here: creates a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_planted_pickle_in_a_checkpoint_is_never_executed(base, lm_task, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    planted = out / "checkpoints" / "step_00000002"
    planted.mkdir(parents=True)
    torch.save({"config_hash": "x", "payload": Payload(marker)}, planted / "trainer_state.pt")
    torch.load(planted / "trainer_state.pt", weights_only=False)  # the payload is live: unpickling runs it
    assert marker.exists()
    marker.unlink()

    with pytest.warns(UserWarning, match="it is not loaded; starting over"):
        summary = train(run_config(base, lm_task, checkpoint_every=1, keep_checkpoint=True), out)
    assert not marker.exists() and summary["status"] == "ok" and summary["resumed_from_step"] is None
    # What a checkpoint is now: JSON (read first, hash checked) + safetensors; no pickle anywhere.
    written = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert written == ["step_00000002"]  # the planted directory was replaced by the run's own
    files = sorted(p.name for p in (out / "checkpoints" / "step_00000002").iterdir())
    assert files == ["adapter", "trainer_state.json", "trainer_state.safetensors"]
    # A planted pickle beside a genuine checkpoint is not read either, and resuming still works.
    torch.save(Payload(marker), out / "checkpoints" / "step_00000002" / "trainer_state.pt")
    resumed = train(run_config(base, lm_task, checkpoint_every=1, keep_checkpoint=True), out)
    assert not marker.exists()
    assert resumed["status"] == "ok" and resumed["resumed_from_step"] == 2
    assert resumed["final_loss"] == summary["final_loss"]  # the same run, resumed
    state = load_file(out / "checkpoints" / "step_00000002" / "trainer_state.safetensors")
    assert state and all(isinstance(t, torch.Tensor) for t in state.values())


def test_checkpoint_state_round_trips_exactly(tmp_path):
    """RNG states (python tuples, numpy's uint32 key), optimizer state keyed by int, inf and nan."""
    import random

    import numpy as np

    from training import checkpoint

    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    p, model = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW([p], lr=1e-3)
    p.grad = torch.randn(4, 3)
    optimizer.step()
    state = {"config_hash": "abc", "rng": [checkpoint.rng_state()], "optimizer": optimizer.state_dict(),
             "counters": {"step": 7, "last_loss": float("inf"), "last_eval": {"eval_loss": float("nan")}},
             "data": {"epoch": 1, "index": 2}}
    path = checkpoint.save(tmp_path, 7, model, True, state)
    assert checkpoint.latest(tmp_path, "abc") == path
    back = checkpoint.read_state(path)
    assert back["optimizer"]["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert math.isinf(back["counters"]["last_loss"]) and math.isnan(back["counters"]["last_eval"]["eval_loss"])
    expected = [random.random(), np.random.rand(), torch.rand(1).item()]
    checkpoint.set_rng_state(back["rng"][0])
    assert [random.random(), np.random.rand(), torch.rand(1).item()] == expected


# --- 6. run files, locks, collapse ----------------------------------------------------------------
def test_run_files_follow_the_umask(base, lm_task, tmp_path):
    old = os.umask(0o022)
    try:
        train(run_config(base, lm_task, checkpoint_every=1, keep_checkpoint=True), tmp_path / "run")
    finally:
        os.umask(old)
    run = tmp_path / "run"
    for path in [run / "train_summary.json", run / "provenance.json", run / "adapter" / "adapter_config.json",
                 run / "checkpoints" / "step_00000002" / "trainer_state.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    for path in [run / "adapter", run / "checkpoints" / "step_00000002"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
    assert not (run / ".lock").exists()


def test_second_run_into_the_same_out_is_refused(base, lm_task, tmp_path, capsys):
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(base, lm_task)))
    out = tmp_path / "out"
    with run_lock(out):  # a run that is still going
        assert train_main(["--config", str(config), "--out", str(out)]) == 2
        assert f"{out} is in use by a run that is still going (pid {os.getpid()}" in capsys.readouterr().err
    assert not (out / "train_summary.json").exists()
    assert train_main(["--config", str(config), "--out", str(out)]) == 0  # the lock went with its holder


def test_run_stuck_at_uniform_output_is_flagged(base, lm_task, tmp_path):
    """A zero output head gives every token the same logit: the loss is ln V whatever LoRA does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dead = tmp_path / "dead_base"
    model = AutoModelForCausalLM.from_pretrained(base)
    torch.nn.init.zeros_(model.lm_head.weight)
    model.save_pretrained(dead)
    AutoTokenizer.from_pretrained(base).save_pretrained(dead)
    stuck = train(run_config(dead, lm_task, eval_at_end=True), tmp_path / "stuck")
    vocab = model.config.vocab_size
    assert stuck["status"] == "ok" and stuck["collapsed"] is True
    assert stuck["final_loss"] == pytest.approx(math.log(vocab), abs=1e-4) and stuck["uniform_loss"] == math.log(vocab)
    assert f"ln({vocab})" in stuck["collapse"]
    healthy = train(run_config(base, lm_task, eval_at_end=True), tmp_path / "healthy")
    assert healthy["collapsed"] is False and healthy["final_loss"] < math.log(vocab) - 1
    assert json.loads((tmp_path / "stuck" / "train_summary.json").read_text())["collapsed"] is True


def test_bad_record_in_classification_data(base, tmp_path):
    data = tmp_path / "cls"
    write_jsonl(data / "train.jsonl", [{"id": "a", "text": "good", "label": 1}, {"id": "b", "text": "bad", "label": "neg"}])
    from training.config import InputError

    with pytest.raises(InputError, match=r"train.jsonl: line 2 \(id='b'\): 'label' must be int or float, got 'neg'"):
        train(run_config(base, data, task_kind="classification", num_labels=2), tmp_path / "out")
    assert not (tmp_path / "out" / "train_summary.json").exists()
