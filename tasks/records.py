"""The record format on disk: JSONL splits, validated without touching any model.

`write_splits` writes train/validation/test.jsonl atomically; `read_split` reads one back and checks
every record against its task's columns, so a broken data directory fails before a model is loaded.
The format itself is documented in tasks/README.md.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from tasks.sampling import SPLITS

TEXT_COLUMNS = ("id", "prompt", "text", "text_pair", "answer", "key", "value")


def jsonl_records(path: str | os.PathLike, fix: str):
    """(line number, record) for each non-blank line of a JSONL file; a line that is not a JSON
    object raises ValueError naming the file, the line and `fix` (what to do about it)."""
    with open(path, encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {line_no} is not valid JSON ({err.msg} at column {err.colno}); "
                                 f"{fix}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {line_no} is not a JSON object; {fix}")
            yield line_no, record


def _fix(task_name: str) -> str:
    return f"regenerate it with `python -m tasks --task {task_name} --source tiny|paper --out DIR`"


def _column_problem(record: dict, column: str, spec) -> str | None:
    """Why `record[column]` breaks the contract, or None when it is fine."""
    value = record[column]
    if column in TEXT_COLUMNS and not isinstance(value, str):
        return f"column {column!r} must be a string, got {type(value).__name__}"
    if column == "target" and not (isinstance(value, str) and value):
        return "column 'target' must be a non-empty string (it carries the loss)"
    if column == "choices" and not (isinstance(value, list) and len(value) >= 2
                                    and all(isinstance(c, str) for c in value)):
        return "column 'choices' must be a list of at least two strings"
    if column == "references" and not (isinstance(value, list) and value
                                       and all(isinstance(r, str) for r in value)):
        return "column 'references' must be a non-empty list of strings"
    if column == "check":
        return _check_problem(value)
    if column in ("key", "value") and spec.family == "memorization":
        from tasks.memorization import UUID4_PATTERN  # memorization imports this module
        if not re.fullmatch(UUID4_PATTERN, value):
            return f"column {column!r} must be a uuid4 string (MoRA's data format), got {value!r}"
    if column == "label":
        return _label_problem(record, value, spec)
    return None


def _check_problem(check) -> str | None:
    """IFEval's fields: instruction ids and one kwargs dict per id (evaluation/instruction_checks.py
    checks the ids and arguments against lm-eval's registry)."""
    ids, kwargs = (check.get("instruction_id_list"), check.get("kwargs")) if isinstance(check, dict) else (None, None)
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)
            and isinstance(kwargs, list) and len(kwargs) == len(ids) and all(isinstance(k, dict) for k in kwargs)):
        return ("column 'check' must be a dict with 'instruction_id_list' (a non-empty list of IFEval "
                "instruction ids) and 'kwargs' (one dict per id)")
    return None


def _label_problem(record: dict, label, spec) -> str | None:
    if spec.kind == "regression":
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label):
            return f"regression label must be a finite number, got {label!r}"
        return None
    if isinstance(label, bool) or not isinstance(label, int):
        return f"label must be an integer index, got {label!r}"
    n = spec.num_labels if spec.kind == "classification" else len(record.get("choices", []))
    if not 0 <= label < n:
        return f"label {label} is outside 0..{n - 1}"
    if "choices" in record and record.get("target") != record["choices"][label]:
        return "multiple-choice 'target' must equal choices[label]"
    return None


def content_key(record: dict) -> str:
    """A record's content without its id: two splits share a row when their records have equal keys."""
    return json.dumps({k: v for k, v in record.items() if k != "id"}, sort_keys=True, ensure_ascii=False)


def shared_rows(records: list[dict], others: list[dict]) -> int:
    """How many of `records` have the content of a record in `others` (selection on validation sees
    test exactly when validation shares rows with test)."""
    keys = {content_key(r) for r in others}
    return sum(content_key(r) in keys for r in records)


def validate_records(records: list, spec, where: str) -> None:
    """Raise ValueError naming `where`, the record and the column for the first contract breach."""
    if not isinstance(records, list) or not records:
        raise ValueError(f"{where}: split is empty; task {spec.name!r} needs at least one record — {_fix(spec.name)}")
    ids = set()
    for n, record in enumerate(records, start=1):
        rid = record.get("id") if isinstance(record, dict) else None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: record {n} is not a JSON object — {_fix(spec.name)}")
        for column in spec.required_columns:
            if column not in record:
                raise ValueError(
                    f"{where}: record {n} (id={rid!r}) lacks column {column!r}; task {spec.name!r} needs "
                    f"columns {list(spec.required_columns)} — {_fix(spec.name)}")
        for column in record:
            problem = _column_problem(record, column, spec)
            if problem:
                raise ValueError(f"{where}: record {n} (id={rid!r}): {problem} — {_fix(spec.name)}")
        if rid in ids:
            raise ValueError(f"{where}: record {n} repeats id {rid!r}; ids must be unique — {_fix(spec.name)}")
        ids.add(rid)


def validate_splits(splits: dict, spec, source: str) -> None:
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"{source}: missing split(s) {missing}; every task has {list(SPLITS)}")
    for split in SPLITS:
        validate_records(splits[split], spec, f"{source} split {split!r}")


def _spec(task):
    if isinstance(task, str):
        from tasks.registry import get
        return get(task)
    return task


def write_splits(splits: dict, directory: str | os.PathLike, task=None) -> dict[str, Path]:
    """Write train/validation/test.jsonl into `directory`, each via a temp name and a rename, so a
    killed job never leaves a half file. With `task` (name or TaskSpec) the records are validated first."""
    if task is not None:
        validate_splits(splits, _spec(task), source=f"splits for {directory}")
    else:
        for split in SPLITS:
            if not splits.get(split):
                raise ValueError(f"splits for {directory}: split {split!r} is missing or empty")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        path = directory / f"{split}.jsonl"
        tmp = directory / f".{split}.jsonl.tmp-{os.getpid()}"
        with tmp.open("w", encoding="utf-8") as f:
            for record in splits[split]:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        paths[split] = path
    return paths


def read_split(path: str | os.PathLike, task) -> list[dict]:
    """Read one JSONL split and validate it against `task` (a name or TaskSpec)."""
    spec = _spec(task)
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file; task {spec.name!r} needs it — {_fix(spec.name)}")
    records = [record for _, record in jsonl_records(path, _fix(spec.name))]
    validate_records(records, spec, str(path))
    return records


def read_splits(directory: str | os.PathLike, task) -> dict[str, list[dict]]:
    """All three splits of a data directory written by `write_splits`."""
    return {split: read_split(Path(directory) / f"{split}.jsonl", task) for split in SPLITS}
