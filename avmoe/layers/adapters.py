"""The two kinds of expert: the cross-modal adapter (CMA, LAVisH-style) and the unimodal adapter (UA).

Shapes: tokens are `[B, N, C]` with B = batch x segments, N tokens, C channels. The official code threads
`[B, C, N, 1]` through 1x1 Conv2d layers; here the same maps are (grouped) linear layers on the token axis.
Every expert ends in a scalar gate initialised to zero, so a freshly built adapter outputs exactly zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GroupedLinear(nn.Module):
    """A per-token linear map whose channels are split into groups (the official grouped 1x1 Conv2d), no bias."""

    def __init__(self, in_dim: int, out_dim: int, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim // groups))  # the conv weight without its 1x1
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # PyTorch's default conv/linear init

    def dense_weight(self) -> torch.Tensor:
        """The map as one [out, in] matrix, zero outside its groups' diagonal blocks."""
        return self.weight if self.groups == 1 else torch.block_diag(*self.weight.unflatten(0, (self.groups, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return F.linear(x, self.weight)
        x = x.unflatten(-1, (self.groups, -1))  # [..., g, in/g]
        w = self.weight.unflatten(0, (self.groups, -1))  # [g, out/g, in/g]
        return torch.einsum("...gi,goi->...go", x, w).flatten(-2)


class _TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over channels of [B, N, C] tokens: statistics over batch and tokens, as BatchNorm2d on [B, C, N, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, -2)).view_as(x)


class Bottleneck(nn.Module):
    """LN -> down (grouped) -> [BN] -> [ReLU] -> up (grouped) -> [BN] -> LN -> gate.

    Args:
        dim: channels C.
        reduction: the hidden width is C // reduction.
        groups: channel groups of both maps (official: 2, AVQA 4).
        batch_norm: BatchNorm after each map (official AVE: on).
        activation: ReLU between the maps. The official unimodal expert defines it but never applies it (bug 6).
        gate: scale the output by a learned scalar initialised to 0; without it the output is LN noise at init.
    """

    def __init__(self, dim: int, reduction: int = 8, groups: int = 2, batch_norm: bool = True,
                 activation: bool = True, gate: bool = True) -> None:
        super().__init__()
        hidden = max(dim // reduction, groups)
        if dim % groups or hidden % groups:
            raise ValueError(f"groups={groups} must divide dim={dim} and the bottleneck width {hidden}")
        self.ln_before = nn.LayerNorm(dim)
        self.down = GroupedLinear(dim, hidden, groups)
        self.bn1 = _TokenBatchNorm(hidden) if batch_norm else nn.Identity()
        self.act = nn.ReLU() if activation else nn.Identity()
        self.up = GroupedLinear(hidden, dim, groups)
        self.bn2 = _TokenBatchNorm(dim) if batch_norm else nn.Identity()
        self.ln_post = nn.LayerNorm(dim)
        self.gate = nn.Parameter(torch.zeros(())) if gate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn2(self.up(self.act(self.bn1(self.down(self.ln_before(x))))))
        z = self.ln_post(z)
        return z if self.gate is None else self.gate * z


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """`softmax(q k^T * scale) v` over the last two axes: q [..., N_q, C], k and v [..., N_k, C] -> [..., N_q, C].

    The scores are laid out with the longer token axis last. With few keys (the latent tokens) they are `[N_k, N_q]`
    normalised over the keys axis: CPU softmax along a short last axis is about ten times slower than along a long
    one (8 keys over 576 queries: 0.6 ms against 0.06 ms), and so is the fused `scaled_dot_product_attention`.
    """
    if k.shape[-2] < q.shape[-2]:
        scores = (k * scale) @ q.transpose(-1, -2)  # [..., N_k, N_q]
        return torch.softmax(scores, dim=-2).transpose(-1, -2) @ v
    return torch.softmax((q * scale) @ k.transpose(-1, -2), dim=-1) @ v


class LatentExchange(nn.Module):
    """Latent tokens read a source sequence, then the stream's own tokens read the latent tokens (LAVisH).

    `x + gate * softmax(x tok^T) tok` with `tok = L + softmax(L src^T) src`; the gate starts at zero. With
    `attn_scale=False` the softmaxes are unscaled, as in the official code (bug 5); the fix divides by sqrt(C).
    """

    def __init__(self, dim: int, num_tokens: int = 32, attn_scale: bool = True, init: str = "uniform") -> None:
        super().__init__()
        latent = torch.rand(num_tokens, dim) if init == "uniform" else 0.02 * torch.randn(num_tokens, dim)
        self.tokens = nn.Parameter(latent)  # official: torch.rand, U[0,1)
        self.gate = nn.Parameter(torch.zeros(()))  # official name: gate_av
        self.scale = 1.0 / math.sqrt(dim) if attn_scale else 1.0

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        latent = self.tokens.expand(x.shape[0], -1, -1)  # [B, T, C]
        tok = latent + attend(latent, source, source, self.scale)
        return torch.addcmul(x, self.gate, attend(x, tok, tok, self.scale))  # x + gate * attention


class CrossModalAdapter(nn.Module):
    """Cross-modal expert: exchange with the other modality's (projected) tokens, then the bottleneck."""

    kind = "cma"

    def __init__(self, dim: int, num_tokens: int = 32, reduction: int = 8, groups: int = 2, batch_norm: bool = True,
                 attn_scale: bool = True, latent_init: str = "uniform", gate: bool = True) -> None:
        super().__init__()
        self.exchange = LatentExchange(dim, num_tokens, attn_scale, latent_init)
        self.bottleneck = Bottleneck(dim, reduction, groups, batch_norm, activation=True, gate=gate)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.exchange(x, other))


class _PlainSelfAttention(nn.Module):
    """Parameter-free scaled self-attention with a zero-initialised residual gate (a fixed form of the official
    AVVP unimodal attention, which normalised over the wrong axis and had no scaling)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(()))
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * F.scaled_dot_product_attention(x, x, x, scale=self.scale)


class _MHASelfAttention(nn.Module):
    """Batch-first multi-head self-attention with a zero-initialised residual gate. The official layer was not
    batch_first and so attended across the frames of the batch (bug 4); this one attends within each frame."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.2) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * self.attn(x, x, x, need_weights=False)[0]


class _SelfExchange(LatentExchange):
    """The official AVS "v2" unimodal attention: the latent exchange applied to the stream's own tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, x)


class UnimodalAdapter(nn.Module):
    """Unimodal expert: optional self-attention over its own tokens, then the bottleneck; ignores the other modality.

    Args:
        activation: ReLU in the bottleneck (the official expert has none, bug 6).
        self_attention: "none", "mha" (batch-first), "latent" (official AVS v2) or "plain" (parameter-free).
    """

    kind = "ua"

    def __init__(self, dim: int, reduction: int = 8, groups: int = 2, batch_norm: bool = True,
                 activation: bool = True, self_attention: str = "none", num_tokens: int = 32,
                 attn_scale: bool = True, latent_init: str = "uniform", gate: bool = True) -> None:
        super().__init__()
        attention = {
            "none": lambda: nn.Identity(),
            "mha": lambda: _MHASelfAttention(dim, heads=_heads_for(dim)),
            "latent": lambda: _SelfExchange(dim, num_tokens, attn_scale, latent_init),
            "plain": lambda: _PlainSelfAttention(dim),
        }
        if self_attention not in attention:
            raise ValueError(f"self_attention={self_attention!r} is not one of {', '.join(attention)}")
        self.attention = attention[self_attention]()
        self.bottleneck = Bottleneck(dim, reduction, groups, batch_norm, activation=activation, gate=gate)

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        return self.bottleneck(self.attention(x))


def _heads_for(dim: int) -> int:
    """Four heads as in the official code, fewer when the width does not divide."""
    return next(h for h in (4, 2, 1) if dim % h == 0)
