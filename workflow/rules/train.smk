# Stage 3 — one training run per (task, variant, seed). A run that diverges or crashes still ends
# the job successfully, with status diverged or failed in train_summary.json, so the DAG goes on
# and the tables show the failure with its reason.


rule train:
    input:
        data=f"{RESULTS}/data/{{task}}/train.jsonl",
        base=base_model_input(),
        method_yaml=lambda wc: method_yaml(wc.variant),
        chosen_lr=lambda wc: chosen_lr_input(wc.task, wc.variant),  # swept: train at the chosen lr
    output:
        summary=f"{RESULTS}/runs/{{task}}/{{variant}}/seed{{seed}}/train_summary.json",
    params:
        run_config=lambda wc: run_config(wc.task, wc.variant, wc.seed),
        out_dir=lambda wc: run_dir(wc.task, wc.variant, wc.seed),
    log:
        f"{RESULTS}/logs/train/{{task}}/{{variant}}/seed{{seed}}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
        gpu=GPU_PER_JOB,
    conda:
        ENV
    script:
        "../scripts/train_run.py"
