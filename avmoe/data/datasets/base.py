"""Shared parts of the real-dataset readers: layout errors, split checks, the reader base class and media loading.

AVE, LLP and MUSIC-AVQA keep media the same two ways: raw videos (decoded by `avmoe.data.media.decode_clip`), or
the official pre-extracted form, a folder of numbered JPGs per video plus the audio as `.npy` or `.wav`.
"""
from __future__ import annotations

import re
import wave
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchaudio.functional as AF
from PIL import Image
from torch.utils.data import Dataset

from avmoe.data.media import decode_clip, probe
from avmoe.data.sample import Clip

SPLITS = ("train", "val", "test")
NPY_RATE = 32000  # the official pre-extracted wave/<id>.npy files hold 32 kHz audio, one row of 32000 per second
MEDIA_MODES = ("auto", "video", "frames")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetLayoutError(FileNotFoundError):
    """A file or folder a reader needs is missing; the message names it and shows the expected layout."""


def require(path: Path, what: str, layout: str) -> Path:
    """Return `path` if it exists, else raise DatasetLayoutError naming it and showing `layout`."""
    if not path.exists():
        raise DatasetLayoutError(f"{what} not found: {path}\nExpected layout:\n{layout}")
    return path


def read_text(path: Path, what: str, layout: str) -> str:
    """The text of an annotation file (UTF-8, a BOM tolerated), or a DatasetLayoutError if it is missing."""
    return require(path, what, layout).read_text(encoding="utf-8-sig")


def check_split(split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(f"split={split!r} is not one of {list(allowed)}")
    return split


def spread_indices(n: int, count: int) -> list[int]:
    """0-based indices of `count` items spread over `n`: the official `np.linspace(1, n, count, dtype=int)` minus 1."""
    return [int(i) - 1 for i in np.linspace(1, n, num=count, dtype=int)]


def numbered_images(folder: Path) -> list[Path]:
    """Image files of a frame folder in frame order (by the number in the name, so any zero padding works)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES]

    def key(p: Path) -> tuple[int, str]:
        digits = re.findall(r"\d+", p.stem)
        return (int(digits[-1]) if digits else -1, p.name)

    return sorted(files, key=key)


def load_image(path: Path, frame_size: int) -> torch.Tensor:
    """An RGB image as float [3, S, S] in [0, 1], resized bicubic without keeping the aspect (as the official code)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (frame_size, frame_size):
            img = img.resize((frame_size, frame_size), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255.0)


def load_mask(path: Path, size: int) -> torch.Tensor:
    """A ground-truth mask as float {0, 1} [S, S]: grey >= 128 is foreground (PIL's mode "1" threshold, as AVSBench)."""
    with Image.open(path) as img:
        img = img.convert("L")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.NEAREST)
        return torch.from_numpy((np.asarray(img) >= 128).astype(np.float32))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the rate of a PCM WAV file (channels averaged)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path} is not a PCM WAV file wave can read ({err}); convert it to 16-bit PCM") from err
    if width not in (2, 4):
        raise ValueError(f"{path} has {8 * width}-bit samples; convert it to 16-bit PCM WAV")
    samples = np.frombuffer(raw, f"<i{width}").astype(np.float32) / float(2 ** (8 * width - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


def seconds_of_audio(path: Path, segments: int, sample_rate: int, spread: bool) -> torch.Tensor:
    """Audio of a `.npy` (32 kHz, [n, 32000] or flat) or `.wav` file as `segments` one-second rows [T, sample_rate].

    The file is cut into whole seconds (rounded; a short tail is zero-padded). With more seconds than segments,
    `spread` picks them as the frames are picked (`spread_indices`), else the first ones are kept; with fewer, the
    missing seconds are silence.
    """
    if path.suffix == ".npy":
        samples, rate = np.load(path).astype(np.float32).reshape(-1), NPY_RATE
    else:
        samples, rate = read_wav(path)
    wav = torch.from_numpy(np.ascontiguousarray(samples))
    if rate != sample_rate:
        wav = AF.resample(wav, rate, sample_rate)
    n = max(1, round(wav.shape[0] / sample_rate))
    wav = torch.nn.functional.pad(wav, (0, max(0, n * sample_rate - wav.shape[0])))[: n * sample_rate]
    rows = wav.view(n, sample_rate)
    if n > segments:
        rows = rows[spread_indices(n, segments)] if spread else rows[:segments]
    elif n < segments:
        rows = torch.cat([rows, rows.new_zeros(segments - n, sample_rate)])
    return rows.contiguous()


@dataclass(frozen=True)
class MediaLayout:
    """Where a dataset keeps an item's media, relative to its root.

    Raw video `<video_dir>/<key>.mp4` (the first of `video_dirs` that has it); or pre-extracted frames
    `<frames_dir>/<key>/*.jpg` (numbered from 1) with audio `<audio_dir>/<key>.npy` or `<audio_dir>/<key>.wav`.
    """

    video_dirs: tuple[str, ...]
    frames_dir: str = "video_frames"
    audio_dir: str = "wave"

    def describe(self) -> str:
        videos = " or ".join(f"{d}/<key>.mp4" for d in self.video_dirs)
        return (f"  media, either raw videos: {videos}\n"
                f"  or pre-extracted: {self.frames_dir}/<key>/00000001.jpg ... (any zero padding) with "
                f"{self.audio_dir}/<key>.npy (32 kHz, [T, 32000]) or {self.audio_dir}/<key>.wav")


class RealDataset(Dataset, ABC):
    """Base of the readers: items parsed from annotation files at construction, media read in `__getitem__`.

    Subclasses set `name`, `segments` and `layout` (the text shown in layout errors) and implement `_read_items`
    (parse the annotation files), `_media`, `_labels` and `_meta`; `classes` is the label vocabulary put in
    every clip's meta.
    """

    name: ClassVar[str]
    segments: ClassVar[int]
    layout: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = SPLITS
    classes: tuple[str, ...] = ()

    def __init__(self, root: str | Path, split: str = "train", frame_size: int = 224, sample_rate: int = 32000) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.name} root folder not found: {self.root}\n"
                                     f"Expected layout:\n{self.layout}")
        self.split = check_split(split, self.splits)
        if frame_size < 1 or sample_rate < 1:
            raise ValueError(f"frame_size={frame_size} and sample_rate={sample_rate} must be positive")
        self.frame_size = frame_size
        self.sample_rate = sample_rate
        self.items: list[Any] = self._read_items()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Clip:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} {self.name} {self.split} items")
        item = self.items[index]
        clip = self._media(item)
        meta = {**clip.meta, "dataset": self.name, "split": self.split, "index": index % len(self),
                "classes": list(self.classes), **self._meta(item)}
        return clip.replace(labels=self._labels(item), meta=meta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, items={len(self)})"

    @abstractmethod
    def _read_items(self) -> list[Any]:
        """The split's items, parsed from the annotation files (DatasetLayoutError if one is missing)."""

    @abstractmethod
    def _media(self, item: Any) -> Clip:
        """Frames and audio of one item (meta must hold "source")."""

    @abstractmethod
    def _labels(self, item: Any) -> dict[str, Any]:
        """The Clip labels of one item."""

    @abstractmethod
    def _meta(self, item: Any) -> dict[str, Any]:
        """Meta of one item: at least "video_id", the video's name as the annotation files spell it."""


class VideoOrFramesDataset(RealDataset):
    """A reader whose media are raw videos or pre-extracted frames and audio (AVE, LLP, MUSIC-AVQA).

    Args (beyond RealDataset's):
        media: "video" (raw videos only), "frames" (pre-extracted only) or "auto" (per item, the video if it
            exists, else the frames).

    The class attribute `spread` makes a reader pick its T seconds spread over a longer video (MUSIC-AVQA's 60-s
    videos) instead of taking the first T.
    """

    media_layout: ClassVar[MediaLayout]
    spread: ClassVar[bool] = False

    def __init__(self, root: str | Path, split: str = "train", frame_size: int = 224, sample_rate: int = 32000,
                 media: str = "auto") -> None:
        if media not in MEDIA_MODES:
            raise ValueError(f"media={media!r} is not one of {list(MEDIA_MODES)}")
        self.media = media
        super().__init__(root, split, frame_size, sample_rate)
        lay = self.media_layout
        has_videos = media != "frames" and any((self.root / d).is_dir() for d in lay.video_dirs)
        has_frames = media != "video" and (self.root / lay.frames_dir).is_dir()
        if not (has_videos or has_frames):
            wanted = [str(self.root / d) for d in lay.video_dirs] if media != "frames" else []
            wanted += [str(self.root / lay.frames_dir)] if media != "video" else []
            raise DatasetLayoutError(f"{self.name} media folder not found (media={media!r}): {' or '.join(wanted)}\n"
                                     f"Expected layout:\n{self.layout}")

    def _keys(self, item: Any) -> list[str]:
        """Names under which the item's media may be stored, most specific first."""
        return [self._meta(item)["video_id"]]

    def _media(self, item: Any) -> Clip:
        lay = self.media_layout
        keys = self._keys(item)
        if self.media != "frames":
            for key in keys:
                for d in lay.video_dirs:
                    path = self.root / d / f"{key}.mp4"
                    if path.is_file():
                        return self._decode_video(path)
        if self.media != "video":
            for key in keys:
                folder = self.root / lay.frames_dir / key
                if folder.is_dir():
                    return self._read_extracted(folder, key)
        tried = [f"{self.root / d / k}.mp4" for k in keys for d in lay.video_dirs] if self.media != "frames" else []
        tried += [f"{self.root / lay.frames_dir / k}/" for k in keys] if self.media != "video" else []
        raise DatasetLayoutError(f"no media for {self.name} video {keys[0]!r}; looked for: {', '.join(tried)}\n"
                                 f"Expected layout:\n{self.layout}")

    def _decode_video(self, path: Path) -> Clip:
        if not self.spread:
            return decode_clip(path, segments=self.segments, frame_size=self.frame_size,
                               sample_rate=self.sample_rate)
        # One pass over every second, then the official frame choice over them (cheaper than T seeks).
        seconds = max(1, round(probe(path)["video_duration"]))
        clip = decode_clip(path, segments=seconds, frame_size=self.frame_size, sample_rate=self.sample_rate)
        chosen = spread_indices(seconds, self.segments)
        return clip.replace(frames=clip.frames[chosen], audio=clip.audio[chosen])

    def _read_extracted(self, folder: Path, key: str) -> Clip:
        images = numbered_images(folder)
        if not images:
            raise DatasetLayoutError(f"frame folder {folder} holds no .jpg/.png frames\n"
                                     f"Expected layout:\n{self.layout}")
        # Official loaders: np.linspace(1, n_frames, T, dtype=int) over the 1-based frame files.
        frames = torch.stack([load_image(images[i], self.frame_size)
                              for i in spread_indices(len(images), self.segments)])
        audio_dir = self.root / self.media_layout.audio_dir
        audio_path = next((p for p in (audio_dir / f"{key}.npy", audio_dir / f"{key}.wav") if p.is_file()), None)
        if audio_path is None:
            raise DatasetLayoutError(f"audio for frames {folder} not found: {audio_dir / key}.npy or .wav\n"
                                     f"Expected layout:\n{self.layout}")
        audio = seconds_of_audio(audio_path, self.segments, self.sample_rate, spread=self.spread)
        return Clip(frames=frames, audio=audio, sample_rate=self.sample_rate,
                    meta={"source": str(folder), "audio_source": str(audio_path)})
