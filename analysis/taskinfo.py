"""What the analysis needs to know about a task, from the task registry (with fallbacks)."""
from __future__ import annotations

from functools import lru_cache

from . import settings


@lru_cache(maxsize=None)
def _spec(task: str):
    try:
        import tasks
        return tasks.get(task)
    except Exception:  # unknown task, or the registry cannot be imported: use the fallbacks
        return None


@lru_cache(maxsize=None)
def known_tasks() -> tuple[str, ...]:
    try:
        import tasks
        return tuple(tasks.available())
    except Exception:
        return tuple(settings.FALLBACK_FAMILY)


def family_of(task: str) -> str:
    spec = _spec(task)
    return spec.family if spec is not None else settings.FALLBACK_FAMILY.get(task, task)


def primary_metric(task: str) -> str:
    """The task's headline metric (its spec's first metric), as lm-eval names it."""
    spec = _spec(task)
    name = spec.metrics[0] if spec is not None and spec.metrics else settings.FALLBACK_PRIMARY.get(task, "acc")
    return settings.METRIC_ALIASES.get(name, name)


def probes_of(task: str) -> list[str]:
    """Tasks evaluated on this task's runs (they share its training data)."""
    return [t for t in known_tasks() if _spec(t) is not None and _spec(t).shares_train_with == task]


def owner_of_builtin(eval_task: str, train_task: str) -> str:
    """Which of a run's tasks (its own or a probe) a built-in lm-eval task was run for.

    A run's eval.json merges its task's and its probes' evaluations; the built-ins (e.g. wikitext
    for the general-text probe) are attributed by the task specs' `lm_eval_tasks` lists, probes
    first: a benchmark both list (pubmedqa: cpt_domain and its QA probe) belongs to the probe.
    """
    for task in [*probes_of(train_task), train_task]:
        spec = _spec(task)
        wanted = spec.lm_eval_tasks if spec is not None else []
        if any(eval_task == w or eval_task.startswith(w + "_") for w in wanted):
            return task
    return train_task


def scored_on_train(task: str) -> bool:
    """The task is scored on its own training items (memorization), so validation samples them too."""
    spec = _spec(task)
    return bool(spec and spec.scored_on_train)


def floor(task: str, metric: str) -> float | None:
    """The score of right-format, no-knowledge output on the task's metric (TaskSpec.floors), if known."""
    spec = _spec(task)
    return (spec.floors.get(metric) if spec else None)
