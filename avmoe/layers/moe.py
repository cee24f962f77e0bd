"""MoEAdapter: the other modality projected onto this stream's tokens, a router, and a dense soft mixture of experts."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from avmoe.config import AdapterConfig, RouterConfig
from avmoe.layers.adapters import CrossModalAdapter, UnimodalAdapter
from avmoe.layers.router import Router
from avmoe.layers.stacked import MIN_STACKED_ELEMENTS, reused_fold, stacked_mixture, stacking_pays
from avmoe.layers.trace import Key, RouterOverride, RouterTrace

EXPERT_IMPLS = ("loop", "batched")


class TokenMap(nn.Module):
    """Projects the other modality's tokens `[B, N_o, C_o]` onto this stream's grid `[B, N_s, C_s]`.

    mode "linear": a learned N_o -> N_s map over the token axis (the official 1x1 `conv_adapter` whose channels are
    tokens), then a C_o -> C_s linear (`fc`). Most of the paper's adapter parameters sit in the token map.
    mode "interp": parameter-free resampling of the token grid (bilinear when both sides are full 2-D grids,
    linear over the sequence otherwise), then the same C_o -> C_s linear.
    """

    def __init__(self, other_tokens: int, tokens: int, other_dim: int, dim: int, mode: str = "linear",
                 other_grid: Optional[tuple[int, int]] = None, grid: Optional[tuple[int, int]] = None) -> None:
        super().__init__()
        self.mode = mode
        self.size = (other_tokens, tokens)
        self.grids = (other_grid, grid)
        self.tokens = nn.Linear(other_tokens, tokens) if mode == "linear" else None
        self.channels = nn.Linear(other_dim, dim)

    def forward(self, other: torch.Tensor) -> torch.Tensor:
        if self.tokens is None and self.size[0] < self.size[1]:
            # Interpolation weights sum to 1, so resampling commutes with the channel linear: map the shorter side.
            return self._resample(self.channels(other).transpose(1, 2)).transpose(1, 2)
        t = other.transpose(1, 2)  # [B, C_o, N_o]
        if self.tokens is not None:
            t = self.tokens(t)
        elif self.size[0] != self.size[1] or self.grids[0] != self.grids[1]:
            t = self._resample(t)
        return self.channels(t.transpose(1, 2))  # [B, N_s, C_s]

    def _resample(self, t: torch.Tensor) -> torch.Tensor:
        (n_o, n_s), (g_o, g_s) = self.size, self.grids
        if g_o and g_s and math.prod(g_o) == n_o and math.prod(g_s) == n_s:
            img = F.interpolate(t.unflatten(-1, g_o), size=g_s, mode="bilinear", align_corners=False)
            return img.flatten(-2)
        return F.interpolate(t, size=n_s, mode="linear", align_corners=False)


@dataclass
class MoEOutput:
    out: torch.Tensor  # [B, N, C] the weighted sum of expert outputs
    probs: torch.Tensor  # [B, E] routing weights (after any override)
    balance_loss: torch.Tensor  # scalar; 0 for a single expert and without autograd (nothing learns from it there)


class MoEAdapter(nn.Module):
    """A mixture of cross-modal and unimodal adapters, weighted per frame by a router.

    Dense and soft, as the official code: `out = sum_e p_e * expert_e(x, t')`. Experts are ordered cross-modal
    first (names cma0, cma1, ...), then unimodal (ua0, ...). All expert gates start at zero, so a new mixture
    outputs zero and the backbone it sits beside is unchanged. A single-expert mixture has no router. Each forward
    writes its weights into the given `RouterTrace` under `key`. An expert whose weight is zero for every frame of
    the batch (inference top-k, overrides) is not run. With `adapter.experts_impl="batched"` an eval-mode mixture
    whose bottleneck is narrow enough computes its experts stacked (`avmoe.layers.stacked`) on token tensors of at
    least `MIN_STACKED_ELEMENTS`; otherwise, and always in training, it runs them one by one ("loop", the
    reference).
    """

    def __init__(self, key: Key, dim: int, other_dim: int, tokens: int, other_tokens: int,
                 num_cma: int, num_ua: int, adapter: AdapterConfig, router: RouterConfig, gate: bool = True,
                 grid: Optional[tuple[int, int]] = None, other_grid: Optional[tuple[int, int]] = None) -> None:
        super().__init__()
        if num_cma + num_ua < 1:
            raise ValueError("a mixture needs at least one expert")
        self.key = key
        self.token_map = TokenMap(other_tokens, tokens, other_dim, dim, adapter.token_map, other_grid, grid) \
            if num_cma else None  # unimodal experts never read the other modality
        a = adapter
        cmas = [CrossModalAdapter(dim, a.num_latent_tokens, a.reduction, a.groups, a.batch_norm, a.attn_scale,
                                  a.latent_init, gate) for _ in range(num_cma)]
        uas = [UnimodalAdapter(dim, a.reduction, a.groups, a.batch_norm, a.ua_activation, a.ua_self_attention,
                               a.num_latent_tokens, a.attn_scale, a.latent_init, gate) for _ in range(num_ua)]
        self.experts = nn.ModuleList(cmas + uas)
        self.expert_names = tuple([f"cma{i}" for i in range(num_cma)] + [f"ua{i}" for i in range(num_ua)])
        num = len(self.experts)
        self.router = Router(dim, num, router.hidden, router.temperature, router.noise_std, router.top_k) \
            if num > 1 else None
        if self.router is None and router.top_k > num:
            raise ValueError(f"top_k={router.top_k} exceeds num_experts={num}; lower top_k")
        if adapter.experts_impl not in EXPERT_IMPLS:
            raise ValueError(f"adapter.experts_impl={adapter.experts_impl!r} is not one of {', '.join(EXPERT_IMPLS)}")
        self.stacked = adapter.experts_impl == "batched" and \
            stacking_pays(dim, self.experts[0].bottleneck.down.weight.shape[0])  # only where it is faster
        self.balance = adapter.balance_loss
        self.override: Optional[RouterOverride] = None

    def forward(self, x: torch.Tensor, other: torch.Tensor, trace: Optional[RouterTrace] = None) -> MoEOutput:
        """x: this stream's tokens [B, N_s, C_s]; other: the other stream's tokens [B, N_o, C_o]."""
        t = self.token_map(other) if self.token_map is not None else x
        if self.router is None:
            probs = x.new_ones(x.shape[0], 1)
        else:
            probs = self.router(x, t)
        overridden = self.override is not None and self.override.applies(self.key)
        if overridden:
            probs = self.override(probs, self.expert_names)
        # Only overrides and inference top-k give weights of exactly zero; a dense softmax needs no check (and no
        # host sync) for experts to skip.
        sparse = overridden or (self.router is not None and self.router.sparse)
        out = self.mix(x, t, probs, nonzero_experts(probs) if sparse else None)
        if trace is not None:
            trace.record(self.key, probs, self.expert_names)
        balance = self._balance_loss(probs) if torch.is_grad_enabled() else probs.new_zeros(())  # only to learn from
        return MoEOutput(out, probs, balance)

    def mix(self, x: torch.Tensor, t: torch.Tensor, probs: torch.Tensor,
            used: Optional[list[int]] = None) -> torch.Tensor:
        """`sum_e p_e * expert_e(x, t)` over the experts in `used` (default: all of them); [B, N, C]."""
        used = list(range(len(self.experts))) if used is None else used
        # The stacked path folds BatchNorm's running statistics into the maps, so it is eval-mode only; training
        # (batch statistics, running-stat updates, MHA dropout) always takes the loop.
        if self.stacked and not self.training and x.numel() >= MIN_STACKED_ELEMENTS:
            experts = [self.experts[e] for e in used]
            kept = probs if len(used) == len(self.experts) else probs[:, used]
            return stacked_mixture(experts, x, t, kept, reused_fold(self, used, experts))
        out = probs[:, used[0], None, None] * self.experts[used[0]](x, t)
        for e in used[1:]:
            out = torch.addcmul(out, probs[:, e, None, None], self.experts[e](x, t))
        return out

    def _balance_loss(self, probs: torch.Tensor) -> torch.Tensor:
        if self.router is None or self.balance == "none":
            return probs.new_zeros(())
        mean = probs.mean(dim=0).clamp_min(1e-9)  # average routing over the frames of the batch
        if self.balance == "official":
            # official: kl_div(log p, target 1) = -sum_e log p_e (its uniform target was 1, not 1/E; bug 3)
            return -mean.log().sum()
        uniform = 1.0 / mean.numel()
        return (uniform * (math.log(uniform) - mean.log())).sum()  # KL(uniform || mean routing)


def nonzero_experts(probs: torch.Tensor) -> list[int]:
    """The experts with a nonzero weight for some frame of `probs` [B, E]; all of them for an empty batch."""
    used = [e for e, u in enumerate(probs.ne(0).any(dim=0).tolist()) if u]
    return used or list(range(probs.shape[1]))
