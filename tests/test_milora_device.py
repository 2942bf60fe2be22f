"""MiLoRA / PiSSA init: the SVD runs in float32 where the model trains; the output is unchanged at init
as far as the layer's dtype allows (numbers measured in adapters/milora.py's docstring)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import adapters
from training.config import TrainConfig
from training.model import upcast_trainable_

from test_training_helpers import make_lm_task


def linear_256x512(dtype: torch.dtype) -> tuple[nn.Module, torch.Tensor]:
    """A random 256×512 layer (nn.Linear's own init) and 256 inputs x ~ N(0, 1), in `dtype`."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("proj", nn.Linear(512, 256, bias=False))
    return model.to(dtype), torch.randn(256, 512).to(dtype)


def half_ulp(t: torch.Tensor) -> torch.Tensor:
    """Half the spacing of `t`'s dtype at each element's magnitude, as float64."""
    exponent = torch.frexp(t.double().abs())[1] - 1  # |t| in [2^e, 2^(e+1)): spacing 2^e · eps
    return torch.ldexp(torch.full(t.shape, torch.finfo(t.dtype).eps / 2, dtype=torch.float64), exponent)


@pytest.mark.parametrize("init", ["minor", "principal"])
@pytest.mark.parametrize("dtype,autocast,max_change", [
    (torch.float32, False, 1e-5),
    (torch.bfloat16, False, 2.0 ** -6),  # measured 1.5625e-2 = one bf16 ulp of max |y| ≈ 2.5
    (torch.bfloat16, True, 2.0 ** -6),   # the trainer's bf16 path: float32 factors, bf16 autocast
])
def test_init_leaves_the_output_unchanged_as_far_as_the_dtype_allows(init, dtype, autocast, max_change):
    base, x = linear_256x512(dtype)
    w0 = base.proj.weight.detach().clone()
    model = copy.deepcopy(base)
    adapters.apply(model, "milora", ["proj"], r=8, alpha=8, dropout=0.0, init=init)
    layer = model.proj
    # W_res + s·B A equals W0 to half an ulp of W_res in every element: the best W_res the dtype holds
    effective = layer.base_layer.weight.double() + layer.scaling * (layer.lora_B.double() @ layer.lora_A.double())
    assert ((effective - w0.double()).abs() <= half_ulp(layer.base_layer.weight)).all()
    if autocast:
        upcast_trainable_(model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        change = (model(x).float() - base(x).float()).abs().max().item()
    assert change <= max_change
    assert not torch.equal(layer.base_layer.weight, w0)  # the residual really is a different matrix


@pytest.fixture(scope="module")
def base_dir(base):
    return base  # the session's tiny base model (conftest.py)


class Built(Exception):
    pass


def test_svd_runs_in_float32_on_the_training_device(base_dir, tmp_path, monkeypatch):
    """The trainer moves the model to its device before injecting the method: the SVD runs there.

    The 'meta' device stands in for a GPU: a move that came after the injection would show 'cpu'.
    """
    import training.trainer as trainer
    calls = []
    real_svd = torch.linalg.svd

    def recording_svd(a, *args, **kwargs):
        calls.append((a.device.type, a.dtype))
        return real_svd(a, *args, **kwargs)

    def stop_after_model(self):  # the optimizer and the loop need real tensors; the test needs only the model
        raise Built(self.raw_model)

    monkeypatch.setattr(torch.linalg, "svd", recording_svd)
    monkeypatch.setattr(trainer, "init_distributed", lambda cfg: (torch.device("meta"), 0, 1))
    monkeypatch.setattr(trainer.Trainer, "_build_optimizer", stop_after_model)
    cfg = TrainConfig(model=str(base_dir), data_dir=str(make_lm_task(tmp_path / "task")), dtype="bfloat16",
                      method="milora", method_options={"r": 4, "init": "minor"}, target_modules=["q_proj", "v_proj"],
                      seq_len=24, threads=1)
    with pytest.raises(Built) as built:
        trainer.Trainer(cfg, tmp_path / "run")
    assert calls == [("meta", torch.float32)] * 4  # q, v × 2 layers, float32 SVDs of bf16 weights
    model = built.value.args[0]
    assert {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()} == {"meta"}
