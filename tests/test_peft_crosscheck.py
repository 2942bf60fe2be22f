"""Ours against PEFT's, trained: our LoRA vs PEFT LoRA, our VeRA vs PEFT VeRA and our MiLoRA
`init: principal` (PiSSA) vs PEFT's init_lora_weights="pissa", from the same init, for STEPS AdamW
steps on the same batches. The per-step losses and every layer's ΔW (effective weight − the original
weight) agree within the tolerances below (fp32 on CPU: the two implementations order their matmuls
differently, and PiSSA's SVD may differ in its last bits).
tests/test_adapters_methods.py checks the forward at init; this checks the training dynamics.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_llama

import adapters

peft = pytest.importorskip("peft")
STEPS = 8
TARGETS = ["q_proj", "v_proj", "up_proj"]
# Achieved on CPU fp32 (torch 2.13, peft 0.21.2): LoRA and VeRA bit-identical (0 and 0); PiSSA losses
# identical, ΔW within 1.4e-7.
LOSS_ATOL = 1e-6     # per-step loss, absolute (losses ≈ 4.6)
DELTA_ATOL = 1e-6    # ΔW entries, absolute (|ΔW| up to ~1e-1 after 8 steps at lr 1e-2)
PISSA_DELTA_ATOL = 1e-6


def batches():
    g = torch.Generator().manual_seed(3)
    return [torch.randint(2, 101, (4, 12), generator=g) for _ in range(STEPS)]


def train(model):
    """Per-step losses of STEPS AdamW steps (lr 1e-2) on the fixed batches."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    losses = []
    for ids in batches():
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def ours_delta(model, original):
    merged = adapters.merged_state_dict(model)
    return {n: merged[n + ".weight"] - original[n + ".weight"] for n in adapters.adapted_modules(model)}


@torch.no_grad()
def peft_delta(model, original):
    deltas = {}
    for name, module in model.base_model.model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            weight = module.get_base_layer().weight + module.get_delta_weight("default")
            deltas[name] = weight - original[name + ".weight"]
    return deltas


def compare(ours_losses, peft_losses, ours_d, peft_d, delta_atol):
    assert len(ours_losses) == STEPS
    worst_loss = max(abs(a - b) for a, b in zip(ours_losses, peft_losses))
    assert worst_loss <= LOSS_ATOL, (worst_loss, ours_losses, peft_losses)
    assert set(ours_d) == set(peft_d) and len(ours_d) == 2 * len(TARGETS)
    worst_delta = max((ours_d[n] - peft_d[n]).abs().max().item() for n in ours_d)
    assert worst_delta <= delta_atol, worst_delta
    assert min(d.abs().max().item() for d in ours_d.values()) > 1e-3  # every layer did train
    print(f"worst |Δloss| {worst_loss:.2e}, worst |ΔW ours − ΔW peft| {worst_delta:.2e}")
    return worst_loss, worst_delta


def test_our_lora_trains_as_peft_lora():
    from peft import LoraConfig, get_peft_model

    original = tiny_llama().state_dict()
    ours = adapters.apply(tiny_llama(), "lora", TARGETS, r=4, alpha=8, dropout=0.0)
    theirs = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0))
    with torch.no_grad():  # the same init: our kaiming A, B = 0 in both
        for name, layer in adapters.adapted_modules(ours).items():
            theirs.base_model.model.get_submodule(name).lora_A["default"].weight.copy_(layer.lora_A)
    compare(train(ours), train(theirs), ours_delta(ours, original), peft_delta(theirs, original), DELTA_ATOL)


def test_our_vera_trains_as_peft_vera():
    from peft import VeraConfig, get_peft_model

    original = tiny_llama().state_dict()
    ours = adapters.apply(tiny_llama(), "vera", TARGETS, r=16, dropout=0.0, d_initial=0.1)
    theirs = get_peft_model(tiny_llama(), VeraConfig(r=16, target_modules=TARGETS, vera_dropout=0.0, d_initial=0.1))
    shared = next(iter(adapters.adapted_modules(ours).values())).shared
    with torch.no_grad():  # the same frozen projections; d = 0.1, b = 0 in both
        theirs.base_model.vera_A["default"].copy_(shared.vera_A)
        theirs.base_model.vera_B["default"].copy_(shared.vera_B)
    assert adapters.num_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    compare(train(ours), train(theirs), ours_delta(ours, original), peft_delta(theirs, original), DELTA_ATOL)


def test_our_pissa_trains_as_peft_pissa():
    """MiLoRA init principal (α = r, s = 1) and PEFT's pissa init (lora_alpha = r) split W alike:
    W_res + B A with B A the top-r SVD part; a column's sign may differ, which AdamW carries through."""
    from peft import LoraConfig, get_peft_model

    original = tiny_llama().state_dict()
    ours = adapters.apply(tiny_llama(), "milora", TARGETS, r=4, alpha=4, dropout=0.0, init="principal")
    theirs = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, lora_dropout=0.0,
                                                     init_lora_weights="pissa"))
    at_init_ours, at_init_peft = ours_delta(ours, original), peft_delta(theirs, original)
    assert max(v.abs().max().item() for v in at_init_ours.values()) < 1e-6  # both start at W exactly
    assert max(v.abs().max().item() for v in at_init_peft.values()) < 1e-6
    compare(train(ours), train(theirs), ours_delta(ours, original), peft_delta(theirs, original), PISSA_DELTA_ATOL)
