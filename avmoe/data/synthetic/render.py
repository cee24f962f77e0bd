"""World-independent rendering steps: frame times, sprite compositing with ownership maps, and the audio mix."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from avmoe.data.synthetic.scene import Scene, frame_second

REF_RMS = 0.1  # RMS of a sound at 0 dB (about -20 dBFS), the level every source is normalised to
FADE_S = 0.01  # fade at the ends of every sounding span, so spans start and stop without clicks


@dataclass
class Video:
    """A clip at its full frame rate, for writing an mp4."""

    frames: np.ndarray  # uint8 [N, H, W, 3]
    masks: np.ndarray  # bool [N, H, W], pixels of the visible sounding objects
    audio: np.ndarray  # float32 [samples] in [-1, 1]
    fps: int
    sample_rate: int


def frame_times(segments: int, fps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame times, and the index of each segment's centre frame (t = i + 0.5) among them.

    With no fps there is one frame per segment, at its centre. An fps must be even so that a frame falls exactly on
    every centre (frame k is shown at k / fps), which is the frame media.decode_clip picks.
    """
    if fps is None:
        return np.arange(segments) + 0.5, np.arange(segments)
    if fps < 2 or fps % 2:
        raise ValueError(f"fps={fps} must be an even number >= 2, so that a frame falls on every segment centre")
    return np.arange(segments * fps) / fps, np.arange(segments) * fps + fps // 2


def composite(backgrounds: np.ndarray, scene: Scene, sprites: dict[int, np.ndarray],
              times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-blend each visible object's sprite over the backgrounds, in scene order (later objects in front).

    Args:
        backgrounds: float32 [N, S, S, 3] in [0, 1], one per frame time; drawn over in place.
        sprites: object index -> float32 RGBA [side, side, 4] (straight alpha) for every object ever visible.
        times: [N] frame times in seconds.
    Returns the frames and the masks of the visible sounding objects: the pixels whose front-most object with
    alpha > 0.5 is sounding in that frame's second.
    """
    n, size = backgrounds.shape[0], backgrounds.shape[1]
    masks = np.zeros((n, size, size), dtype=bool)
    for k, t in enumerate(times):
        second = frame_second(t)
        owner = np.full((size, size), -1, dtype=np.int16)
        for i, obj in enumerate(scene.objects):
            if not obj.visible_at(second):
                continue
            sprite = sprites[i]
            side = sprite.shape[0]
            x, y = obj.position(t)
            left = int(np.clip(round(x * size - side / 2), 0, size - side))
            top = int(np.clip(round(y * size - side / 2), 0, size - side))
            alpha = sprite[..., 3:]
            region = backgrounds[k, top:top + side, left:left + side]
            region *= 1.0 - alpha
            region += sprite[..., :3] * alpha
            owner[top:top + side, left:left + side][sprite[..., 3] > 0.5] = i
        sounding = [i for i, obj in enumerate(scene.objects) if obj.sounding_at(second)]
        masks[k] = np.isin(owner, sounding)
    return np.clip(backgrounds, 0.0, 1.0), masks


def fade(n: int, sample_rate: int) -> np.ndarray:
    """float32 [n] of ones with FADE_S linear ramps at both ends: the envelope of one sounding span."""
    env = np.ones(n, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, min(max(1, int(FADE_S * sample_rate)), n // 2), dtype=np.float32)
    env[:ramp.size] = ramp
    env[n - ramp.size:] = ramp[::-1]
    return env


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def add_noise(audio: np.ndarray, noise: dict, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """White noise at the scene's floor level, raised to each burst's level during its span.

    The samples are a window, at a random offset, of one fixed buffer of white noise (drawing fresh noise for
    every clip was a fifth of the rendering time); the offset comes from `rng`.
    """
    n = audio.shape[0]
    level = np.full(n, db_to_gain(noise["floor_db"]), dtype=np.float32)
    for start, end, db in noise.get("bursts", []):
        a, b = start * sample_rate, min(n, end * sample_rate)
        level[a:b] = np.maximum(level[a:b], db_to_gain(db) * fade(b - a, sample_rate))
    buffer = _white_noise()
    at = int(rng.integers(buffer.size))
    white = np.take(buffer, np.arange(at, at + n), mode="wrap")
    return audio + white * (REF_RMS * level)


@functools.cache
def _white_noise(samples: int = 1 << 20) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(samples, dtype=np.float32)


def limit(audio: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale the whole clip down if it would clip; relative levels stay as the scene says."""
    top = float(np.abs(audio).max(initial=0.0))
    return audio * (peak / top) if top > peak else audio


def unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x), dtype=np.float64)))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)
