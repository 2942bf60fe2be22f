# Stage 5 — aggregation: tidy results, tables per family, paper-vs-ours, plots, replication verdicts.


def run_outputs():
    runs = [f"{run_dir(t, v, s)}/{f}" for t in TRAIN_TASKS for v in RUN_VARIANTS for s in SEEDS
            for f in ("train_summary.json", "eval.json")]
    base = [f"{RESULTS}/base_eval/{t}/eval.json" for t in TRAIN_TASKS]
    return runs + base


def final_outputs():
    return run_outputs()
