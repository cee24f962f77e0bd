"""A world: a set of classes with a look and a sound each, which samples scenes and renders them to labelled clips.

Subclasses say how things look and sound (sprites, sources, backgrounds, per-object style); sampling, compositing,
mixing and labels are shared, so every world obeys the same label definitions (see labels.py and qa.py).
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from avmoe.data.sample import Clip
from avmoe.data.synthetic import qa
from avmoe.data.synthetic.labels import carrier, scene_labels
from avmoe.data.synthetic.render import REF_RMS, Video, add_noise, composite, db_to_gain, fade, frame_times, limit
from avmoe.data.synthetic.sampler import SamplerConfig, sample_layout
from avmoe.data.synthetic.scene import Scene, SceneObject

_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class World(ABC):
    """Classes, vocabularies and attribution of a world; `sample_scene` and `render` turn seeds into clips."""

    name: str = ""

    def __init__(self, classes: list[str], attribution: str) -> None:
        bad = [c for c in classes if not _CLASS_NAME.match(c)]
        if bad:
            raise ValueError(f"class names must be lower-case words (a-z, 0-9, _), got {bad}")
        reserved = set(classes) & set(qa.answer_vocab([]))
        if reserved or len(set(classes)) != len(classes):
            raise ValueError(f"class names must be unique and not answer words; clashes: {sorted(reserved)}")
        self.classes = list(classes)
        self.attribution = attribution
        self.answer_vocab = qa.answer_vocab(self.classes)
        self.question_vocab = qa.question_vocab(self.classes)

    def sample_scene(self, task: str, rng: np.random.Generator, segments: int = 10,
                     config: SamplerConfig | None = None) -> Scene:
        """A random scene for `task` (one of sampler.TASKS), `segments` seconds long."""
        objects, noise = sample_layout(task, rng, self.classes, segments, config)
        for obj in objects:
            obj.style = self._object_style(obj, rng)
        background, acoustics = self._scene_style(rng)
        return Scene(world=self.name, task=task, segments=segments, seed=int(rng.integers(2**63)), objects=objects,
                     background=background, noise=noise, acoustics=acoustics)

    def render(self, scene: Scene, frame_size: int = 96, sample_rate: int = 32000, segments: int | None = None,
               fps: int | None = None) -> Clip | tuple[Clip, Video]:
        """The clip of a scene (frames at segment centres), with labels for every task.

        Args:
            frame_size: side of the square frames and masks, pixels.
            segments: render only the first `segments` seconds (default: all of the scene).
            fps: also return the Video at this (even) frame rate, for mp4; its centre frames are the clip's frames.
        """
        if not isinstance(frame_size, int) or frame_size < 8:
            raise ValueError(f"frame_size={frame_size!r} must be an int >= 8 (frames are square)")
        if scene.world != self.name:
            raise ValueError(f"scene belongs to world {scene.world!r}, not {self.name!r}")
        scene = scene.crop(segments) if segments is not None else scene
        times, centres = frame_times(scene.segments, fps)
        sprites = {i: self._sprite(o, max(1, round(o.size * frame_size)))
                   for i, o in enumerate(scene.objects) if o.visible}
        frames, masks = composite(self._backgrounds(scene, frame_size, times), scene, sprites, times)
        audio = self._mix(scene, sample_rate)
        clip = self._clip(scene, frames[centres], masks[centres], audio, sample_rate)
        if fps is None:
            return clip
        video = Video(frames=(frames * 255.0).round().astype(np.uint8), masks=masks, audio=audio, fps=fps,
                      sample_rate=sample_rate)
        return clip, video

    def clip_attribution(self, scene: Scene) -> str:
        """Licence text for the media a clip of this scene is made from."""
        return self.attribution

    def _mix(self, scene: Scene, sample_rate: int) -> np.ndarray:
        audio = np.zeros(scene.segments * sample_rate, dtype=np.float32)
        for obj in scene.objects:
            gain = REF_RMS * db_to_gain(obj.loudness_db)
            for start, end in obj.sounding:
                a, b = start * sample_rate, end * sample_rate
                sound = self._acoustics(scene, self._source(obj, sample_rate, a, b), sample_rate)
                audio[a:b] += sound * fade(b - a, sample_rate) * gain
        audio = add_noise(audio, scene.noise, sample_rate, np.random.default_rng([scene.seed, 1]))
        return limit(audio).astype(np.float32)

    def _clip(self, scene: Scene, frames: np.ndarray, masks: np.ndarray, audio: np.ndarray,
              sample_rate: int) -> Clip:
        labels: dict[str, Any] = {**scene_labels(scene, self.classes),
                                  "masks": torch.from_numpy(masks.astype(np.float32)),
                                  "mask_valid": torch.ones(scene.segments, dtype=torch.bool)}
        meta = {"world": self.name, "task": scene.task, "split": None, "index": None, "classes": self.classes,
                "carrier": carrier(scene), "scene": scene.to_dict(), "attribution": self.clip_attribution(scene)}
        return Clip(frames=torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)),
                    audio=torch.from_numpy(audio).view(scene.segments, sample_rate), sample_rate=sample_rate,
                    labels=labels, meta=meta)

    def _acoustics(self, scene: Scene, sound: np.ndarray, sample_rate: int) -> np.ndarray:
        """Room effects on one sounding span of one source; none by default.

        Applied per span and cut at its end, so no echo tail reaches a second in which nothing sounds.
        """
        return sound

    @abstractmethod
    def _object_style(self, obj: SceneObject, rng: np.random.Generator) -> dict[str, Any]:
        """JSON-able look and sound parameters of one object (exemplar, flip, jitter, ...)."""

    @abstractmethod
    def _scene_style(self, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        """JSON-able background and acoustics parameters of a scene."""

    @abstractmethod
    def _sprite(self, obj: SceneObject, side: int) -> np.ndarray:
        """float32 RGBA [side, side, 4] in [0, 1], straight alpha: the object centred in its square box."""

    @abstractmethod
    def _source(self, obj: SceneObject, sample_rate: int, start: int, stop: int) -> np.ndarray:
        """float32 [stop - start]: the object's sound at unit RMS over samples [start, stop) of one sounding span."""

    @abstractmethod
    def _backgrounds(self, scene: Scene, size: int, times: np.ndarray) -> np.ndarray:
        """float32 [len(times), size, size, 3] in [0, 1], writable: the background at each frame time."""
