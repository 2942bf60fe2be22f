# Stage 2 — the tiny profile's base model: a byte-level BPE tokenizer and a small LLaMA pretrained
# on the suite's generated corpus. Paper profiles name a Hub model instead and skip this rule.


rule base_model:
    input:
        config["base_model"]["pretrain_config"],
    output:
        f"{RESULTS}/base_model/config.json",
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    log:
        f"{RESULTS}/logs/base_model.log",
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "LORABENCH_THREADS={threads} python -m training.base_model --config {input} --out {params.out_dir} > {log} 2>&1"
