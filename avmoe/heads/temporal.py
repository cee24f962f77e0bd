"""The CMBS / DG-SCT temporal attention that the AVE and AVS heads share.

Shapes: B batch, T segments, D the head width (`d_model`, official 256). Sequences are batch-first `[B, T, *]`; the
official code runs `[T, B, *]`, the same maths.

`TemporalEncoder` is the shared trunk: projections, BiLSTMs, a 2-layer transformer encoder per modality and a
sigmoid gate per segment on each encoder's output. `TemporalAttention` adds the 1-layer cross-modal decoders in both
directions (audio queries over the visual memory and the reverse) and the gated residual `v + 0.1 g_a v`. The AVS
head uses only the trunk's gates: the official AVS module also runs the decoders but discards their outputs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class CrossModalDecoderLayer(nn.Module):
    """Post-norm decoder layer whose query attends to [memory; query] (CMBS `DecoderLayer`), then a ReLU FFN.

    The official layer also builds a self-attention that it never calls; it is left out here.

    Args:
        dim: model width D.
        heads: attention heads.
        ffn: hidden width of the feed-forward.
        dropout: dropout of attention weights and of both residual branches (official 0.1).
    """

    def __init__(self, dim: int, heads: int = 4, ffn: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """query [B, Tq, D], memory [B, Tm, D] -> [B, Tq, D]."""
        memory = torch.cat([memory, query], dim=1)  # official: the query also attends to itself
        x = self.norm1(query + self.drop1(self.attn(query, memory, memory, need_weights=False)[0]))
        return self.norm2(x + self.drop2(self.ffn(x)))


class Encoded(NamedTuple):
    """What the trunk computes; every tensor is batch-first."""

    visual_seq: torch.Tensor  # [B, T, 2D] visual BiLSTM output
    audio_seq: torch.Tensor  # [B, T, D] audio BiLSTM output
    visual_memory: torch.Tensor  # [B, T, D] visual encoder output
    audio_memory: torch.Tensor  # [B, T, D]
    visual_gate: torch.Tensor  # [B, T, 1] sigmoid gate from the visual memory (guides the audio)
    audio_gate: torch.Tensor  # [B, T, 1] sigmoid gate from the audio memory (guides the visual)


class TemporalEncoder(nn.Module):
    """Visual projection, BiLSTMs, 2-layer self-attention encoders and per-segment sigmoid gates (CMBS).

    Widths as the official code with D = 256: the visual input goes through `v_fc` (-> `visual_width`, 512 in AVE,
    256 in AVS), ReLU and dropout; the audio arrives already projected to D/2 (128). The visual BiLSTM outputs 2D,
    the audio BiLSTM D; each encoder first maps its sequence to D.

    Args:
        visual_in: channels of the visual input.
        visual_width: output width of `v_fc` (the visual BiLSTM's input).
        dim: D; the audio input must be D // 2 wide.
        heads: attention heads of the encoders (official 4).
        ffn: feed-forward width of the encoders (official 1024 = 4D).
        dropout: dropout after `v_fc` (official 0.2).
    """

    def __init__(self, visual_in: int, visual_width: int, dim: int, heads: int = 4, ffn: int = 1024,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if dim % 2 or dim % heads:
            raise ValueError(f"head dim={dim} must be even and divisible by heads={heads}")
        self.v_fc = nn.Sequential(nn.Linear(visual_in, visual_width), nn.ReLU(), nn.Dropout(dropout))
        self.visual_rnn = nn.LSTM(visual_width, dim, batch_first=True, bidirectional=True)
        self.audio_rnn = nn.LSTM(dim // 2, dim // 2, batch_first=True, bidirectional=True)
        self.visual_in_proj = nn.Linear(2 * dim, dim)  # official: InternalTemporalRelationModule.affine_matrix
        self.audio_in_proj = nn.Linear(dim, dim)
        self.visual_encoder = _encoder(dim, heads, ffn)
        self.audio_encoder = _encoder(dim, heads, ffn)
        self.visual_gate = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())
        self.audio_gate = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> Encoded:
        """visual [B, T, visual_in], audio [B, T, D/2] -> `Encoded`."""
        visual_seq = self.visual_rnn(self.v_fc(visual))[0]  # [B, T, 2D]
        audio_seq = self.audio_rnn(audio)[0]  # [B, T, D]
        visual_memory = self.visual_encoder(self.visual_in_proj(visual_seq))
        audio_memory = self.audio_encoder(self.audio_in_proj(audio_seq))
        return Encoded(visual_seq, audio_seq, visual_memory, audio_memory,
                       self.visual_gate(visual_memory), self.audio_gate(audio_memory))


class TemporalOutput(NamedTuple):
    """The attended sequences and the gates that scaled them."""

    visual: torch.Tensor  # [B, T, D] visual queries over the audio memory, gated by the audio
    audio: torch.Tensor  # [B, T, D]
    visual_gate: torch.Tensor  # [B, T, 1]
    audio_gate: torch.Tensor  # [B, T, 1]


class TemporalAttention(nn.Module):
    """`TemporalEncoder` plus cross-modal decoders both ways and the gated residual `v + alpha * g_a * v`.

    Args:
        visual_in, visual_width, dim, heads, ffn, dropout: as `TemporalEncoder`.
        alpha: strength of the cross-modal gates (official 0.1).
    """

    def __init__(self, visual_in: int, visual_width: int, dim: int, heads: int = 4, ffn: int = 1024,
                 dropout: float = 0.2, alpha: float = 0.1) -> None:
        super().__init__()
        self.encoder = TemporalEncoder(visual_in, visual_width, dim, heads, ffn, dropout)
        self.visual_in_proj = nn.Linear(2 * dim, dim)  # official: CrossModalRelationAttModule.affine_matrix
        self.audio_in_proj = nn.Linear(dim, dim)
        self.visual_decoder = CrossModalDecoderLayer(dim, heads, ffn)
        self.audio_decoder = CrossModalDecoderLayer(dim, heads, ffn)
        self.alpha = alpha

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> TemporalOutput:
        """visual [B, T, visual_in], audio [B, T, D/2] -> gated visual and audio sequences [B, T, D] and the gates."""
        enc = self.encoder(visual, audio)
        v = self.visual_decoder(self.visual_in_proj(enc.visual_seq), enc.audio_memory)  # video queries audio
        a = self.audio_decoder(self.audio_in_proj(enc.audio_seq), enc.visual_memory)  # audio queries video
        v = v + self.alpha * enc.audio_gate * v
        a = a + self.alpha * enc.visual_gate * a
        return TemporalOutput(v, a, enc.visual_gate, enc.audio_gate)


def _encoder(dim: int, heads: int, ffn: int) -> nn.TransformerEncoder:
    # Official EncoderLayer: post-norm, ReLU, dropout 0.1; the same maths as torch's layer. No final norm.
    layer = nn.TransformerEncoderLayer(dim, heads, ffn, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
