"""What the trainer costs on top of a bare PyTorch loop, and how long the tiny base model takes.

    python benchmarks/trainer_overhead.py [--steps 40 --rounds 3 --threads 2] [--skip-pretrain]

1. Trainer vs bare loop: the same tiny-profile-sized LLaMA (hidden 128, 4 layers, vocab 2048),
   the same LoRA (r=8, all-linear), the same packed batches (16 × 128 tokens). The bare loop is
   forward(labels=) → backward → AdamW step → zero_grad; the trainer adds what a run needs (masked
   loss, lr schedule, clipping, hooks, per-step log line with loss.item(), tokens/s and memory).
   Rounds alternate trainer / bare so machine noise hits both; medians of tokens/s are printed
   side by side. Target: trainer ≤ 1.1× the bare loop's time per token.
2. The tiny base model: `training.base_model` with config/base_model/tiny.yaml, timed end to end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

import adapters  # noqa: E402
from training import train  # noqa: E402
from training.base_model import build, train_tokenizer  # noqa: E402
from training.data import BatchStream, encode_causal, pack  # noqa: E402

SEQ, BATCH = 128, 16


def make_model_and_data(work: Path) -> tuple[Path, Path]:
    """A randomly initialised tiny-profile LLaMA + tokenizer, and the corpus as causal-LM records."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks.corpus import general_corpus
    docs = general_corpus(0, 4000)
    tokenizer = train_tokenizer(docs, vocab_size=2048)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=352, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=SEQ,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    data = work / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"id": str(i), "prompt": "", "target": d}) + "\n"
                                              for i, d in enumerate(docs)))
    return work / "model", data


def run_config(model: Path, data: Path, steps: int, threads: int) -> dict:
    return {"model": str(model), "data_dir": str(data), "method": "lora", "method_options": {"r": 8, "dropout": 0.0},
            "seq_len": SEQ, "batch_size": BATCH, "pack": True, "max_steps": steps, "lr": 1e-3, "warmup_steps": 5,
            "threads": threads, "log_every": 1, "eval_at_end": False}


def bare_loop_tokens_per_s(model_dir: Path, data: Path, steps: int) -> float:
    """The reference: the same model, adapter, batches and AdamW, nothing else."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    stream = BatchStream(pack(encode_causal(records, tok, SEQ, True), SEQ), BATCH, tok.pad_token_id, seed=0)
    torch.manual_seed(0)
    model = adapters.apply(AutoModelForCausalLM.from_pretrained(model_dir), "lora", "all-linear", r=8, dropout=0.0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tokens, elapsed = 0, 0.0
    for _ in range(steps):
        start = time.perf_counter()
        batch = stream.next()
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed += time.perf_counter() - start
        tokens += batch.tokens
    return tokens / elapsed


def overhead(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, data = make_model_and_data(work)
        torch.set_num_threads(args.threads)
        trainer, bare = [], []
        for r in range(args.rounds):
            summary = train(run_config(model_dir, data, args.steps, args.threads), work / f"run{r}")
            trainer.append(summary["tokens_per_s"])
            bare.append(bare_loop_tokens_per_s(model_dir, data, args.steps))
            print(f"round {r}: trainer {trainer[-1]:8.0f} tok/s   bare loop {bare[-1]:8.0f} tok/s", flush=True)
    t, b = statistics.median(trainer), statistics.median(bare)
    print(f"\n{'':24}{'tokens/s (median)':>18}")
    print(f"{'bare PyTorch loop':24}{b:18.0f}")
    print(f"{'training.train':24}{t:18.0f}")
    print(f"trainer time per token / bare loop's: {b / t:.3f}x (target ≤ 1.1x)"
          f"   [{args.steps} steps × {BATCH}×{SEQ} tokens, LoRA r=8 all-linear, {args.threads} threads]")


def pretrain_time(args) -> None:
    config = yaml.safe_load((ROOT / "config" / "base_model" / "tiny.yaml").read_text())
    config["train"]["threads"] = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = build(config, tmp)
        wall = time.perf_counter() - start
    print(f"\ntiny base model (config/base_model/tiny.yaml): {wall:.1f} s end to end, "
          f"{summary['train_time_s']:.1f} s in training steps, {summary['tokens_per_s']:.0f} tok/s, "
          f"{summary['tokens_seen']} tokens, validation perplexity {summary['eval_perplexity']:.2f}, "
          f"{summary['trainable_params']:,} parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("LORABENCH_THREADS", "2")))
    parser.add_argument("--skip-pretrain", action="store_true")
    args = parser.parse_args()
    overhead(args)
    if not args.skip_pretrain:
        pretrain_time(args)


if __name__ == "__main__":
    main()
