"""The eval-mode fast path of `MoEAdapter`: a mixture's experts computed together in their narrow hidden space.

The reference is the mixture's loop, `sum_e p_e * expert_e(x, t)`. The loop writes and reads several `[B, N, C]`
tensors per expert (exchange output, two LayerNorms, the up map, the weighted sum), and CPU LayerNorm over few
channels is slow. Here no per-expert `[B, N, C]` tensor is formed: the tokens x are read once by one matmul that
applies every down map, the exchange scores and a mean row; every expert's input LayerNorm, exchange, down map, BN
and ReLU then happen on `[B, E, H + 1, N]` hidden tokens (see `_hidden`), and the output LayerNorms, gates,
routing weights and the sum over experts are one matmul that writes the `[B, N, C]` result (see `stacked_mixture`).
Equal to the loop up to float rounding, and differentiable. Its cost is some forty operations whatever the size, so
`MoEAdapter` runs it only on token tensors of at least `MIN_STACKED_ELEMENTS`.

Shapes: B frames, E experts, N tokens, C channels, H bottleneck width, T latent tokens, X experts with an exchange.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import nn

from avmoe.layers.adapters import Bottleneck, CrossModalAdapter, LatentExchange, UnimodalAdapter


def stacking_pays(dim: int, hidden: int) -> bool:
    """Whether the stacked path is faster than the loop for bottlenecks of width `hidden` on `dim` channels.

    Its matmuls cost about (2H + 1) * C multiply-adds per token and expert, dense over groups, against the loop's
    2 H * C / groups, but it makes no per-expert pass over the [B, N, C] tokens: measured on CPU it pays up to
    H = C / 4.
    """
    return 4 * hidden <= dim


MIN_STACKED_ELEMENTS = 1 << 16
"""Token tensors [B, N, C] with fewer elements run faster in the loop: the stacked path's fixed cost, some forty
small operations, then outweighs the passes over the tokens that it saves (measured on CPU with the tiny models:
the loop wins on their third-stage [10, 36, 128] tokens, the stacked path on the first-stage [10, 256, 32])."""


@dataclass
class ExchangeFold:
    """The weight-side tensors of the X experts with a latent exchange, which come first in the mixture."""

    latent: torch.Tensor  # [X * T, C] the experts' latent tokens, one after another
    queries: torch.Tensor  # [X * T, C] the latent tokens times the softmax scale
    write: torch.Tensor  # [X, H + 1, C] the experts' down maps (see `Folded.rows`) times their exchange gate g
    cross: torch.Tensor  # [X * T, 1] 2 g / C of each latent token's expert
    square: torch.Tensor  # [X, 1, 1] g^2 / C
    scale: float  # the softmax scale


@dataclass
class Folded:
    """The weight-side tensors of `stacked_mixture` for one list of experts."""

    rows: torch.Tensor  # [S * (H + 1) + 1, C] the down maps of the S experts that read x (see `_folded_down`), each
    # with a zero row appended, then 1/C
    own: list[torch.Tensor]  # [H + 2, C] per unimodal expert that reads its own self-attention instead: its down
    # map and zero row, then 1/C
    down_bias: torch.Tensor  # [E, H + 1] the down maps' biases, then 1: the hidden tokens [h, 1] come out whole
    relu: int  # the first `relu` experts apply a ReLU between the maps (CMAs always; UAs unless official bug 6)
    ln_eps: float  # the input LayerNorm's eps
    out_eps: float  # the output LayerNorm's eps
    gram: torch.Tensor  # [E, H + 1, H + 1] A_c A_c^T / C, the output LayerNorm's eps added in the last corner
    up: torch.Tensor  # [E * (H + 1), C] each A_c times the output LayerNorm's weight
    ln_bias: torch.Tensor  # [E, C] the output LayerNorms' biases
    gates: torch.Tensor  # [E] output gates (1 where an expert has none)
    exchange: Optional[ExchangeFold]  # None when no expert has a latent exchange


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
    downs = [_folded_down(m) for m in bottlenecks]
    downs = [(torch.cat([w, w.new_zeros(1, w.shape[1])]), torch.cat([b, b.new_ones(1)])) for w, b in downs]
    shared = len(cmas) if _reads_own_attention(uas) else len(experts)
    exchanges = [e.exchange for e in cmas] + [e.attention for e in uas if isinstance(e.attention, LatentExchange)]
    C = ups[0].shape[1]
    mean_row = ups[0].new_full((1, C), 1.0 / C)
    return Folded(
        rows=torch.cat([w for w, _ in downs[:shared]] + [mean_row]),
        own=[torch.cat([w, mean_row]) for w, _ in downs[shared:]],
        down_bias=torch.stack([b for _, b in downs]),
        relu=sum(isinstance(m.act, nn.ReLU) for m in bottlenecks),
        ln_eps=bottlenecks[0].ln_before.eps,
        out_eps=bottlenecks[0].ln_post.eps,
        gram=torch.stack(grams),
        up=torch.cat([a * m.ln_post.weight for m, a in zip(bottlenecks, ups)]),
        ln_bias=torch.stack([m.ln_post.bias for m in bottlenecks]),
        gates=torch.stack([m.gate if m.gate is not None else ups[0].new_ones(()) for m in bottlenecks]),
        exchange=_fold_exchanges(exchanges, [w for w, _ in downs[:len(exchanges)]]) if exchanges else None,
    )


def _fold_exchanges(exchanges: list[LatentExchange], downs: list[torch.Tensor]) -> ExchangeFold:
    g, C = torch.stack([m.gate for m in exchanges]), downs[0].shape[1]
    latent = torch.cat([m.tokens for m in exchanges])
    T = exchanges[0].tokens.shape[0]
    return ExchangeFold(latent=latent, queries=latent * exchanges[0].scale,
                        write=g[:, None, None] * torch.stack(downs), cross=(2 * g / C).repeat_interleave(T)[:, None],
                        square=(g.square() / C)[:, None, None], scale=exchanges[0].scale)


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
    row; `_hidden` gives [h, 1] whole) is never formed: with A_c = A minus its mean over C, y - mean(y) =
    [h, 1] @ A_c and var(y) + eps = [h, 1] gram [h, 1]^T come from the small hidden tokens h. So the output
    LayerNorm's 1/std, the routing weight and the gate scale the rows of [h, 1], its affine scales A_c, and the sum
    over experts is a concatenation along the inner dimension of one matmul.
    """
    f = folded if folded is not None else fold(experts)
    h = _hidden(experts, f, x, t)  # [B, E, H + 1, N]
    B, E, H1, N = h.shape
    var = torch.linalg.vecdot(f.gram @ h, h, dim=2)  # [B, E, N] variance of each y over C, plus eps
    coef = probs * f.gates  # [B, E]
    s = torch.rsqrt(var.clamp_min(f.out_eps)) * coef[:, :, None]  # [B, E, N]; var >= eps, the clamp guards rounding
    left = (h * s[:, :, None]).view(B, E * H1, N)
    return torch.baddbmm((coef @ f.ln_bias)[:, None], left.transpose(1, 2), f.up.expand(B, -1, -1))


def _hidden(experts: list[nn.Module], f: Folded, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Every expert's hidden tokens `act(bn1(down(ln_before(z_e))))` with a row of ones below, as [B, E, H + 1, N].

    Expert e's bottleneck input is z_e = x + g_e w_e, with w_e = P_e^T tok_e the exchange's write (P_e the softmax
    of the scores tok_e x^T over the T latent tokens; no exchange: g_e = 0). Its down map and LayerNorm statistics
    follow from x's (one matmul over x) and small [T, N] terms: with centred down maps W and centred tokens tok_c,
    W z_e = W x + g_e (W tok_e^T) P_e, and var(z_e) = var(x) + 2 g_e cov(x, w_e) + g_e^2 var(w_e) where
    C cov = sum_t P[t] (tok_c[t] . x) and C var(w_e) = P^T (tok_c tok_c^T) P per token.
    Unimodal experts with their own self-attention ("mha", "plain") read that attention's output instead of x.
    """
    cmas, uas = _split(experts)
    B, H1, ex = x.shape[0], f.down_bias.shape[1], f.exchange
    rows = f.rows.expand(B, -1, -1)
    if ex is not None:
        X = ex.write.shape[0]
        T = ex.latent.shape[0] // X
        n = len(cmas) * T  # the CMAs' latent tokens read t, a latent unimodal expert's read x
        tok = [_latent_tokens(ex.latent[:n], ex.queries[:n], t)] if cmas else []
        if n < X * T:
            tok.append(_latent_tokens(ex.latent[n:], ex.queries[n:], x))
        tok = torch.cat(tok, dim=1) if len(tok) > 1 else tok[0]  # [B, X * T, C]
        tok_c = tok - tok.mean(dim=-1, keepdim=True)
        rows = torch.cat([tok * ex.scale, tok_c * ex.cross, rows], dim=1)
    y, var = _project(x, rows, f.ln_eps)  # [B, K, N], [B, N]: var + eps
    down = y[:, -f.rows.shape[0] + 1:].unflatten(1, (-1, H1))  # [B, S, H + 1, N]
    rstd = torch.rsqrt(var)[:, None, None]
    bias = f.down_bias[:, :, None]
    if ex is not None:
        p = torch.softmax(y[:, :X * T].unflatten(1, (X, T)), dim=2)  # [B, X, T, N]
        cross = y[:, X * T:2 * X * T].unflatten(1, (X, T))  # 2 g cov(x, w), term by term over t
        tok, tok_c = tok.unflatten(1, (X, T)), tok_c.unflatten(1, (X, T))
        gram = (tok_c * ex.square) @ tok_c.transpose(-1, -2)  # [B, X, T, T]
        var_z = var[:, None] + torch.linalg.vecdot(p, cross + gram @ p, dim=2)  # [B, X, N]
        written = down[:, :X] + (ex.write @ tok.transpose(-1, -2)) @ p  # [B, X, H + 1, N]
        h = torch.addcmul(bias[:X], written, torch.rsqrt(var_z)[:, :, None])
        if X < down.shape[1]:
            h = torch.cat([h, torch.addcmul(bias[X:down.shape[1]], down[:, X:], rstd)], dim=1)
    else:
        h = torch.addcmul(bias[:down.shape[1]], down, rstd)
    for rows_e, ua, b in zip(f.own, uas, bias[down.shape[1]:]):  # `own` is empty or holds every unimodal expert
        yz, var_z = _project(ua.attention(x), rows_e.expand(B, -1, -1), f.ln_eps)
        h = torch.cat([h, torch.addcmul(b, yz, torch.rsqrt(var_z)[:, None])[:, None]], dim=1)
    if f.relu:  # the ones row stays 1
        h[:, :f.relu].relu_()
    return h


def _project(z: torch.Tensor, rows: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows` [B, K, C], whose last is the mean row 1/C, applied to every token of z [B, N, C], and each token's
    variance over C plus `eps`: [B, K - 1, N], [B, N].

    The mean comes from the one matmul; the variance is E[z^2] - mean^2 (CPU reductions over a few channels, as
    in LayerNorm or `var_mean`, are several times slower than a matmul and a dot product).
    """
    y = rows @ z.transpose(1, 2)  # [B, K, N]
    mean = y[:, -1]
    return y[:, :-1], torch.addcmul(torch.linalg.vecdot(z, z) / z.shape[-1] + eps, mean, mean, value=-1)


def _latent_tokens(latent: torch.Tensor, queries: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The exchange's first half for X experts reading one source: `L + softmax(L src^T * scale) src`, latent and
    queries (L * scale) [X * T, C], source [B, N_s, C] -> [B, X * T, C]."""
    scores = torch.matmul(queries, source.transpose(1, 2))  # [B, X * T, N_s]: each latent token's softmax is its own
    return torch.baddbmm(latent, torch.softmax(scores, dim=-1), source)


def _split(experts: list[nn.Module]) -> tuple[list[CrossModalAdapter], list[UnimodalAdapter]]:
    cmas = [e for e in experts if isinstance(e, CrossModalAdapter)]
    uas = [e for e in experts if isinstance(e, UnimodalAdapter)]
    if len(cmas) + len(uas) != len(experts) or experts[:len(cmas)] != cmas:
        raise TypeError("stacked_mixture takes CrossModalAdapter experts, then UnimodalAdapter experts")
    return cmas, uas


def _reads_own_attention(uas: list[UnimodalAdapter]) -> bool:
    """Whether unimodal experts read their own self-attention's output ("mha", "plain") rather than x."""
    return bool(uas) and not isinstance(uas[0].attention, (nn.Identity, LatentExchange))


def _folded_down(m: Bottleneck) -> tuple[torch.Tensor, torch.Tensor]:
    """The down map, dense over its groups, with the input LayerNorm's affine and the first BN folded in and its
    mean over C removed: (W' [H, C], b' [H])."""
    w, ln = m.down.dense_weight(), m.ln_before
    w, b = _fold_bn(m.bn1, w * ln.weight, w @ ln.bias)
    return w - w.mean(dim=1, keepdim=True), b


def _centred_up(m: Bottleneck) -> torch.Tensor:
    """A_c [H + 1, C]: the up map (dense, block-diagonal over groups) with the second BN folded in, transposed, its
    bias as the last row, minus the mean over C of each row."""
    w = m.up.dense_weight()
    w, b = _fold_bn(m.bn2, w, w.new_zeros(w.shape[0]))
    a = torch.cat([w.T, b[None]])
    return a - a.mean(dim=1, keepdim=True)


def _fold_bn(bn: nn.Module, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`bn(x @ w.T + b)` in eval mode as one affine map (w', b'); without a BN (Identity) it is (w, b)."""
    if not isinstance(bn, nn.BatchNorm1d):
        return w, b
    s = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return w * s[:, None], (b - bn.running_mean) * s + bn.bias
