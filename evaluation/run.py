"""Evaluate one run's in-memory model with lm-eval and write its `eval.json`.

One `simple_evaluate` call covers all of the run's tasks (the suite task's evaluation files and
any built-in lm-eval tasks), so the model is wrapped once and never written to disk. Inputs are
checked before the model is touched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lm_eval.tasks as lm_eval_tasks_module
from lm_eval import simple_evaluate
from lm_eval.api.registry import get_model
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from lm_eval.utils import handle_non_serializable
import torch

import evaluation.classifier_lm  # noqa: F401  (registers "lorabench-classifier" with lm-eval)
from evaluation import paper_protocols, peft_benchmark
from evaluation.lm_eval_data import with_local_data
from evaluation.suite_tasks import TASKS_DIR, build_task_configs, get_suite_task

log = logging.getLogger(__name__)


def is_sequence_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def _cap_generation_length(configs: list[dict], cap: int) -> None:
    for config in configs:
        gen = config.get("generation_kwargs") or {}
        if gen.get("max_gen_toks", 0) > cap:
            log.warning("%s: max_gen_toks %s -> %s", config["task"], gen["max_gen_toks"], cap)
            gen["max_gen_toks"] = cap


def _json_safe(value: Any) -> Any:
    """JSON-serialisable copy: non-serialisable objects as strings, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    converted = handle_non_serializable(value)  # numpy scalars -> Python, sets -> lists, else str
    return converted if isinstance(converted, str) else _json_safe(converted)


def write_json_atomic(data: dict, out_path: str | Path) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))
    os.replace(tmp, out_path)


class CappedHFLM(HFLM):
    """HFLM whose generation requests take at most `gen_cap` new tokens: lm-eval's built-in tasks
    carry their own lengths (MetaMath's 2048), which a model with a short context cannot give.

    Beam search (a task asking num_beams > 1: LLM-Adapters' commonsense protocol) runs as
    transformers' own `generate` runs it when `beam_search` is "transformers" (the default):
    lm-eval's path adds a stop-sequence criterion that tracks only the first batch_size rows of
    the batch x beams matrix and can end the search early; here there is no stopping criterion,
    max_new_tokens new tokens at most, the model's EOS ends a beam, and lm-eval's `until` cuts the
    decoded text afterwards (as LLM-Adapters splits on "### Response:"). "lm_eval" keeps lm-eval's
    path. `beam_attention_mask` False passes an all-ones mask, as their commonsense_evaluate.py
    (no attention_mask; transformers 4.36 then attends to the left padding) does: the same as True
    at batch size 1, the paper's setting; at larger batches the padding is read as text."""

    gen_cap: int | None = None
    beam_search: str = "transformers"
    beam_attention_mask: bool = True

    def generate_until(self, requests, disable_tqdm: bool = False):
        for request in requests:
            context, kwargs = request.arguments
            if self.gen_cap is not None and kwargs.get("max_gen_toks", self.max_gen_toks) > self.gen_cap:
                request.arguments = (context, {**kwargs, "max_gen_toks": self.gen_cap})
        return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        if int(generation_kwargs.get("num_beams") or 1) <= 1 or self.beam_search == "lm_eval":
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        kwargs = dict(generation_kwargs)
        mask = kwargs.pop("attention_mask", None)
        if mask is None or not self.beam_attention_mask:
            mask = torch.ones_like(context)
        if not kwargs.get("do_sample"):
            for name in ("temperature", "top_p", "top_k"):  # unused by beam search without sampling
                kwargs.pop(name, None)
        # A fresh GenerationConfig's beam settings (theirs), whatever the model's own file says.
        settings = {"do_sample": False, "length_penalty": 1.0, "early_stopping": False,
                    "num_return_sequences": 1, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, **kwargs}
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            return self.model.generate(input_ids=context, attention_mask=mask,
                                       max_new_tokens=max_length - context.shape[1],
                                       pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **settings)


LM_EVAL_TASKS_DIR = Path(lm_eval_tasks_module.__file__).parent
_DEFINES = re.compile(r"""^["']?(?:task|group|tag)["']?\s*:\s*["']?([\w\-.]+)""", re.M)
_TAG_LIST = re.compile(r"^tag\s*:\s*\n((?:\s+-\s*[\w\-.]+\s*\n?)+)", re.M)
_MEMBERS = re.compile(r"^\s*-\s*(?:task\s*:\s*)?([\w\-.]+)\s*$", re.M)  # a group's `task:` list items


def _yaml_names(text: str) -> tuple[set[str], set[str]]:
    """(names a task YAML defines by task:/group:/tag:, the names it lists: a group's members)."""
    defined = set(_DEFINES.findall(text))
    for block in _TAG_LIST.findall(text):
        defined |= set(_MEMBERS.findall(block))
    listed = set(_MEMBERS.findall(text)) if re.search(r"^group\s*:", text, re.M) else set()
    return defined, listed


def _defining_folders(names: set[str], root: Path) -> tuple[set[Path], set[str]]:
    """(top-level folders under `root` whose YAMLs define `names` and, for groups, their members
    wherever they live, the names found)."""
    scanned = [(path, *_yaml_names(path.read_text(errors="ignore"))) for path in root.rglob("*.yaml")]
    folders, found, wanted = set(), set(), set(names)
    while wanted - found:
        new = set()
        for path, defined, listed in scanned:
            hit = defined & (wanted - found)
            if hit:
                folders.add(root / path.relative_to(root).parts[0])
                new |= hit
                wanted |= listed
        if not new:
            break
        found |= new
    return folders, found & set(names)


def task_manager_for(lm_eval_tasks) -> TaskManager:
    """The suite's task YAMLs plus the lm-eval task folders that define `lm_eval_tasks`.

    lm-eval's full index (~15k tasks) takes 9-20 s to build in every evaluation job; the folders
    a run names (found by scanning the YAMLs for the names and, for groups, their members) take
    1-2 s. A name no YAML defines falls back to the full index."""
    wanted = set(lm_eval_tasks)
    if not wanted:
        return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    _, ours = _defining_folders(wanted, TASKS_DIR)
    folders, builtin = _defining_folders(wanted - ours, LM_EVAL_TASKS_DIR)
    if wanted - ours - builtin:
        return TaskManager(include_path=str(TASKS_DIR), include_defaults=True)
    # The suite's folder last: its YAMLs override built-ins of the same name (builtin_fixes/pubmedqa).
    return TaskManager(include_path=[*map(str, sorted(folders)), str(TASKS_DIR)], include_defaults=False)


# What eval.json keeps of simple_evaluate's output (not the model/env details: provenance has those).
LM_EVAL_KEYS = (
    "results",
    "groups",
    "group_subtasks",
    "configs",
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
)


def _needs_classifier(model, task_name: str | None, lm_eval_tasks) -> bool:
    """Whether the run goes through the classifier wrapper; ValueError on a mismatched model."""
    classifier = is_sequence_classifier(model)
    if task_name is not None and (get_suite_task(task_name).model_kind == "classifier") != classifier:
        wanted = "a sequence classifier (...ForSequenceClassification)" if not classifier else "a causal LM"
        raise ValueError(f"suite task {task_name!r} needs {wanted}, got {type(model).__name__}")
    if classifier and lm_eval_tasks:
        raise ValueError(
            f"built-in lm-eval tasks {list(lm_eval_tasks)} need a language model, not a classifier"
        )
    return classifier


def evaluate_run(
    model,
    tokenizer,
    task_name: str | None,
    data_dir: str | Path | None,
    out_path: str | Path,
    provenance: dict | None = None,
    limit: int | float | None = None,
    batch_size: int = 16,
    lm_eval_tasks: list[str] | tuple[str, ...] = (),
    split: str = "test",
    bootstrap_iters: int = 0,
    max_gen_toks: int | None = None,
    lm_eval_data: dict | None = None,
    paper_protocol: dict | None = None,
) -> dict:
    """Evaluate `model` on a suite task (`task_name`, data in `data_dir`) and/or built-in lm-eval
    tasks, write `out_path` (eval.json) atomically and return what was written.

    `bootstrap_iters` is lm-eval's: 0 reports no standard errors; > 0 gives means their
    closed-form stderr and bootstraps lm-eval's registered corpus metrics (slow, multiprocess).
    `max_gen_toks` caps generation in every generate_until task (templates allow up to 256
    tokens, the papers' setting; tiny answers need far fewer). Generation never takes more than
    half the model's context, leaving room for the prompt.
    `lm_eval_data` (config `eval.lm_eval_data`) points built-in tasks at local files in the Hub
    schema, {task or group: {split: path}}; see evaluation/lm_eval_data.py.
    `paper_protocol` (config `eval.paper_protocol`) chooses how the paper tasks run where the
    official code's behaviour is kept as an option: llmadapters_prompt, metamath_fractions
    (evaluation.paper_protocols.ProtocolOptions), beam_search and beam_attention_mask (CappedHFLM);
    left out, each is the official behaviour.
    """
    protocol = dict(paper_protocol or {})
    beam = {key: protocol.pop(key) for key in ("beam_search", "beam_attention_mask") if key in protocol}
    if beam.get("beam_search", "transformers") not in ("transformers", "lm_eval"):
        raise ValueError(f"paper_protocol.beam_search: {beam['beam_search']!r} is not transformers or lm_eval")
    unknown = sorted(set(protocol) - set(paper_protocols.OPTION_NAMES))
    if unknown:
        raise ValueError(f"unknown paper_protocol options {unknown}")
    paper_protocols.ProtocolOptions(**protocol)  # bad values fail before the model is touched
    if task_name is None and not lm_eval_tasks:
        raise ValueError("nothing to evaluate: give a suite task_name and/or lm_eval_tasks")
    if task_name is not None and data_dir is None:
        raise ValueError(f"suite task {task_name!r} needs a data_dir")
    classifier = _needs_classifier(model, task_name, lm_eval_tasks)

    def count_tokens(text: str) -> list[int]:
        # Token perplexity counts exactly the tokens HFLM scores; `lm` exists by the time lm-eval
        # calls this (the configs are built first so that bad data fails before model work).
        return lm.tok_encode(text)

    configs = []
    if task_name is not None:
        configs = build_task_configs(task_name, data_dir, split, None if classifier else count_tokens)
    # lm_eval_data's names are indexed too, so that a misspelt one still fails (with_local_data).
    task_manager = task_manager_for([*lm_eval_tasks, *(lm_eval_data or {})] if lm_eval_tasks else [])
    unknown = [name for name in lm_eval_tasks if name not in task_manager.all_tasks]
    if unknown:
        raise ValueError(f"unknown lm-eval tasks {unknown}")
    if lm_eval_tasks:
        task_manager = with_local_data(task_manager, lm_eval_data)

    if classifier:
        lm = get_model("lorabench-classifier")(model=model, tokenizer=tokenizer, batch_size=batch_size)
    else:
        lm = CappedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        lm.gen_cap = min(lm.max_length // 2, max_gen_toks or lm.max_length)
        lm.beam_search = beam.get("beam_search", "transformers")
        lm.beam_attention_mask = bool(beam.get("beam_attention_mask", True))
        _cap_generation_length(configs, lm.gen_cap)

    started = time.perf_counter()
    # peft_benchmark's general-text loss cuts and counts tokens with the evaluated model's tokenizer
    with paper_protocols.protocol_options(**protocol) as options, peft_benchmark.evaluation_tokenizer(tokenizer):
        output = simple_evaluate(
            model=lm,
            tasks=configs + list(lm_eval_tasks),
            task_manager=task_manager,
            limit=limit,
            batch_size=batch_size,
            log_samples=False,
            bootstrap_iters=bootstrap_iters,
        )
    eval_json = {key: output[key] for key in LM_EVAL_KEYS if key in output}
    eval_json["lorabench"] = {
        "task": task_name,
        "data_files": {c["task"]: c["dataset_kwargs"]["data_files"]["test"] for c in configs},
        "lm_eval_tasks": list(lm_eval_tasks),
        "lm_eval_data": dict(lm_eval_data or {}) if lm_eval_tasks else {},
        "limit": limit,
        "batch_size": batch_size,
        "max_gen_toks": max_gen_toks,
        "paper_protocol": {**asdict(options), "beam_search": beam.get("beam_search", "transformers"),
                           "beam_attention_mask": bool(beam.get("beam_attention_mask", True))},
        "eval_seconds": round(time.perf_counter() - started, 3),
        "lm_eval_version": output.get("lm_eval_version"),
    }
    eval_json["provenance"] = provenance or {}
    eval_json = _json_safe(eval_json)
    write_json_atomic(eval_json, out_path)
    return eval_json
