"""One number per run, picked from the tidy table: the task's headline metric, or a named one."""
from __future__ import annotations

import pandas as pd

from . import settings, taskinfo

RUN_COLUMNS = ["train_task", "variant", "role", "method", "r", "seed", "trainable_params", "higher_is_better"]


def ok_rows(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].eq("ok") & runs["metric"].ne("")]


def metric_values(runs: pd.DataFrame, task: str, metric_ids: list[str], step: int | None = None) -> pd.DataFrame:
    """Per run, the first of `metric_ids` it has for `task` (final evaluation, or at `step`)."""
    rows = ok_rows(runs)
    rows = rows[rows["task"].eq(task) & rows["metric_id"].isin(metric_ids)]
    rows = rows[rows["final"]] if step is None else rows[rows["step"].eq(step)]
    rank = rows["metric_id"].map({m: i for i, m in enumerate(metric_ids)})
    rows = rows.assign(_rank=rank).sort_values("_rank").drop_duplicates(["train_task", "variant", "seed"])
    return rows[RUN_COLUMNS + ["metric", "metric_id", "value"]].reset_index(drop=True)


def primary_values(runs: pd.DataFrame, task: str, metric: str | None = None, source: str = "auto") -> pd.DataFrame:
    """Per run, the task's headline number (`metric`, default: the task's primary metric).

    source "suite": the suite's own evaluation of the task; "builtin": the average over the
    built-in lm-eval tasks it was evaluated with (e.g. the eight commonsense benchmarks, as the
    papers report them; each counted once, with its first filter); "auto": suite if present.
    """
    name = metric or taskinfo.primary_metric(task)
    rows = ok_rows(runs)
    rows = rows[rows["final"] & rows["task"].eq(task) & rows["metric"].eq(name)
                & ~rows["source"].isin(settings.NON_EVAL_SOURCES)]
    is_suite = rows["source"].str.startswith("lorabench_")
    suite, builtin = rows[is_suite & rows["filter"].isin(["none", ""])], rows[~is_suite]
    rows = {"suite": suite, "builtin": builtin, "auto": suite if len(suite) else builtin}[source]
    rows = rows.drop_duplicates(["train_task", "variant", "seed", "source"])
    keys = RUN_COLUMNS + ["metric"]
    return rows.groupby(keys, dropna=False, sort=True)["value"].mean().reset_index()
