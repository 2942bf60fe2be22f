"""One number per run, picked from the tidy table: the task's headline metric, or a named one."""
from __future__ import annotations

import pandas as pd

from . import settings, taskinfo

RUN_COLUMNS = ["train_task", "variant", "role", "method", "r", "seed", "trainable_params", "higher_is_better",
               "run_dir"]
ANY_FILTER = "[*]"  # a metric id ending so matches the metric under any filter, unfiltered first


def ok_rows(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].eq("ok") & runs["metric"].ne("")]


def id_rank(metric_id: str, wanted: list[str]) -> float:
    """Position of the first of `wanted` that `metric_id` is (NaN: none); "src/metric[*]" takes
    src/metric itself, then src/metric[<any filter>] half a place later."""
    for position, want in enumerate(wanted):
        if want.endswith(ANY_FILTER):
            base = want[:-len(ANY_FILTER)]
            if metric_id == base:
                return float(position)
            if metric_id.startswith(base + "["):
                return position + 0.5
        elif metric_id == want:
            return float(position)
    return float("nan")


def metric_values(runs: pd.DataFrame, task: str, metric_ids: list[str], step: int | None = None) -> pd.DataFrame:
    """Per run, the first of `metric_ids` it has for `task` (final evaluation, or at `step`)."""
    rows = ok_rows(runs)
    rows = rows[rows["task"].eq(task)]
    rows = rows[rows["final"]] if step is None else rows[rows["step"].eq(step)]
    rows = rows.assign(_rank=[id_rank(m, metric_ids) for m in rows["metric_id"]]).dropna(subset="_rank")
    rows = rows.sort_values(["_rank", "metric_id"]).drop_duplicates(["train_task", "variant", "seed"])
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
