"""What a backbone must expose so adapters can run beside its blocks, one block at a time."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Stage:
    """One stage of a backbone: channels, token grid (h, w), number of tokens (grid plus prefix tokens), depth."""

    dim: int
    grid: tuple[int, int]
    tokens: int
    depth: int


class Backbone(nn.Module, ABC):
    """A frozen encoder split into stages of blocks whose attention and feed-forward branches run separately.

    Subclasses set `modality` and `stages` and implement the methods below. Tokens are `[B, N, C]` everywhere.
    A frozen backbone stays in eval mode even when its parent module is put in train mode: its dropout, drop-path,
    SpecAugment and BatchNorm statistics never change (the official code left them active; reference bug 7).
    """

    modality: str = ""
    stages: tuple[Stage, ...] = ()
    frozen: bool = False

    def freeze(self) -> "Backbone":
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(mode and not self.frozen)

    # --- the block-level interface the model drives ---
    @abstractmethod
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Raw input for B frames (images [B,3,H,W] in [0,1], or waveforms [B,S]) -> the embedding's input."""

    @abstractmethod
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared input -> the first stage's tokens [B, N, C]."""

    @abstractmethod
    def enter_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Tokens leaving stage-1 -> tokens entering `stage` (patch merging; identity for stage 0)."""

    @abstractmethod
    def attn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        """The residual increment of a block's attention: the block computes `x + attn_branch(x)`."""

    @abstractmethod
    def ffn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        """The residual increment of a block's feed-forward: `x + ffn_branch(x)`."""

    def stage_output(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """The features a stage hands to heads (the last stage may apply the final norm)."""
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output tokens -> one vector per frame [B, C]."""
        return x.mean(dim=1)

    # --- conveniences built on the interface ---
    def run_block(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_branch(stage, block, x)
        return x + self.ffn_branch(stage, block, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Plain forward without adapters: raw input -> pooled features [B, C]."""
        x = self.embed(self.prepare(x))
        for s, stage in enumerate(self.stages):
            x = self.enter_stage(s, x)
            for b in range(stage.depth):
                x = self.run_block(s, b, x)
        return self.pool(self.stage_output(len(self.stages) - 1, x))
