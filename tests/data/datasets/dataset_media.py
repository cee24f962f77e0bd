"""Helpers of the dataset-reader tests: tiny videos, frame folders, npy and wav audio, in tmp dirs.

Every generated second k carries a recognisable value: frames are flat grey at `level(k)` and audio is a 440 Hz
tone of amplitude `amp(k)` (videos) or a constant `amp(k)` (npy/wav), so tests can check which seconds a reader took.
"""
from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
from PIL import Image

from avmoe.data.media import write_video

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "datasets"


def level(k: int) -> int:
    """Grey level of second (or frame number) k."""
    return 10 + 3 * k


def amp(k: int) -> float:
    """Audio amplitude of second k."""
    return 0.01 * (k + 1)


def copy_fixture(name: str, root: Path) -> Path:
    """Copy the annotation files of tests/fixtures/datasets/<name> into `root` (created) and return it."""
    shutil.copytree(FIXTURES / name, root, dirs_exist_ok=True)
    return root


def make_video(path: Path, seconds: int, size: int = 16, fps: int = 2, sample_rate: int = 16000) -> Path:
    """An mp4 whose second k is flat grey level(k) with a 440 Hz tone of amplitude amp(k)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.stack([np.full((size, size, 3), level(i // fps), np.uint8) for i in range(seconds * fps)])
    t = np.arange(sample_rate) / sample_rate
    audio = np.concatenate([amp(k) * np.sin(2 * np.pi * 440 * t) for k in range(seconds)]).astype(np.float32)
    return write_video(path, frames, fps=fps, audio=audio, sample_rate=sample_rate)


def make_frames(folder: Path, count: int, size: int = 8, pattern: str = "{:08d}.jpg") -> Path:
    """`count` images numbered from 1, image j flat grey level(j)."""
    folder.mkdir(parents=True, exist_ok=True)
    for j in range(1, count + 1):
        Image.new("RGB", (size, size), (level(j),) * 3).save(folder / pattern.format(j), quality=100)
    return folder


def make_npy(path: Path, seconds: int, rate: int = 32000) -> Path:
    """A [seconds, rate] npy whose row k is the constant amp(k)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([np.full(rate, amp(k), np.float32) for k in range(seconds)]))
    return path


def make_wav(path: Path, seconds: float, rate: int = 16000, channels: int = 2) -> Path:
    """A 16-bit PCM wav whose second k is the constant amp(k) in every channel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * rate)
    mono = np.array([amp(i // rate) for i in range(n)], np.float32)
    pcm = (np.repeat(mono[:, None], channels, axis=1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def grey(frames) -> list[float]:
    """Mean grey level (0-255) of each frame of a [T, 3, H, W] tensor."""
    return [round(float(f.mean()) * 255, 1) for f in frames]
