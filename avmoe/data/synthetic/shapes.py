"""The `shapes` world: procedural images and sounds, nothing downloaded. The tests use it.

Twelve classes, each a shape with its own colour and texture, and its own kind of sound (pure tone, buzz, chirps,
bell, clicks, tremolo, FM, noise whooshes, siren, hum, drum). Per object: pitch (+-5%), sound phase, rotation
(+-20 degrees), horizontal flip and brightness vary. Backgrounds are muted two-colour gradients with drifting soft
blobs and a fixed grain, never shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avmoe.data.synthetic.render import unit_rms
from avmoe.data.synthetic.scene import Scene, SceneObject
from avmoe.data.synthetic.world import World

_SUPERSAMPLE = 3  # sub-pixels per pixel side, for anti-aliased edges


@dataclass(frozen=True)
class ShapeClass:
    name: str
    colour: tuple[int, int, int]
    texture: str  # solid, stripes, dots, checker, rings, gradient
    sound: str  # a key of _SOUNDS


SHAPE_CLASSES = (
    ShapeClass("circle", (220, 50, 47), "solid", "tone"),
    ShapeClass("square", (38, 110, 220), "stripes", "buzz"),
    ShapeClass("triangle", (50, 170, 70), "dots", "chirp_up"),
    ShapeClass("star", (250, 200, 30), "solid", "bell"),
    ShapeClass("cross", (200, 40, 200), "checker", "clicks"),
    ShapeClass("ring", (30, 200, 210), "stripes", "tremolo"),
    ShapeClass("diamond", (245, 130, 40), "rings", "fm"),
    ShapeClass("hexagon", (120, 70, 190), "dots", "whoosh"),
    ShapeClass("heart", (250, 120, 170), "gradient", "siren"),
    ShapeClass("crescent", (240, 240, 240), "solid", "hum"),
    ShapeClass("arrow", (140, 85, 35), "checker", "chirp_down"),
    ShapeClass("pentagon", (170, 230, 50), "rings", "drum"),
)


class ShapesWorld(World):
    """Procedural shapes with procedural sounds."""

    name = "shapes"

    def __init__(self) -> None:
        super().__init__([c.name for c in SHAPE_CLASSES],
                         "shapes world: procedurally generated images and sounds (AVMoE Studio, MIT licence).")

    def _object_style(self, obj: SceneObject, rng: np.random.Generator) -> dict[str, Any]:
        return {"pitch": float(rng.uniform(0.95, 1.05)), "phase": float(rng.uniform(0, 1)),
                "angle": float(rng.uniform(-20, 20)), "flip": bool(rng.random() < 0.5),
                "brightness": float(rng.uniform(0.85, 1.1)), "seed": int(rng.integers(2**31))}

    def _scene_style(self, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        blobs = [[*rng.uniform(0, 1, 2).round(3).tolist(), *rng.uniform(-0.05, 0.05, 2).round(3).tolist(),
                  float(rng.uniform(0.15, 0.4)), *_muted(rng)] for _ in range(3)]
        return {"top": _muted(rng), "bottom": _muted(rng), "blobs": blobs, "grain_seed": int(rng.integers(2**31))}, {}

    def _sprite(self, obj: SceneObject, side: int) -> np.ndarray:
        spec = SHAPE_CLASSES[obj.cls]
        style = obj.style
        fine = side * _SUPERSAMPLE
        v, u = np.mgrid[0:fine, 0:fine].astype(np.float32)
        u, v = (u + 0.5) / fine * 2 - 1, (v + 0.5) / fine * 2 - 1
        if style["flip"]:
            u = -u
        a = np.deg2rad(style["angle"])
        u, v = np.cos(a) * u - np.sin(a) * v, np.sin(a) * u + np.cos(a) * v
        inside = _SHAPES[spec.name](u, v).astype(np.float32)
        colour = _texture(spec.texture, u, v, np.asarray(spec.colour, np.float32) / 255 * style["brightness"])
        rgba = np.concatenate([colour, inside[..., None]], axis=-1)
        rgba = rgba.reshape(side, _SUPERSAMPLE, side, _SUPERSAMPLE, 4)
        # Average colour over covered sub-pixels only, so edges do not darken.
        alpha = rgba[..., 3].mean(axis=(1, 3))
        rgb = (rgba[..., :3] * rgba[..., 3:]).sum(axis=(1, 3)) / np.maximum(rgba[..., 3:].sum(axis=(1, 3)), 1e-6)
        return np.concatenate([np.clip(rgb, 0, 1), alpha[..., None]], axis=-1).astype(np.float32)

    def _source(self, obj: SceneObject, sample_rate: int, start: int, stop: int) -> np.ndarray:
        t = np.arange(start, stop, dtype=np.float64) / sample_rate + obj.style["phase"]
        rng = np.random.default_rng([obj.style["seed"], start])
        return unit_rms(_SOUNDS[SHAPE_CLASSES[obj.cls].sound](t, obj.style["pitch"], sample_rate, rng))

    def _backgrounds(self, scene: Scene, size: int, times: np.ndarray) -> np.ndarray:
        bg = scene.background
        yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
        grad = yy[..., None]
        base = np.asarray(bg["top"], np.float32) * (1 - grad) + np.asarray(bg["bottom"], np.float32) * grad
        grain = np.random.default_rng(bg["grain_seed"]).normal(0, 0.03, (size, size, 1)).astype(np.float32)
        out = np.empty((len(times), size, size, 3), dtype=np.float32)
        for k, t in enumerate(times):
            frame = base + grain
            for x, y, vx, vy, radius, *colour in bg["blobs"]:
                cx, cy = (x + vx * t) % 1.0, (y + vy * t) % 1.0
                weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None] * 0.6
                frame = frame * (1 - weight) + np.asarray(colour, np.float32) * weight
            out[k] = np.clip(frame, 0, 1)
        return out


def _muted(rng: np.random.Generator) -> list[float]:
    return (0.25 + 0.45 * rng.random(3)).round(3).tolist()


def _polygon(n: int, radius: float):
    def inside(u, v):
        r = np.hypot(u, v)
        angle = np.arctan2(u, -v)  # from straight up, so a vertex points up
        sector = 2 * np.pi / n
        phi = np.mod(angle, sector) - sector / 2
        return r * np.cos(phi) < radius * np.cos(np.pi / n)
    return inside


def _star(u, v):
    r, angle = np.hypot(u, v), np.arctan2(u, -v)
    return r < 0.38 + 0.57 * ((1 + np.cos(5 * angle)) / 2) ** 2


def _heart(u, v):
    x, y = u * 1.25, -v * 1.25 + 0.2
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0


def _arrow(u, v):
    shaft = (np.abs(v) < 0.22) & (u > -0.9) & (u < 0.25)
    head = (u >= 0.1) & (u < 0.92) & (np.abs(v) < (0.92 - u) * 1.1)
    return shaft | head


_SHAPES = {
    "circle": lambda u, v: np.hypot(u, v) < 0.9,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) < 0.72,
    "triangle": _polygon(3, 0.98),
    "star": _star,
    "cross": lambda u, v: ((np.abs(u) < 0.28) & (np.abs(v) < 0.9)) | ((np.abs(v) < 0.28) & (np.abs(u) < 0.9)),
    "ring": lambda u, v: (np.hypot(u, v) < 0.92) & (np.hypot(u, v) > 0.5),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) < 0.95,
    "hexagon": _polygon(6, 0.92),
    "heart": _heart,
    "crescent": lambda u, v: (np.hypot(u, v) < 0.9) & (np.hypot(u - 0.42, v + 0.12) > 0.7),
    "arrow": _arrow,
    "pentagon": _polygon(5, 0.94),
}


def _texture(kind: str, u: np.ndarray, v: np.ndarray, colour: np.ndarray) -> np.ndarray:
    dark = colour * 0.5
    if kind == "solid":
        pick = np.zeros_like(u, dtype=bool)
    elif kind == "stripes":
        pick = np.sin((u + v) * 3 * np.pi) > 0
    elif kind == "dots":
        pick = (np.mod(u * 2, 1) - 0.5) ** 2 + (np.mod(v * 2, 1) - 0.5) ** 2 < 0.06
    elif kind == "checker":
        pick = (np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 0
    elif kind == "rings":
        pick = np.sin(np.hypot(u, v) * 4 * np.pi) > 0
    elif kind == "gradient":
        w = ((v + 1) / 2)[..., None]
        return colour * (1 - w) + dark * w
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.where(pick[..., None], dark, colour)


def _periodic(t: np.ndarray, period: float) -> np.ndarray:
    return np.mod(t, period)


def _sine(freq: float, t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * freq * t)


def _harmonics(freq: float, t: np.ndarray, sample_rate: int, odd_only: bool) -> np.ndarray:
    """A band-limited square (odd harmonics) or sawtooth wave, read from a one-cycle wavetable."""
    cycle = np.arange(2048) / 2048
    ks = [k for k in range(1, 40, 2 if odd_only else 1) if k * freq < 0.45 * sample_rate]
    table = sum(np.sin(2 * np.pi * k * cycle) / k for k in ks)
    return np.interp(np.mod(freq * t, 1.0), cycle, table, period=1.0)


def _chirp(t: np.ndarray, period: float, f0: float, f1: float) -> np.ndarray:
    tau = _periodic(t, period)
    phase = 2 * np.pi * (f0 * tau + (f1 - f0) / (2 * period) * tau**2)
    return np.sin(phase) * np.sin(np.pi * tau / period)


def _band_noise(n: int, sample_rate: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(spectrum, n)


def _bell(t, p, sr, rng):
    tau = _periodic(t, 0.5)
    partials = sum(a * _sine(f * 523 * p, tau) for f, a in ((1, 1), (2.76, 0.6), (5.4, 0.4), (8.93, 0.25)))
    return partials * np.exp(-tau / 0.15)


def _clicks(t, p, sr, rng):
    tau = _periodic(t, 0.1)
    return np.exp(-tau / 0.004) * _sine(min(3000 * p, 0.4 * sr), tau)


def _whoosh(t, p, sr, rng):
    noise = _band_noise(t.size, sr, 1000 * p, min(3000 * p, 0.45 * sr), rng)
    return noise * np.sin(np.pi * _periodic(t, 0.25) / 0.25) ** 2


def _siren(t, p, sr, rng):
    freq = np.where(_periodic(t, 0.5) < 0.25, 700 * p, 950 * p)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr)


def _drum(t, p, sr, rng):
    tau = _periodic(t, 1 / 3)
    phase = 2 * np.pi * p * (50 * tau + 100 * 0.03 * (1 - np.exp(-tau / 0.03)))
    return np.sin(phase) * np.exp(-tau / 0.12)


_SOUNDS = {
    "tone": lambda t, p, sr, rng: _sine(440 * p, t),
    "buzz": lambda t, p, sr, rng: _harmonics(220 * p, t, sr, odd_only=True),
    "chirp_up": lambda t, p, sr, rng: _chirp(t, 0.5, 300 * p, min(1500 * p, 0.45 * sr)),
    "bell": _bell,
    "clicks": _clicks,
    "tremolo": lambda t, p, sr, rng: _sine(660 * p, t) * (1 + 0.9 * _sine(5, t)),
    "fm": lambda t, p, sr, rng: np.sin(2 * np.pi * 600 * p * t + 3 * _sine(150 * p, t)),
    "whoosh": _whoosh,
    "siren": _siren,
    "hum": lambda t, p, sr, rng: _harmonics(110 * p, t, sr, odd_only=False),
    "chirp_down": lambda t, p, sr, rng: _chirp(t, 1 / 3, min(2000 * p, 0.45 * sr), 400 * p),
    "drum": _drum,
}
