"""Plan before spending GPU hours: a run's peak training memory and tokens, from its config alone.

    est = estimate(cfg, model_config, examples=395_000)   # cfg: TrainConfig; model_config: transformers config
    print(est.line())                                      # what `snakemake -n` prints per run

Memory (bytes; P = base parameters, T = trainable parameters, w = bytes of the base `dtype`,
t = bytes of a trainable tensor: 4 when `precision` is bf16/fp16 (the trainer upcasts trainable
tensors to fp32), the base is fp32 or the method is PEFT's (get_peft_model's autocast_adapter_dtype
keeps adapter weights in fp32), else w; a = bytes of an activation: 2 under bf16/fp16 autocast,
else w):
  weights       P·w + T·t   (full fine-tuning: P·t; the base is the trainable set)
  gradients     T·t
  optimizer     2·T·t       (AdamW's two moments, in the parameter's dtype; no separate fp32 master
                             copy: the trainable tensors themselves are fp32)
  activations   per layer and token, saved for backward:  a·(9h + 3i)
                  + a·(10h + i)       when the adapter has dropout > 0 (its masks and dropped inputs)
                  + (4 − a)·2h        under autocast (the norms save fp32 inputs)
                  + n·s·(2a + 1)      with eager attention (DeBERTa: the attention probabilities,
                                      n heads; SDPA/flash attention keep none)
                times micro-batch b × seq_len s × layers L; with gradient checkpointing only each
                layer's input, b·s·L·h·a, plus one layer's activations (recomputed in backward)
  logits        b·s·V·(a + 8)       (causal LM: the logits, their fp32 log-softmax and its gradient)
h = hidden size, i = MLP width, V = vocabulary, from the model's config. The per-layer coefficients
were measured on LLaMA blocks (saved tensors of a forward pass, fp32 on CPU) and the total is checked
against the peak resident-memory growth of a training step of the tiny model and of SmolLM2-135M
(tests/test_estimate.py); on a GPU add the CUDA context (OVERHEAD_GB).

T is counted on the meta device, exactly (trainable_count). A PEFT method whose init reads the
weights (AdaMSS, FRoD, SHiRA, BOFT, Uni-LoRA) cannot be built there: it is counted on copies of 1
and 2 blocks with real random weights and extrapolated to L blocks (count_on_blocks), the line says
so, and the count is kept (trainable_counts.json here, else the user cache) since it takes minutes.

Tokens: max_steps × batch_size × grad_accum × seq_len when max_steps is set, else
epochs × examples × seq_len; both upper bounds (rows shorter than seq_len are padded per batch).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

GB = 1e9
OVERHEAD_GB = 1.0   # the CUDA context and allocator slack, outside torch's own tensors

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}

# The papers' base models (what the paper profiles name), for planning offline when a Hub model is
# not in the Hugging Face cache: model_type and the config keys that size the model.
KNOWN = {
    "meta-llama/Llama-2-7b-hf": ("llama", {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                                           "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000}),
    "meta-llama/Meta-Llama-3-8B": ("llama", {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                             "num_attention_heads": 32, "num_key_value_heads": 8,
                                             "vocab_size": 128256}),
    "meta-llama/Llama-3.2-3B": ("llama", {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
                                          "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
                                          "vocab_size": 128256, "tie_word_embeddings": True}),
    "FacebookAI/roberta-base": ("roberta", {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                            "num_attention_heads": 12, "vocab_size": 50265,
                                            "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}),
    "FacebookAI/roberta-large": ("roberta", {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                                             "num_attention_heads": 16, "vocab_size": 50265,
                                             "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}),
    "microsoft/deberta-v3-base": ("deberta-v2", {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                                 "num_attention_heads": 12, "vocab_size": 128100,
                                                 "relative_attention": True, "position_buckets": 256,
                                                 "pos_att_type": ["p2c", "c2p"], "max_relative_positions": -1,
                                                 "position_biased_input": False, "norm_rel_ebd": "layer_norm",
                                                 "share_att_key": True, "type_vocab_size": 0}),
    "openai-community/gpt2-medium": ("gpt2", {"n_embd": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 50257}),
    "openai-community/gpt2-large": ("gpt2", {"n_embd": 1280, "n_layer": 36, "n_head": 20, "vocab_size": 50257}),
}

# Training-set sizes of the papers' datasets (rows), for the token count before task_data has run
# (afterwards the prepared train.jsonl is counted). Keyed by the data loader's hub_id, else the task.
DATASET_ROWS = {
    "allenai/tulu-v2-sft-mixture": 326_154, "meta-math/MetaMathQA": 395_000, "GEM/e2e_nlg": 33_525,
    ("nyu-mll/glue", "cola"): 8_551, ("nyu-mll/glue", "sst2"): 67_349, ("nyu-mll/glue", "mrpc"): 3_668,
    ("nyu-mll/glue", "qnli"): 104_743, ("nyu-mll/glue", "rte"): 2_490, ("nyu-mll/glue", "stsb"): 5_749,
    "commonsense": 170_420,   # commonsense_170k.json (LLM-Adapters), MiLoRA's training set
}

# Attention implementations that keep the n·s×s probabilities for backward (no SDPA support).
EAGER_ATTENTION = {"deberta-v2", "deberta"}

# A config's number of blocks (LLaMA-like, GPT-2, T5-like names).
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")

# Trainable counts made by count_on_blocks (minutes of SVDs for some PEFT inits), by _count_key:
# the paper profiles' runs, so that planning them costs nothing; others land in the user cache.
COUNTS_FILE = Path(__file__).with_name("trainable_counts.json")


def model_config(path: str, model_config_kwargs: dict | None = None):
    """The base model's transformers config: on disk / in the HF cache, else the KNOWN table; None."""
    from transformers import AutoConfig

    from .preflight import base_config

    found = base_config(path, model_config_kwargs)
    if found is None and path in KNOWN:
        model_type, dims = KNOWN[path]
        found = AutoConfig.for_model(model_type, **dims)
    return found


def dims(config) -> dict:
    """h, i, L, n (heads), V of a transformers config (LLaMA-like, BERT-like or GPT-2 names)."""
    get = lambda *names, default=None: next((getattr(config, n) for n in names  # noqa: E731
                                             if getattr(config, n, None) is not None), default)
    h = get("hidden_size", "n_embd", "d_model")
    return {"h": h, "i": get("intermediate_size", "n_inner", "ffn_dim", default=4 * h),
            "L": get("num_hidden_layers", "n_layer", "num_layers"), "n": get("num_attention_heads", "n_head"),
            "V": get("vocab_size"), "model_type": config.model_type}


def _build(cfg, config, layers: int | None = None):
    """The base model of `config` on the meta device (its blocks cut to `layers` when given)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = config.to_dict()
    kind = kwargs.pop("model_type")
    if layers is not None:
        kwargs[next(k for k in LAYER_KEYS if kwargs.get(k) is not None)] = layers
    config = AutoConfig.for_model(kind, **kwargs)
    classification = cfg.task_kind == "classification"
    if classification:
        config.num_labels = cfg.num_labels or 2
    auto = AutoModelForSequenceClassification if classification else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)


def _apply(cfg, model):
    """The method on `model`, as the trainer attaches it (training/model.py); the model to count:
    a PEFT method returns a PeftModel holding what the base does not (a prompt encoder)."""
    import adapters
    from .model import modules_to_save

    return adapters.apply(model, cfg.method, cfg.target_modules, modules_to_save=modules_to_save(cfg, model),
                          **cfg.method_options)


def _materialise_blocks(model) -> None:
    """Real CPU tensors (random, fixed seed) for every parameter but the embedding and output
    matrices, which stay on the meta device: what an init that reads the weights needs."""
    import torch

    skip = {id(m) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if id(module) in skip:
            continue
        for name, p in list(module.named_parameters(recurse=False)):
            if p.device.type != "meta":
                continue
            data = torch.empty(p.shape, dtype=torch.float32)
            with torch.no_grad():
                data.normal_(0.0, 0.02, generator=generator) if data.dim() > 1 else data.fill_(1.0)
            module._parameters[name] = torch.nn.Parameter(data, requires_grad=p.requires_grad)


def _count_key(cfg, config) -> str:
    """What determines a run's trainable count: the architecture, the method (its YAML's peft:
    block included), options, targets, the head, and the peft version."""
    import hashlib

    import adapters

    arch = {k: v for k, v in config.to_dict().items()
            if k not in ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")}
    try:
        import peft
        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    what = {"arch": arch, "method": cfg.method, "method_config": adapters.method_config(cfg.method).get("peft"),
            "options": cfg.method_options, "target_modules": cfg.target_modules,
            "modules_to_save": cfg.modules_to_save, "task_kind": cfg.task_kind, "num_labels": cfg.num_labels,
            "peft": peft_version}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _cache_files() -> list[Path]:
    import os

    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lorabench" / COUNTS_FILE.name
    return [COUNTS_FILE, user]


def _cached_count(key: str) -> int | None:
    for path in _cache_files():
        try:
            found = json.loads(path.read_text()).get(key)
        except (OSError, ValueError):
            continue
        if found is not None:
            return int(found["trainable"])
    return None


def _store_count(key: str, trainable: int, what: str, path: Path | None = None) -> None:
    path = path or _cache_files()[-1]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = json.loads(path.read_text()) if path.is_file() else {}
        table[key] = {"trainable": trainable, "run": what}
        path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: the count is recomputed next time


def count_on_blocks(cfg, config) -> int:
    """The trainable count of a method whose init PEFT cannot run on the meta device (it reads
    the weights: AdaMSS's clustering, FRoD's decomposition, SHiRA's mask, BOFT's permutations,
    Uni-LoRA's index counts): the method on copies of 1 and 2 blocks with real random weights,
    extrapolated to the model's L blocks as T(1) + (L − 1)·(T(2) − T(1)) (exact when every block
    adds the same count and what the blocks share is fixed; random weights stand in for the real
    ones, which only a data-dependent count, AdaMSS's subspaces, could tell apart)."""
    import adapters

    counts = []
    for layers in (1, 2):
        model = _build(cfg, config, layers)
        _materialise_blocks(model)
        counts.append(adapters.num_trainable(_apply(cfg, model)))
    return counts[0] + (dims(config)["L"] - 1) * (counts[1] - counts[0])


def trainable_count(cfg, config) -> tuple[int, int, str]:
    """(P, T, how): the base model's parameters (task head included), what cfg trains, and how T
    was counted: "" when exactly, on the meta device (no memory: a 7B model in a fraction of a
    second), else a note (count_on_blocks; its result is kept in COUNTS_FILE or the user cache)."""
    import adapters

    model = _build(cfg, config)
    total = sum(p.numel() for p in model.parameters())
    if cfg.method is None:
        return total, total, ""
    import torch

    try:
        with torch.device("meta"):
            return total, adapters.num_trainable(_apply(cfg, model)), ""
    except (NotImplementedError, RuntimeError) as error:  # an init that needs data
        if adapters._registry.get_spec(cfg.method).peft is None:
            raise
        reason = f"{type(error).__name__}"
    key = _count_key(cfg, config)
    trainable = _cached_count(key)
    if trainable is None:
        trainable = count_on_blocks(cfg, config)
        _store_count(key, trainable, f"{cfg.method} {cfg.method_options} on {cfg.target_modules}")
    note = (f"counted on 1- and 2-block copies with random weights, extrapolated to {dims(config)['L']} "
            f"blocks: PEFT's {cfg.method} init cannot run on the meta device ({reason})")
    return total, trainable, note


def parameter_counts(cfg, config) -> tuple[int, int]:
    """(P, T) of trainable_count."""
    return trainable_count(cfg, config)[:2]


def _is_peft(method: str | None) -> bool:
    from adapters._registry import get_spec

    return method is not None and get_spec(method).peft is not None


def _dropout(cfg) -> float:
    from adapters._registry import resolve_options

    if cfg.method is None:
        return 0.0
    try:
        return float(getattr(resolve_options(cfg.method, cfg.method_options), "dropout", 0.0) or 0.0)
    except (ValueError, TypeError):
        return 0.0


@dataclass
class Estimate:
    run: str
    params: int
    trainable: int
    parts: dict = field(default_factory=dict)       # bytes: weights, gradients, optimizer, activations, logits
    tokens: int | None = None
    tokens_formula: str = ""
    settings: dict = field(default_factory=dict)    # the config values the estimate used
    count_note: str = ""                            # how `trainable` was counted when not exactly

    @property
    def total_gb(self) -> float:
        return sum(self.parts.values()) / GB

    def line(self) -> str:
        s = self.settings
        parts = ", ".join(f"{k} {v / GB:.1f}" for k, v in self.parts.items())
        tokens = f"{self.tokens / 1e6:,.1f}M tokens ({self.tokens_formula})" if self.tokens else self.tokens_formula
        how = f" ({self.count_note})" if self.count_note else ""
        return (f"{self.run}: ≈ {self.total_gb:.1f} GB peak ({parts}; {self.trainable / 1e6:,.2f}M of "
                f"{self.params / 1e6:,.0f}M parameters train{how}; {s['dtype']} base, precision {s['precision']}, "
                f"micro-batch {s['batch_size']} × {s['seq_len']} tokens, gradient checkpointing "
                f"{'on' if s['gradient_checkpointing'] else 'off'}); {tokens}")

    def to_dict(self) -> dict:
        return {"run": self.run, "params": self.params, "trainable": self.trainable, "total_gb": round(self.total_gb, 3),
                **{f"{k}_gb": round(v / GB, 3) for k, v in self.parts.items()}, "tokens": self.tokens,
                "settings": self.settings, "count_note": self.count_note}


def estimate(cfg, config, examples: int | None = None, run: str = "", counts: tuple[int, int] | None = None) -> Estimate:
    """The peak memory and tokens of training run `cfg` (a TrainConfig) on the model `config`."""
    d = dims(config)
    h, i, L, n, V = d["h"], d["i"], d["L"], d["n"], d["V"]
    P, T, note = (*counts, "") if counts else trainable_count(cfg, config)
    w = BYTES.get(cfg.dtype, 4)
    autocast = cfg.precision in ("bf16", "fp16") or (cfg.precision == "auto" and cfg.device == "cuda")
    t = 4 if autocast or w == 4 or _is_peft(cfg.method) else w
    a = 2 if autocast else w
    full = cfg.method is None
    b, s = cfg.batch_size, cfg.seq_len
    per_token = a * (9 * h + 3 * i)
    if _dropout(cfg) > 0:
        per_token += a * (10 * h + i)
    if a < 4:
        per_token += (4 - a) * 2 * h
    if d["model_type"] in EAGER_ATTENTION:
        per_token += n * s * (2 * a + 1)
    layer = b * s * per_token
    activations = (b * s * L * h * a + layer) if cfg.gradient_checkpointing else L * layer
    causal = cfg.task_kind == "causal_lm"
    parts = {"weights": P * t if full else P * w + T * t, "gradients": T * t, "optimizer": 2 * T * t,
             "activations": activations + 2 * b * s * h * a, "logits": b * s * V * (a + 8) if causal else 0}
    if cfg.max_steps:
        tokens = cfg.max_steps * b * cfg.grad_accum * s
        formula = f"≤ {cfg.max_steps} steps × {b} × {cfg.grad_accum} × {s}"
    elif examples:
        tokens = int(cfg.epochs * examples * s)
        formula = f"≤ {cfg.epochs:g} epochs × {examples:,} examples × {s}"
    else:
        tokens, formula = None, f"tokens: {cfg.epochs:g} epochs × (examples unknown until task_data has run) × {s}"
    settings = {k: getattr(cfg, k) for k in ("dtype", "precision", "batch_size", "grad_accum", "seq_len",
                                             "gradient_checkpointing", "method")}
    return Estimate(run, P, T, parts, tokens, formula, settings, note)


def train_examples(data_dir: str, task: str, data_config: dict | None = None) -> int | None:
    """Rows a run trains on: its prepared train.jsonl when task_data has run, else the papers'
    dataset size (DATASET_ROWS) for the profile's loader, else None."""
    path = Path(data_dir) / "train.jsonl"
    if path.is_file():
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    paper = ((data_config or {}).get("paper") or {}).get(task) or {}
    hub_id = paper.get("hub_id")
    sizes = (data_config or {}).get("sizes", {}).get(task, {})
    if sizes.get("train"):
        return int(sizes["train"])
    return DATASET_ROWS.get((hub_id, task)) or DATASET_ROWS.get(hub_id) or DATASET_ROWS.get(task)


def too_big_message(est: Estimate, limit_gb: float, where: str) -> str:
    s = est.settings
    return (f"run {est.run}: estimated peak GPU memory {est.total_gb + OVERHEAD_GB:.1f} GB (incl. {OVERHEAD_GB:g} GB "
            f"CUDA context) exceeds gpu_memory_gb {limit_gb:g} ({est.line()}). Lower batch_size (now "
            f"{s['batch_size']}) and raise grad_accum (now {s['grad_accum']}) to keep the global batch "
            f"{s['batch_size'] * s['grad_accum']}, set gradient_checkpointing: true"
            + (" (it is on)" if s["gradient_checkpointing"] else "")
            + f", or shorten seq_len (now {s['seq_len']}); set in {where}. Or raise gpu_memory_gb if the GPU has more.")


if __name__ == "__main__":  # python -m training.estimate run.yaml: one run config's estimate
    import sys

    from .config import TrainConfig

    run_cfg = TrainConfig.from_yaml(sys.argv[1])
    found = model_config(run_cfg.model, run_cfg.model_config if run_cfg.model_init == "random" else None)
    if found is None:
        sys.exit(f"{run_cfg.model}: no config.json on disk and not a known architecture")
    print(json.dumps(estimate(run_cfg, found, run=sys.argv[1]).to_dict(), indent=1))
