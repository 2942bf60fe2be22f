"""What computing the output head only at target positions saves in a tiny-profile train job.

    python benchmarks/labelled_logits.py [--steps 30 --rounds 3 --tasks e2e,commonsense,math,instruct,uuid]

The trainer runs the LM head (and its softmax) only at the positions where some row of the batch
has a target (training.trainer.LABELLED_LOGITS_ONLY); the trained weights are the same bits either
way (tests/test_training.py). Here the same run, a tiny-profile-sized LLaMA (hidden 128, 4 layers,
vocab 2048) with LoRA r=8 on each task's generated data at the tiny profile's seq_len 128 and batch
16, trains with the cut and without it in alternating rounds in one process; the medians of the
training loop's time are printed side by side with their ratio and the share of positions kept.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

import tasks  # noqa: E402
import training.trainer as trainer  # noqa: E402
from trainer_overhead import make_model_and_data  # noqa: E402
from training import train  # noqa: E402
from training.data import IGNORE, BatchStream, encode_causal, read_jsonl  # noqa: E402


def kept_share(model_dir: Path, task_dir: Path, seq_len: int, batch: int, steps: int) -> float:
    """Positions with a target in some row of the batch / all positions, over the run's batches."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    stream = BatchStream(encode_causal(read_jsonl(task_dir / "train.jsonl"), tok, seq_len, "auto"),
                         batch, tok.pad_token_id, seed=0)
    kept = total = 0
    for _ in range(steps):
        labels = stream.next().labels[:, 1:]
        kept += int((labels != IGNORE).any(0).sum())
        total += labels.shape[1] + 1  # the last position has no next token: never kept
    return kept / total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", default="e2e,commonsense,math,instruct,uuid")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, _ = make_model_and_data(work)
        for name in args.tasks.split(","):
            task_dir = work / "tasks" / name
            tasks.write_splits(tasks.get(name).generate_tiny(1234, None), task_dir)
            config = {"model": str(model_dir), "data_dir": str(task_dir), "method": "lora",
                      "method_options": {"r": 8, "dropout": 0.0}, "seq_len": 128, "batch_size": 16,
                      "max_steps": args.steps, "lr": 1e-3, "warmup_steps": 2, "threads": args.threads,
                      "log_every": 10, "eval_at_end": False}
            times = {True: [], False: []}
            for r in range(args.rounds):
                for cut in (True, False):
                    trainer.LABELLED_LOGITS_ONLY = cut
                    summary = train(config, work / "runs" / f"{name}-{cut}-{r}")
                    times[cut].append(summary["train_time_s"])
            trainer.LABELLED_LOGITS_ONLY = True
            whole, cut = statistics.median(times[False]), statistics.median(times[True])
            share = kept_share(model_dir, task_dir, 128, 16, args.steps)
            rows.append((name, share, whole, cut))
            print(f"{name}: every position {whole:.2f} s, target positions {cut:.2f} s", flush=True)
    print(f"\n{args.steps} steps, LoRA r=8, batch 16, seq_len ≤ 128, {args.threads} thread(s), "
          f"median of {args.rounds} alternating rounds\n")
    print("| task | positions kept | head at every position (s) | at target positions (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, share, whole, cut in rows:
        print(f"| {name} | {share:.0%} | {whole:.2f} | {cut:.2f} | {cut / whole:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
