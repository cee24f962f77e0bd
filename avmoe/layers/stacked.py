"""The eval-mode fast path of `MoEAdapter`: a mixture's experts computed stacked, with their norms folded away.

The reference is the mixture's loop, `sum_e p_e * expert_e(x, t)`. Here the cross-modal exchanges of all experts
run as two fused attention calls (an expert per batch row), unimodal experts without self-attention share one
normalised input, the input LayerNorm's affine and the first BatchNorm (running statistics) are folded into each down
map, and the rest of every bottleneck plus the weighted sum over experts is one matmul that writes only the
`[B, N, C]` result (see `stacked_mixture`). Equal to the loop up to float rounding, and differentiable.

Shapes: B frames, E experts, N tokens, C channels, H bottleneck width, T latent tokens.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from avmoe.layers.adapters import Bottleneck, CrossModalAdapter, LatentExchange, UnimodalAdapter, attend


def stacking_pays(dim: int, hidden: int) -> bool:
    """Whether the stacked path is faster than the loop for bottlenecks of width `hidden` on `dim` channels.

    Its output matmul costs (H + 1) * C multiply-adds per token and expert against the loop's H * C / groups, but
    saves about six passes over the [B, N, C] tokens per expert: measured on CPU it pays up to H = C / 4.
    """
    return 4 * hidden <= dim


@dataclass
class Folded:
    """The weight-side tensors of `stacked_mixture` for one list of experts."""

    down: list[tuple[torch.Tensor, torch.Tensor, int]]  # per expert (W' [H, C/g], b' [H], groups)
    relu: list[bool]  # per expert: ReLU between the maps
    gram: torch.Tensor  # [E, H + 1, H + 1] A_c A_c^T / C, the output LayerNorm's eps added in the last corner
    right: torch.Tensor  # [E * (H + 1) + E, C]: each A_c times the output LayerNorm's weight, then its biases
    gates: torch.Tensor  # [E] output gates (1 where an expert has none)
    cma_exchange: Optional[tuple[torch.Tensor, torch.Tensor]]  # latent tokens [Ec, T, C] and gates [Ec]
    ua_exchange: Optional[tuple[torch.Tensor, torch.Tensor]]  # the same for "latent" unimodal self-attention


def fold(experts: list[nn.Module]) -> Folded:
    """The experts' weights stacked and folded for `stacked_mixture` (BatchNorms use their running statistics)."""
    cmas, uas = _split(experts)
    bottlenecks = [e.bottleneck for e in cmas + uas]
    ups = [_centred_up(m) for m in bottlenecks]
    grams = []
    for m, a in zip(bottlenecks, ups):
        gram = a @ a.T / a.shape[1]
        gram[-1, -1] += m.ln_post.eps  # [h, 1] gram [h, 1]^T is then var + eps
        grams.append(gram)
    right = [a * m.ln_post.weight for m, a in zip(bottlenecks, ups)]
    right.append(torch.stack([m.ln_post.bias for m in bottlenecks]))
    ones = ups[0].new_ones(())
    attention = [e.attention for e in uas]
    latent_ua = bool(uas) and all(isinstance(a, LatentExchange) for a in attention)
    return Folded(
        down=[_folded_down(m) for m in bottlenecks],
        relu=[isinstance(m.act, nn.ReLU) for m in bottlenecks],
        gram=torch.stack(grams),
        right=torch.cat(right),
        gates=torch.stack([m.gate if m.gate is not None else ones for m in bottlenecks]),
        cma_exchange=_stack_exchanges([e.exchange for e in cmas]) if cmas else None,
        ua_exchange=_stack_exchanges(attention) if latent_ua else None,
    )


# Folds kept inside `reuse_folds`, per thread or task: the app serves requests from several threads at once.
_REUSED: contextvars.ContextVar[Optional[dict[tuple[int, tuple[int, ...]], tuple[nn.Module, Folded]]]] = \
    contextvars.ContextVar("avmoe_reused_folds", default=None)


@contextlib.contextmanager
def reuse_folds() -> Iterator[None]:
    """Inside the block each mixture folds its experts' weights once and reuses the fold: for inference over many
    inputs (the Predictor, evaluation), where no weight changes. Outside it, every call folds afresh."""
    token = _REUSED.set(_REUSED.get() if _REUSED.get() is not None else {})
    try:
        yield
    finally:
        _REUSED.reset(token)


def reused_fold(owner: nn.Module, used: list[int], experts: list[nn.Module]) -> Optional[Folded]:
    """`fold(experts)` kept for `owner` inside `reuse_folds` and without autograd; None otherwise (fold per call)."""
    reused = _REUSED.get()
    if reused is None or torch.is_grad_enabled():
        return None
    key = (id(owner), tuple(used))
    if key not in reused:
        reused[key] = (owner, fold(experts))  # holding the owner keeps its id from being reused in the block
    return reused[key][1]


def stacked_mixture(experts: list[nn.Module], x: torch.Tensor, t: torch.Tensor, probs: torch.Tensor,
                    folded: Optional[Folded] = None) -> torch.Tensor:
    """Eval-mode `sum_e probs[:, e] * experts[e](x, t)`: x, t [B, N, C], probs [B, E] -> [B, N, C].

    `folded` is `fold(experts)` if the caller keeps it (`reused_fold`); it is computed here otherwise.

    Each bottleneck's up map output y = [h, 1] @ A (A: the map with the second BN folded in and its bias as the last
    row) is never formed: with A_c = A minus its mean over C, y - mean(y) = [h, 1] @ A_c and var(y) + eps =
    [h, 1] gram [h, 1]^T come from the small hidden tokens h. So the output LayerNorm's 1/std, the routing weight
    and the gate scale the rows of [h, 1], its affine scales A_c, and the sum over experts is a concatenation along
    the inner dimension of one matmul.
    """
    f = folded if folded is not None else fold(experts)
    cmas, uas = _split(experts)
    ln = experts[0].bottleneck.ln_before
    # The affine is folded into the down maps; a unit one is passed anyway, as CPU layer_norm without an affine takes
    # a slower kernel (1.7x on [10, 576, 32] tokens).
    unit = x.new_ones(x.shape[-1]), x.new_zeros(x.shape[-1])
    normalise = lambda y: F.layer_norm(y, ln.normalized_shape, *unit, eps=ln.eps)  # noqa: E731
    inputs = list(normalise(_exchange(*f.cma_exchange, cmas[0].exchange.scale, x, t)).unbind(0)) if cmas else []
    attention = [e.attention for e in uas]
    if f.ua_exchange is not None:
        inputs += normalise(_exchange(*f.ua_exchange, attention[0].scale, x, x)).unbind(0)
    elif all(isinstance(a, nn.Identity) for a in attention):
        inputs += [normalise(x)] * len(uas)
    else:
        inputs += [normalise(a(x)) for a in attention]
    E, (B, N) = len(inputs), x.shape[:2]
    hidden = []
    for e, z in enumerate(inputs):
        h = _grouped_linear(z, *f.down[e]).flatten(0, 1)  # [B*N, H]
        hidden.append(h.relu() if f.relu[e] else h)
    h1 = F.pad(torch.stack(hidden), (0, 1), value=1.0)  # [E, B*N, H + 1]
    var = (torch.bmm(h1, f.gram) * h1).sum(-1)  # [E, B*N] variance of each y over C, plus eps
    coef = probs * f.gates  # [B, E]
    eps = experts[0].bottleneck.ln_post.eps  # var >= eps; the clamp only guards against rounding
    s = torch.rsqrt(var.clamp_min(eps)).view(E, B, N) * coef.T[:, :, None]  # [E, B, N]
    left = (h1.view(E, B, N, -1) * s[..., None]).permute(1, 2, 0, 3).reshape(B, N, -1)  # [B, N, E*(H+1)]
    return torch.cat([left, coef[:, None].expand(-1, N, -1)], dim=-1) @ f.right  # coef weighs the LN biases


def _split(experts: list[nn.Module]) -> tuple[list[CrossModalAdapter], list[UnimodalAdapter]]:
    cmas = [e for e in experts if isinstance(e, CrossModalAdapter)]
    uas = [e for e in experts if isinstance(e, UnimodalAdapter)]
    if len(cmas) + len(uas) != len(experts) or experts[:len(cmas)] != cmas:
        raise TypeError("stacked_mixture takes CrossModalAdapter experts, then UnimodalAdapter experts")
    return cmas, uas


def _stack_exchanges(layers: list[LatentExchange]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([m.tokens for m in layers]), torch.stack([m.gate for m in layers])


def _exchange(latent: torch.Tensor, gates: torch.Tensor, scale: float, x: torch.Tensor,
              source: torch.Tensor) -> torch.Tensor:
    """`LatentExchange` of E experts in two fused attention calls: x [B, N, C], source [B, N_s, C] -> [E, B, N, C]."""
    E, B = latent.shape[0], x.shape[0]
    latent = latent[:, None].expand(-1, B, -1, -1)  # [E, B, T, C]
    src = source.expand(E, -1, -1, -1)  # [E, B, N_s, C]
    tok = latent + attend(latent, src, src, scale)  # [E, B, T, C]
    write = attend(x.expand(E, -1, -1, -1), tok, tok, scale)  # [E, B, N, C]
    return torch.addcmul(x, write, gates[:, None, None, None])


def _folded_down(m: Bottleneck) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The down map with the input LayerNorm's affine and the first BN folded in: (W' [H, C/g], b' [H], groups)."""
    g, ln = m.down.groups, m.ln_before
    w = m.down.weight.unflatten(0, (g, -1))  # [g, H/g, C/g]
    b = (w @ ln.bias.view(g, -1, 1)).flatten()  # the map applied to the LayerNorm's bias
    w, b = _fold_bn(m.bn1, (w * ln.weight.view(g, 1, -1)).flatten(0, 1), b)
    return w, b, g


def _centred_up(m: Bottleneck) -> torch.Tensor:
    """A_c [H + 1, C]: the up map (dense, block-diagonal over groups) with the second BN folded in, transposed, its
    bias as the last row, minus the mean over C of each row."""
    w = m.up.weight
    if m.up.groups > 1:
        w = torch.block_diag(*w.unflatten(0, (m.up.groups, -1)))
    w, b = _fold_bn(m.bn2, w, w.new_zeros(w.shape[0]))
    a = torch.cat([w.T, b[None]])
    return a - a.mean(dim=1, keepdim=True)


def _fold_bn(bn: nn.Module, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`bn(x @ w.T + b)` in eval mode as one affine map (w', b'); without a BN (Identity) it is (w, b)."""
    if not isinstance(bn, nn.BatchNorm1d):
        return w, b
    s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return w * s[:, None], (b - bn.running_mean) * s + bn.bias


def _grouped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """`GroupedLinear` plus a bias: x [..., C_in] -> [..., C_out], the groups as one matmul over strided views."""
    if groups == 1:
        return F.linear(x, w, b)
    rows = x.reshape(-1, groups, x.shape[-1] // groups).transpose(0, 1)  # [g, M, C_in/g], no copy
    y = torch.bmm(rows, w.unflatten(0, (groups, -1)).transpose(1, 2)).transpose(0, 1)  # [M, g, C_out/g]
    return (y + b.view(groups, -1)).reshape(*x.shape[:-1], -1)
