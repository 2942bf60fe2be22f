"""The training loop: one run = one (model, method, task, seed) → <out>/{adapter, train_log.jsonl, ...}.

The loop knows no method by name. Method-specific optimisation goes through the TrainingHooks
that adapters.training_hooks(model) returns, called at fixed points of every step:
main_parameters() → the AdamW groups; loss_penalty() → added to the loss; after the main
step after_optimizer_step(step) (may ask for an optimizer reset + warmup restart); zero_grad();
log_stats() → the log; state_dict() → checkpoints.

Multi-GPU: started by `accelerate launch` or `torchrun`, which set WORLD_SIZE / RANK / LOCAL_RANK;
each process then trains a DDP replica on every world-th batch.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import adapters
from adapters._io import atomic_directory
from adapters.peft_method import method_provenance

from . import checkpoint
from .config import InputError, TrainConfig
from .data import (IGNORE, Batch, BatchStream, encode_causal, encode_classification, eval_batches,
                   infer_num_labels, pack, read_jsonl)
from .files import (atomic_write_json, atomic_write_text, memory_mb, own_base_model, peak_memory_mb, provenance,
                    read_log, run_lock, save_model_files)
from .model import attach_method, load_base_model, load_tokenizer, num_trainable, upcast_trainable_
from .optim import LRSchedule, make_optimizer, param_groups, schedule_length

THREADS_ENV = "LORABENCH_THREADS"
# Causal LM with a frozen output head: logits only at the positions that carry a target in some row
# of the batch (prompts, padding and a packed row's last position carry none). Each position's logits
# depend on that position's hidden state alone and unlabelled positions get no gradient, so the
# trained weights are the same bits (tests/test_training.py compares); only the loss's float sum
# runs in another order (≈1e-7).
LABELLED_LOGITS_ONLY = True
COLLAPSE_TOLERANCE = 1e-3  # relative: a loss within 0.1% of the uniform-output loss counts as collapsed


def _frozen_head(model: torch.nn.Module) -> bool:
    """Whether `model` takes `logits_to_keep` positions and its output head trains nothing (a
    trained head's weight gradient sums over the kept rows: other bits). Prompt methods put virtual
    tokens in front of the input, which would shift the positions: never cut."""
    config = getattr(model, "peft_config", {}).get("default")
    if config is not None and config.is_prompt_learning:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is None or "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return False
    return not any(p.requires_grad for p in head.parameters())


def train(config: TrainConfig | dict, out_dir: str | Path, *, stop_after_steps: int | None = None,
          fresh: bool = False) -> dict:
    """Train one run into `out_dir` and return its summary (also written to train_summary.json).

    An earlier, interrupted invocation with the same config is resumed from its last checkpoint
    (unless `fresh`). `stop_after_steps` ends this invocation after that many steps, without
    final files, as a kill would (used to test resuming); the result then has status "interrupted".
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    out = Path(out_dir)
    # One run at a time in `out` (rank 0 holds the lock for all processes of a multi-GPU run).
    with run_lock(out) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        try:
            trainer = Trainer(cfg, out, fresh=fresh)
        except Exception as error:  # e.g. a rank the layers cannot take: still leave a summary saying why
            if not is_fault(error) and not isinstance(error, InputError):  # bad input is no result either
                atomic_write_json(out / "train_summary.json", {"status": "failed", "reason": f"{type(error).__name__}: {error}"})
            raise
        return trainer.run(stop_after_steps)


# Messages of RuntimeErrors raised by the GPU stack (CUDA, its libraries, NCCL) or the host allocator.
FAULT_MARKERS = ("CUDA", "CUBLAS_STATUS", "CUDNN_STATUS", "cuDNN error", "NCCL", "out of memory",
                 "can't allocate memory")


def is_fault(error: BaseException) -> bool:
    """A fault of the machine, not a result of the run: the job must fail, and a rerun may succeed.

    Out of memory (GPU or host), I/O errors (a full disk, a lost mount, a missing file or model, the
    Hub unreachable), an interrupt, errors of the GPU stack. Such a run leaves no train_summary.json
    and keeps its last checkpoint, so that rerunning the job resumes it. Everything else (a diverged
    loss, a config the model cannot take) is a result: recorded in train_summary.json, final.
    """
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: interrupted or killed
        return True
    if isinstance(error, (OSError, MemoryError, torch.OutOfMemoryError, torch.AcceleratorError, dist.DistError)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in FAULT_MARKERS)


def set_threads(threads: int | None) -> None:
    threads = threads or int(os.environ.get(THREADS_ENV, "0"))
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def init_distributed(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, rank, world size); joins the process group when a launcher started several processes."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("config: device 'cuda' but no GPU is visible; use device 'cpu' or 'auto'")
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return torch.device("cuda" if cuda else "cpu"), 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return device, dist.get_rank(), world


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if cfg.precision != "fp32" and device.type != "cuda":
        raise ValueError(f"config: precision {cfg.precision} needs a GPU; on CPU use fp32 (or auto)")
    return cfg.precision


PRUNED_STATE = ("exp_avg", "exp_avg_sq")  # Adam's moments; the step count stays


@torch.no_grad()
def magnitude_threshold(tensor: torch.Tensor, ratio: float) -> torch.Tensor:
    """The `ratio` quantile of |tensor| (linear interpolation, as torch.quantile, computed in float32),
    in the tensor's dtype; also for tensors over torch.quantile's 2^24-element limit."""
    flat = tensor.abs().flatten().float()
    if flat.numel() <= 2 ** 24:
        return torch.quantile(flat, ratio).to(tensor.dtype)
    position = ratio * (flat.numel() - 1)
    low = math.floor(position)
    below = flat.kthvalue(low + 1).values
    above = flat.kthvalue(min(low + 2, flat.numel())).values
    return torch.lerp(below, above, position - low).to(tensor.dtype)


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer, params: list, how: str, ratio: float,
                          generator: torch.Generator | None = None) -> None:
    """An optimizer reset (ReLoRA / ReMoRA restart) of `params`' Adam state, as `how` says:

    delete          — kongds/MoRA's ResetReloraCallback: the state goes (the next step starts Adam
                      afresh, step count 1);
    prune_random    — Guitaricet/relora's `random_pruning_` (its default, ratio 0.999): every entry of
                      exp_avg and exp_avg_sq is zeroed unless its uniform draw exceeds `ratio` (drawn
                      on the CPU from `generator`, so that every DDP replica draws the same mask);
    prune_magnitude — its `magnitude_pruning_`: entries with |x| ≤ the `ratio` quantile of |x| (per
                      tensor) are zeroed, the largest (1 − ratio) kept.
    Pruning keeps the step count: Adam's bias correction stays near 1, so the first step after a
    reset is ≈ 0.1/√(0.001/(1−0.999^k)) times a fresh Adam's (2.94× at step k = 2000).
    """
    for p in params:
        if how == "delete":
            optimizer.state.pop(p, None)
            continue
        state = optimizer.state.get(p) or {}
        for key in PRUNED_STATE:
            if key not in state:
                continue
            t = state[key]
            if how == "prune_magnitude":
                keep = t.abs() > magnitude_threshold(t, ratio)
            else:
                keep = torch.rand(t.shape, generator=generator, dtype=t.dtype).to(t.device) > ratio
            t.mul_(keep.to(t.dtype))


class Trainer:
    def __init__(self, cfg: TrainConfig, out: Path, fresh: bool = False):
        self.cfg, self.out = cfg, out
        self.started = time.perf_counter()
        set_threads(cfg.threads)
        self.device, self.rank, self.world = init_distributed(cfg)
        self.is_main = self.rank == 0
        self.precision = resolve_precision(cfg, self.device)
        self.config_hash = cfg.config_hash()
        out.mkdir(parents=True, exist_ok=True)
        if fresh and self.is_main:
            checkpoint.remove_all(out)
        self.resume_from = checkpoint.latest(out, self.config_hash)
        if self.is_main:
            (out / "train_summary.json").unlink(missing_ok=True)  # it would describe an older run
            if self.resume_from is None:  # snapshots of an older run would be taken for this one's
                shutil.rmtree(out / "snapshots", ignore_errors=True)
            atomic_write_json(out / "provenance.json", {**provenance(cfg.to_dict(), self.config_hash, cfg.seed),
                                                        **method_provenance(cfg.method, cfg.method_options,
                                                                            cfg.target_modules)})

        seed_everything(cfg.seed)
        self.tokenizer = load_tokenizer(cfg)
        self._load_data()
        self._build_model()
        self._build_optimizer()
        self.counters = {"step": 0, "tokens_seen": 0, "train_time_s": 0.0, "wall_time_s": 0.0,
                         "last_loss": None, "last_eval": {}}
        self.previous_wall_time = 0.0
        if self.resume_from is not None:
            self._load_checkpoint(self.resume_from)
        self._open_log()

    # --- setup ---------------------------------------------------------------------------
    def _load_data(self) -> None:
        cfg, tok = self.cfg, self.tokenizer
        data_dir = Path(cfg.data_dir)
        records = read_jsonl(data_dir / "train.jsonl", cfg.task_kind)
        validation = data_dir / "validation.jsonl"
        evaluating = (cfg.eval_every or cfg.eval_at_end) and validation.exists()
        val_records = read_jsonl(validation, cfg.task_kind) if evaluating else []
        self.num_labels = None
        if cfg.task_kind == "causal_lm":
            encode = lambda rs: encode_causal(rs, tok, cfg.seq_len, cfg.add_bos, cfg.add_eos)  # noqa: E731
        else:
            self.num_labels = cfg.num_labels or infer_num_labels(records + val_records)
            encode = lambda rs: encode_classification(rs, tok, cfg.seq_len, self.num_labels == 1)  # noqa: E731
        train_examples = pack(encode(records), cfg.seq_len) if cfg.pack else encode(records)
        self.stream = BatchStream(train_examples, cfg.batch_size, tok.pad_token_id, cfg.seed, self.rank, self.world)
        per_epoch = math.ceil(self.stream.batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
        self.schedule_span = schedule_length(cfg, self.total_steps, len(train_examples), self.world)
        self.eval_data = []
        if val_records:
            self.eval_data = eval_batches(encode(val_records), cfg.eval_batch_size or cfg.batch_size,
                                          tok.pad_token_id, cfg.eval_max_batches)

    def _build_model(self) -> None:
        cfg = self.cfg
        full = cfg.method is None
        model = load_base_model(cfg, self.tokenizer, self.num_labels)
        if cfg.model_init == "random" and not full and self.is_main and self.resume_from is None:
            # The adapter alone cannot rebuild a randomly initialised model: keep its base weights.
            with atomic_directory(own_base_model(self.out)) as tmp:
                model.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
        model = model.to(self.device)  # first: a method's init (MiLoRA's SVD) runs where the model trains
        if self.resume_from is not None and not full:
            model = checkpoint.restore_model(self.resume_from, model, full_model=False)
            hooks = adapters.training_hooks(model)
        else:
            hooks = attach_method(cfg, model)
            if self.resume_from is not None:
                checkpoint.restore_model(self.resume_from, model, full_model=True)
            else:
                hooks.calibrate(self._calibration_batches)  # data-driven inits (PEFT's EVA)
        model = hooks.model  # a PEFT method trains the PeftModel around the base
        if self.precision != "fp32":
            upcast_trainable_(model)
        self.raw_model = model.to(self.device)  # anything a method made on the host follows
        self.model = self.raw_model
        if self.world > 1:
            self.model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.hooks = hooks
        self.labelled_logits_only = LABELLED_LOGITS_ONLY and cfg.task_kind == "causal_lm" and _frozen_head(model)
        self.model.train()

    def _calibration_batches(self):
        """One epoch of training micro-batches from a copy of the stream (the run's position stays)."""
        stream = copy.copy(self.stream)
        for _ in range(stream.batches_per_epoch):
            batch = stream.next().to(self.device)
            yield {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}

    def _build_optimizer(self) -> None:
        cfg = self.cfg
        heads = adapters.adapter_info(self.raw_model)["modules_to_save"] if cfg.method else []
        groups = param_groups(cfg, self.hooks.main_parameters(), heads)
        self.main_params = [p for g in groups for p in g["params"]]
        # Optimizers the method steps itself (SoRA's gates) follow the schedule and are clipped with the rest.
        self.hook_optimizers = self.hooks.scheduled_optimizers(cfg.lr)
        self.main_params += [p for o in self.hook_optimizers for g in o.param_groups for p in g["params"]]
        # Fully trained modules (embeddings, norms, heads) keep their Adam state through a ReLoRA /
        # ReMoRA restart; only the adapter's restarts, as in the reference implementations.
        head_prefixes = tuple(m + "." for m in heads)
        self.kept_on_reset = {id(p) for name, p in self.raw_model.named_parameters() if name.startswith(head_prefixes)}
        self.optimizer = make_optimizer(cfg, groups)
        self.schedule = LRSchedule(cfg, self.schedule_span)
        # A hook optimizer whose warmup_rounding is "down" (official SoRA's gates) gets a schedule of its own.
        own = [o for o in self.hook_optimizers if getattr(o, "warmup_rounding", "up") != "up"]
        self.own_schedules = [(LRSchedule(cfg, self.schedule_span, o.warmup_rounding), o) for o in own]
        self.on_main_schedule = [o for o in self.hook_optimizers if o not in own]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.hooks.begin_training(self.total_steps)

    def _open_log(self) -> None:
        """Fresh log, or the resumed run's log cut back to the checkpoint (later lines get redone)."""
        path = self.out / "train_log.jsonl"
        self.log_file = None
        if self.is_main:
            kept = [e for e in read_log(path) if e["step"] <= self.counters["step"]] if self.resume_from else []
            atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in kept))
            self.log_file = path.open("a")

    # --- checkpoints ---------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        self.counters["wall_time_s"] = self.previous_wall_time + time.perf_counter() - self.started
        rng = [checkpoint.rng_state()]  # one per process: each draws its own dropout masks
        if self.world > 1:
            everyone = [None] * self.world if self.is_main else None
            dist.gather_object(rng[0], everyone, dst=0)
            rng = everyone
        if self.is_main:
            state = {"config_hash": self.config_hash, "counters": self.counters, "world": self.world,
                     "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                     "hooks": self.hooks.state_dict(), "scaler": self.scaler.state_dict(),
                     "data": self.stream.position, "rng": rng}
            checkpoint.save(self.out, self.counters["step"], self.raw_model, self.cfg.method is None, state)
        if self.world > 1:
            dist.barrier()

    def _load_checkpoint(self, path: Path) -> None:
        state = checkpoint.read_state(path)
        if state["world"] != self.world:  # the data position is per process
            raise ValueError(f"{path} was written by {state['world']} process(es), this run has {self.world}; "
                             f"resume with the same number, or start over with --fresh")
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.hooks.load_state_dict(state["hooks"])
        self.scaler.load_state_dict(state["scaler"])
        self.stream.seek(state["data"])
        self.counters = state["counters"]
        self.previous_wall_time = self.counters["wall_time_s"]
        checkpoint.set_rng_state(state["rng"][self.rank])  # last: nothing after it may draw random numbers

    # --- one step ------------------------------------------------------------------------
    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def _loss_sum(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss over the batch's units, logits); units = target tokens or examples."""
        if self.cfg.task_kind == "causal_lm":
            # Shift the labels, not the logits: a sliced logits tensor would be copied whole every step.
            labels = F.pad(batch.labels[:, 1:], (0, 1), value=IGNORE)
            keep = {}
            if self.labelled_logits_only:  # the output head only where some row of the batch has a target
                positions = (labels != IGNORE).any(0).nonzero().squeeze(1)
                keep, labels = {"logits_to_keep": positions}, labels[:, positions]
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **keep).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                                   reduction="sum"), logits
        logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        if self.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1).float(), batch.labels, reduction="sum"), logits
        return F.cross_entropy(logits.float(), batch.labels, reduction="sum"), logits

    def _step_totals(self, loss_sum: torch.Tensor, units: int, tokens: int) -> tuple[float, int]:
        """(mean loss over the step's units, tokens), over all processes."""
        if self.world == 1:
            return (loss_sum / units).item(), tokens
        totals = torch.stack([loss_sum.double(), torch.tensor(float(units), device=loss_sum.device, dtype=torch.double),
                              torch.tensor(float(tokens), device=loss_sum.device, dtype=torch.double)])
        dist.all_reduce(totals)
        return (totals[0] / totals[1]).item(), int(totals[2])

    def _train_step(self) -> dict:
        """Forward/backward over grad_accum micro-batches, then the optimizer step; returns the log entry."""
        cfg, step = self.cfg, self.counters["step"]
        micro = [self.stream.next().to(self.device) for _ in range(cfg.grad_accum)]
        units = sum(b.units for b in micro)
        total = torch.zeros((), device=self.device)
        penalty = None
        for i, batch in enumerate(micro):
            last = i == len(micro) - 1
            with nullcontext() if last or self.world == 1 else self.model.no_sync():
                with self._autocast():
                    loss_sum, _ = self._loss_sum(batch)
                    loss = loss_sum / units  # mean over the whole step's units, however it is split
                    penalty = self.hooks.loss_penalty()
                    if penalty is not None:
                        loss = loss + penalty / len(micro)
                self.scaler.scale(loss).backward()
            total += loss_sum.detach()
        loss, tokens = self._step_totals(total, units, sum(b.tokens for b in micro))
        entry = {"step": step + 1, "loss": loss}
        self.counters["tokens_seen"] += tokens
        if not math.isfinite(entry["loss"]):
            return entry  # the caller stops the run; no update from a non-finite loss
        entry["lr"] = cfg.lr * self.schedule.apply(step, self.optimizer, *self.on_main_schedule)
        for schedule, optimizer in self.own_schedules:
            schedule.apply(step, optimizer)
        if cfg.max_grad_norm:
            for optimizer in (self.optimizer, *self.hook_optimizers):
                self.scaler.unscale_(optimizer)
            entry["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.main_params, cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.counters["step"] = step + 1
        action = self.hooks.after_optimizer_step(step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.hooks.zero_grad()
        if action.get("reset_main_optimizer"):
            reset = [p for g in self.optimizer.param_groups for p in g["params"] if id(p) not in self.kept_on_reset]
            seed = random.Random(f"optimizer-reset:{cfg.seed}:{step + 1}").getrandbits(63)
            reset_optimizer_state(self.optimizer, reset, cfg.optimizer_reset, cfg.optimizer_reset_ratio,
                                  torch.Generator().manual_seed(seed))
        # the lr cycle restarts with the reset unless the method says otherwise (Guitaricet/relora's
        # ReLoRA: the cycle at step kT, the merge and reset after step kT + 1)
        if action.get("restart_schedule", action.get("reset_main_optimizer")):
            self.schedule.restart(step + 1)
        if penalty is not None:
            entry["loss_penalty"] = penalty.detach()
        return entry

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation loss (per target token / example), plus perplexity or accuracy."""
        self.model.eval()
        total, units, correct, examples = 0.0, 0, 0, 0
        for batch in self.eval_data:
            batch = batch.to(self.device)
            with self._autocast():
                loss_sum, logits = self._loss_sum(batch)
            total += loss_sum.item()
            units += batch.units
            if self.cfg.task_kind == "classification" and self.num_labels > 1:
                correct += int((logits.argmax(-1) == batch.labels).sum())
                examples += len(batch.labels)
        self.model.train()
        result = {"eval_loss": total / units}
        if self.cfg.task_kind == "causal_lm":
            result["eval_perplexity"] = math.exp(min(result["eval_loss"], 700.0))
        elif examples:
            result["eval_accuracy"] = correct / examples
        return result

    # --- the loop ------------------------------------------------------------------------
    def run(self, stop_after_steps: int | None = None) -> dict:
        cfg = self.cfg
        first = self.counters["step"]
        bar = tqdm(total=self.total_steps, initial=first, desc="train", dynamic_ncols=True,
                   disable=not (self.is_main and sys.stderr.isatty()))
        try:
            tokens_at_log, time_at_log = self.counters["tokens_seen"], time.perf_counter()
            while self.counters["step"] < self.total_steps:
                if stop_after_steps is not None and self.counters["step"] - first >= stop_after_steps:
                    return {"status": "interrupted", "step": self.counters["step"]}
                t0 = time.perf_counter()
                entry = self._train_step()
                if not math.isfinite(entry["loss"]):
                    return self._finish("diverged", reason=f"loss is {entry['loss']} at step {entry['step']}; "
                                        f"lower lr (now {cfg.lr}) or raise warmup", diverged_step=entry["step"])
                self.counters["last_loss"] = entry["loss"]
                step = self.counters["step"]
                if step % cfg.log_every == 0 or step == self.total_steps:
                    now = time.perf_counter()
                    entry["tokens_per_s"] = (self.counters["tokens_seen"] - tokens_at_log) / max(now - time_at_log, 1e-9)
                    entry["memory_mb"] = memory_mb(self.device)
                    self._log({**entry, **self.hooks.log_stats()})
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", refresh=False)
                self.counters["train_time_s"] += time.perf_counter() - t0
                bar.update(1)
                if cfg.eval_every and step % cfg.eval_every == 0 and self.eval_data:
                    self.counters["last_eval"] = self.evaluate()
                    self._log({"step": step, **self.counters["last_eval"]})
                if step in cfg.snapshot_steps and step < self.total_steps and self.is_main:
                    self._save_weights(self.out / "snapshots" / f"step{step}")
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < self.total_steps:
                    self._save_checkpoint()
                if step % cfg.log_every == 0:
                    tokens_at_log, time_at_log = self.counters["tokens_seen"], time.perf_counter()
            if cfg.eval_at_end and self.eval_data:
                self.counters["last_eval"] = self.evaluate()
                self._log({"step": self.counters["step"], **self.counters["last_eval"]})
            return self._finish("ok")
        except Exception as error:
            if not is_fault(error):  # a fault leaves no summary and keeps the checkpoint: rerun to resume
                self._finish("failed", reason=f"{type(error).__name__}: {error}")
            raise
        finally:
            bar.close()
            if self.log_file:
                self.log_file.close()

    def _log(self, entry: dict) -> None:
        if self.log_file:
            entry = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
            self.log_file.write(json.dumps(entry) + "\n")
            self.log_file.flush()

    def _save_weights(self, directory: Path) -> None:
        """The trained weights: <directory>/adapter, or (full fine-tuning) a model directory."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.cfg.method is None:  # the directory becomes one from_pretrained loads
            save_model_files(self.raw_model, self.tokenizer, directory)
        else:
            adapters.save(self.raw_model, directory / "adapter")

    def _collapse(self) -> dict:
        """Did the run end no better than a model that outputs the uniform distribution (loss ln V over
        a vocabulary of V, ln K over K classes)? Such a run learned nothing: `collapsed` says so, and
        `collapse` why, for the tables and the log; its status stays ok (it is a result)."""
        n = self.num_labels if self.cfg.task_kind == "classification" else getattr(self.raw_model.config, "vocab_size", None)
        if not n or n < 2:  # regression: no uniform output to compare with
            return {}
        uniform = math.log(n)
        losses = {"final loss": self.counters["last_loss"], "eval loss": self.counters["last_eval"].get("eval_loss")}
        losses = {k: v for k, v in losses.items() if v is not None}
        collapsed = bool(losses) and all(v >= uniform * (1 - COLLAPSE_TOLERANCE) for v in losses.values())
        result = {"uniform_loss": uniform, "collapsed": collapsed}
        if collapsed:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
            result["collapse"] = (f"{shown} ≥ ln({n}) = {uniform:.4f}, the loss of uniform output: the model learned "
                                  f"nothing; lower the lr (now {self.cfg.lr}), raise warmup, or check the data")
        return result

    def _finish(self, status: str, **extra) -> dict:
        """Final files: the trained weights (status ok only), then train_summary.json, written last."""
        cfg, out = self.cfg, self.out
        if status == "ok" and self.is_main:
            self._save_weights(out)
        peak, memory_kind = peak_memory_mb(self.device)
        train_time = self.counters["train_time_s"]
        summary = {
            "status": status, **extra,
            "method": cfg.method, "task_kind": cfg.task_kind, "seed": cfg.seed, "config_hash": self.config_hash,
            "trainable_params": num_trainable(cfg, self.raw_model),
            # the adapter alone, without a trained task head (the papers' parameter counts)
            "adapter_params": None if cfg.method is None else adapters.adapter_params(self.raw_model),
            "model_params": sum(p.numel() for p in self.raw_model.parameters()),
            "steps": self.counters["step"], "total_steps": self.total_steps,
            "epochs_seen": self.stream.epoch + self.stream.index / self.stream.batches_per_epoch,
            "tokens_seen": self.counters["tokens_seen"],
            "wall_time_s": self.previous_wall_time + time.perf_counter() - self.started,
            "train_time_s": train_time,
            "tokens_per_s": self.counters["tokens_seen"] / train_time if train_time else None,
            "peak_memory_mb": peak, "memory_kind": memory_kind,
            "final_loss": self.counters["last_loss"], **self.counters["last_eval"],
            "method_stats": self.hooks.log_stats(),
            "resumed_from_step": int(self.resume_from.name.split("_")[1]) if self.resume_from else None,
            **(self._collapse() if status == "ok" else {}),
        }
        if self.is_main:
            atomic_write_json(out / "train_summary.json", summary)
            if status == "ok" and not cfg.keep_checkpoint:
                checkpoint.remove_all(out)
        return summary
