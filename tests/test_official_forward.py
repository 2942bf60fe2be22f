"""MoRA's and MultiLoRA's forward passes (and merged ΔW) against numbers from reference code.

MoRA — official code: kongds/MoRA @ de5df312cee84e86508aa0e3c9a2fc271487c2e9,
peft-mora/src/peft/tuners/lora/layer.py: `LoraLayer.update_layer` (r̂ = int(√((d_in + d_out) r) + 0.5),
even for type 6; M = lora_A, zeros), `LoraLayer._apply_mora` (the forward, types 1, 2, 3, 4, 6) and
`Linear.get_delta_weight` (the merged ΔW). No α: the official forward ignores `scaling`.

MultiLoRA — the paper's authors (Wang et al. 2023, arXiv 2311.11501) released no code; the closest
public implementation is the MultiLoRA baseline of MTL-LoRA (Yang et al. 2024, arXiv 2410.09437):
pUmpKin-Co/MTL-LoRA @ 7848a7057f8ee33485a42da4a3b7ed05370638a8, src/adapter/multilora.py
(`MultiLoRALinear`, with `LoRALayer` from src/adapter/base.py). It is the only public code found that
implements this paper's method — n parallel LoRA modules, B Kaiming-uniform like A (not zero), a
learnable scaling initialised to zero — and is what MTL-LoRA's paper ran as its MultiLoRA baseline
(script/llama2_7B_multilora_qkvo.sh).
(The other public "MultiLoRA"s are LoRA ensembles, e.g. a PEFT `MultiLoraConfig` with K parallel
copies, or multi-adapter serving/loaders.) Its conventions, checked here:
  * Δy = Σ_i (dropout(x) A_iᵀ B_iᵀ) ⊙ s_i · α/r, ΔW = Σ_i (B_i A_i) ⊙ s_i[:, None] · α/r: α/r
    (`scaling_factor = lora_alpha / r`) multiplies the learnable scaling, as in ours;
  * s_i is per output channel (`lora_scaling`, shape (lora_num, d_out)) = our `scaling: channel`; it
    has no scalar form — our default `scaling: scalar` equals it with each s_i constant over channels
    (checked below with s broadcast); one dropout of x shared by the modules, as in ours;
  * init: `nn.init.kaiming_uniform_(a=√5)` on each A_i (r, d_in) and B_i (d_out, r), i.e.
    U(±1/√d_in) and U(±1/√r), and s = 0 — the bounds our init uses.

How the numbers were made (torch 2.13.0+cpu, float64 unless said): a scratch script (kept outside
this repository) reads the two files at the commits above, pulls the named functions/classes out of
their text with `ast`/`exec` and runs them unchanged — MoRA's three methods bound to a stub nn.Module
that carries the dict attributes they read (r, mora_type, use_mora, lora_A, ...), `update_layer(
"default", r, lora_alpha=r, lora_dropout=0.0, init_lora_weights=True, use_rslora=False,
use_mora=True, mora_type=t)`, then M copied into `lora_A["default"].weight`, Δy =
`_apply_mora(x, lora_A, lora_B, 1.0, "default")`, ΔW = `get_delta_weight("default")` on a fresh
stub; MTL-LoRA's `MultiLoRALinear(d_in, d_out, lora_num=3, r=3, lora_alpha=6, bias=False).double()`
with base.py's deepspeed imports dropped and `should_gather` returning its `EmptyContext`, W0 = 0,
lora_A/lora_B/lora_scaling copied in, Δy = forward(x), ΔW = the weight after `.eval()` (which merges).
The inputs are the formulas `mora_M`, `mora_x`, `multilora_tensors` below; each output is recorded
as `summary` below (sum, norm, a weighted sum over every entry, the first row's first 4 and the last
row's last 4 entries).

Agreement: MoRA types 1–4 and MultiLoRA reproduce the official tensors to the last bit / ≤ 1e-15 in
float64 (asserted to 1e-12). MoRA type 6 differs by ≤ 6e-9 per entry in float64: the official builds
its RoPE angles in float32 (`inv_freq = 1 / 10000 ** (arange(0, r̂, 2).float() / r̂)`, outer product
in float32, then cast to the layer's dtype), ours in float64; fed float64 angles, the official output
equals ours bit for bit (checked in the scratch script). Asserted to 1e-7 (≤ 2e-8 seen on the
summaries). Our float32 layers agree with the official float64 numbers to 8e-7 (asserted to 5e-6).

The cases: (d_in, d_out, r) = (46, 21, 2) and (21, 46, 2) — r̂ = 12 divides neither side, so the
cyclic padding of mod/rope, the uneven contig/interleave blocks, the truncated tiling, type 6's
chunks beyond d_out (d_in > d_out) and its tiling (d_in < d_out) all matter — and (32, 32, 1), r̂ = 8,
where everything divides.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import adapters


# --- the fixed inputs --------------------------------------------------------------------
def mora_M(r_hat: int) -> torch.Tensor:
    i = torch.arange(r_hat, dtype=torch.float64)
    return torch.sin(7 * i[:, None] + 3 * i[None, :]) / 10


def mora_x(d_in: int) -> torch.Tensor:
    """(2, 3, d_in): batch 2, sequence 3 (MTL-LoRA's forward needs a 3-D input)."""
    return torch.cos(0.37 * torch.arange(6 * d_in, dtype=torch.float64) + 0.1).reshape(2, 3, d_in)


ML = dict(d_in=11, d_out=10, r=3, n=3, alpha=6.0)            # α/r = 2


def multilora_tensors():
    """A (n, r, d_in), B (n, d_out, r), s per channel (n, d_out), s scalar (n,)."""
    n, r, d_in, d_out = ML["n"], ML["r"], ML["d_in"], ML["d_out"]
    i, j, k = torch.meshgrid(torch.arange(n), torch.arange(r), torch.arange(d_in), indexing="ij")
    A = torch.sin(1.3 * i + 0.7 * j + 0.11 * k + 0.5).double() / 3
    i, o, j = torch.meshgrid(torch.arange(n), torch.arange(d_out), torch.arange(r), indexing="ij")
    B = torch.cos(0.9 * i + 0.5 * o + 1.7 * j).double() / 2
    s_channel = (0.1 * (torch.arange(n)[:, None] + 1) - 0.03 * torch.arange(d_out)[None, :]).double()
    s_scalar = torch.tensor([0.7, -0.4, 1.3], dtype=torch.float64)
    return A, B, s_channel, s_scalar


def summary(y: torch.Tensor) -> dict:
    f = y.detach().double().reshape(-1)
    w = torch.sin(0.5 * torch.arange(f.numel(), dtype=torch.float64) + 0.2)
    rows = y.detach().double().reshape(-1, y.shape[-1])
    return dict(sum=f.sum().item(), norm=f.norm().item(), wsum=(f * w).sum().item(),
                head=rows[0, :4].tolist(), tail=rows[-1, -4:].tolist())


# --- the official numbers ----------------------------------------------------------------
# (d_in, d_out, r, mora_type): official r̂, Δy = _apply_mora(x) summarised, ΔW = get_delta_weight summarised
MORA_OFFICIAL = {
    (46, 21, 2, 1): dict(r_hat=12, dy_sum=0.04274921763496181, dy_norm=0.3960141815968525, dy_wsum=0.4635897810804798,
        dy_head=[-0.04295573279176368, -0.0007255946293366361, 0.04186167793817113, 0.06384482136569779],
        dy_tail=[-0.021011497231809013, 0.019934332344569115, 0.05106857341860767, 0.05706709290820064],
        dw_sum=0.822323553613707, dw_norm=2.2241499011511543, dw_wsum=0.05218433319643356),
    (46, 21, 2, 2): dict(r_hat=12, dy_sum=-0.16854350303633936, dy_norm=1.6581180864917542, dy_wsum=0.24551659737027487,
        dy_head=[-0.07883712604601276, -0.07883712604601276, 0.10806206027539732, 0.10806206027539732],
        dy_tail=[0.18006513818997483, 0.010937523372636565, -0.16357349113484815, -0.2575743708073696],
        dw_sum=0.794357764567912, dw_norm=2.1659646457437014, dw_wsum=0.251376847499647),
    (46, 21, 2, 3): dict(r_hat=12, dy_sum=-0.16854350303633953, dy_norm=1.6581180864917544, dy_wsum=2.306410800757114,
        dy_head=[-0.07883712604601276, 0.10806206027539732, 0.2417735877472209, 0.2564852454112],
        dy_tail=[0.06032048094141859, 0.21281670331946068, 0.26056550384748445, 0.18006513818997483],
        dw_sum=0.794357764567911, dw_norm=2.1659646457437014, dw_wsum=0.19286488592498557),
    (46, 21, 2, 4): dict(r_hat=12, dy_sum=0.042749217634961714, dy_norm=0.3960141815968524, dy_wsum=-0.2770083824301587,
        dy_head=[-0.04295573279176368, -0.04295573279176368, -0.0007255946293366361, -0.0007255946293366361],
        dy_tail=[0.05706709290820064, 0.03497744656601489, -0.004327941273618428, -0.04150313593170761],
        dw_sum=0.8223235536137085, dw_norm=2.224149901151154, dw_wsum=0.10284374922905962),
    (46, 21, 2, 6): dict(r_hat=12, dy_sum=-0.056237609928675554, dy_norm=0.6606832160760274, dy_wsum=1.0857512214994527,
        dy_head=[-0.014124762975334949, 0.021563625582933246, 0.04663849485291164, 0.048758107234644125],
        dy_tail=[-0.05833373607258162, -0.08624159647679078, -0.07170173193145472, -0.021870598210095276],
        dw_sum=0.20744237403871563, dw_norm=1.1069732105772145, dw_wsum=-0.00941317927448343),
    (21, 46, 2, 1): dict(r_hat=12, dy_sum=0.9799196164264532, dy_norm=0.7646287263953918, dy_wsum=0.8555603631596779,
        dy_head=[0.05081057316722508, 0.04976600543882376, 0.024226834212755736, -0.013236675581627708],
        dy_tail=[-0.06405751954177097, -0.013459700571513827, 0.04376292233447068, 0.07944563218073057],
        dw_sum=1.3211731351032672, dw_norm=2.229514034825041, dw_wsum=0.25287254416204696),
    (21, 46, 2, 2): dict(r_hat=12, dy_sum=0.38664860862400247, dy_norm=1.1060480203274905, dy_wsum=0.6089720528790108,
        dy_head=[-0.032958855502673974, -0.032958855502673974, -0.032958855502673974, -0.032958855502673974],
        dy_tail=[0.007599122793896369, 0.05108181512084249, 0.05108181512084249, 0.05108181512084249],
        dw_sum=0.7617368848568634, dw_norm=2.140342090312037, dw_wsum=0.009967151540426863),
    (21, 46, 2, 3): dict(r_hat=12, dy_sum=0.38664860862400224, dy_norm=1.1060480203274903, dy_wsum=-3.3739930827099895,
        dy_head=[-0.032958855502673974, 0.05694914295750426, 0.11882703001983713, 0.12221878866024521],
        dy_tail=[-0.026016013280271272, -0.06191791792391255, -0.06734410253389145, -0.039623823510142306],
        dw_sum=0.7617368848568633, dw_norm=2.1403420903120365, dw_wsum=-0.23328765553935393),
    (21, 46, 2, 4): dict(r_hat=12, dy_sum=0.9799196164264532, dy_norm=0.7646287263953919, dy_wsum=-0.2623423976165552,
        dy_head=[0.05081057316722508, 0.05081057316722508, 0.05081057316722508, 0.05081057316722508],
        dy_tail=[0.07602556006309297, 0.03518605005782553, 0.03518605005782553, 0.03518605005782553],
        dw_sum=1.3211731351032665, dw_norm=2.229514034825041, dw_wsum=0.08567421433701575),
    (21, 46, 2, 6): dict(r_hat=12, dy_sum=0.3927546148156793, dy_norm=1.0715113439600021, dy_wsum=0.6563753642999471,
        dy_head=[-0.014124762975334949, 0.021563625582933246, 0.04663849485291164, 0.048758107234644125],
        dy_tail=[-0.01010912795575318, -0.012681478945191633, -0.009012063174621035, -0.0009069505420705596],
        dw_sum=0.41877678826107845, dw_norm=1.6232684894710667, dw_wsum=0.11061962130267583),
    (32, 32, 1, 1): dict(r_hat=8, dy_sum=0.1475392433311433, dy_norm=0.2011328395916139, dy_wsum=0.02942939801402628,
        dy_head=[-0.008031775785366797, 0.0009966519811464769, 0.009534532136130897, 0.013379558561929059],
        dy_tail=[-0.01810701452766237, -0.0025945123105087613, 0.014194997168034332, 0.02399779304126458],
        dw_sum=-0.2846076439968277, dw_norm=2.2049713375539417, dw_wsum=-0.0008530230257447202),
    (32, 32, 1, 2): dict(r_hat=8, dy_sum=1.1330228200354429, dy_norm=1.97800810543073, dy_wsum=0.18171727581914104,
        dy_head=[0.1635023656373122, 0.1635023656373122, 0.1635023656373122, 0.1635023656373122],
        dy_tail=[0.1327389955210053, 0.1327389955210053, 0.1327389955210053, 0.1327389955210053],
        dw_sum=-0.2846076439968268, dw_norm=2.204971337553942, dw_wsum=0.27135746993372295),
    (32, 32, 1, 3): dict(r_hat=8, dy_sum=1.133022820035444, dy_norm=1.9780081054307301, dy_wsum=0.09974486196711893,
        dy_head=[0.1635023656373122, 0.2245622286608761, 0.17509357521827015, 0.039444653495289556],
        dy_tail=[0.027245869520500218, 0.13649307395312874, 0.17855900279052214, 0.1327389955210053],
        dw_sum=-0.2846076439968286, dw_norm=2.2049713375539413, dw_wsum=0.06347198248436642),
    (32, 32, 1, 4): dict(r_hat=8, dy_sum=0.14753924333114307, dy_norm=0.20113283959161393,
        dy_wsum=-0.0054106871439319575,
        dy_head=[-0.008031775785366797, -0.008031775785366797, -0.008031775785366797, -0.008031775785366797],
        dy_tail=[0.02399779304126458, 0.02399779304126458, 0.02399779304126458, 0.02399779304126458],
        dw_sum=-0.28460764399682814, dw_norm=2.2049713375539426, dw_wsum=0.025950385709217205),
    (32, 32, 1, 6): dict(r_hat=8, dy_sum=0.03617181958906901, dy_norm=1.3904604013600985, dy_wsum=0.8135230831742919,
        dy_head=[-0.03923005511768504, 0.019577062132737924, 0.0687484376682652, 0.08408214214863263],
        dy_tail=[-0.14671533734207515, 0.020526113263925158, 0.17766470346723354, 0.247357527658439],
        dw_sum=-0.47895457058035007, dw_norm=1.1024856783988428, dw_wsum=0.39679901676952145),
}

# MTL-LoRA's MultiLoRALinear at ML: Δy = forward(x) with W0 = 0, ΔW = the weight merged by .eval();
# 'scalar' is lora_scaling[i, :] = s_scalar[i] on every channel
MULTILORA_OFFICIAL = {
    'channel': dict(dy_sum=0.20134663625456556, dy_norm=2.1107858490439733, dy_wsum=-0.19266951055589498,
        dy_head=[-0.5937742342349837, -0.4516705469323268, -0.25245214422361445, -0.07299069817330661],
        dy_tail=[0.11712555891445879, 0.0766749332234104, 0.14788427978023275, 0.29112250759479996],
        dw_sum=-3.127817955721838, dw_norm=0.6697031543735427, dw_wsum=-0.1530980524921774),
    'scalar': dict(dy_sum=1.5645466860769557, dy_norm=9.764359010304755, dy_wsum=-3.932254570893478,
        dy_head=[-1.6176128673811985, -1.6247640526239875, -1.23411645172017, -0.5413140778859964],
        dy_tail=[0.6960376456646914, -0.2563172369437582, -1.145916763303119, -1.7549558469426483],
        dw_sum=-9.485248538417453, dw_norm=2.9732805703436984, dw_wsum=5.489609265025768),
}

# its init (MultiLoRALinear.reset_parameters): kaiming_uniform_(a=√5) per module, lora_scaling zeros
ML_OFFICIAL_A_BOUND = 1 / math.sqrt(ML["d_in"])   # fan_in of lora_A[i] (r, d_in)
ML_OFFICIAL_B_BOUND = 1 / math.sqrt(ML["r"])      # fan_in of lora_B[i] (d_out, r)
ML_OFFICIAL_SCALING_FACTOR = 2.0                  # scaling_factor = lora_alpha / r

EXACT = 1e-12       # float64, same operations: bitwise in practice
ROPE = 1e-7         # type 6: the official's float32 RoPE angles (≤ 6e-9 per entry here)
FLOAT32 = 5e-6      # our float32 layer against the official float64 numbers (≤ 8e-7 seen)


def assert_summary(y, ref, atol, keys=("sum", "norm", "wsum", "head", "tail"), prefix="dy_"):
    got = summary(y)
    for key in keys:
        torch.testing.assert_close(torch.tensor(got[key], dtype=torch.float64),
                                   torch.tensor(ref[prefix + key], dtype=torch.float64),
                                   rtol=0, atol=atol, msg=lambda m, key=key: f"{prefix}{key}: {m}")


def mora_layer(d_in, d_out, r, mora_type, dtype=torch.float64):
    model = nn.ModuleDict({"proj": nn.Linear(d_in, d_out, bias=False)}).to(dtype)
    adapters.apply(model, "mora", ["proj"], r=r, mora_type=mora_type, dropout=0.0)
    return model["proj"]


@pytest.mark.parametrize("case", sorted(MORA_OFFICIAL), ids=lambda c: "in{}-out{}-r{}-type{}".format(*c))
def test_mora_matches_official(case):
    d_in, d_out, r, mora_type = case
    ref = MORA_OFFICIAL[case]
    layer = mora_layer(d_in, d_out, r, mora_type)
    assert layer.r_hat == ref["r_hat"]
    assert layer.mora_M.shape == (ref["r_hat"], ref["r_hat"]) and not layer.mora_M.any()   # official: zeros
    with torch.no_grad():
        layer.mora_M.copy_(mora_M(layer.r_hat))
        x = mora_x(d_in)
        dy, base = layer.adapter_forward(x), layer.base_layer(x)
        full = layer(x)
    atol = ROPE if mora_type == 6 else EXACT
    assert dy.shape == (2, 3, d_out)
    assert_summary(dy, ref, atol)
    torch.testing.assert_close(full, base + dy, rtol=0, atol=1e-15)          # the layer adds Δy, no α
    assert_summary(layer.delta_out_in(), ref, atol, keys=("sum", "norm", "wsum"), prefix="dw_")


@pytest.mark.parametrize("case", sorted(MORA_OFFICIAL), ids=lambda c: "in{}-out{}-r{}-type{}".format(*c))
def test_mora_float32_matches_official(case):
    d_in, d_out, r, mora_type = case
    layer = mora_layer(d_in, d_out, r, mora_type, dtype=torch.float32)
    with torch.no_grad():
        layer.mora_M.copy_(mora_M(layer.r_hat))
        dy = layer.adapter_forward(mora_x(d_in).float())
    assert dy.dtype == torch.float32
    assert_summary(dy, MORA_OFFICIAL[case], FLOAT32)


def test_mora_official_cases_exercise_padding_and_both_orientations():
    """Guard on the fixture itself: the references cover what they are meant to cover."""
    shapes = {(d_in, d_out, MORA_OFFICIAL[(d_in, d_out, r, t)]["r_hat"]) for d_in, d_out, r, t in MORA_OFFICIAL}
    assert any(i > o and i % h and o % h for i, o, h in shapes)
    assert any(i < o and i % h and o % h for i, o, h in shapes)
    assert any(i % h == 0 and o % h == 0 for i, o, h in shapes)
    assert {t for *_, t in MORA_OFFICIAL} == {1, 2, 3, 4, 6}
    # the types really differ on these inputs (a broken dispatch would not hide behind equal numbers)
    for d_in, d_out, r in {c[:3] for c in MORA_OFFICIAL}:
        wsums = [MORA_OFFICIAL[(d_in, d_out, r, t)]["dy_wsum"] for t in (1, 2, 3, 4, 6)]
        assert min(abs(a - b) for k, a in enumerate(wsums) for b in wsums[k + 1:]) > 1e-3


def multilora_layer(scaling, dtype=torch.float64, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    model = nn.ModuleDict({"proj": nn.Linear(ML["d_in"], ML["d_out"], bias=False)}).to(dtype)
    adapters.apply(model, "multilora", ["proj"], r=ML["r"], alpha=ML["alpha"], n_modules=ML["n"],
                   dropout=0.0, scaling=scaling)
    return model["proj"]


@pytest.mark.parametrize("scaling", ["channel", "scalar"])
def test_multilora_matches_mtl_lora_reference(scaling):
    A, B, s_channel, s_scalar = multilora_tensors()
    layer = multilora_layer(scaling)
    assert layer.scaling == ML_OFFICIAL_SCALING_FACTOR           # α/r multiplies s, as the reference's
    with torch.no_grad():
        layer.multi_A.copy_(A)
        layer.multi_B.copy_(B)
        layer.multi_scale.copy_(s_channel if scaling == "channel" else s_scalar)
        x = mora_x(ML["d_in"])
        dy = layer.adapter_forward(x)
    ref = MULTILORA_OFFICIAL[scaling]
    assert_summary(dy, ref, EXACT)
    assert_summary(layer.delta_out_in(), ref, EXACT, keys=("sum", "norm", "wsum"), prefix="dw_")


def test_multilora_scalar_and_channel_references_differ_and_alpha_matters():
    """Sanity of the references: s per channel ≠ s scalar, and dropping α/r would miss by 2×."""
    A, B, _, s_scalar = multilora_tensors()
    assert abs(MULTILORA_OFFICIAL["channel"]["dy_norm"] - MULTILORA_OFFICIAL["scalar"]["dy_norm"]) > 1
    layer = multilora_layer("scalar")
    with torch.no_grad():
        layer.multi_A.copy_(A)
        layer.multi_B.copy_(B)
        layer.multi_scale.copy_(s_scalar)
        layer.scaling = 1.0                                          # the unscaled form
        norm = layer.adapter_forward(mora_x(ML["d_in"])).norm().item()
    assert norm == pytest.approx(MULTILORA_OFFICIAL["scalar"]["dy_norm"] / ML_OFFICIAL_SCALING_FACTOR, rel=1e-12)


def test_multilora_init_follows_the_reference_init():
    layer = multilora_layer("channel", seed=0)
    assert layer.multi_scale.shape == (ML["n"], ML["d_out"]) and not layer.multi_scale.any()   # lora_scaling
    A, B = layer.multi_A.detach(), layer.multi_B.detach()
    assert A.abs().max() <= ML_OFFICIAL_A_BOUND and A.abs().max() > 0.9 * ML_OFFICIAL_A_BOUND
    assert B.abs().max() <= ML_OFFICIAL_B_BOUND and B.abs().max() > 0.9 * ML_OFFICIAL_B_BOUND
    for i in range(ML["n"]):                                         # independent draws per module
        assert not torch.equal(A[0], A[i]) or i == 0
        assert not torch.equal(B[0], B[i]) or i == 0
    assert not layer.adapter_forward(mora_x(ML["d_in"])).any()       # s = 0: Δy = 0 at init
