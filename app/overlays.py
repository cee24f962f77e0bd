"""Segmentation overlays: masks blended over the clip's frames, as gallery images and as an mp4 the browser plays.

Overlay videos go to avmoe.paths.cache_dir("app", "overlays"); each write removes the ones older than MAX_AGE_S
and keeps at most MAX_FILES, so a long-running Space does not fill its disk.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avmoe.data.media import write_video
from avmoe.data.sample import Clip
from avmoe.paths import cache_dir

COLOURS = {"s4": (255, 48, 48), "ms3": (40, 150, 255)}
"""Overlay colour of each segmentation task's masks."""
COLOUR_NAMES = {"s4": "red", "ms3": "blue"}
ALPHA = 0.5
SIDE = 192  # pixels of the shown frames (the models see 96)
FPS = 4  # each one-second frame is shown for a second
MAX_AGE_S = 3600.0
MAX_FILES = 64


def overlay_frames(clip: Clip, masks: dict[str, torch.Tensor], side: int = SIDE) -> np.ndarray:
    """Frames [T, side, side, 3] uint8 with each task's masks [T, H, W] blended in its colour."""
    frames = F.interpolate(clip.frames.float(), size=(side, side), mode="bilinear", align_corners=False)
    out = frames.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0
    for task, mask in masks.items():
        m = F.interpolate(mask.float()[:, None], size=(side, side), mode="nearest")[:, 0].numpy()[..., None]
        out = out * (1.0 - ALPHA * m) + np.array(COLOURS.get(task, (255, 255, 0)), np.float32) * ALPHA * m
    return out.round().astype(np.uint8)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two boolean masks (or any boolean decisions); 1 when both are empty."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def overlay_video(clip: Clip, frames: np.ndarray, directory: Path | None = None) -> Path:
    """An H.264/AAC mp4 of the overlay frames, each held for its second, with the audio the models heard."""
    directory = directory or cache_dir("app", "overlays")
    clean(directory)
    audio = clip.audio.flatten().clamp(-1, 1)
    path = directory / f"{uuid.uuid4().hex}.mp4"
    return write_video(path, np.repeat(frames, FPS, axis=0), FPS, audio, clip.sample_rate)


def clean(directory: Path, max_age_s: float = MAX_AGE_S, max_files: int = MAX_FILES) -> None:
    """Remove overlay videos older than max_age_s, then the oldest beyond max_files."""
    videos = sorted(directory.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    now = time.time()
    old = [p for p in videos if now - p.stat().st_mtime > max_age_s]
    keep = [p for p in videos if p not in old]
    for path in old + keep[:max(0, len(keep) - max_files + 1)]:
        path.unlink(missing_ok=True)
