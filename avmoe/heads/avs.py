"""AVS head (S4 and MS3): the AVSBench TPAVI decoder as AVMoE uses it (official `Pred_endecoder`, section 5.3).

Shapes: B batch, T frames, D the head width (official 256), h x w a stage's token grid, s_i the pyramid side of
level i (finest first), H x W the output mask size.

Data flow: each visual stage [B, T, C_i, h_i, w_i] -> 1x1 map to D -> bicubic resize to s_i (official 56/28/14/7
for 224 px masks, i.e. H/4 ... H/32) -> optional temporal gating by the audio -> TPAVI audio-guided non-local fusion
-> FPN fusion blocks from the coarsest level up -> output convs -> mask logits resized to H x W.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from avmoe.heads.base import Head, label
from avmoe.heads.temporal import TemporalEncoder
from avmoe.model import AVMoEFeatures

GAMMA = {"s4": 0.05, "ms3": 0.1}  # official temporal-gate strength per task


class TPAVI(nn.Module):
    """Audio-guided non-local block, "dot" mode (AVSBench TPAVI): every position attends to every frame's audio.

    `z = LayerNorm(x + W_z(y))` with `y_i = sum_j (theta(x_i) . phi(a_j)) g(x_j) / N` over all N = T*h*w positions
    j, where `a_j` is the audio of position j's frame. As the audio is constant over a frame, the sum is computed
    exactly as `theta(x_i) . phi(a_t)` against each frame's mean `g`, divided by T, without the N x N matrix.
    `W_z` ends in a norm whose scale starts at zero, so the block starts as `LayerNorm(x)`. The official norm is
    BatchNorm3d; GroupNorm(1) keeps samples independent in training as well as in evaluation.

    Args:
        dim: D (channels of the visual map).
        audio_dim: channels of the audio feature (official 128).
    """

    def __init__(self, dim: int, audio_dim: int) -> None:
        super().__init__()
        inner = dim // 2
        self.align = nn.Linear(audio_dim, dim)  # official: align_channel
        self.theta = nn.Linear(dim, inner)  # 1x1x1 convs, written as per-position linear maps
        self.phi = nn.Linear(dim, inner)
        self.g = nn.Linear(dim, inner)
        self.w_z = nn.Linear(inner, dim)
        self.w_z_norm = nn.GroupNorm(1, dim)
        nn.init.zeros_(self.w_z_norm.weight)
        nn.init.zeros_(self.w_z_norm.bias)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """x [B, T, D, h, w], audio [B, T, audio_dim] -> [B, T, D, h, w]."""
        B, T, D, h, w = x.shape
        x = x.permute(0, 1, 3, 4, 2)  # [B, T, h, w, D]
        theta = self.theta(x).reshape(B, T * h * w, -1)  # [B, N, D/2]
        phi = self.phi(self.align(audio))  # [B, T, D/2]
        g = self.g(x).mean(dim=(2, 3))  # [B, T, D/2]: each frame's mean over its positions
        y = theta @ (phi.transpose(1, 2) @ g) / T  # [B, N, D/2]
        y = self.w_z(y).reshape(B, T, h, w, D).permute(0, 4, 1, 2, 3)  # [B, D, T, h, w]
        y = self.w_z_norm(y).permute(0, 2, 3, 4, 1)  # [B, T, h, w, D]
        return self.norm(x + y).permute(0, 1, 4, 2, 3)


class ResidualConvUnit(nn.Module):
    """x + conv3(ReLU(conv3(ReLU(x)))) (DPT / AVSBench)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FusionBlock(nn.Module):
    """FPN step (AVSBench `FeatureFusionBlock`): add the refined skip map, refine, upsample x2.

    Args:
        dim: channels.
        skip: whether the block takes a skip map (all but the coarsest level; the official coarsest block builds an
            unused skip unit, left out here).
    """

    def __init__(self, dim: int, skip: bool) -> None:
        super().__init__()
        self.skip = ResidualConvUnit(dim) if skip else None
        self.refine = ResidualConvUnit(dim)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [N, D, s, s] (+ skip [N, D, s, s]) -> [N, D, 2s, 2s]."""
        if self.skip is not None:
            x = x + self.skip(skip)
        return F.interpolate(self.refine(x), scale_factor=2, mode="bilinear", align_corners=True)


class AVSHead(Head):
    """Mask logits per frame from the visual stage maps guided by the pooled audio feature.

    Outputs: "mask_logits" [B, T, H, W].

    Args:
        visual_dims: channels of each visual stage, finest first (one pyramid level per stage).
        audio_in: channels of `feats.audio`.
        out_size: output mask side H = W (official 224).
        dim: D (official 256).
        task: "s4" or "ms3"; names the task in errors and picks the default gamma.
        temporal: gate the maps with a `TemporalEncoder` per level (official: on).
        gamma: gate strength: maps scaled by (1 + gamma g_a), audio by (1 + gamma mean g_v); None = the official
            value of the task (S4 0.05, MS3 0.1).
        dropout: dropout after the temporal encoders' visual projection (official 0.2).
        dice_weight: weight of a soft Dice loss added to the BCE (official 0). BCE alone leaves the small masks of
            the tiny models under-confident at the 0.5 threshold that mIoU uses; Dice scores each frame's overlap.
    """

    def __init__(self, visual_dims: tuple[int, ...], audio_in: int, out_size: int, dim: int = 256,
                 task: str = "s4", temporal: bool = True, gamma: Optional[float] = None,
                 dropout: float = 0.2, dice_weight: float = 0.0) -> None:
        super().__init__()
        if task not in GAMMA:
            raise ValueError(f"AVS task={task!r} is not one of {', '.join(map(repr, GAMMA))}")
        levels = len(visual_dims)
        if not levels:
            raise ValueError("the AVS head needs at least one visual stage")
        self.task = task
        self.out_size = out_size
        self.gamma = GAMMA[task] if gamma is None else gamma
        self.dice_weight = dice_weight
        # Sides s_i = H/4, H/8, ... rounded so that each level is exactly twice the next coarser one.
        coarsest = max(1, round(out_size / 2 ** (levels + 1)))
        self.sizes = tuple(coarsest * 2 ** (levels - 1 - i) for i in range(levels))
        self.stage_proj = nn.ModuleList(nn.Linear(c, dim) for c in visual_dims)  # official: x{i}_linear_
        self.audio_proj = nn.Linear(audio_in, dim // 2)  # official: audio_linear, 768 -> 128
        self.temporal = (nn.ModuleList(TemporalEncoder(dim, dim, dim, ffn=4 * dim, dropout=dropout)
                                       for _ in range(levels)) if temporal else None)
        self.tpavi = nn.ModuleList(TPAVI(dim, dim // 2) for _ in range(levels))
        self.fusion = nn.ModuleList(FusionBlock(dim, skip=i < levels - 1) for i in range(levels))
        self.output_conv = nn.Sequential(
            nn.Conv2d(dim, dim // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(dim // 2, max(dim // 8, 8), 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(max(dim // 8, 8), 1, 1),
        )

    def forward(self, feats: AVMoEFeatures, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if len(feats.visual_stages) != len(self.stage_proj):
            raise ValueError(f"the AVS head was built for {len(self.stage_proj)} visual stages, got "
                             f"{len(feats.visual_stages)}")
        maps = [self._level(x, proj, size) for x, proj, size in zip(feats.visual_stages, self.stage_proj, self.sizes)]
        audio = self.audio_proj(feats.audio)  # [B, T, D/2]
        if self.temporal is not None:
            encoded = [enc(m.mean(dim=(-2, -1)), audio) for enc, m in zip(self.temporal, maps)]
            maps = [m * (1 + self.gamma * e.audio_gate[..., None, None]) for m, e in zip(maps, encoded)]
            visual_gate = torch.stack([e.visual_gate for e in encoded]).mean(dim=0)  # [B, T, 1]
            audio = audio * (1 + self.gamma * visual_gate)
        maps = [tpavi(m, audio) for tpavi, m in zip(self.tpavi, maps)]
        B, T = audio.shape[:2]
        x = self.fusion[-1](maps[-1].flatten(0, 1))
        for block, skip in zip(self.fusion[-2::-1], maps[-2::-1]):
            x = block(x, skip.flatten(0, 1))
        logits = self.output_conv(x)  # [B*T, 1, 4 s_0, 4 s_0]
        if logits.shape[-1] != self.out_size:
            logits = F.interpolate(logits, size=(self.out_size, self.out_size), mode="bilinear")
        return {"mask_logits": logits.reshape(B, T, self.out_size, self.out_size)}

    @staticmethod
    def _level(x: torch.Tensor, proj: nn.Linear, size: int) -> torch.Tensor:
        """A stage map [B, T, C, h, w] -> [B, T, D, size, size] (1x1 map, then bicubic resize as the official)."""
        B, T = x.shape[:2]
        x = proj(x.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3).flatten(0, 1)  # [B*T, D, h, w]
        return F.interpolate(x, size=(size, size), mode="bicubic").unflatten(0, (B, T))

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Mean BCE with logits over the pixels of the annotated frames ("mask_valid", default all frames), plus
        `dice_weight` times the mean soft Dice loss of those frames, `1 - (2 sum(p g) + 1) / (sum(p) + sum(g) + 1)`.

        The official S4 script scores only the first frame, which is what `mask_valid` says for AVSBench S4 train.
        Logits are resized to the masks' size when they differ. No annotated frame in the batch gives zero.
        """
        logits = outputs["mask_logits"].float()
        masks = label(batch, "masks", self.task).to(logits.device).float()
        valid = batch.get("mask_valid")
        valid = (torch.ones(masks.shape[:2], dtype=torch.bool, device=logits.device) if valid is None
                 else valid.to(logits.device, torch.bool))
        if masks.shape[:2] != logits.shape[:2] or valid.shape != masks.shape[:2]:
            raise ValueError(f"masks {tuple(masks.shape)} and mask_valid {tuple(valid.shape)} must match the "
                             f"outputs' [B, T] = {tuple(logits.shape[:2])}")
        if masks.shape[-2:] != logits.shape[-2:]:
            logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear")
        # Select before the loss, so that anything in an unannotated frame (even NaN) cannot reach the gradient.
        if not valid.any():
            zero = logits.sum() * 0
            return {"loss": zero, "mask": zero}
        logits, masks = logits[valid], masks[valid]  # [F, H, W] annotated frames
        bce = F.binary_cross_entropy_with_logits(logits, masks)
        if not self.dice_weight:
            return {"loss": bce, "mask": bce}
        probs = torch.sigmoid(logits).flatten(1)
        overlap = 2 * (probs * masks.flatten(1)).sum(-1) + 1
        dice = (1 - overlap / (probs.sum(-1) + masks.flatten(1).sum(-1) + 1)).mean()
        return {"loss": bce + self.dice_weight * dice, "mask": bce, "dice": dice}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """"mask_probs" [B, T, H, W] = sigmoid(logits); "masks" [B, T, H, W] bool = probs > 0.5 (strict, as the
        official mIoU)."""
        probs = torch.sigmoid(outputs["mask_logits"].float())
        return {"mask_probs": probs, "masks": probs > 0.5}
