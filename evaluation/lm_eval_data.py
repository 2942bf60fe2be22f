"""lm-eval built-in tasks read from local files in the Hub schema (config key `eval.lm_eval_data`).

Air-gapped clusters and CI have no Hub. `eval.lm_eval_data` maps an lm-eval task, group or tag
name to `{split: path}`, each path a .jsonl/.json/.parquet file with the rows of that split of the
task's Hub dataset (same columns, same types), e.g.

    eval:
      lm_eval_data:
        gsm8k: {test: data/gsm8k/test.jsonl, train: data/gsm8k/train.jsonl}
        mmlu: {test: data/mmlu/test.parquet, dev: data/mmlu/dev.parquet}   # cais/mmlu "all"

Semantics:
- A task's files replace its Hub dataset: `dataset_path` becomes `json`/`parquet`, `dataset_name`
  None, `dataset_kwargs` `{data_files: {split: path}}`; prompts, process_docs and metrics are
  lm-eval's own. Relative paths are read from the working directory.
- Every split the task reads must be given: its evaluation split (`test_split`, else
  `validation_split`) and the split its few-shot examples come from (`fewshot_split`, else
  `training_split`, else `validation_split`; none when the YAML lists its few-shot samples), even
  for a 0-shot run: lm-eval loads them when it builds the task.
- A group or tag name gives its files to every subtask under it (recursively); an entry for a
  subtask itself wins over its group's. When a dataset is split into subsets by a column
  (`SUBSET_COLUMNS`: cais/mmlu `subject`, EleutherAI/hendrycks_math `type`) and the file has that
  column, each subtask keeps only its own rows (column value == the subtask's Hub `dataset_name`,
  compared as lowercase words joined by `_`, "&" read as "and": "Counting & Probability" ->
  counting_and_probability). So one file of cais/mmlu's "all" config serves `mmlu` and each
  `mmlu_<subject>`; one hendrycks_math file serves `minerva_math` and `hendrycks_math`. A group
  whose subtasks read different Hub datasets or subsets needs that column (or an entry per subtask).
- Tasks with no entry load from the Hub as before. Unknown names, missing files or splits, and
  subtasks left without rows fail before any model work, with a ValueError naming the key.

Groups keep their structure: the subtasks are swapped in a copy of lm-eval's task index, so `mmlu`
still aggregates `mmlu_stem`... into its own `acc`. (Config dicts passed to simple_evaluate would
not do: in lm-eval 0.4.13 a group given as a dict leaks its own keys into its tasks' configs.)
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import datasets
from lm_eval.tasks import TaskManager

# lm-eval 0.4.13 keeps the index entries and its YAML loader in these private modules.
from lm_eval.tasks._index import Entry, Kind
from lm_eval.tasks._yaml_loader import load_yaml

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
# Hub datasets whose configs are subsets of one table, and the column naming a row's subset.
SUBSET_COLUMNS = {"cais/mmlu": "subject", "EleutherAI/hendrycks_math": "type"}
HINT = "eval.lm_eval_data: {<lm-eval task or group>: {<split>: <.jsonl/.json/.parquet in the Hub schema>}}"


def subset_key(value: str) -> str:
    """'Counting & Probability' -> 'counting_and_probability' (a Hub config name)."""
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower().replace("&", " and ")).strip("_")


def splits_read(config: dict) -> dict[str, str]:
    """{split: why} for the splits lm-eval reads when it builds a task from `config`."""
    fewshot = config.get("fewshot_config") or {}
    evaluation = config.get("test_split") or config.get("validation_split")
    if fewshot.get("split") or config.get("fewshot_split"):
        shots = fewshot.get("split") or config["fewshot_split"]
    elif fewshot.get("samples") is not None:
        shots = None
    else:
        shots = config.get("training_split") or config.get("validation_split") or evaluation
    reads = {shots: "few-shot examples"} if shots else {}
    reads[evaluation] = "evaluation"
    return reads


def leaf_tasks(index: Mapping[str, Entry], name: str) -> list[str]:
    """The tasks a task, group or tag name stands for (groups recursively)."""
    entry = index[name]
    if entry.kind is Kind.TAG:
        return sorted(entry.tags)
    if entry.kind is not Kind.GROUP:
        return [name]
    members = load_yaml(entry.yaml_path, resolve_func=False)["task"]
    leaves = []
    for member in [members] if isinstance(members, str) else members:
        member = member if isinstance(member, str) else member.get("task") or member.get("group")
        if member not in index:
            raise ValueError(f"{HINT}: group {name!r} defines {member!r} inline; give its files "
                             f"under a registered task instead")
        leaves += leaf_tasks(index, member)
    return leaves


class _Source:
    """One `lm_eval_data` entry: its key, datasets builder and {split: absolute path}; the rows are
    read once, and only when a subset column has to be looked at."""

    def __init__(self, key: str, files):
        if not isinstance(files, Mapping) or not files:
            raise ValueError(f"{HINT}: {key!r} needs a {{split: path}} mapping, got {files!r}")
        self.key, self.files, builders = key, {}, set()
        for split, path in files.items():
            path, where = Path(str(path)).expanduser(), f"eval.lm_eval_data.{key}.{split}"
            if path.suffix not in FORMATS:
                raise ValueError(f"{where}: {path} is not a .jsonl, .json or .parquet file")
            if not path.is_file():
                raise ValueError(f"{where}: file {path} not found (relative paths are read from "
                                 f"{Path.cwd()}); fix the path, or drop the {key!r} entry to load "
                                 f"it from the Hub")
            self.files[str(split)] = str(path.resolve())
            builders.add(FORMATS[path.suffix])
        if len(builders) > 1:
            raise ValueError(f"eval.lm_eval_data.{key}: mix of json and parquet files; use one format")
        self.builder = builders.pop()
        self._counts: dict[str, dict | None] = {}

    def subset_counts(self, column: str) -> dict[str, Counter] | None:
        """{split: Counter(subset key -> rows)}, None when the files have no `column`."""
        if column not in self._counts:
            tables = datasets.load_dataset(self.builder, data_files=self.files)
            self._counts[column] = None if column not in next(iter(tables.values())).column_names else {
                split: Counter(map(subset_key, rows[column])) for split, rows in tables.items()}
        return self._counts[column]


def _keep_subset(column: str, value: str, process_docs, dataset):
    """A task's process_docs: only the rows of one subset, then the task's own process_docs."""
    dataset = dataset.filter(lambda row: subset_key(row[column]) == value)
    return process_docs(dataset) if process_docs else dataset


def local_task_config(task: str, entry: Entry, source: _Source) -> dict:
    """The task's YAML config (lm-eval's loader: includes and !function resolved) reading the
    source's files, only its own subset's rows where the files have the subset column."""
    key = source.key
    if entry.kind is not Kind.TASK or entry.yaml_path is None:
        raise ValueError(f"eval.lm_eval_data.{key}: {task!r} is not a YAML task; only tasks with "
                         f"dataset_path/dataset_name can be pointed at local files")
    config = load_yaml(entry.yaml_path)
    reads = splits_read(config)
    missing = [f"{split!r} ({why})" for split, why in reads.items() if split not in source.files]
    if missing:
        raise ValueError(f"eval.lm_eval_data.{key}: {task} reads split(s) {', '.join(missing)}; "
                         f"add them (given: {sorted(source.files)})")
    column, subset = SUBSET_COLUMNS.get(config.get("dataset_path")), config.get("dataset_name")
    config.update(dataset_path=source.builder, dataset_name=None,
                  dataset_kwargs={"data_files": source.files})
    counts = source.subset_counts(column) if column and subset else None
    if counts is not None:
        empty = [split for split in reads if counts[split][subset_key(subset)] == 0]
        if empty:
            raise ValueError(f"eval.lm_eval_data.{key}: no rows with {column} == {subset!r} for "
                             f"{task} in split(s) {empty}; add them, or give {task} its own entry")
        config["process_docs"] = partial(_keep_subset, column, subset_key(subset), config.get("process_docs"))
        fewshot = config.get("fewshot_config") or {}
        if fewshot.get("process_docs"):  # few-shot docs go through their own process_docs
            fewshot["process_docs"] = partial(_keep_subset, column, subset_key(subset), fewshot["process_docs"])
    return config


def _check_group_is_splittable(index: Mapping[str, Entry], source: _Source, tasks: list[str]) -> None:
    """One set of files serves several subtasks only if they read the same Hub data, or if a subset
    column of the files tells their rows apart."""
    hubs = {(cfg.get("dataset_path"), cfg.get("dataset_name"))
            for cfg in (load_yaml(index[task].yaml_path, resolve_func=False) for task in tasks)}
    if len(hubs) < 2:
        return
    paths = {path for path, _ in hubs}
    if len(paths) > 1 or next(iter(paths)) not in SUBSET_COLUMNS:
        raise ValueError(f"eval.lm_eval_data.{source.key}: its subtasks read different Hub datasets "
                         f"{sorted(map(str, hubs))}; give each subtask its own entry")
    column = SUBSET_COLUMNS[next(iter(paths))]
    if source.subset_counts(column) is None:
        raise ValueError(f"eval.lm_eval_data.{source.key}: the files have no {column!r} column to "
                         f"split them among {len(tasks)} subtasks; add it (the Hub's rows have it) "
                         f"or give each subtask its own entry")


def with_local_data(task_manager: TaskManager, lm_eval_data: Mapping | None) -> TaskManager:
    """A TaskManager like `task_manager` whose tasks named in `lm_eval_data` read local files.

    `task_manager` must index lm-eval's built-in tasks (include_defaults=True); it is left as is.
    """
    if not lm_eval_data:
        return task_manager
    index = task_manager.task_index
    unknown = [key for key in lm_eval_data if key not in index]
    if unknown:
        raise ValueError(f"eval.lm_eval_data: unknown lm-eval task(s) {unknown}; use a task, group "
                         f"or tag name that lm-eval knows (`lm-eval ls tasks`), e.g. gsm8k, mmlu, "
                         f"mmlu_anatomy")
    # Groups and tags first, so that an entry of a subtask itself overrides its group's.
    keys = sorted(lm_eval_data, key=lambda k: index[k].kind not in (Kind.GROUP, Kind.TAG))
    sources = {key: _Source(key, lm_eval_data[key]) for key in keys}
    served: dict[str, _Source] = {}
    for key in keys:
        served.update(dict.fromkeys(leaf_tasks(index, key), sources[key]))
    local = copy.copy(task_manager)
    local._index = dict(index)  # lm-eval 0.4.13: the TaskManager builds every task from this index
    for task, source in served.items():
        config = local_task_config(task, index[task], source)
        local._index[task] = Entry(name=task, kind=Kind.TASK, yaml_path=None, cfg=config)
    for key, source in sources.items():
        _check_group_is_splittable(index, source, [t for t, s in served.items() if s is source])
    return local
