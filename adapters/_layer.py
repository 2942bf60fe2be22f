"""The plumbing every method shares: a frozen linear layer plus a trainable update.

A method subclasses `AdaptedLayer` and writes three things:
  * `__init__`: create its tensors (call `super().__init__(base_layer, options)` first);
  * `adapter_forward(x)`: the update Δy for input x (no base output, no bias);
  * `delta_out_in()`: the dense ΔW of shape (d_out, d_in), i.e. the matrix of x ↦ Δy.
Everything else — orientation (GPT-2's Conv1D stores W transposed), merge / unmerge,
parameter counting, what gets saved — lives here so each method file stays about its math.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

SUPPORTED_LAYERS = (nn.Linear, Conv1D)


def layer_shape(layer: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of an nn.Linear or a transformers Conv1D."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, Conv1D):
        d_in, d_out = layer.weight.shape  # Conv1D keeps W as (d_in, d_out)
        return d_in, d_out
    raise TypeError(f"cannot adapt {type(layer).__name__}: only nn.Linear and transformers Conv1D are supported")


def kaiming_uniform_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """nn.Linear's default init, Kaiming-uniform with a=√5, i.e. U(±1/√fan_in).

    Written out (instead of nn.init.kaiming_uniform_) so that a seeded generator can drive it.
    """
    fan_in = tensor.shape[-1]
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


class AdaptedLayer(nn.Module):
    """A frozen `base_layer` (nn.Linear or Conv1D) with a method's update added to its output.

    Forward: y = base_layer(x) + adapter_forward(x), unless merged (then ΔW already sits in
    the base weight). Subclasses set `method` (the registry name).
    """

    method: str = ""
    # Names of non-parameter tensors that belong in the adapter checkpoint (e.g. MiLoRA's
    # initial factors, which rebuild the residual base). Trainable parameters are always saved.
    persistent_buffers: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Module, options: Any, shared: nn.Module | None = None,
                 init_weights: bool = True):
        super().__init__()
        self.base_layer = base_layer
        self.options = options
        self.in_features, self.out_features = layer_shape(base_layer)
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)
        self.merged = False
        if shared is not None:
            # One module object shared by every layer: .to(device) moves it once for all.
            self.shared = shared
        for p in base_layer.parameters():
            p.requires_grad_(False)

    # --- what a method implements -------------------------------------------------------
    @classmethod
    def check_shape(cls, d_in: int, d_out: int, options: Any) -> str | None:
        """Why this layer shape cannot take these options (a message naming the fix), or None."""
        return None

    def adapter_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def delta_out_in(self) -> torch.Tensor:
        raise NotImplementedError

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def weight(self) -> torch.Tensor:
        """The base weight, so code that inspects `layer.weight` keeps working."""
        return self.base_layer.weight

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        y = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return y
        # Methods cast x to their own tensors' dtype; the sum comes back in the base's dtype.
        return y + self.adapter_forward(x).to(y.dtype)

    def adapter_parameters(self):
        return (p for n, p in self.named_parameters() if not n.startswith("base_layer.") and not n.startswith("shared."))

    def to_base_orientation(self, w_out_in: torch.Tensor) -> torch.Tensor:
        return w_out_in.T if self.fan_in_fan_out else w_out_in

    def base_weight_out_in(self) -> torch.Tensor:
        """W0 (or the current frozen base) as (d_out, d_in), whatever the layer stores."""
        return self.to_base_orientation(self.base_layer.weight)

    def delta_weight(self) -> torch.Tensor:
        """Dense ΔW with the wrapped layer's `weight` shape and orientation."""
        return self.to_base_orientation(self.delta_out_in())

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            return
        w = self.base_layer.weight
        w.add_(self.delta_weight().to(w.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        w = self.base_layer.weight
        w.sub_(self.delta_weight().to(w.dtype))
        self.merged = False

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.adapter_parameters() if p.requires_grad)

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint needs: trainable parameters plus declared buffers."""
        state = {n: p.detach() for n, p in self.named_parameters()
                 if not n.startswith("base_layer.") and not n.startswith("shared.")}
        for name in self.persistent_buffers:
            state[name] = getattr(self, name).detach()
        return state

    @torch.no_grad()
    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        """Copy tensors saved by `adapter_state`; methods with extra bookkeeping override."""
        expected = set(self.adapter_state())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(f"adapter checkpoint does not fit this {self.method} layer: "
                             f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, value in state.items():
            target = self.get_parameter(name) if name not in self.persistent_buffers else getattr(self, name)
            if target.shape != value.shape:
                raise ValueError(f"{self.method} tensor {name!r}: checkpoint shape {tuple(value.shape)} "
                                 f"!= layer shape {tuple(target.shape)} (was it saved with other options?)")
            target.copy_(value)

    def extra_repr(self) -> str:
        return f"method={self.method}, d_in={self.in_features}, d_out={self.out_features}, merged={self.merged}"


def positive_int(name: str, value: Any) -> None:
    """Option check shared by the methods' option dataclasses."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_dropout(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")


def rank_problem(rank: int, d_in: int, d_out: int, label: str = "r") -> str | None:
    """A rank-`rank` factorisation of a (d_out, d_in) matrix needs rank ≤ min(d_in, d_out)."""
    if rank > min(d_in, d_out):
        return f"{label}={rank} exceeds the layer's rank min(d_in, d_out)={min(d_in, d_out)}; use {label} ≤ {min(d_in, d_out)}"
    return None
