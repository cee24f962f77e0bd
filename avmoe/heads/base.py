"""The interface every task head implements, and the label lookup the losses share.

A head reads the encoder's `AVMoEFeatures` (and, for AVQA, the question in the batch) and returns its raw outputs by
name; `loss` turns them into named loss terms with the total under "loss"; `decode` turns them into predictions.
Where a prediction has a label counterpart, `decode` uses the label's batch key and layout ("ave", "avvp_audio",
"masks", "answer"), so metrics and the app compare the two directly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from avmoe.model import AVMoEFeatures


class Head(nn.Module, ABC):
    """A task head: `forward(feats, batch)` -> outputs, `loss(outputs, batch)` -> terms, `decode(outputs)` -> preds.

    `forward` needs no labels (inference); `loss` reads only its own task's label keys.
    """

    task: str = ""

    @abstractmethod
    def forward(self, feats: AVMoEFeatures, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Raw outputs (logits or probabilities) by name."""

    @abstractmethod
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Named scalar loss terms, with their weighted sum under "loss"."""

    @abstractmethod
    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Predictions in the layout of the task's labels (see the module docstring)."""


def label(batch: dict[str, Any], key: str, task: str) -> torch.Tensor:
    """`batch[key]`, or a ValueError that names the missing key and the keys the batch has."""
    if key not in batch:
        raise ValueError(f"the {task} loss needs batch[{key!r}]; the batch has {sorted(batch)}. Pass the task's "
                         f"labels, or call forward/decode only for inference")
    return batch[key]


def check_classes(target: torch.Tensor, num_classes: int, name: str, low: int = 0) -> None:
    """Raise if integer labels fall outside [low, num_classes): a clear error instead of a CUDA device assert."""
    if target.numel() and (int(target.min()) < low or int(target.max()) >= num_classes):
        raise ValueError(f"{name} labels must lie in [{low}, {num_classes}), got [{int(target.min())}, "
                         f"{int(target.max())}]; the head was built for {num_classes} (see cfg.head), check it against the data")
