"""AVE head: CMBS on top of the temporal attention (official `TemporalAttention` + `CMBS`, reference section 5.1).

Shapes: B batch, T segments, C event classes (foreground only; background is label -1), D the head width.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avmoe.data.sample import BACKGROUND
from avmoe.heads.base import Head, check_classes, label
from avmoe.heads.temporal import TemporalAttention
from avmoe.model import AVMoEFeatures

TOP_K = 4  # official: class scores averaged over the 4 best segments
AV_SCORE_WEIGHT = 0.3  # official CMBS gamma: event_scores = class_logits + 0.3 * av_score


class AVEHead(Head):
    """Per-segment event-vs-background logits and one event class per video.

    Outputs: "is_event" [B, T] logits; "event_scores" [B, C] (class logits of the time-max-pooled fused features
    plus 0.3 av_score); "av_score" [B, C] (mean of the audio and visual top-k class scores); "visual_cas",
    "audio_cas" [B, T, C] per-segment class scores of each modality.

    Args:
        visual_in: channels of `feats.visual` (the last visual stage).
        audio_in: channels of `feats.audio`.
        num_classes: C (AVE 28).
        dim: D (official 256).
        dropout: dropout after the visual projection (official 0.2).
    """

    task = "ave"

    def __init__(self, visual_in: int, audio_in: int, num_classes: int, dim: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.a_fc = nn.Linear(audio_in, dim // 2)  # official: 768 -> 128, no activation
        self.temporal = TemporalAttention(visual_in, 2 * dim, dim, ffn=4 * dim, dropout=dropout)
        self.visual_cas = nn.Linear(dim, num_classes)
        self.audio_cas = nn.Linear(dim, num_classes)
        self.is_event = nn.Linear(dim, 1)  # official: SupvLocalizeModule.classifier
        self.event_classifier = nn.Linear(dim, num_classes)

    def forward(self, feats: AVMoEFeatures, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        t = self.temporal(feats.visual, self.a_fc(feats.audio))
        visual_cas, audio_cas = self.visual_cas(t.visual), self.audio_cas(t.audio)  # [B, T, C]
        av_score = (_top_k_mean(visual_cas) + _top_k_mean(audio_cas)) / 2  # [B, C]
        fused = (t.visual + t.audio) / 2  # [B, T, D]
        class_logits = self.event_classifier(fused.max(dim=1).values)  # [B, C]
        return {
            "is_event": self.is_event(fused).squeeze(-1),
            "event_scores": class_logits + AV_SCORE_WEIGHT * av_score,
            "av_score": av_score,
            "visual_cas": visual_cas,
            "audio_cas": audio_cas,
        }

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """BCE(is_event, foreground) + CE(av_score, y) + CE(event_scores, y) (official).

        y is the video's event class: its most frequent foreground class (AVE videos have exactly one, where this
        equals the official argmax of the time-max label). A video with no event at all has no class, so it adds
        nothing to the two CE terms, which average over the videos that have one (zero if none has).
        """
        labels = label(batch, "ave", self.task).to(outputs["is_event"].device)
        check_classes(labels, self.num_classes, "ave", low=BACKGROUND)
        foreground = labels != BACKGROUND
        is_event = F.binary_cross_entropy_with_logits(outputs["is_event"].float(), foreground.float())
        counts = (F.one_hot(labels.clamp(min=0), self.num_classes) * foreground[..., None]).sum(dim=1)  # [B, C]
        has_event = counts.sum(dim=1) > 0
        y = torch.where(has_event, counts.argmax(dim=1), BACKGROUND)  # argmax: ties go to the lowest class id
        n = has_event.sum().clamp(min=1)
        av = F.cross_entropy(outputs["av_score"].float(), y, ignore_index=BACKGROUND, reduction="sum") / n
        event = F.cross_entropy(outputs["event_scores"].float(), y, ignore_index=BACKGROUND, reduction="sum") / n
        return {"loss": is_event + av + event, "is_event": is_event, "av_score": av, "event": event}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """"ave" [B, T] long: argmax(event_scores) where sigmoid(is_event) > 0.5, else -1 (official metric rule);
        "confidence" [B, T]: P(event) * P(class) for an event second, 1 - P(event) for background;
        "event_prob" [B, T] = sigmoid(is_event); "class_probs" [B, C] = softmax(event_scores)."""
        event_prob = torch.sigmoid(outputs["is_event"].float())
        class_probs = torch.softmax(outputs["event_scores"].float(), dim=-1)
        best_prob, best = class_probs.max(dim=-1)  # torch.max: ties go to the first class, as the official
        foreground = event_prob > 0.5  # strict, as the official
        return {
            "ave": torch.where(foreground, best[:, None], BACKGROUND),
            "confidence": torch.where(foreground, event_prob * best_prob[:, None], 1 - event_prob),
            "event_prob": event_prob,
            "class_probs": class_probs,
        }


def _top_k_mean(scores: torch.Tensor) -> torch.Tensor:
    """[B, T, C] -> [B, C]: per class, the mean of the min(4, T) highest segment scores."""
    k = min(TOP_K, scores.shape[1])
    return scores.topk(k, dim=1).values.mean(dim=1)
