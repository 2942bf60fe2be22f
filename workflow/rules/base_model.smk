# Stage 2 — the tiny profile's base model: a byte-level BPE tokenizer and a small LLaMA pretrained
# on the suite's generated corpus. Paper profiles name a Hub model instead and skip this rule.


rule base_model:
    input:
        config["base_model"]["pretrain_config"],
    output:
        f"{RESULTS}/base_model/config.json",
    log:
        f"{RESULTS}/logs/base_model.log",
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        ENV
    script:
        "../scripts/pretrain_base_model.py"
