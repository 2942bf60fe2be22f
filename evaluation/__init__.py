"""lm-eval glue for lorabench: suite task YAMLs, metrics, the classifier wrapper, eval.json.

`evaluate_run`, `build_task_configs` and `SUITE_TASKS` load lazily, so that importing
`evaluation.metrics` does not pull in lm-eval and transformers.
"""

__all__ = ["SUITE_TASKS", "build_task_configs", "evaluate_run"]


def __getattr__(name: str):
    if name == "evaluate_run":
        from evaluation.run import evaluate_run

        return evaluate_run
    if name in ("build_task_configs", "SUITE_TASKS"):
        from evaluation import suite_tasks

        return getattr(suite_tasks, name)
    raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
