"""Selection never sees test: in every profile, the split that anything is chosen on is disjoint
from the split the tables report.

What the suite selects, and on what: a paper row's learning rate among the profile's (analysis/
reference.py) and the lr sweep's choice (analysis/sweep.py, workflow/scripts/choose_lr.py) both take
the lowest end-of-run validation loss, the trainer's `eval_loss` on `validation.jsonl`; nothing picks a
checkpoint or an epoch. So a profile selects on test exactly when a task's validation split shares
rows with its test split. This file builds every task's splits as each profile's `task_data` jobs
build them (the tiny generators at the profile's sizes and seed; the paper loaders with the profile's
own split settings, reading the local Hub-schema fixtures of tests/paper_fixtures.py) and counts the
shared rows. Memorization is the one family scored on its training items (recall of the trained
pairs); its tables say that their selection saw them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks
from paper_fixtures import paper_data, write_data
from test_profiles import CASES, Case, _validated

ROOT = Path(__file__).resolve().parent.parent
PROFILES = {"tiny": Case(("config/config.yaml",)), "replication": Case(("config/replication.yaml",)),
            "real": Case(("config/real.yaml",)),
            "real_forgetting": Case(("config/real_forgetting.yaml",)), "zoo": Case(("config/zoo.yaml",)), "test": Case((".test/config.yaml",)),
            **CASES}
# The profile's own choice of what to select on is kept; only where the data comes from (and how
# much of it, so that the few fixture rows suffice) is the fixtures'.
SELECTION_KEYS = ("validation_from",)
FIXTURE_SIZES = ("validation_size", "test_size", "n_pairs", "max_rows")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection_fixtures")
    write_data(root)
    return paper_data(str(root))


def _splits(config: dict, task: str, fixtures: dict) -> dict:
    spec = tasks.get(task)
    data = config["data"]
    if data["task_source"].get(task, data["source"]) == "tiny":
        return spec.generate_tiny(data["seed"], data["sizes"].get(task) or None)
    own = data["paper"].get(task, {})
    if "package_file" in json.dumps(own):   # a file an installed wheel ships (the real profile's news text)
        return spec.load_paper(**own)
    params = dict(fixtures[task])
    if spec.family == "glue":
        params.pop("validation_size")        # the loader's default hold-out, as the paper profiles use it
    params.update({k: own[k] for k in SELECTION_KEYS if k in own})
    return spec.load_paper(**params)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_no_profile_selects_on_its_test_split(name, fixtures):
    config = _validated(PROFILES[name])
    assert config["tasks"], name
    for task in config["tasks"] if isinstance(config["tasks"], list) else tasks.available():
        splits = _splits(config, task, fixtures)
        shared = tasks.shared_rows(splits["validation"], splits["test"])
        if tasks.get(task).scored_on_train:
            # recall of the trained pairs: validation and test are samples of train by design
            assert tasks.shared_rows(splits["validation"], splits["train"]) == len(splits["validation"])
            continue
        assert shared == 0, (f"{name}: {task}'s validation split shares {shared} of its {len(splits['validation'])} "
                             f"rows with the test split it reports; selection would see test")


def test_the_papers_dev_selection_is_there_when_asked_and_detected(fixtures):
    """`validation_from: dev` (what VeRA and SoRA did: select on the dev set they report) is an option,
    and the overlap it makes is what the tables' captions report."""
    params = {k: v for k, v in fixtures["rte"].items() if k != "validation_size"}
    held = tasks.get("rte").load_paper(**params)
    dev = tasks.get("rte").load_paper(**params, validation_from="dev")
    assert tasks.shared_rows(held["validation"], held["test"]) == 0
    assert tasks.shared_rows(dev["validation"], dev["test"]) == len(dev["test"]) > 0
    assert len(held["train"]) + len(held["validation"]) == len(dev["train"])   # the hold-out comes out of train


def test_the_selection_rules_read_the_validation_loss_only():
    """Both selection rules read the trainer's end-of-run `eval_loss`, which it computes on validation.jsonl
    (a guard on the wiring this file's argument rests on: the trainer never opens a test split)."""
    trainer = (ROOT / "training" / "trainer.py").read_text()
    assert 'data_dir / "validation.jsonl"' in trainer and "test.jsonl" not in trainer
    for path in ("analysis/reference.py", "analysis/sweep.py", "workflow/scripts/choose_lr.py"):
        text = (ROOT / path).read_text()
        assert "test.jsonl" not in text, f"{path} reads a test split"
