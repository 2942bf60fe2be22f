"""Train-step and merged-inference speed of every method, relative to PEFT's LoRA, in one process.

    python benchmarks/adapters_speed.py [--hidden 256 --layers 4 --seq 128 --batch 8 --r 8 --repeats 7]
                                        [--out benchmarks/results/adapters_speed_cpu]   # + .json and .md

`--out` writes the measurement (setup, machine, commit, one row per method) as JSON and the table
the README's Performance section quotes as Markdown; tests/test_readme.py checks the README
against that committed file.

A small LLaMA built from config, every linear layer adapted (all-linear). Each contender gets
its own model copy; timings are taken in interleaved rounds (A B C ... A B C ...) so that
machine noise hits every method alike, and the median per method is reported as a ratio to
PEFT LoRA (train step = forward + backward + AdamW step) or to the bare base (merged inference).
Peak memory is the extra memory the train step allocates (CPU: tracemalloc-free estimate from
the autograd-saved tensors is unreliable, so we report torch's CUDA peak on GPU and RSS growth on CPU).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import psutil
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import adapters

TARGETS = {"lora": 1.05, "vera": 1.15, "sora": 1.15, "milora": 1.15, "multilora": 1.15, "mora1": 1.2, "mora6": 2.0}


def build_base(args) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=2048, hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                      num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                      num_key_value_heads=max(1, args.hidden // 64), max_position_embeddings=args.seq)
    return LlamaForCausalLM(cfg)


def contenders(base, r):
    """name -> adapted model; PEFT LoRA is the reference."""
    from peft import LoraConfig, get_peft_model
    models = {"peft_lora": get_peft_model(copy.deepcopy(base), LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear"))}
    ours = {"lora": ("lora", {}), "mora1": ("mora", {"mora_type": 1}), "mora6": ("mora", {"mora_type": 6}),
            "milora": ("milora", {}), "sora": ("sora", {}), "vera": ("vera", {}),
            "multilora": ("multilora", {"r": r // 2, "n_modules": 2})}
    for name, (method, extra) in ours.items():
        options = {"r": r, "dropout": 0.0, **extra}
        models[name] = adapters.apply(copy.deepcopy(base), method, "all-linear", **options)
    return models


def time_train_step(model, optimizer, hooks, tokens) -> float:
    start = time.perf_counter()
    loss = model(tokens, labels=tokens).loss
    if hooks is not None and (penalty := hooks.loss_penalty()) is not None:
        loss = loss + penalty
    optimizer.zero_grad(set_to_none=True)
    if hooks is not None:
        hooks.zero_grad()
    loss.backward()
    optimizer.step()
    if hooks is not None:
        hooks.after_optimizer_step(1)
    if tokens.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def time_inference(model, tokens) -> float:
    start = time.perf_counter()
    model(tokens)
    if tokens.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("LORABENCH_THREADS", "2")))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16: bf16 base weights, fp32 trainable tensors, steps under bf16 autocast "
                             "(as the trainer's precision bf16 on a GPU)")
    parser.add_argument("--out", help="write OUT.json (the measurement) and OUT.md (the README's table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    half = args.dtype == "bfloat16"
    base = build_base(args).to(device, dtype=torch.bfloat16 if half else torch.float32)
    models = {n: m.to(device).train() for n, m in contenders(base, args.r).items()}
    if half:  # as the trainer: trainable tensors in fp32, the frozen base in bf16
        for model in models.values():
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=half)
    tokens = torch.randint(0, 2048, (args.batch, args.seq), device=device)
    setups = {}
    for name, model in models.items():
        hooks = adapters.training_hooks(model) if name != "peft_lora" else None
        if hooks is not None:
            hooks.begin_training(args.repeats + 2)
            hooks.scheduled_optimizers(1e-4)   # SoRA's gates: at the main lr
        params = [p for _, p in hooks.main_parameters()] if hooks else [p for p in model.parameters() if p.requires_grad]
        setups[name] = (torch.optim.AdamW(params, lr=1e-4), hooks)

    proc = psutil.Process()
    train_times = {n: [] for n in models}
    peak = {}
    for round_ in range(args.repeats + 1):            # round 0 warms up and is dropped
        for name, model in models.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rss0 = proc.memory_info().rss
            with autocast:
                t = time_train_step(model, *setups[name], tokens)
            if round_:
                train_times[name].append(t)
            peak[name] = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                          else max(peak.get(name, 0), proc.memory_info().rss - rss0))

    base.eval()
    merged = {"base": base}
    for name, model in models.items():
        if name != "peft_lora":
            model.eval()
            adapters.merge(model)
            merged[name] = model
    infer_times = {n: [] for n in merged}
    for round_ in range(args.repeats + 1):
        for name, model in merged.items():
            with autocast:
                t = time_inference(model, tokens)
            if round_:
                infer_times[name].append(t)

    ref = statistics.median(train_times["peft_lora"])
    base_inf = statistics.median(infer_times["base"])
    rows = []
    for name in models:
        step = statistics.median(train_times[name])
        rows.append({"method": name, "trainable": sum(p.numel() for p in models[name].parameters() if p.requires_grad),
                     "step_ms": round(step * 1e3, 1), "vs_peft_lora": round(step / ref, 2),
                     "target": TARGETS.get(name),
                     "merged_inference_vs_base": (round(statistics.median(infer_times[name]) / base_inf, 2)
                                                  if name in infer_times else None),
                     "peak_mib": round(peak[name] / 2**20, 1)})
    setup = (f"LLaMA hidden={args.hidden} layers={args.layers}, all-linear, r={args.r}, batch {args.batch}x{args.seq}, "
             f"{args.device} x{args.threads} threads, median of {args.repeats}"
             + (f", {args.dtype}" if half else ""))
    print(setup)
    print(f"{'method':<10} {'trainable':>10} {'step ms':>8} {'vs PEFT':>8} {'target':>7} {'merged inf':>10} {'peak MiB':>9}")
    for row in rows:
        inf = "-" if row["merged_inference_vs_base"] is None else f"{row['merged_inference_vs_base']:.2f}x"
        target = "ref" if row["target"] is None else f"<={row['target']:.2f}"
        print(f"{row['method']:<10} {row['trainable']:>10,} {row['step_ms']:>8.1f} {row['vs_peft_lora']:>7.2f}x "
              f"{target:>7} {inf:>10} {row['peak_mib']:>9.1f}")
    if args.out:
        write_result(args, setup, rows)


NAMES = {"peft_lora": "PEFT LoRA", "lora": "LoRA", "mora1": "MoRA type 1", "mora6": "MoRA type 6",
         "milora": "MiLoRA", "sora": "SoRA", "vera": "VeRA", "multilora": "MultiLoRA"}


def markdown_table(rows: list[dict]) -> str:
    """The README's Performance table, from the measured rows."""
    lines = ["| method | trainable | train step vs PEFT LoRA | target | merged inference vs base |",
             "|---|---|---|---|---|"]
    for row in rows:
        step = (f"1.00× ({row['step_ms']:.0f} ms)" if row["target"] is None and row["method"] == "peft_lora"
                else f"{row['vs_peft_lora']:.2f}×")
        target = "ref" if row["target"] is None else f"≤ {row['target']:.2f}×"
        inf = "–" if row["merged_inference_vs_base"] is None else f"{row['merged_inference_vs_base']:.2f}×"
        lines.append(f"| {NAMES.get(row['method'], row['method'])} | {row['trainable']:,} | {step} | {target} | {inf} |")
    return "\n".join(lines) + "\n"


def write_result(args, setup: str, rows: list[dict]) -> None:
    from training.files import cpu_model, git_state

    state = git_state()
    commit, dirty = state["git_commit"], state["git_dirty"]
    cpu = cpu_model()
    result = {"setup": setup, "args": vars(args), "git_commit": commit, "git_dirty": dirty, "cpu": cpu,
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(args.out + ".md", "w") as f:
        f.write(f"{setup}; commit {(commit or '?')[:7]}{' with uncommitted changes' if dirty else ''}, {cpu}\n\n"
                + markdown_table(rows))


if __name__ == "__main__":
    main()
