"""The six methods behind one interface: init, merge, round trips and exports, on real model types."""
import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

import adapters
from adapters._registry import resolve_options
from conftest import MODELS, tiny_gpt2, tiny_llama

# Small options so every method fits 32-wide layers; MoRA r=2 gives r̂ = 12 on 32×32, not a divisor.
VARIANTS = {
    "lora": {"r": 4},
    "mora1": {"r": 2, "mora_type": 1},
    "mora2": {"r": 2, "mora_type": 2},
    "mora3": {"r": 2, "mora_type": 3},
    "mora4": {"r": 2, "mora_type": 4},
    "mora6": {"r": 2, "mora_type": 6},
    "milora": {"r": 4, "alpha": 4},
    "milora_principal": {"r": 4, "alpha": 4, "init": "principal"},
    "sora": {"r": 4},
    "vera": {"r": 48},  # larger than the layers, as in the paper
    "multilora": {"r": 2, "n_modules": 3},
    "multilora_channel": {"r": 2, "n_modules": 2, "scaling": "channel"},
}


def method_of(variant):
    return variant.split("_")[0].rstrip("0123456789")


def randomize(model, std=0.2, seed=3):
    """Give every trainable adapter tensor random values so that ΔW is far from 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            for p in layer.adapter_parameters():
                p.copy_(torch.randn(p.shape, generator=g) * std)


def logits(model, tokens):
    with torch.no_grad():
        return model(tokens).logits


def test_registry_lists_the_six_methods():
    assert adapters.available() == ["lora", "milora", "mora", "multilora", "sora", "vera"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_init_leaves_model_unchanged(variant, arch, tokens):
    model = MODELS[arch]()
    before = logits(model, tokens)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    adapters.apply(model, method_of(variant), "all-linear", **VARIANTS[variant])
    torch.testing.assert_close(logits(model, tokens), before, rtol=0, atol=1e-5)
    # The merged weights equal the original ones: ΔW = 0 relative to the base we were given.
    merged = adapters.merged_state_dict(model)
    assert merged.keys() == base_state.keys()
    for key, value in merged.items():
        torch.testing.assert_close(value, base_state[key], rtol=0, atol=1e-5)
    if method_of(variant) != "milora":  # MiLoRA's own B A is the minor part; W_res + sBA = W0 above
        for layer in adapters.adapted_modules(model).values():
            assert torch.count_nonzero(layer.delta_weight()) == 0


# Shapes: d_in > d_out, d_in < d_out, and d_in not divisible by MoRA's r̂.
LAYER_SHAPES = [(48, 20), (20, 48), (37, 29)]


def make_layer(variant, d_in, d_out, conv1d=False):
    torch.manual_seed(0)
    base = Conv1D(d_out, d_in) if conv1d else nn.Linear(d_in, d_out)
    nn.init.normal_(base.weight)
    method = method_of(variant)
    spec = adapters._registry.get_spec(method)
    opts = resolve_options(method, {**VARIANTS[variant], "dropout": 0.0})
    shared = spec.make_shared([(d_in, d_out)], opts) if spec.make_shared else None
    layer = spec.layer_cls(base, opts, shared=shared)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in layer.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return layer.eval()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=lambda s: f"{s[0]}to{s[1]}")
@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_merge_equals_forward_and_delta_matches(variant, shape, conv1d):
    layer = make_layer(variant, *shape, conv1d=conv1d)
    x = torch.randn(4, 3, shape[0])
    with torch.no_grad():
        unmerged = layer(x)
        base_only = layer.base_layer(x)
        # x ΔWᵀ (ΔW built from the method's own formula) equals the adapter's forward path.
        torch.testing.assert_close(x @ layer.delta_out_in().T, unmerged - base_only, rtol=1e-4, atol=1e-5)
        assert layer.delta_weight().shape == layer.base_layer.weight.shape
        w0 = layer.base_layer.weight.clone()
        layer.merge()
        torch.testing.assert_close(layer(x), unmerged, rtol=1e-4, atol=1e-5)
        layer.unmerge()
        torch.testing.assert_close(layer.base_layer.weight, w0, rtol=0, atol=1e-5)
        torch.testing.assert_close(layer(x), unmerged, rtol=1e-4, atol=1e-5)
    assert (unmerged - base_only).abs().max() > 1e-2  # the update is really there


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", list(MODELS))
def test_save_load_and_exports_reproduce_outputs(variant, arch, tmp_path, tokens):
    method = method_of(variant)
    model = MODELS[arch]()
    targets = "all-linear" if arch in ("llama", "gpt2") else ["query", "value"] if arch == "roberta" else [
        "query_proj", "value_proj"]
    adapters.apply(model, method, targets, **VARIANTS[variant])
    randomize(model)
    expected = logits(model, tokens)

    adapters.save(model, tmp_path / "adapter")
    saved = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert saved == {"adapter.safetensors", "adapter_config.json"}
    reloaded = adapters.load(MODELS[arch](), tmp_path / "adapter")
    torch.testing.assert_close(logits(reloaded, tokens), expected, rtol=0, atol=1e-6)

    adapters.export_merged(model, tmp_path / "merged")
    plain = type(model).from_pretrained(tmp_path / "merged").eval()
    assert not adapters.adapted_modules(plain)
    torch.testing.assert_close(logits(plain, tokens), expected, rtol=1e-4, atol=1e-5)

    if method == "mora":
        with pytest.raises(ValueError, match="export_merged"):
            adapters.export_peft(model, tmp_path / "peft")
        return
    from peft import PeftModel
    if arch in ("roberta", "deberta"):
        return  # sequence classifiers: the head is random per model, PEFT path checked on LMs
    adapters.export_peft(model, tmp_path / "peft")
    peft_model = PeftModel.from_pretrained(MODELS[arch](), tmp_path / "peft").eval()
    torch.testing.assert_close(logits(peft_model, tokens), expected, rtol=1e-4, atol=1e-5)


def test_adapter_files_hold_only_the_methods_tensors(tmp_path):
    from safetensors.torch import load_file
    model = tiny_llama()
    adapters.apply(model, "lora", ["q_proj", "v_proj"], r=4)
    adapters.save(model, tmp_path / "a")
    state = load_file(tmp_path / "a" / "adapter.safetensors")
    assert sum(v.numel() for v in state.values()) == adapters.num_trainable(model) == 2 * 2 * 4 * (32 + 32) - 2 * 4 * 16
    assert all(k.endswith(("lora_A", "lora_B")) for k in state)
    cfg = adapters.read_config(tmp_path / "a")
    assert cfg["method"] == "lora" and cfg["options"]["r"] == 4
    assert cfg["target_modules"] == [f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]


def test_gpt2_conv1d_delta_weight_is_in_the_layers_orientation():
    model = tiny_gpt2()
    adapters.apply(model, "lora", ["c_attn"], r=4)
    randomize(model)
    layer = adapters.adapted_modules(model)["transformer.h.0.attn.c_attn"]
    assert layer.fan_in_fan_out
    assert layer.delta_weight().shape == layer.base_layer.weight.shape == (32, 96)
    torch.testing.assert_close(layer.delta_weight(), layer.delta_out_in().T)


def test_all_linear_skips_output_head_and_classifier():
    names = adapters.find_targets(tiny_llama(), "all-linear")
    assert len(names) == 2 * 7 and not any("lm_head" in n for n in names)
    names = adapters.find_targets(MODELS["roberta"](), "all-linear")
    assert not any(n.startswith("classifier") for n in names) and len(names) == 2 * 6


def test_modules_to_save_are_trainable_and_saved(tmp_path, tokens):
    model = MODELS["roberta"]()
    adapters.apply(model, "lora", ["query", "value"], r=4, modules_to_save=["classifier"])
    head = sum(p.numel() for p in model.classifier.parameters())
    assert adapters.num_trainable(model) == 4 * 4 * (32 + 32) + head
    randomize(model)
    with torch.no_grad():
        model.classifier.out_proj.bias.add_(1.0)
    adapters.save(model, tmp_path / "a")
    reloaded = adapters.load(MODELS["roberta"](), tmp_path / "a")  # head as initialised: load restores ours
    torch.testing.assert_close(logits(reloaded, tokens), logits(model, tokens), rtol=0, atol=1e-6)


def test_only_adapter_parameters_are_trainable():
    model = tiny_llama()
    adapters.apply(model, "mora", "all-linear", r=2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("mora_M") for n in trainable)
    assert adapters.num_trainable(model) == sum(p.numel() for p in model.parameters() if p.requires_grad)
