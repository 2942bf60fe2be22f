# Stage 3a — the learning-rate sweep (config `lr_sweep`): for each swept (task, variant), one run per
# lr of the grid, the real runs' config otherwise; choose_lr keeps the lr with the lowest validation
# loss and the real runs (train.smk) train at it. Without a grid, nothing asks for these rules.


rule sweep_train:
    input:
        data=f"{RESULTS}/data/{{task}}/train.jsonl",
        base=base_model_input(),
        method_yaml=lambda wc: method_yaml(wc.variant),
    output:
        summary=f"{RESULTS}/sweep/{{task}}/{{variant}}/lr{{lr}}/train_summary.json",
    wildcard_constraints:
        lr=r"\d[0-9.e+-]*",
    params:
        run_config=lambda wc: sweep_config(wc.task, wc.variant, wc.lr),
        out_dir=lambda wc: f"{sweep_dir(wc.task, wc.variant)}/lr{wc.lr}",
    log:
        f"{RESULTS}/logs/sweep/{{task}}/{{variant}}/lr{{lr}}.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
        gpu=GPU_PER_JOB,
    conda:
        ENV
    script:
        "../scripts/train_run.py"


rule choose_lr:
    input:
        lambda wc: sweep_trials(wc.task, wc.variant),
    output:
        f"{RESULTS}/sweep/{{task}}/{{variant}}/chosen_lr.json",
    params:
        lrs=lambda wc: SWEEP[(wc.task, wc.variant)],
        seed=SWEEP_SEED,
    log:
        f"{RESULTS}/logs/sweep/{{task}}/{{variant}}/choose_lr.log",
    threads: 1
    conda:
        ENV
    script:
        "../scripts/choose_lr.py"
