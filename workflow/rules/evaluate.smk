# Stage 4 — lm-eval on every run (the adapter merged into the base, in memory) and on the bare base
# model (the baseline row). A run's eval.json covers its task and the probes that share its data.


rule evaluate:
    input:
        summary=f"{RESULTS}/runs/{{task}}/{{variant}}/seed{{seed}}/train_summary.json",
        data=lambda wc: [f"{data_dir(t)}/test.jsonl" for t in eval_tasks(wc.task)],
    output:
        f"{RESULTS}/runs/{{task}}/{{variant}}/seed{{seed}}/eval.json",
    params:
        tasks=lambda wc: eval_tasks(wc.task),
        data_dirs=lambda wc: [data_dir(t) for t in eval_tasks(wc.task)],
        base_model=lambda wc: base_model_path(),
        run_dir=lambda wc: run_dir(wc.task, wc.variant, wc.seed),
        seed=lambda wc: int(wc.seed),
        placement=lambda wc: eval_placement(wc.task, wc.variant, wc.seed),
        eval_cfg=config["eval"],
    log:
        f"{RESULTS}/logs/evaluate/{{task}}/{{variant}}/seed{{seed}}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
        gpu=GPU_PER_JOB,
    conda:
        ENV
    script:
        "../scripts/evaluate_run.py"


rule evaluate_base:
    input:
        data=lambda wc: [f"{data_dir(t)}/test.jsonl" for t in eval_tasks(wc.task)],
        base=base_model_input(),
    output:
        f"{RESULTS}/base_eval/{{task}}/eval.json",
    params:
        tasks=lambda wc: eval_tasks(wc.task),
        data_dirs=lambda wc: [data_dir(t) for t in eval_tasks(wc.task)],
        base_model=lambda wc: base_model_path(),
        run_dir=None,
        seed=SEEDS[0],  # seeds the classifier head the bare base model lacks: one fixed base row
        placement=lambda wc: eval_placement(wc.task),
        eval_cfg=config["eval"],
    log:
        f"{RESULTS}/logs/evaluate/{{task}}/base.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
        gpu=GPU_PER_JOB,
    conda:
        ENV
    script:
        "../scripts/evaluate_run.py"
