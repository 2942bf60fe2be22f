"""Builders of synthetic results folders that follow the run-directory contract (no tests here).

Numbers are chosen so that the expected cells, CIs and verdicts can be computed by hand.
"""
import json
from pathlib import Path

from analysis import settings


def eval_json(results: dict[str, dict[str, float]]) -> dict:
    """lm-eval's shape: {"results": {task: {"<metric>,none": v, "<metric>_stderr,none": "N/A", "alias"}}}."""
    out = {}
    for task, metrics in results.items():
        entry = {"alias": task}
        for key, value in metrics.items():
            name = key if "," in key else f"{key},none"
            entry[name] = value
            entry[name.replace(",", "_stderr,", 1)] = "N/A"
        out[task] = entry
    return {"results": out, "higher_is_better": {t: {k.split(",")[0]: "perplexity" not in k for k in m}
                                                 for t, m in results.items()},
            "configs": {}, "provenance": {}}


def write_run(root: Path, task: str, variant: str, seed: int, *, results: dict | None = None, status: str = "ok",
              reason: str = "", method: str | None = None, options: dict | None = None, params: int = 1000,
              wall: float = 10.0, memory: float = 100.0, steps: int = 30, step_results: dict | None = None,
              log: list[dict] | None = None, targets: tuple = ("q_proj", "v_proj"), summary_extra: dict | None = None,
              adapter_params: int | None = None, base_model: str | None = None):
    """One run directory; `adapter_params` defaults to `params` (no task head), `base_model` goes
    into provenance.json as the trainer writes it."""
    run = root / "runs" / task / variant / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    summary = {"status": status, "trainable_params": params, "wall_time_s": wall, "peak_memory_mb": memory,
               "adapter_params": params if adapter_params is None else adapter_params,
               "tokens_seen": 5000, "final_loss": 1.5, "steps": steps, **(summary_extra or {})}
    if base_model is not None:
        (run / "provenance.json").write_text(json.dumps({"config": {"model": base_model}, "seed": seed}))
    if status != "ok":
        summary = {"status": status, "reason": reason, "step": 12}
    (run / "train_summary.json").write_text(json.dumps(summary))
    if status == "ok":
        adapter = run / "adapter"
        adapter.mkdir(exist_ok=True)
        (adapter / "adapter_config.json").write_text(json.dumps({
            "method": method or variant, "options": options or {"r": 8}, "target_modules": list(targets),
            "modules_to_save": [], "base_model": ""}))
        if results is not None:
            (run / "eval.json").write_text(json.dumps(eval_json(results)))
    for step, step_result in (step_results or {}).items():
        (run / f"eval_step{step}.json").write_text(json.dumps(eval_json(step_result)))
    entries = log if log is not None else [{"step": s, "loss": 3.0 - s / 20, "lr": 1e-3, "tokens_per_s": 100.0,
                                            "memory_mb": 90.0} for s in (5, 10, 15, 20, 25, 30)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"step": 3')  # torn line
    return run


def write_base(root: Path, task: str, results: dict):
    path = root / "base_eval" / task
    path.mkdir(parents=True, exist_ok=True)
    (path / "eval.json").write_text(json.dumps(eval_json(results)))


SST2 = {"lora": [0.80, 0.82, 0.87], "vera": [0.78, 0.80]}  # vera: n = 2 -> min–max
UUID_STEPS = {"lora": {10: [0.10, 0.11, 0.12], 20: [0.20, 0.22, 0.21]},
              "mora6": {10: [0.30, 0.32, 0.31], 20: [0.60, 0.62, 0.61]}}
UUID_FINAL = {"lora": [0.40, 0.42, 0.41], "mora6": [0.90, 0.92, 0.91]}


def build_results(root: Path) -> Path:
    """results/tiny with GLUE (sst2), memorization (uuid), continual pretraining (cpt_domain + probes)."""
    for variant, values in SST2.items():
        for seed, acc in enumerate(values):
            opts = {"r": 256} if variant == "vera" else {"r": 8}
            write_run(root, "sst2", variant, seed, results={"lorabench_sst2": {"acc": acc}},
                      params=1000 if variant == "lora" else 50, options=opts, wall=10.0 + seed)
    write_run(root, "sst2", "sora", 0, results={"lorabench_sst2": {"acc": 0.81}}, params=1100,
              log=[{"step": 5, "loss": 2.0, "live_rank_total": 15}, {"step": 10, "loss": 1.5, "live_rank_total": 9}])
    write_run(root, "sst2", "sora", 1, status="diverged", reason="loss is nan at step 12")
    write_run(root, "sst2", "mora1", 0, status="failed", reason="OutOfMemoryError: CUDA")
    write_base(root, "sst2", {"lorabench_sst2": {"acc": 0.5}})
    for variant in ("lora", "mora6"):
        for seed in range(3):
            opts = {"r": 8, "mora_type": 6} if variant == "mora6" else {"r": 8}
            steps = {s: {"lorabench_uuid": {"char_acc": v[seed], "exact_match": 0.0}}
                     for s, v in UUID_STEPS[variant].items()}
            write_run(root, "uuid", variant, seed, method="mora" if variant == "mora6" else "lora", options=opts,
                      results={"lorabench_uuid": {"char_acc": UUID_FINAL[variant][seed], "exact_match": 0.1}},
                      step_results=steps, params=1000 if variant == "lora" else 990)
    for variant, init, general in (("milora", "minor", [20.0, 21.0]), ("pissa", "principal", [30.0, 31.0])):
        for seed, ppl in enumerate(general):
            write_run(root, "cpt_domain", variant, seed, method="milora", options={"r": 8, "init": init},
                      results={"lorabench_cpt_domain": {"word_perplexity": 10.0 + seed},
                               "lorabench_cpt_domain_qa": {"acc": 0.6},
                               "lorabench_cpt_general": {"word_perplexity": ppl}})
    write_base(root, "cpt_domain", {"lorabench_cpt_domain": {"word_perplexity": 15.0},
                                    "lorabench_cpt_general": {"word_perplexity": 18.0}})
    return root


# --- tidy rows directly (for the verdicts) ------------------------------------------------------
def row(task, variant, seed, metric, value, *, role=None, source=None, train_task=None, r=8, params=1000,
        step=30, final=True, method=None, options=None, status="ok"):
    role = role or variant
    source = source or (settings.TRAIN_SOURCE if metric.startswith("live_rank") else f"lorabench_{task}")
    return {"profile": "tiny", "family": "f", "task": task, "train_task": train_task or task, "variant": variant,
            "method": method or role, "role": role, "r": r, "options": json.dumps(options or {"r": r}), "seed": seed,
            "source": source, "metric": metric, "filter": "none", "metric_id": metric, "step": step, "final": final,
            "value": value, "stderr": float("nan"), "higher_is_better": not settings.lower_is_better(metric),
            "trainable_params": params, "wall_time_s": 1.0, "peak_memory_mb": 1.0, "tokens_seen": 1.0,
            "status": status, "reason": "", "run_dir": f"/runs/{task}/{variant}/seed{seed}"}


def series(task, variant, metric, values, **kw):
    return [row(task, variant, seed, metric, v, **kw) for seed, v in enumerate(values)]
