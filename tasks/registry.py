"""All tasks by name."""
from __future__ import annotations

from tasks import arithmetic, commonsense, cpt, e2e, glue, instruct, memorization, pretrain
from tasks.spec import TaskSpec

_TASKS: dict[str, TaskSpec] = {spec.name: spec for module in (glue, e2e, commonsense, arithmetic, instruct,
                                                              memorization, cpt, pretrain)
                               for spec in module.SPECS}


def available() -> list[str]:
    return sorted(_TASKS)


def families() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name in available():
        grouped.setdefault(_TASKS[name].family, []).append(name)
    return dict(sorted(grouped.items()))


def get(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(available())}")
    return _TASKS[name]
