# Stage 1 — task data: train / validation / test JSONL per task (generated, or loaded from the Hub).


rule task_data:
    output:
        multiext(f"{RESULTS}/data/{{task}}/", "train.jsonl", "validation.jsonl", "test.jsonl"),
    params:
        source=lambda wc: config["data"]["task_source"].get(wc.task, config["data"]["source"]),
        seed=config["data"]["seed"],
        sizes=lambda wc: config["data"]["sizes"].get(wc.task, {}),
        paper=lambda wc: config["data"]["paper"].get(wc.task, {}),
    log:
        f"{RESULTS}/logs/data/{{task}}.log",
    threads: 1
    conda:
        ENV
    script:
        "../scripts/make_task_data.py"


# `snakemake download` on a machine with internet: the base model, every task's data and every
# lm-eval task's dataset into the caches, so the compute jobs run offline (workflow/scripts/hub_download.py).
localrules:
    download,


rule download:
    input:
        [f"{data_dir(t)}/test.jsonl" for t in ALL_TASKS],
    output:
        f"{RESULTS}/download.json",
    log:
        f"{RESULTS}/logs/download.log",
    threads: 1
    conda:
        ENV
    script:
        "../scripts/download.py"
