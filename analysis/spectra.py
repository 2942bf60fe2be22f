"""Singular-value spectra of each run's weight update ΔW, and MiLoRA's output change at init.

ΔW of a module is what fine-tuning changed in its weight: (frozen base after loading + the
adapter's `delta_weight()`) − the original W0. For most methods that is `delta_weight()` itself;
for MiLoRA/PiSSA it is s(B A − B0 A0), since loading also moves the principal/minor part out of
the frozen base.

Spectrum summaries, per module then averaged over a run's modules:
- the normalised spectrum σ_i / σ_1 (divided by the largest, so every module's curve starts at 1;
  plotted for the top `top_k` values);
- effective rank exp(H(p)) with p_i = σ_i / Σσ (Roy & Vetterli 2007): 1 for a rank-1 ΔW, k for k
  equal singular values; the claim-5 flatness measure (MultiLoRA: flatter spectrum than LoRA);
- normalised entropy H(p) / log(min(d_out, d_in)), in [0, 1].
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import adapters
from training.files import own_base_model_if_any

from . import settings, taskinfo

# Singular values below this fraction of the largest are round-off of an exactly low-rank ΔW.
RELATIVE_ZERO = 1e-6


def singular_values(delta: torch.Tensor) -> np.ndarray:
    return torch.linalg.svdvals(delta.detach().double()).numpy()


def _probabilities(sv: np.ndarray) -> np.ndarray:
    sv = np.where(sv > RELATIVE_ZERO * (sv.max() if sv.size else 0.0), sv, 0.0)
    total = sv.sum()
    return sv / total if total > 0 else sv


def effective_rank(sv: np.ndarray) -> float:
    """exp(entropy of σ/Σσ); 0 for ΔW = 0."""
    p = _probabilities(np.asarray(sv, dtype=float))
    if not p.any():
        return 0.0
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def normalized_entropy(sv: np.ndarray) -> float:
    """entropy of σ/Σσ divided by its maximum log(len(σ)); 0 for rank ≤ 1."""
    sv = np.asarray(sv, dtype=float)
    rank = effective_rank(sv)
    return float(math.log(rank) / math.log(len(sv))) if rank > 0 and len(sv) > 1 else 0.0


def normalized_spectrum(sv: np.ndarray) -> np.ndarray:
    sv = np.asarray(sv, dtype=float)
    return sv / sv[0] if sv.size and sv[0] > 0 else np.zeros_like(sv)


def module_deltas(model: torch.nn.Module, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{module: ΔW (d_out, d_in)} of an adapted model against its original weights `original`."""
    deltas = {}
    with torch.no_grad():
        for name, layer in adapters.adapted_modules(model).items():
            now = layer.base_weight_out_in().float()
            if not layer.merged:
                now = now + layer.delta_out_in().float()
            deltas[name] = now - original[name].float()
    return deltas


def adapter_deltas(base_model: torch.nn.Module, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
    """Load the adapter into `base_model` (modified in place) and return every module's ΔW."""
    config = adapters.read_config(adapter_dir)
    original = {}
    for name in config["target_modules"]:
        layer = base_model.get_submodule(name)
        weight = layer.weight.detach()
        # Conv1D (GPT-2) stores (d_in, d_out); compare in (d_out, d_in) like delta_out_in().
        original[name] = (weight.T if type(layer).__name__ == "Conv1D" else weight).clone()
    adapters.load(base_model, adapter_dir)
    return module_deltas(base_model, original)


def spectrum_summary(deltas: dict[str, torch.Tensor], top_k: int = 64) -> dict:
    """Mean effective rank, mean normalised entropy and mean normalised spectrum over modules."""
    values = [singular_values(d) for d in deltas.values()]
    length = min(top_k, min(len(v) for v in values))
    return {"effective_rank": float(np.mean([effective_rank(v) for v in values])),
            "normalized_entropy": float(np.mean([normalized_entropy(v) for v in values])),
            "spectrum": np.mean([normalized_spectrum(v)[:length] for v in values], axis=0)}


# --- loading base models for a results folder ------------------------------------------------------
def _head_labels(adapter_dir: Path, heads: list[str]) -> int:
    """A classifier's label count: the smallest output size among its head's weight matrices
    (a head is e.g. dense hidden→hidden then out_proj hidden→labels; labels < hidden)."""
    from safetensors import safe_open
    sizes = []
    with safe_open(str(adapter_dir / "adapter.safetensors"), "pt") as tensors:
        for key in tensors.keys():
            if any(key.startswith(h + ".") for h in heads) and key.endswith("weight"):
                shape = tensors.get_slice(key).get_shape()
                if len(shape) == 2:
                    sizes.append(shape[0])
    if not sizes:
        raise ValueError(f"{adapter_dir}: modules_to_save {heads} hold no weight matrix to read the label count from")
    return min(sizes)


def load_base(path: str | Path, adapter_dir: str | Path) -> torch.nn.Module:
    """The base model the adapter in `adapter_dir` was trained on: a causal LM, or a sequence
    classifier when the adapter carries a task head (or the architecture has no causal LM, e.g.
    DeBERTa-v2)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    heads = adapters.read_config(adapter_dir)["modules_to_save"]
    config = AutoConfig.from_pretrained(path)
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        with torch.device("meta"):  # module names only: no weights allocated or read
            names = {name for name, _ in AutoModelForCausalLM.from_config(config).named_modules()}
        if all(head in names for head in heads):  # e.g. embeddings and lm_head trained in full (pretraining)
            return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=_head_labels(Path(adapter_dir), heads), dtype=torch.float32).eval()


def base_model_path(adapter_dir: Path, explicit: str | Path | None, results_dir: Path | None) -> Path | None:
    """The first of: `explicit`, the adapter's recorded base model, <results>/base_model[/model]."""
    recorded = adapters.read_config(adapter_dir).get("base_model") or ""
    candidates = [explicit, recorded, recorded and Path(recorded) / "model"]
    if results_dir is not None:
        candidates += [results_dir / "base_model", results_dir / "base_model" / "model"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "config.json").is_file():
            return Path(candidate)
    return None


@torch.no_grad()
def init_output_change(base_model: torch.nn.Module, adapter_dir: str | Path, n_tokens: int = 32) -> float:
    """max |logits(adapted at init) − logits(base)| / max |logits(base)| on seeded random tokens:
    the method's own init (e.g. MiLoRA's SVD split) applied afresh with the run's options."""
    config = adapters.read_config(adapter_dir)
    vocab = base_model.config.vocab_size
    tokens = torch.randint(0, vocab, (2, n_tokens), generator=torch.Generator().manual_seed(0))
    reference = base_model(tokens).logits.float()
    adapted = adapters.apply(base_model, config["method"], config["target_modules"], **config["options"]).eval()
    change = (adapted(tokens).logits.float() - reference).abs().max()
    return float(change / reference.abs().max().clamp_min(1e-12))


def _model_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.safetensors")) or sum(
        f.stat().st_size for f in Path(path).rglob("*.bin"))


def _pool_size(workers: int, runs: int, model_path: Path | None) -> int:
    """Processes for the runs' measurements: at most `workers` and one per run, and only as many
    as the free memory holds, each with the base model twice (loaded, and the adapter's copy)."""
    import psutil

    workers = min(workers, runs)
    if workers > 1 and model_path is not None:
        workers = min(workers, max(1, psutil.virtual_memory().available // (3 * max(_model_bytes(model_path), 1))))
    return workers


def _init_worker() -> None:
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)  # one thread per process: the job's threads are the processes
    hf_logging.disable_progress_bar()  # a bar per model load, from processes the job's log redirect misses


def _measure_run(run: dict, base_model, results_dir: Path | None, top_k: int, init_methods: tuple[str, ...],
                 peft: frozenset[str], init_changes: dict) -> tuple[list[dict], list[dict], list[str]]:
    """One run's spectrum rows, curve rows and notes (see measure_runs); `peft`: adapters.peft_methods()."""
    adapter_dir = Path(run["run_dir"]) / "adapter"
    if run["method"] in peft:  # a PEFT method: none of the suite's adapted layers to read ΔW from
        return [], [], [f"{run['run_dir']}: no adapted layer of the suite's to measure (a PEFT method)"]
    if not (adapter_dir / "adapter_config.json").is_file():
        return [], [], [f"{run['run_dir']}: no adapter/ to measure"]
    # a run from random init (pretraining) keeps its own base
    path = own_base_model_if_any(run["run_dir"]) or base_model_path(adapter_dir, base_model, results_dir)
    if path is None:
        return [], [], [f"{run['run_dir']}: base model not found (pass --base-model)"]
    deltas = adapter_deltas(load_base(path, adapter_dir), adapter_dir)
    if not deltas:
        return [], [], [f"{run['run_dir']}: no adapted layer of the suite's to measure"]
    summary = spectrum_summary(deltas, top_k)
    measured = {"effective_rank": (settings.SPECTRUM_SOURCE, summary["effective_rank"]),
                "normalized_entropy": (settings.SPECTRUM_SOURCE, summary["normalized_entropy"])}
    if run["method"] in init_methods:
        config = adapters.read_config(adapter_dir)
        key = (str(path), config["method"], json.dumps(config["options"], sort_keys=True),
               json.dumps(config["target_modules"]),
               json.dumps(config["modules_to_save"]),  # a task head: load_base gives a classifier, not the LM
               run["run_dir"] if config["options"].get("init") == "random" else "")  # random: per run
        if key not in init_changes:
            # seeded: a classifier's new head and a random init are the same whichever process, and
            # whichever run before, measures them
            with torch.random.fork_rng():
                torch.manual_seed(0)
                init_changes[key] = init_output_change(load_base(path, adapter_dir), adapter_dir)
        measured["init_output_change"] = (settings.INIT_SOURCE, init_changes[key])
    family = taskinfo.family_of(run["train_task"])
    rows = [{**run, "source": source, "metric": metric, "filter": "none", "metric_id": metric,
             "task": run["train_task"], "family": family, "value": value, "stderr": math.nan,
             "final": True, "higher_is_better": not settings.lower_is_better(metric)}
            for metric, (source, value) in measured.items()]
    curves = [{k: run[k] for k in ("profile", "train_task", "variant", "role", "r", "seed")}
              | {"family": family, "index": index, "value": float(value)}
              for index, value in enumerate(summary["spectrum"], start=1)]
    return rows, curves, []


_WORKER_CACHE: dict = {}  # a pool process's init-change measurements, shared by the runs it measures


def _measure_in_worker(args: tuple) -> tuple[list[dict], list[dict], list[str]]:
    return _measure_run(*args, _WORKER_CACHE)


def measure_runs(runs: pd.DataFrame, base_model: str | Path | None = None, results_dir: str | Path | None = None,
                 top_k: int = 64, init_methods: tuple[str, ...] = ("milora",), workers: int = 1
                 ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """For every successful run with an adapter: spectrum rows (and, for `init_methods`, the init
    output change) in the tidy format, the mean normalised spectra (long format), and notes on
    runs that could not be measured.

    workers > 1 measures runs in that many processes of one torch thread each (as many as the free
    memory holds base models); each run's numbers are computed as in one process, in run order.
    """
    results_dir = Path(results_dir) if results_dir is not None else None
    done = runs[runs["status"].eq("ok") & runs["variant"].ne("base")].drop_duplicates("run_dir").to_dict("records")
    peft = frozenset(adapters.peft_methods())
    tasks = [(run, base_model, results_dir, top_k, init_methods, peft) for run in done]
    explicit = Path(base_model) if base_model is not None else None
    workers = _pool_size(workers, len(done), explicit if explicit is not None and explicit.is_dir() else None)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold an OpenMP thread pool, which a forked child cannot use
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            measured = list(pool.map(_measure_in_worker, tasks))
    else:
        init_changes = {}  # an SVD split is deterministic: one measurement per base model and config
        measured = [_measure_run(*task, init_changes) for task in tasks]
    rows = [row for part in measured for row in part[0]]
    curves = [row for part in measured for row in part[1]]
    notes = [note for part in measured for note in part[2]]
    return pd.DataFrame(rows, columns=runs.columns), pd.DataFrame(curves), notes
