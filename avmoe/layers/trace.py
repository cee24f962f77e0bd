"""The router trace (every mixture's weights of the last forward) and router overrides (interventions)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

Key = tuple[str, int, str]  # (stream "audio"|"visual", layer index, position "p1"|"p2")


@dataclass
class RouterTrace:
    """Routing weights `[batch, segments, experts]` per (stream, layer, position), filled during a forward."""

    batch: int
    segments: int
    weights: dict[Key, torch.Tensor] = field(default_factory=dict)
    experts: dict[Key, tuple[str, ...]] = field(default_factory=dict)

    def record(self, key: Key, probs: torch.Tensor, expert_names: tuple[str, ...]) -> None:
        self.weights[key] = probs.detach().reshape(self.batch, self.segments, -1)
        self.experts[key] = expert_names

    def keys(self, stream: Optional[str] = None, position: Optional[str] = None) -> list[Key]:
        return sorted(k for k in self.weights if (stream in (None, k[0])) and (position in (None, k[2])))

    def stack(self, stream: str, position: str) -> torch.Tensor:
        """Weights of one stream and position over layers: `[layers, batch, segments, experts]`."""
        keys = self.keys(stream, position)
        if not keys:
            raise KeyError(f"no router weights for stream={stream!r} position={position!r}")
        return torch.stack([self.weights[k] for k in keys])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: {"audio/3/p1": {"experts": [...], "weights": [[[...]]]}}."""
        return {f"{s}/{layer}/{p}": {"experts": list(self.experts[(s, layer, p)]),
                                     "weights": self.weights[(s, layer, p)].tolist()}
                for s, layer, p in self.keys()}


@dataclass
class RouterOverride:
    """An intervention on the routing weights, applied inside every matching mixture.

    Args:
        mode: "pin" (use `weights`), "cma" (cross-modal experts only), "ua" (unimodal only), "knockout" (zero the
            expert named in `expert`); kept weights are renormalised to sum 1.
        weights: for "pin", one weight per expert (renormalised).
        expert: for "knockout", the expert name such as "cma0" or "ua1".
        layers: the layer indices to change; None = every layer.
        streams: the streams to change.
    """

    mode: str
    weights: Optional[tuple[float, ...]] = None
    expert: Optional[str] = None
    layers: Optional[tuple[int, ...]] = None
    streams: tuple[str, ...] = ("audio", "visual")

    MODES = ("pin", "cma", "ua", "knockout")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise ValueError(f"override mode {self.mode!r} is not one of {', '.join(self.MODES)}")
        if self.mode == "pin" and not self.weights:
            raise ValueError("override mode 'pin' needs weights, one per expert")
        if self.mode == "knockout" and not self.expert:
            raise ValueError("override mode 'knockout' needs the expert name, e.g. 'cma0'")

    def applies(self, key: Key) -> bool:
        return key[0] in self.streams and (self.layers is None or key[1] in self.layers)

    def __call__(self, probs: torch.Tensor, expert_names: tuple[str, ...]) -> torch.Tensor:
        if self.mode == "pin":
            if len(self.weights) != len(expert_names):
                raise ValueError(f"pinned {len(self.weights)} weights but the mixture has experts {expert_names}")
            new = probs.new_tensor(self.weights).expand_as(probs)
        else:
            keep = [self._keeps(name) for name in expert_names]
            if not any(keep):
                raise ValueError(f"override {self.mode!r} removes every expert of a mixture with {expert_names}")
            new = probs * probs.new_tensor(keep)
            # a mixture whose kept experts had ~zero weight falls back to equal weights over them
            new = torch.where(new.sum(-1, keepdim=True) > 1e-12, new, probs.new_tensor(keep).expand_as(probs))
        return new / new.sum(dim=-1, keepdim=True)

    def _keeps(self, name: str) -> bool:
        if self.mode == "cma":
            return name.startswith("cma")
        if self.mode == "ua":
            return name.startswith("ua")
        return name != self.expert
