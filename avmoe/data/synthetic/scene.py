"""A scene: which objects are where and when, and when each one sounds. Every label of every task derives from it.

Time is in whole seconds: an object is visible or sounding for whole one-second segments, given as half-open spans
[start, end). A frame at time t belongs to second floor(t). Positions are box centres in fractions of the frame
(x of the width, y of the height), key-framed at every whole second and interpolated linearly in between.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

ROLES = ("event", "distractor")
"""An "event" object is what the labels of the task are about; a "distractor" is there to mislead (another class)."""


@dataclass
class SceneObject:
    """One thing in a scene, with its spans, track and loudness."""

    cls: int  # index into the world's classes
    name: str  # class name (the same information as cls, so the JSON reads on its own)
    role: str  # one of ROLES
    visible: list[list[int]]  # [start, end) seconds in which it is drawn
    sounding: list[list[int]]  # [start, end) seconds in which its sound plays
    loudness_db: float = 0.0  # its sound's level relative to the world's reference level
    size: float = 0.0  # side of its square box as a fraction of the frame side (0 for one never visible)
    track: list[list[float]] = field(default_factory=list)  # [t, x, y] at t = 0..segments; empty if never visible
    style: dict[str, Any] = field(default_factory=dict)  # world-specific look and sound (exemplar, flip, jitter, ...)

    def visible_at(self, second: int) -> bool:
        return any(s <= second < e for s, e in self.visible)

    def sounding_at(self, second: int) -> bool:
        return any(s <= second < e for s, e in self.sounding)

    def position(self, t: float) -> tuple[float, float]:
        """Box centre (x, y) in frame fractions at time t seconds."""
        if not self.track:
            raise ValueError(f"object {self.name!r} is never visible, so it has no position")
        key = np.asarray(self.track, dtype=np.float64)
        return float(np.interp(t, key[:, 0], key[:, 1])), float(np.interp(t, key[:, 0], key[:, 2]))


@dataclass
class Scene:
    """Everything a world needs to render a clip, and every label derives from; JSON-able via to_dict."""

    world: str
    task: str  # the task whose sampler made it ("ave", "avvp", "s4", "ms3", "avqa")
    segments: int  # duration in seconds
    seed: int  # seeds what rendering draws at random (noise samples, question choice), so render is a pure function
    objects: list[SceneObject]
    background: dict[str, Any] = field(default_factory=dict)  # world-specific
    noise: dict[str, Any] = field(default_factory=dict)  # {"floor_db": dB, "bursts": [[start, end, dB], ...]}
    acoustics: dict[str, Any] = field(default_factory=dict)  # world-specific (e.g. reverb)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scene":
        objects = [SceneObject(**o) for o in data["objects"]]
        return cls(**{**data, "objects": objects})

    def crop(self, segments: int) -> "Scene":
        """The first `segments` seconds of this scene."""
        if not 1 <= segments <= self.segments:
            raise ValueError(f"segments={segments} must be between 1 and the scene's {self.segments}")
        if segments == self.segments:
            return self
        objects = [replace(o, visible=_cut(o.visible, segments), sounding=_cut(o.sounding, segments),
                           track=[k for k in o.track if k[0] <= segments]) for o in self.objects]
        bursts = [[s, min(e, segments), db] for s, e, db in self.noise.get("bursts", []) if s < segments]
        return replace(self, segments=segments, objects=objects, noise={**self.noise, "bursts": bursts})


def _cut(spans: list[list[int]], end: int) -> list[list[int]]:
    return [[s, min(e, end)] for s, e in spans if s < end]


def frame_second(t: float) -> int:
    """The one-second segment a frame at time t belongs to."""
    return int(np.floor(t + 1e-9))
