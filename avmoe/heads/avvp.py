"""AVVP head: the HAN hybrid attention network with attentive multiple-instance pooling (weakly supervised).

Shapes: B batch, T segments, C event classes, D the head width. Only the video-level labels supervise training;
the per-segment audio and visual events come out of the MIL pooling. The official AVMoE code uses the MGN head
(reference section 5.2); this is HAN, the baseline MGN builds on, with the same outputs and the same loss.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avmoe.heads.base import Head, label
from avmoe.model import AVMoEFeatures

THRESHOLD = 0.5  # HAN / official eval_metrics decision threshold
VISUAL_SMOOTHING = 0.9  # official label smoothing: audio targets y, visual targets 0.9 y + 0.05


class HANLayer(nn.Module):
    """One hybrid attention layer: a sequence attends to itself and to the other modality, then an FFN (HAN).

    `x + CMA(x, other) + SA(x)` -> LayerNorm -> `+ FFN` -> LayerNorm. HAN applies the same layer to both modalities.

    Args:
        dim: D.
        heads: attention heads (HAN: 1).
        ffn: feed-forward width (HAN: D).
        dropout: dropout of attention weights and residual branches (HAN: 0.1).
    """

    def __init__(self, dim: int, heads: int = 1, ffn: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop_cross = nn.Dropout(dropout)
        self.drop_self = nn.Dropout(dropout)
        self.drop_ffn = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """x, other [B, T, D] -> [B, T, D]."""
        cross = self.cross_attn(x, other, other, need_weights=False)[0]
        own = self.self_attn(x, x, x, need_weights=False)[0]
        x = self.norm1(x + self.drop_cross(cross) + self.drop_self(own))
        return self.norm2(x + self.drop_ffn(self.ffn(x)))


class AVVPHead(Head):
    """HAN encoder, per-segment class probabilities per modality, attentive MIL pooling.

    Outputs (all probabilities): "global_prob" [B, C] video-level; "a_prob", "v_prob" [B, C] video-level per
    modality; "a_frame_prob", "v_frame_prob" [B, T, C] per segment and modality.

    Args:
        visual_in, audio_in: channels of `feats.visual` and `feats.audio`.
        num_classes: C (LLP 25).
        dim: D.
        layers: HAN layers, each applied to both modalities from the previous layer's outputs (HAN used one).
        dropout: dropout inside the HAN layers.
    """

    task = "avvp"

    def __init__(self, visual_in: int, audio_in: int, num_classes: int, dim: int = 128, layers: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.fc_a = nn.Linear(audio_in, dim)
        self.fc_v = nn.Linear(visual_in, dim)
        self.layers = nn.ModuleList(HANLayer(dim, heads=1, ffn=dim, dropout=dropout) for _ in range(layers))
        self.fc_prob = nn.Linear(dim, num_classes)
        self.fc_frame_att = nn.Linear(dim, num_classes)
        self.fc_av_att = nn.Linear(dim, num_classes)

    def forward(self, feats: AVMoEFeatures, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        a, v = self.fc_a(feats.audio), self.fc_v(feats.visual)  # [B, T, D]
        for layer in self.layers:
            a, v = layer(a, v), layer(v, a)
        x = torch.stack([a, v], dim=2)  # [B, T, 2, D]: modality axis 0 = audio, 1 = visual
        frame_prob = torch.sigmoid(self.fc_prob(x))  # [B, T, 2, C]
        frame_att = torch.softmax(self.fc_frame_att(x), dim=1)  # over segments
        av_att = torch.softmax(self.fc_av_att(x), dim=2)  # over modalities
        temporal_prob = frame_att * frame_prob
        return {
            "global_prob": (temporal_prob * av_att).sum(dim=(1, 2)),
            "a_prob": temporal_prob[:, :, 0].sum(dim=1),
            "v_prob": temporal_prob[:, :, 1].sum(dim=1),
            "a_frame_prob": frame_prob[:, :, 0],
            "v_frame_prob": frame_prob[:, :, 1],
        }

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """BCE(global, y) + BCE(a_prob, y) + BCE(v_prob, 0.9 y + 0.05), y = "avvp_weak" [B, C] (official)."""
        y = label(batch, "avvp_weak", self.task).to(outputs["global_prob"].device).float()
        video = _bce(outputs["global_prob"], y)
        audio = _bce(outputs["a_prob"], y)
        visual = _bce(outputs["v_prob"], VISUAL_SMOOTHING * y + (1 - VISUAL_SMOOTHING) / 2)
        return {"loss": video + audio + visual, "global": video, "audio": audio, "visual": visual}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The official decisions (reference section 6): "avvp_weak" [B, C] = global_prob >= 0.5; "avvp_audio" and
        "avvp_visual" [B, T, C] = frame prob >= 0.5 AND the class is present at video level (all bool)."""
        present = outputs["global_prob"] >= THRESHOLD
        return {
            "avvp_weak": present,
            "avvp_audio": (outputs["a_frame_prob"] >= THRESHOLD) & present[:, None],
            "avvp_visual": (outputs["v_frame_prob"] >= THRESHOLD) & present[:, None],
        }


def _bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy on probabilities (torch's BCELoss), in float32 with autocast off: autocast refuses
    BCE on probabilities. The HAN pooling can exceed 1 (it sums attention-weighted probabilities over both
    modalities) and torch's BCE raises on that, so the probabilities are clamped to [0, 1] first."""
    with torch.autocast(prob.device.type, enabled=False):
        return F.binary_cross_entropy(prob.float().clamp(0.0, 1.0), target.float())
