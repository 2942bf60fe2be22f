"""Method-specific numbers: the spec's worked parameter counts, PEFT equivalence, SoRA, MiLoRA, ReMoRA, errors."""
import math
import sys
import textwrap

import pytest
import torch
from torch import nn

import adapters
from adapters import mora, sora
from adapters._registry import resolve_options
from conftest import tiny_llama


def count(method, shapes, targets=None, **options):
    """Trainable parameters of `method` on meta-device linear layers of the given (d_in, d_out) shapes."""
    with torch.device("meta"):
        model = nn.ModuleDict({f"l{i}": nn.Linear(d_in, d_out, bias=False) for i, (d_in, d_out) in enumerate(shapes)})
    adapters.apply(model, method, targets or list(model.keys()), **options)
    return adapters.num_trainable(model)


# --- the spec's worked parameter counts, built from layer shapes ----------------------------------
def test_lora_and_mora_counts_on_llama7b_shapes():
    assert count("lora", [(4096, 4096)], r=8) == 65_536
    assert count("mora", [(4096, 4096)], r=8, mora_type=1) == 65_536
    assert count("mora", [(4096, 4096)], r=8, mora_type=6) == 65_536
    assert count("mora", [(4096, 11008)], r=8, mora_type=6) == 121_104   # r̂ = 348
    assert count("lora", [(4096, 11008)], r=8) == 120_832


def test_vera_counts_on_roberta_query_value():
    base = [(768, 768)] * 24      # RoBERTa-base: 12 layers × query, value
    large = [(1024, 1024)] * 48   # RoBERTa-large: 24 layers × query, value
    assert count("vera", base, r=1024) == 43_008
    assert count("vera", large, r=256) == 61_440


def test_sora_count_on_debertav3_base_all_six_linears():
    from transformers import DebertaV2Config, DebertaV2Model
    with torch.device("meta"):
        model = DebertaV2Model(DebertaV2Config(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                               num_attention_heads=12, vocab_size=128))
    adapters.apply(model, "sora", ["query_proj", "key_proj", "value_proj", "attention.output.dense",
                                   "intermediate.dense", "output.dense"], r=8)
    assert len(adapters.adapted_modules(model)) == 72
    assert adapters.num_trainable(model) == 1_327_104 + 576


def test_multilora_counts():
    assert count("multilora", [(4096, 4096)], r=2, n_modules=4, scaling="scalar") == 4 * 2 * 8192 + 4
    assert count("multilora", [(4096, 4096)], r=2, n_modules=4, scaling="channel") == 4 * 2 * 8192 + 4 * 4096


# --- PEFT equivalence given the same weights -----------------------------------------------------
def test_lora_matches_peft_lora(tokens):
    from peft import LoraConfig, get_peft_model
    ours = adapters.apply(tiny_llama(), "lora", ["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0)
    theirs = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                     lora_dropout=0.0)).eval()
    assert adapters.num_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, layer in adapters.adapted_modules(ours).items():
            peft_layer = theirs.base_model.model.get_submodule(name)
            layer.lora_B.normal_(generator=g)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
        torch.testing.assert_close(ours(tokens).logits, theirs(tokens).logits, rtol=1e-5, atol=1e-6)


def test_vera_matches_peft_vera(tokens):
    from peft import VeraConfig, get_peft_model
    ours = adapters.apply(tiny_llama(), "vera", ["q_proj", "v_proj", "up_proj"], r=16, dropout=0.0)
    theirs = get_peft_model(tiny_llama(), VeraConfig(r=16, target_modules=["q_proj", "v_proj", "up_proj"],
                                                     vera_dropout=0.0, d_initial=0.1)).eval()
    assert adapters.num_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    layers = adapters.adapted_modules(ours)
    shared = next(iter(layers.values())).shared
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        theirs.base_model.vera_A["default"].copy_(shared.vera_A)
        theirs.base_model.vera_B["default"].copy_(shared.vera_B)
        for name, layer in layers.items():
            peft_layer = theirs.base_model.model.get_submodule(name)
            layer.vera_lambda_b.normal_(generator=g)
            layer.vera_lambda_d.normal_(generator=g)
            peft_layer.vera_lambda_b["default"].copy_(layer.vera_lambda_b)
            peft_layer.vera_lambda_d["default"].copy_(layer.vera_lambda_d)
        torch.testing.assert_close(ours(tokens).logits, theirs(tokens).logits, rtol=1e-5, atol=1e-6)


def test_vera_projections_are_shared_and_seeded():
    model = adapters.apply(tiny_llama(), "vera", "all-linear", r=16)
    layers = list(adapters.adapted_modules(model).values())
    assert len({id(layer.shared) for layer in layers}) == 1
    # maxima over the targeted layers: d_in up to the MLP's 50, d_out up to 50
    assert layers[0].shared.vera_A.shape == (16, 50) and layers[0].shared.vera_B.shape == (50, 16)
    bound = (6 / 50) ** 0.5
    assert layers[0].shared.vera_A.abs().max() <= bound
    again = adapters.apply(tiny_llama(), "vera", "all-linear", r=16)
    torch.testing.assert_close(next(iter(adapters.adapted_modules(again).values())).shared.vera_A,
                               layers[0].shared.vera_A, rtol=0, atol=0)
    model.double()
    assert len({layer.shared.vera_A.data_ptr() for layer in layers}) == 1  # still one tensor after .to()


# --- MiLoRA -------------------------------------------------------------------------------------------
def test_milora_tiny_check_diag_531():
    base = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.diag(torch.tensor([5.0, 3.0, 1.0])))
    model = nn.ModuleDict({"proj": base})
    adapters.apply(model, "milora", ["proj"], r=1, alpha=1, dropout=0.0)
    layer = model["proj"]
    torch.testing.assert_close(layer.delta_weight(), torch.diag(torch.tensor([0.0, 0.0, 1.0])))
    torch.testing.assert_close(layer.base_layer.weight, torch.diag(torch.tensor([5.0, 3.0, 0.0])))


@pytest.mark.parametrize("init,expected", [("minor", [1.0]), ("principal", [5.0])])
def test_milora_init_picks_the_singular_components(init, expected):
    base = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.diag(torch.tensor([5.0, 3.0, 1.0])))
    model = nn.ModuleDict({"proj": base})
    adapters.apply(model, "milora", ["proj"], r=1, alpha=2, dropout=0.0, init=init)
    s = torch.linalg.svdvals(model["proj"].delta_weight())
    torch.testing.assert_close(s[:1], torch.tensor(expected))


# --- SoRA -------------------------------------------------------------------------------------------
def test_proximal_step_zeroes_small_gates_and_shrinks_the_rest():
    xi = 3e-4
    g = torch.tensor([0.5, -0.2, 1e-4, -3e-4, 3e-4, 5e-4, 0.0])
    sora.soft_threshold_(g, xi, mode="textbook")
    expected = torch.tensor([0.5 - xi, -0.2 + xi, 0.0, 0.0, 0.0, 5e-4 - xi, 0.0])
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-9)
    ref = torch.tensor([0.5, 5e-4, -7e-4])
    sora.soft_threshold_(ref, xi, mode="reference")      # zeroes below 2ξ = 6e-4
    torch.testing.assert_close(ref, torch.tensor([0.5 - xi, 0.0, -7e-4 + xi]), rtol=0, atol=1e-9)


def test_xi_schedules_in_run_rounds():
    """round_mode in_run: 3 rounds of 30 steps; the shapes carry the official names (test_sora_official)."""
    opts = lambda kind: resolve_options("sora", dict(xi=1e-4, xi_max=1e-2, xi_schedule=kind, xi_rounds=3,
                                                     round_mode="in_run"))
    values = lambda kind: [sora.xi_at(s, 90, opts(kind)) for s in (1, 30, 31, 60, 61, 90)]
    assert values("linear") == pytest.approx([1e-4, 1e-4, 5.05e-3, 5.05e-3, 1e-2, 1e-2])
    assert values("exp_linear") == pytest.approx([1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2])   # geometric
    mid = math.log((math.exp(1e-4) + math.exp(1e-2)) / 2)                             # ≈ linear
    assert values("log_linear") == pytest.approx([1e-4, 1e-4, mid, mid, 1e-2, 1e-2])
    assert values("constant") == pytest.approx([1e-4] * 6)


def test_sora_prune_keeps_outputs_and_exports_per_module_ranks(tokens, tmp_path):
    model = adapters.apply(tiny_llama(), "sora", ["q_proj", "v_proj"], r=8, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    layers = sora.sora_layers(model)
    with torch.no_grad():
        for i, layer in enumerate(layers.values()):
            layer.lora_B.normal_(generator=g)
            layer.sora_gate[: i + 1] = 0.0           # module i loses i+1 ranks
    before = model(tokens).logits.detach()
    # q_proj 32→32, v_proj 32→16 (two KV heads): r_max (d_in + d_out + 1) per module
    assert sora.param_counts(model)["initial"] == 2 * 8 * (65 + 49)
    ranks = sora.prune(model)
    assert list(ranks.values()) == [7, 6, 5, 4]
    assert sora.param_counts(model)["retained"] == adapters.num_trainable(model) == (7 + 5) * 65 + (6 + 4) * 49
    torch.testing.assert_close(model(tokens).logits, before, rtol=1e-5, atol=1e-6)
    adapters.save(model, tmp_path / "pruned")
    reloaded = adapters.load(tiny_llama(), tmp_path / "pruned")
    torch.testing.assert_close(reloaded(tokens).logits, before, rtol=1e-5, atol=1e-6)
    adapters.export_peft(model, tmp_path / "peft")
    from peft import PeftModel
    peft_model = PeftModel.from_pretrained(tiny_llama(), tmp_path / "peft").eval()
    torch.testing.assert_close(peft_model(tokens).logits, before, rtol=1e-4, atol=1e-5)


def test_sora_hooks_sparsify_gates_on_a_toy_problem():
    torch.manual_seed(0)
    model = nn.ModuleDict({"proj": nn.Linear(16, 16)})
    adapters.apply(model, "sora", ["proj"], r=8, dropout=0.0, xi=5e-3, xi_max=5e-3, gate_lr=1e-2, l1_lambda=0.1)
    hooks = adapters.training_hooks(model)
    hooks.begin_training(200)
    main_names = [n for n, _ in hooks.main_parameters()]
    assert main_names == ["proj.lora_A", "proj.lora_B"]
    opt = torch.optim.AdamW([p for _, p in hooks.main_parameters()], lr=1e-2)
    target = torch.randn(16, 16) @ torch.diag(torch.tensor([1.0] + [0.0] * 15)) * 0.5  # rank-1 target update
    x = torch.randn(64, 16)
    y = model["proj"].base_layer(x) + x @ target.T
    ranks = []
    for step in range(1, 201):
        loss = ((model["proj"](x) - y) ** 2).mean() + hooks.loss_penalty()
        opt.zero_grad()
        hooks.zero_grad()
        loss.backward()
        opt.step()
        hooks.after_optimizer_step(step)
        ranks.append(hooks.log_stats()["live_rank_total"])
    assert ranks[0] == 8 and ranks[-1] < 8
    assert hooks.log_stats()["live_rank"] == {"proj": ranks[-1]}


# --- MoRA ------------------------------------------------------------------------------------------
def test_mora_square_rank_rounds_and_type6_is_even():
    assert mora.square_rank(4096, 11008, 8, 1) == 348
    assert mora.square_rank(32, 32, 2, 1) == 11      # sqrt(128) = 11.31
    assert mora.square_rank(32, 32, 2, 6) == 10      # forced even
    assert mora.square_rank(20, 48, 2, 1) == 12      # sqrt(136) = 11.66 rounds up


def test_mora_type6_quirk_only_first_inputs_matter_when_d_in_exceeds_d_out():
    model = nn.ModuleDict({"proj": nn.Linear(64, 16)})
    adapters.apply(model, "mora", ["proj"], r=1, mora_type=6, dropout=0.0)   # r̂ = 8 (sqrt 80 = 8.9 → 9 → 8)
    with torch.no_grad():
        model["proj"].mora_M.normal_()
    delta = model["proj"].delta_weight()
    assert torch.count_nonzero(delta[:, 16:]) == 0 and torch.count_nonzero(delta[:, :16]) > 0


def test_remora_merge_and_switch_keeps_outputs_and_cycles_types(tokens, tmp_path):
    model = adapters.apply(tiny_llama(), "mora", "all-linear", r=2, mora_type=1, remora_every=2, dropout=0.0)
    hooks = adapters.training_hooks(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in adapters.adapted_modules(model).values():
            layer.mora_M.normal_(generator=g)
    before = model(tokens).logits.detach()
    assert hooks.after_optimizer_step(1) == {}
    assert hooks.after_optimizer_step(2) == {"reset_main_optimizer": True}
    layers = list(adapters.adapted_modules(model).values())
    assert all(layer.mora_type == 2 and torch.count_nonzero(layer.mora_M) == 0 for layer in layers)
    torch.testing.assert_close(model(tokens).logits, before, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        for layer in layers:
            layer.mora_M.normal_(generator=g)
    after = model(tokens).logits.detach()
    adapters.save(model, tmp_path / "remora")
    reloaded = adapters.load(tiny_llama(), tmp_path / "remora")
    assert all(layer.mora_type == 2 for layer in adapters.adapted_modules(reloaded).values())
    torch.testing.assert_close(reloaded(tokens).logits, after, rtol=1e-5, atol=1e-5)
    for _ in range(3):
        mora.merge_and_switch(model)
    assert layers[0].mora_type == 1  # 2 → 3 → 4 → 1


# --- bad input: ValueError naming the fix -------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(method="nora"), r"unknown method 'nora'; known methods: lora, milora, mora, multilora, sora, vera"),
    (dict(method="lora", r=0), r"r must be a positive integer"),
    (dict(method="lora", r=-3), r"r must be a positive integer"),
    (dict(method="lora", r=64), r"r=64 exceeds the layer's rank .*use r ≤ 32"),
    (dict(method="mora", r=64), r"r̂=.* > min\(d_in, d_out\)=32; use r ≤ \d+"),
    (dict(method="multilora", r=16, n_modules=4), r"n_modules·r=64 exceeds"),
    (dict(method="lora", target_modules=["qproj"]), r"match no layer .*q_proj"),
    (dict(method="lora", target_modules=["mlp"]), r"is a LlamaMLP, not a linear layer"),
    (dict(method="lora", mora_type=6), r"option 'mora_type' belongs to method mora, not 'lora'"),
    (dict(method="vera", alpha=3), r"option 'alpha' belongs to method lora / milora / multilora / sora"),
    (dict(method="lora", rank=4), r"unknown option 'rank' for method 'lora'; it takes: alpha, dropout, r"),
    (dict(method="mora", mora_type=5), r"mora_type must be one of \[1, 2, 3, 4, 6\]"),
    (dict(method="milora", init="pissa"), r"init must be one of"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = kwargs.pop("method")
    targets = kwargs.pop("target_modules", "all-linear")
    with pytest.raises(ValueError, match=match):
        adapters.apply(model, method, targets, **kwargs)
    # nothing was changed by the failed call
    assert not adapters.adapted_modules(model) and not hasattr(model, "lorabench_adapter")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_applying_twice_and_saving_merged_are_errors(tmp_path):
    model = adapters.apply(tiny_llama(), "lora", ["q_proj"], r=2)
    with pytest.raises(ValueError, match="already carries a lora adapter"):
        adapters.apply(model, "lora", ["v_proj"], r=2)
    adapters.merge(model)
    with pytest.raises(ValueError, match="unmerge"):
        adapters.save(model, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="not an adapter directory"):
        adapters.load(tiny_llama(), tmp_path / "nothing")


# --- adding a method touches no file of adapters/ ---------------------------------------------------
def test_a_method_defined_outside_the_package_registers_from_its_yaml(tmp_path, monkeypatch, tokens):
    (tmp_path / "scaled_identity.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch
        from torch import nn
        from adapters import AdaptedLayer, register

        @dataclass
        class Options:
            gain_init: float

        @register("scaled_identity", Options)
        class ScaledIdentity(AdaptedLayer):
            """Δy = c · x[:d_out] (square layers): one trainable scalar per layer."""
            def __init__(self, base_layer, options, shared=None, init_weights=True):
                super().__init__(base_layer, options)
                self.c = nn.Parameter(torch.tensor(float(options.gain_init)))
            def adapter_forward(self, x):
                return self.c * x
            def delta_out_in(self):
                return self.c * torch.eye(self.out_features, self.in_features)
    '''))
    (tmp_path / "scaled_identity.yaml").write_text("module: scaled_identity\noptions:\n  gain_init: 0.0\n")
    # the env var alone: the registry puts the folder on sys.path (restored after the test)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("LORABENCH_METHOD_DIRS", str(tmp_path))
    monkeypatch.setattr(adapters._registry, "_discovered", False)
    try:
        assert "scaled_identity" in adapters.available() and str(tmp_path.resolve()) in sys.path
        model = adapters.apply(tiny_llama(), "scaled_identity", ["o_proj"], gain_init=0.5)
        assert adapters.num_trainable(model) == 2
        unmerged = model(tokens).logits
        adapters.merge(model)
        torch.testing.assert_close(model(tokens).logits, unmerged, rtol=1e-5, atol=1e-5)
    finally:
        adapters._registry._METHODS.pop("scaled_identity", None)
        sys.modules.pop("scaled_identity", None)


def test_variants_come_from_the_method_yamls():
    found = adapters.variants()
    assert set(found) == {"lora", "mora1", "mora6", "milora", "pissa", "sora", "vera", "multilora"}
    assert found["mora6"] == {"method": "mora", "options": {"mora_type": 6}, "train": {}}
    assert found["pissa"]["options"] == {"init": "principal"}
