"""AVSBench (Zhou et al., ECCV 2022) audio-visual segmentation: S4 (one sounding object) and MS3 (several).

Each video is 5 s: five 224x224 PNG frames (one per second), binary ground-truth masks of the sounding pixels and a
5-s wav. The layout follows the official AVSBench loaders; the meta csv is comma-separated with a header naming
at least `name` (else the first column is the name) and `split`, plus `category` for S4.
"""
from __future__ import annotations

import csv
import io
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from avmoe.data.datasets.base import RealDataset, load_image, load_mask, read_text, require, seconds_of_audio
from avmoe.data.sample import Clip

SEGMENTS = 5

S4_LAYOUT = """  <root>/Single-source/ (or <root> itself):
    s4_meta_data.csv   (comma-separated, header with name, split, category)
    s4_data/visual_frames/<split>/<category>/<name>/<name>_<i>.png   (i = 1..5)
    s4_data/gt_masks/<split>/<category>/<name>/<name>_<i>.png   (train: i = 1 only; val/test: 1..5)
    s4_data/audio_wav/<split>/<category>/<name>.wav   (5 s)"""
MS3_LAYOUT = """  <root>/Multi-sources/ (or <root> itself):
    ms3_meta_data.csv   (comma-separated, header with name and split)
    ms3_data/visual_frames/<name>/<name>.mp4_<i>.png   (i = 1..5)
    ms3_data/gt_masks/<split>/<name>/<name>_<i>.png   (i = 1..5)
    ms3_data/audio_wav/<split>/<name>.wav   (5 s)"""


@dataclass(frozen=True)
class AVSVideo:
    """One row of a meta csv; `category` is "" where the csv has none (MS3)."""

    name: str
    split: str
    category: str


def parse_meta(text: str, source: str = "<text>", need_category: bool = False) -> list[AVSVideo]:
    """Rows of an AVSBench meta csv (s4_meta_data.csv or ms3_meta_data.csv)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    name_column = "name" if "name" in columns else (columns[0] if columns else None)
    missing = [c for c in ("split", "category" if need_category else None) if c and c not in columns]
    if name_column is None or missing:
        raise ValueError(f"{source}: header {columns} lacks the column(s) {missing or ['name']}")
    return [AVSVideo(row[name_column], row["split"], row.get("category") or "") for row in reader]


class AVSBenchDataset(RealDataset):
    """Shared reader of S4 and MS3: Clips of 5 segments with labels {"masks": [5, S, S], "mask_valid": [5]}.

    Masks are resized (nearest) to `frame_size` when it is not their 224; frames bicubic, as the other readers.
    Unannotated frames (S4 train: frames 2-5, as the official S4 loader reads mask 1 only) hold zeros and
    mask_valid False.
    """

    segments = SEGMENTS
    subdir: ClassVar[str]  # folder of the subset inside an AVSBench root
    meta_file: ClassVar[str]
    need_category: ClassVar[bool]

    def _read_items(self) -> list[AVSVideo]:
        self.base = self.root if (self.root / self.meta_file).is_file() else self.root / self.subdir
        path = self.base / self.meta_file
        rows = parse_meta(read_text(path, f"{self.name.upper()} meta csv", self.layout), str(path),
                          self.need_category)
        self.classes = tuple(sorted({r.category for r in rows if r.category}))
        return [r for r in rows if r.split == self.split]

    def _media(self, item: AVSVideo) -> Clip:
        frames = torch.stack([load_image(self._require(self._frame_path(item, i), "frame"), self.frame_size)
                              for i in range(1, self.segments + 1)])
        wav = self._require(self._audio_path(item), "audio file")
        audio = seconds_of_audio(wav, self.segments, self.sample_rate, spread=False)
        return Clip(frames=frames, audio=audio, sample_rate=self.sample_rate,
                    meta={"source": str(self._frame_path(item, 1).parent), "audio_source": str(wav)})

    def _labels(self, item: AVSVideo) -> dict[str, Any]:
        masks = torch.zeros(self.segments, self.frame_size, self.frame_size)
        valid = torch.zeros(self.segments, dtype=torch.bool)
        for i in self._annotated():
            masks[i - 1] = load_mask(self._require(self._mask_path(item, i), "mask"), self.frame_size)
            valid[i - 1] = True
        return {"masks": masks, "mask_valid": valid}

    def _meta(self, item: AVSVideo) -> dict[str, Any]:
        return {"video_id": item.name, "category": item.category}

    def _require(self, path: Path, what: str) -> Path:
        return require(path, f"{self.name.upper()} {what}", self.layout)

    def _annotated(self) -> range:
        """1-based numbers of the frames that have a ground-truth mask."""
        return range(1, self.segments + 1)

    @abstractmethod
    def _frame_path(self, item: AVSVideo, i: int) -> Path:
        """The PNG of frame i (1-based)."""

    @abstractmethod
    def _mask_path(self, item: AVSVideo, i: int) -> Path:
        """The PNG mask of frame i (1-based)."""

    @abstractmethod
    def _audio_path(self, item: AVSVideo) -> Path:
        """The 5-s wav."""


class S4Dataset(AVSBenchDataset):
    """AVSBench S4 (single sound source); split "train", "val" or "test". Meta "classes" are the csv's categories."""

    name = "s4"
    layout = S4_LAYOUT
    subdir = "Single-source"
    meta_file = "s4_meta_data.csv"
    need_category = True

    def _folder(self, kind: str, item: AVSVideo) -> Path:
        return self.base / "s4_data" / kind / self.split / item.category

    def _frame_path(self, item: AVSVideo, i: int) -> Path:
        return self._folder("visual_frames", item) / item.name / f"{item.name}_{i}.png"

    def _mask_path(self, item: AVSVideo, i: int) -> Path:
        return self._folder("gt_masks", item) / item.name / f"{item.name}_{i}.png"

    def _audio_path(self, item: AVSVideo) -> Path:
        return self._folder("audio_wav", item) / f"{item.name}.wav"

    def _annotated(self) -> range:
        return range(1, 2) if self.split == "train" else super()._annotated()


class MS3Dataset(AVSBenchDataset):
    """AVSBench MS3 (multiple sound sources); split "train", "val" or "test"; all 5 masks in every split."""

    name = "ms3"
    layout = MS3_LAYOUT
    subdir = "Multi-sources"
    meta_file = "ms3_meta_data.csv"
    need_category = False

    def _frame_path(self, item: AVSVideo, i: int) -> Path:
        # The official MS3 frames keep the source video's extension in their names.
        return self.base / "ms3_data" / "visual_frames" / item.name / f"{item.name}.mp4_{i}.png"

    def _mask_path(self, item: AVSVideo, i: int) -> Path:
        return self.base / "ms3_data" / "gt_masks" / self.split / item.name / f"{item.name}_{i}.png"

    def _audio_path(self, item: AVSVideo) -> Path:
        return self.base / "ms3_data" / "audio_wav" / self.split / f"{item.name}.wav"
