"""Task heads: `build_head(cfg, visual_stages, audio_stages)` picks the head of `cfg.task` and sizes it.

Every head maps `AVMoEFeatures` (+ the batch) to named outputs, has a `loss` and a `decode`; see `heads.base.Head`.
"""
from __future__ import annotations

from avmoe.backbones.base import Stage
from avmoe.config import TASKS, ModelConfig
from avmoe.heads.ave import AVEHead
from avmoe.heads.avqa import AVQAHead
from avmoe.heads.avs import AVSHead
from avmoe.heads.avvp import AVVPHead
from avmoe.heads.base import Head
from avmoe.heads.temporal import TemporalAttention, TemporalEncoder

__all__ = ["Head", "AVEHead", "AVVPHead", "AVSHead", "AVQAHead", "TemporalAttention", "TemporalEncoder",
           "build_head"]


def build_head(cfg: ModelConfig, visual_stages: tuple[Stage, ...], audio_stages: tuple[Stage, ...]) -> Head:
    """The head of `cfg.task`, with widths from `cfg.head` and input channels from the backbones' last stages.

    S4 and MS3 share the AVS head (they differ in the temporal-gate strength); its masks come out at
    `cfg.head.mask_size`, or `cfg.frame_size` when that is 0.
    """
    h = cfg.head
    visual, audio = visual_stages[-1], audio_stages[-1]
    if cfg.task == "ave":
        return AVEHead(visual.dim, audio.dim, h.num_classes, h.dim, h.dropout)
    if cfg.task == "avvp":
        return AVVPHead(visual.dim, audio.dim, h.num_classes, h.dim, dropout=h.dropout)
    if cfg.task in ("s4", "ms3"):
        return AVSHead(tuple(s.dim for s in visual_stages), audio.dim, h.mask_size or cfg.frame_size, h.dim,
                       task=cfg.task, dropout=h.dropout, dice_weight=h.dice_weight)
    if cfg.task == "avqa":
        return AVQAHead(visual.dim, audio.dim, h.num_classes, h.question_vocab, h.dim)
    raise ValueError(f"task={cfg.task!r} is not one of {', '.join(map(repr, TASKS))}")
