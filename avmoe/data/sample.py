"""The one sample type every task, dataset, generator and corruption shares."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

BACKGROUND = -1
"""AVE label of a second with no audio-visual event."""

CARRIERS = ("av", "audio", "visual", "none")
"""Which modality carries the event of a second: the ground truth the router is judged against."""


@dataclass
class Clip:
    """T one-second segments of frames and audio, with labels by task and flags.

    Label keys (each optional; a generator or reader fills what it knows):
      "ave":   LongTensor [T], event class per second or BACKGROUND
      "avvp":  dict of FloatTensor: "audio" [T, C], "visual" [T, C], "weak" [C] (video-level)
      "masks": FloatTensor [T, H, W] in {0, 1}: pixels of the sounding objects (S4: one source, MS3: several)
      "mask_valid": BoolTensor [T]: which masks are annotated (AVSBench S4 train has only the first)
      "qa":    list of dicts {"question": str, "answer": str, "type": [modality, kind], "values": [...]}
    Meta keys: "world", "split", "index", "classes" (the label vocabulary), "carrier" (list of CARRIERS per second),
    "source" (file path), "attribution" (licence text of the media it was made from).
    """

    frames: torch.Tensor  # [T, 3, H, W] float32 in [0, 1]
    audio: torch.Tensor  # [T, samples] float32 mono, samples = sample_rate
    sample_rate: int
    audio_missing: bool = False
    visual_missing: bool = False
    labels: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, H, W], got {tuple(self.frames.shape)}")
        if self.audio.ndim != 2:
            raise ValueError(f"audio must be [T, samples], got {tuple(self.audio.shape)}")
        if self.frames.shape[0] != self.audio.shape[0]:
            raise ValueError(f"frames have {self.frames.shape[0]} segments but audio has {self.audio.shape[0]}")

    @property
    def num_segments(self) -> int:
        return self.frames.shape[0]

    def replace(self, **changes: Any) -> "Clip":
        """A copy with some fields changed (labels and meta dicts are copied, tensors shared)."""
        changes.setdefault("labels", dict(self.labels))
        changes.setdefault("meta", dict(self.meta))
        return replace(self, **changes)
