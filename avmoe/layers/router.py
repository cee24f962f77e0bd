"""The router: one soft decision per frame over the experts of a mixture."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Router(nn.Module):
    """Mean-pooled own tokens and projected other tokens, concatenated -> MLP -> softmax over experts.

    Args:
        dim: channels C of this stream; the MLP input is 2C.
        num_experts: E, cross-modal experts first, then unimodal (official order).
        hidden: MLP widths (official: 128, 32, with ReLU between).
        temperature: divides the logits before the softmax.
        noise_std: Gaussian noise added to the logits in training mode only (official AVS: 0.01).
        top_k: in eval mode keep the k largest weights and renormalise; 0 keeps the dense mixture.
    """

    def __init__(self, dim: int, num_experts: int, hidden: tuple[int, ...] = (128, 32), temperature: float = 1.0,
                 noise_std: float = 0.0, top_k: int = 0) -> None:
        super().__init__()
        if top_k > num_experts:
            raise ValueError(f"top_k={top_k} exceeds num_experts={num_experts}; lower top_k")
        layers: list[nn.Module] = []
        width = 2 * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_experts))
        self.mlp = nn.Sequential(*layers)  # the official layout and parameter names; `forward` runs its linears
        self._linears = [m for m in layers if isinstance(m, nn.Linear)]
        self.temperature = temperature
        self.noise_std = noise_std
        self.top_k = top_k

    def forward(self, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """own, other: [B, N, C] (the same N) -> routing weights [B, E] that sum to 1."""
        # Fewer operations than running `self.mlp` on the means: the token means as sums whose 1/N is applied inside
        # the first matmul, then the linears called directly (the router runs 16 times per tiny forward, on tiny
        # tensors, where each operation's fixed cost is most of its time).
        first, *rest = self._linears
        logits = torch.addmm(first.bias, torch.cat([own.sum(dim=1), other.sum(dim=1)], dim=-1), first.weight.t(),
                             alpha=1.0 / own.shape[1])
        for linear in rest:
            logits = F.linear(logits.relu_(), linear.weight, linear.bias)
        if self.training and self.noise_std > 0:
            logits = logits + self.noise_std * torch.randn_like(logits)
        probs = torch.softmax(logits if self.temperature == 1 else logits / self.temperature, dim=-1)
        if self.sparse:
            probs = keep_top_k(probs, self.top_k)
        return probs

    @property
    def sparse(self) -> bool:
        """Whether the weights it returns now may hold exact zeros: inference top-k below the expert count."""
        return not self.training and 0 < self.top_k < self._linears[-1].out_features


def keep_top_k(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k largest weights of each row and renormalise to sum 1."""
    top = probs.topk(k, dim=-1)
    kept = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
    return kept / kept.sum(dim=-1, keepdim=True)
