"""The suite's own lm-eval tasks: which YAML template each suite task uses, and per-run configs.

A run's data directory holds its evaluation split as JSONL: `<split>.jsonl`, and/or one file per
subset `<split>_<subset>.jsonl` (e.g. `test_general.jsonl` next to `test.jsonl` for forgetting,
`validation_matched.jsonl` for MNLI). Each file becomes one lm-eval task, `lorabench_<task>` or
`lorabench_<task>_<subset>`. `build_task_configs` loads the template with lm-eval's own YAML
loader (resolving `include:` and `!function`), points `dataset_kwargs.data_files` at the file, and
returns complete config dicts for `simple_evaluate(tasks=[...])`. Records are checked first, so a
bad file fails with a ValueError naming it before any model work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

# lm-eval 0.4.13 keeps its YAML loader (the one TaskManager uses) in this private module.
from lm_eval.tasks._yaml_loader import load_yaml

from evaluation.instruction_checks import validate_check
from tasks.records import jsonl_records

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


@dataclass(frozen=True)
class SuiteTask:
    template: str  # YAML stem under evaluation/tasks
    columns: tuple[str, ...]  # fields every record must have
    model_kind: str = "causal"  # "causal" (HFLM) or "classifier" (lorabench-classifier)
    num_labels: int | None = None  # classification: choices are "0" .. num_labels-1
    counts_tokens: bool = False  # process_results takes the model's tokenizer (token perplexity)
    # Records in the paper loaders' form ({prompt, target}, no choices/check): the papers score
    # these families with benchmarks (lm-eval tasks), and the suite task becomes this one.
    heldout: "SuiteTask | None" = None


def _glue(template: str, num_labels: int = 2) -> SuiteTask:
    return SuiteTask(template, ("id", "text", "label"), "classifier", num_labels)


_MULTIPLE_CHOICE = SuiteTask("lorabench_multiple_choice", ("id", "prompt", "choices", "label"))
_PERPLEXITY = SuiteTask("lorabench_perplexity", ("id", "target"), counts_tokens=True)
_HELDOUT = SuiteTask("lorabench_heldout", ("id", "prompt", "target"), counts_tokens=True)

# Keys are the task names of the `tasks` package (tasks.available()); mnli and qqp are GLUE
# tasks of the SoRA paper that `tasks` does not generate yet.
SUITE_TASKS: dict[str, SuiteTask] = {
    "e2e": SuiteTask("lorabench_e2e", ("id", "prompt", "target", "references")),
    "commonsense": replace(_MULTIPLE_CHOICE, heldout=_HELDOUT),
    "cpt_domain_qa": _MULTIPLE_CHOICE,
    "math": SuiteTask("lorabench_math", ("id", "prompt", "target", "answer")),
    "instruct": SuiteTask("lorabench_instruction", ("id", "prompt", "target", "check"), heldout=_HELDOUT),
    "uuid": SuiteTask("lorabench_uuid", ("id", "key", "value")),
    "cpt_domain": _PERPLEXITY,
    "cpt_general": _PERPLEXITY,
    "cpt_scratch": _PERPLEXITY,
    "sst2": _glue("lorabench_classification"),
    "qnli": _glue("lorabench_classification"),
    "rte": _glue("lorabench_classification"),
    "mnli": _glue("lorabench_classification", num_labels=3),
    "mrpc": _glue("lorabench_classification_f1"),
    "qqp": _glue("lorabench_classification_f1"),
    "cola": _glue("lorabench_classification_mcc"),
    "stsb": SuiteTask("lorabench_regression", ("id", "text", "label"), "classifier"),
}


def get_suite_task(task_name: str) -> SuiteTask:
    if task_name not in SUITE_TASKS:
        raise ValueError(f"unknown suite task {task_name!r}; known: {', '.join(sorted(SUITE_TASKS))}")
    return SUITE_TASKS[task_name]


def find_eval_files(data_dir: str | Path, split: str = "test") -> dict[str, Path]:
    """{subset ("" for the main split): path} for the run's evaluation JSONL files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {data_dir} does not exist")
    files = {"": data_dir / f"{split}.jsonl"} if (data_dir / f"{split}.jsonl").is_file() else {}
    for path in sorted(data_dir.glob(f"{split}_*.jsonl")):
        files[path.stem[len(split) + 1 :]] = path
    if not files:
        raise ValueError(f"data file {data_dir / f'{split}.jsonl'} (or {split}_<subset>.jsonl) not found")
    return files


def _first_record(path: Path) -> dict:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    return {}  # validate_records names the line
    return {}


def spec_for_records(task_name: str, path: Path) -> SuiteTask:
    """The task's template for this file: its own, or its held-out form for paper-source records
    (e.g. commonsense_170k's {prompt, target, answer}: the benchmarks come from lm-eval tasks)."""
    spec = get_suite_task(task_name)
    first = _first_record(path)
    if spec.heldout is not None and first and any(c not in first for c in spec.columns) and all(
            c in first for c in spec.heldout.columns):
        return spec.heldout
    return spec


def _check_record(record: dict, spec: SuiteTask, where: str) -> None:
    missing = [c for c in spec.columns if c not in record]
    if missing:
        raise ValueError(f"{where}: missing required column {missing[0]!r} (task needs {list(spec.columns)})")
    if "choices" in spec.columns and not (
        isinstance(record["label"], int) and 0 <= record["label"] < len(record["choices"])
    ):
        raise ValueError(
            f"{where}: label {record['label']!r} is not an index into its {len(record['choices'])} choices"
        )
    if "references" in spec.columns and not (isinstance(record["references"], list) and record["references"]):
        raise ValueError(f"{where}: 'references' must be a non-empty list of strings")
    if "check" in spec.columns:
        try:
            validate_check(record["check"])
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if spec.num_labels is not None and record["label"] not in range(spec.num_labels):
        raise ValueError(f"{where}: label {record['label']!r} is not one of 0..{spec.num_labels - 1}")
    if (
        spec.model_kind == "classifier"
        and spec.num_labels is None
        and not isinstance(record["label"], (int, float))
    ):
        raise ValueError(f"{where}: regression label {record['label']!r} is not a number")


def validate_records(path: Path, spec: SuiteTask) -> int:
    """Check every record of a JSONL file against the task's contract; returns the record count."""
    count = 0
    for line_no, record in jsonl_records(path, "fix that line, or regenerate the data (python -m tasks ...)"):
        _check_record(record, spec, f"{path}:{line_no} (id={record.get('id')!r})")
        count += 1
    if count == 0:
        raise ValueError(f"{path} is empty: no records to evaluate")
    return count


def build_task_configs(
    task_name: str,
    data_dir: str | Path,
    split: str = "test",
    count_tokens: Callable[[str], list] | None = None,
) -> list[dict[str, Any]]:
    """lm-eval task configs for one run's suite task, one per evaluation file in `data_dir`.

    `count_tokens` (text -> token ids, e.g. `HFLM.tok_encode`) enables token perplexity.
    """
    configs = []
    for subset, path in find_eval_files(data_dir, split).items():
        spec = spec_for_records(task_name, path)
        validate_records(path, spec)
        config = load_yaml(TASKS_DIR / f"{spec.template}.yaml", resolve_func=True)
        config["task"] = f"lorabench_{task_name}" + (f"_{subset}" if subset else "")
        config["dataset_kwargs"] = {"data_files": {"test": str(path.resolve())}}
        config["metadata"] = {
            **config.get("metadata", {}),
            "lorabench_task": task_name,
            "template": spec.template,
        }
        if spec.num_labels is not None:
            config["doc_to_choice"] = [str(label) for label in range(spec.num_labels)]
        if spec.counts_tokens and count_tokens is not None:
            config["process_results"] = partial(config["process_results"], count_tokens=count_tokens)
        configs.append(config)
    return configs
