"""MoRA (Jiang et al. 2024, arXiv 2405.12130): a high-rank update from one square matrix.

    Δy = decompress(M · compress(dropout(x)))      M (r̂, r̂) trainable, zeros at init; no α
    r̂ = int(sqrt((d_in + d_out) · r) + 0.5)        (the reference code rounds; the paper floors)
    type 6 forces r̂ even: r̂ = 2 (r̂ // 2)           trainable parameters per layer: r̂²

compress / decompress are fixed (parameter-free) operators picked by `mora_type`:
    1 = mod + tile (sharing, paper Eq. 6)      2 = contig + interleave
    3 = contig + tile                          4 = mod + interleave
    6 = rope + rope (rotation, paper Eq. 9)    (there is no type 5)
  mod:        cyclic padding x_pad = [x, x[:pad]] to n·r̂, then c[j] = Σ_{i ≡ j (mod r̂)} x_pad[i]
  contig:     q = d_in // r̂, m = d_in − r̂q: the first m outputs sum blocks of q+1 inputs, the rest q
  tile:       out[o] = z[o mod r̂]
  interleave: q' = d_out // r̂, m' = d_out − r̂q': the first m' entries of z repeat q'+1 times, the rest q'
  rope:       split x_pad into n chunks of r̂, rotate chunk g by θ_{g,k} = g·10000^(−2k/r̂), pairing k with
              k + r̂/2, z_g = M x'_g for every chunk, concatenate, keep the first d_out (tile if longer).

Types 1–4 have rank ≤ r̂; type 6 is block-structured with rank up to min(d_in, d_out).
Known quirk of type 6 kept on purpose (it is the method): when d_in > d_out only the first ~d_out
input features reach the output, since chunk g's output only ever depends on chunk g's input.

ΔW is built from explicit operator matrices (`delta_out_in`), independently of the reshape-based
forward, so the tests' `x ΔWᵀ == forward(x)` is a real cross-check.

ReMoRA (`remora_every` > 0, pretraining): every T steps merge M into the base weight, re-zero M,
switch type 1→2→3→4→1, reset the optimizer state and restart the warmup (`merge_and_switch`,
called by the trainer through `MoRAHooks`), after every T-th step — as kongds/MoRA @ de5df31 train.py
ResetReloraCallback (on_step_end at global_step % T == 0; remora_types 4, train()'s default), whose
pretraining branch deletes the `lora` parameters' Adam state, step count included: the trainer's
default `optimizer_reset: delete` (the prune_* options are Guitaricet/relora's, for ReLoRA). Merged updates are kept in `remora_delta` so a saved
adapter still rebuilds the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import TrainingHooks
from ._layer import AdaptedLayer, check_dropout, positive_int
from ._registry import register

TYPES = {1: ("mod", "tile"), 2: ("contig", "interleave"), 3: ("contig", "tile"),
         4: ("mod", "interleave"), 6: ("rope", "rope")}
REMORA_CYCLE = {1: 2, 2: 3, 3: 4, 4: 1}


def square_rank(d_in: int, d_out: int, r: int, mora_type: int) -> int:
    """r̂ with the same parameter budget as a rank-r LoRA: r̂² ≈ r (d_in + d_out)."""
    r_hat = int(math.sqrt((d_in + d_out) * r) + 0.5)
    return 2 * (r_hat // 2) if mora_type == 6 else r_hat


@dataclass
class MoRAOptions:
    r: int
    mora_type: int
    dropout: float
    remora_every: int = 0   # ReMoRA merge-and-switch period in optimizer steps; 0 = plain MoRA

    def __post_init__(self):
        positive_int("r", self.r)
        check_dropout(self.dropout)
        if self.mora_type not in TYPES:
            raise ValueError(f"mora_type must be one of {sorted(TYPES)} (1 sharing, 6 rotation), got {self.mora_type!r}")
        if self.remora_every < 0:
            raise ValueError(f"remora_every must be ≥ 0 (0 disables ReMoRA), got {self.remora_every}")
        if self.remora_every and self.mora_type == 6:
            raise ValueError("ReMoRA switches between types 1–4; use mora_type 1 with remora_every > 0")


# --- the operators, on the last dimension --------------------------------------------------
def _cyclic_pad(x: torch.Tensor, length: int) -> torch.Tensor:
    d = x.shape[-1]
    return x if length == d else torch.cat([x, x[..., : length - d]], dim=-1)


def _blocks(total: int, parts: int) -> tuple[int, int]:
    """Split `total` into `parts` contiguous blocks: m blocks of q+1 then parts−m blocks of q."""
    q = total // parts
    return q, total - parts * q


def compress(x: torch.Tensor, kind: str, r_hat: int) -> torch.Tensor:
    d_in = x.shape[-1]
    if kind == "mod":
        n = math.ceil(d_in / r_hat)
        return _cyclic_pad(x, n * r_hat).unflatten(-1, (n, r_hat)).sum(-2)
    q, m = _blocks(d_in, r_hat)
    head = x[..., : m * (q + 1)].unflatten(-1, (m, q + 1)).sum(-1)
    tail = x[..., m * (q + 1):].unflatten(-1, (r_hat - m, q)).sum(-1)
    return torch.cat([head, tail], dim=-1)


def decompress(z: torch.Tensor, kind: str, d_out: int) -> torch.Tensor:
    r_hat = z.shape[-1]
    if kind == "tile":
        return z.repeat(*([1] * (z.dim() - 1)), math.ceil(d_out / r_hat))[..., :d_out]
    q, m = _blocks(d_out, r_hat)
    return torch.cat([z[..., :m].repeat_interleave(q + 1, dim=-1), z[..., m:].repeat_interleave(q, dim=-1)], dim=-1)


def rope_angles(n_chunks: int, r_hat: int) -> torch.Tensor:
    """θ[g, k] = g · 10000^(−2k/r̂), k < r̂/2 (float64, cast by the caller)."""
    k = torch.arange(r_hat // 2, dtype=torch.float64)
    g = torch.arange(n_chunks, dtype=torch.float64)
    return g[:, None] * (10000.0 ** (-2.0 * k / r_hat))[None, :]


def compression_matrix(kind: str, d_in: int, r_hat: int) -> torch.Tensor:
    """C (r̂, d_in) with compress(x) = x Cᵀ, for the two summing compressions."""
    C = torch.zeros(r_hat, d_in, dtype=torch.float64)
    if kind == "mod":
        n = math.ceil(d_in / r_hat)
        for i in range(n * r_hat):          # x_pad[i] = x[i mod d_in]
            C[i % r_hat, i % d_in] += 1
    else:
        q, m = _blocks(d_in, r_hat)
        sizes = [q + 1] * m + [q] * (r_hat - m)
        C[torch.arange(r_hat).repeat_interleave(torch.tensor(sizes)), torch.arange(d_in)] = 1
    return C


def decompression_matrix(kind: str, d_out: int, r_hat: int) -> torch.Tensor:
    """D (d_out, r̂) with decompress(z) = z Dᵀ."""
    D = torch.zeros(d_out, r_hat, dtype=torch.float64)
    if kind == "tile":
        D[torch.arange(d_out), torch.arange(d_out) % r_hat] = 1
    else:
        q, m = _blocks(d_out, r_hat)
        sizes = [q + 1] * m + [q] * (r_hat - m)
        D[torch.arange(d_out), torch.arange(r_hat).repeat_interleave(torch.tensor(sizes))] = 1
    return D


def merge_and_switch(model: nn.Module) -> int:
    """ReMoRA's step for every MoRA layer of `model`; returns how many layers it touched."""
    layers = [m for m in model.modules() if isinstance(m, MoRALayer)]
    for layer in layers:
        layer.merge_and_switch()
    return len(layers)


class MoRAHooks(TrainingHooks):
    """Calls ReMoRA's merge-and-switch every `remora_every` steps (nothing when it is 0)."""

    def after_optimizer_step(self, step):
        every = self.options.remora_every
        if every and step % every == 0:
            merge_and_switch(self.model)
            return {"reset_main_optimizer": True}
        return {}



@register("mora", MoRAOptions, hooks_cls=MoRAHooks)
class MoRALayer(AdaptedLayer):
    def __init__(self, base_layer, options: MoRAOptions, shared=None, init_weights=True):
        super().__init__(base_layer, options)
        w = base_layer.weight
        self.mora_type = options.mora_type
        self.r_hat = square_rank(self.in_features, self.out_features, options.r, options.mora_type)
        self.dropout = nn.Dropout(options.dropout) if options.dropout > 0 else nn.Identity()
        self.mora_M = nn.Parameter(torch.zeros(self.r_hat, self.r_hat, dtype=w.dtype, device=w.device))
        if options.mora_type == 6:
            n = math.ceil(self.in_features / self.r_hat)
            # Only the chunks that reach the first d_out outputs matter (all of them when d_out ≥ d_in).
            self.n_chunks = n
            self.n_used = min(n, math.ceil(self.out_features / self.r_hat))
            theta = rope_angles(n, self.r_hat)
            self.register_buffer("rope_cos", theta.cos().to(w.dtype).to(w.device), persistent=False)
            self.register_buffer("rope_sin", theta.sin().to(w.dtype).to(w.device), persistent=False)
        if options.remora_every:
            self.register_buffer("remora_delta", torch.zeros_like(w))  # Σ merged ΔW, base orientation

    @classmethod
    def check_shape(cls, d_in, d_out, options):
        limit = min(d_in, d_out)
        if square_rank(d_in, d_out, options.r, options.mora_type) <= limit:
            return None
        r_max = max((r for r in range(1, options.r) if square_rank(d_in, d_out, r, options.mora_type) <= limit),
                    default=0)
        r_hat = square_rank(d_in, d_out, options.r, options.mora_type)
        return (f"r={options.r} gives r̂={r_hat} > min(d_in, d_out)={limit}; "
                + (f"use r ≤ {r_max}" if r_max else "the layer is too small for MoRA"))

    # --- forward ------------------------------------------------------------------------
    def adapter_forward(self, x):
        x = self.dropout(x.to(self.mora_M.dtype))
        if self.mora_type == 6:
            return self._rope_forward(x)
        comp, decomp = TYPES[self.mora_type]
        z = compress(x, comp, self.r_hat) @ self.mora_M.T
        return decompress(z, decomp, self.out_features)

    def _rope_forward(self, x):
        r_hat, h = self.r_hat, self.r_hat // 2
        chunks = _cyclic_pad(x, self.n_chunks * r_hat).unflatten(-1, (self.n_chunks, r_hat))[..., : self.n_used, :]
        cos, sin = self.rope_cos[: self.n_used], self.rope_sin[: self.n_used]
        x1, x2 = chunks[..., :h], chunks[..., h:]
        rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
        z = (rotated @ self.mora_M.T).flatten(-2)        # (..., n_used · r̂)
        if z.shape[-1] < self.out_features:              # d_out longer than the chunks: tile
            z = z.repeat(*([1] * (z.dim() - 1)), math.ceil(self.out_features / z.shape[-1]))
        return z[..., : self.out_features]

    # --- ΔW from explicit operator matrices ------------------------------------------------
    def delta_out_in(self):
        M = self.mora_M.detach().to(torch.float64)
        if self.mora_type != 6:
            comp, decomp = TYPES[self.mora_type]
            C = compression_matrix(comp, self.in_features, self.r_hat).to(M.device)
            D = decompression_matrix(decomp, self.out_features, self.r_hat).to(M.device)
            delta = D @ M @ C
        else:
            delta = self._rope_delta(M)
        return delta.to(self.mora_M.dtype)

    def _rope_delta(self, M):
        r_hat, h, d_in = self.r_hat, self.r_hat // 2, self.in_features
        theta = rope_angles(self.n_chunks, r_hat).to(M.device)
        K = torch.zeros(self.n_chunks * r_hat, d_in, dtype=torch.float64, device=M.device)
        idx = torch.arange(h, device=M.device)
        for g in range(self.n_chunks):
            R = torch.zeros(r_hat, r_hat, dtype=torch.float64, device=M.device)
            cos, sin = theta[g].cos(), theta[g].sin()
            R[idx, idx], R[idx, idx + h] = cos, -sin
            R[idx + h, idx + h], R[idx + h, idx] = cos, sin
            cols = (g * r_hat + torch.arange(r_hat, device=M.device)) % d_in   # cyclic padding
            K[g * r_hat:(g + 1) * r_hat].index_add_(1, cols, M @ R)
        return K[torch.arange(self.out_features, device=M.device) % K.shape[0]]

    # --- ReMoRA -------------------------------------------------------------------------
    @torch.no_grad()
    def merge_and_switch(self) -> None:
        """Fold the current update into the base weight, re-zero M, move to the next type."""
        delta = self.delta_weight()
        self.base_layer.weight.add_(delta.to(self.base_layer.weight.dtype))
        if hasattr(self, "remora_delta"):
            self.remora_delta.add_(delta.to(self.remora_delta.dtype))
        self.mora_M.zero_()
        self.mora_type = REMORA_CYCLE.get(self.mora_type, self.mora_type)

    def adapter_state(self):
        state = super().adapter_state()
        state["current_type"] = torch.tensor(self.mora_type)
        if hasattr(self, "remora_delta"):
            state["remora_delta"] = self.remora_delta.detach()
        return state

    @torch.no_grad()
    def load_adapter_state(self, state):
        state = dict(state)
        self.mora_type = int(state.pop("current_type"))
        if hasattr(self, "remora_delta"):
            delta = state.pop("remora_delta")
            self.base_layer.weight.add_((delta - self.remora_delta).to(self.base_layer.weight.dtype))
            self.remora_delta.copy_(delta)
        self.mora_M.copy_(state.pop("mora_M"))
        if state:
            raise ValueError(f"adapter checkpoint does not fit this mora layer: unexpected {sorted(state)}")
