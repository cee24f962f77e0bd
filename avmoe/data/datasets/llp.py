"""LLP (Tian et al., ECCV 2020), the audio-visual video parsing (AVVP) dataset: 10-s YouTube clips, 25 classes.

Tab-separated files with a header. `AVVP_train.csv`, `AVVP_val_pd.csv`, `AVVP_test_pd.csv`: `filename  event_labels`
(weak, video-level, comma-separated). `AVVP_eval_audio.csv`, `AVVP_eval_visual.csv`: `filename  onset  offset
event_labels`, one event per row in whole seconds, for the val and test videos. `filename` is
`<youtube id>_<start>_<end>`; the times may be fractional (`AP0061o0Nvk_101.8_111.8`) and the id may hold `_`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from avmoe.data.datasets.base import MediaLayout, VideoOrFramesDataset, read_text

CLASSES = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce", "Fire_alarm", "Chainsaw",
    "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle", "Vacuum_cleaner", "Baby_laughter", "Accordion",
    "Lawn_mower", "Motorcycle", "Helicopter", "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry",
    "Blender", "Clapping",
)
"""The 25 classes in the official order: the `categories` list of the HAN/AVVP code (dataloader and eval), which
AVMoE's AVVP code keeps. The files cannot give it: their labels first appear in another order (Speech, Dog,
Singing, Banjo, ...), and the list is neither alphabetical nor by frequency."""

SEGMENTS = 10
WEAK_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
EVAL_FILES = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
MEDIA = MediaLayout(video_dirs=("video",))
LAYOUT = f"""  <root>/AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv   (filename<TAB>event_labels, header line)
  <root>/AVVP_eval_audio.csv, AVVP_eval_visual.csv   (filename<TAB>onset<TAB>offset<TAB>event_labels; val/test)
{MEDIA.describe()}
  where <key> is the filename (<youtube id>_<start>_<end>, as LLP_dataset/video/) or, for extracted media, also
  the bare youtube id (as the official AVVP loader names them)"""


@dataclass(frozen=True)
class LLPVideo:
    """One video of a split: its filename and the classes of its weak, video-level label."""

    filename: str
    weak: tuple[str, ...]

    @property
    def youtube_id(self) -> str:
        return self.filename.rsplit("_", 2)[0]


@dataclass(frozen=True)
class LLPEvent:
    """One row of an eval file: `label` over the seconds [onset, offset) of `filename`."""

    filename: str
    onset: int
    offset: int
    label: str


def _rows(text: str, source: str, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a tab-separated file whose header must be `columns`."""
    lines = text.splitlines()
    header = tuple(lines[0].strip().split("\t")) if lines else ()
    if header != columns:
        raise ValueError(f"{source}: header {header} is not the expected {columns}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r\n").split("\t")
        if not line.strip():
            continue
        if len(fields) != len(columns):
            raise ValueError(f"{source} line {number}: {line!r} has {len(fields)} tab-separated fields, "
                             f"expected {len(columns)}")
        rows.append((number, fields))
    return rows


def _check_class(label: str, source: str, number: int) -> str:
    if label not in CLASSES:
        raise ValueError(f"{source} line {number}: unknown LLP class {label!r}; expected one of {list(CLASSES)}")
    return label


def parse_weak(text: str, source: str = "<text>") -> list[LLPVideo]:
    """Videos of a `filename  event_labels` file (AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv)."""
    return [LLPVideo(name, tuple(_check_class(c, source, n) for c in labels.split(",")))
            for n, (name, labels) in _rows(text, source, ("filename", "event_labels"))]


def parse_events(text: str, source: str = "<text>") -> dict[str, list[LLPEvent]]:
    """Events of an eval file (AVVP_eval_audio.csv or AVVP_eval_visual.csv), grouped by filename."""
    events: dict[str, list[LLPEvent]] = {}
    for n, (name, onset, offset, label) in _rows(text, source, ("filename", "onset", "offset", "event_labels")):
        try:
            event = LLPEvent(name, int(onset), int(offset), _check_class(label, source, n))
        except ValueError as err:
            raise ValueError(f"{source} line {n}: onset {onset!r} / offset {offset!r} are not whole seconds") from err
        events.setdefault(name, []).append(event)
    return events


def weak_labels(labels: tuple[str, ...]) -> torch.Tensor:
    """Video-level multi-hot [C] over CLASSES."""
    out = torch.zeros(len(CLASSES))
    out[[CLASSES.index(c) for c in labels]] = 1.0
    return out


def segment_labels(events: list[LLPEvent], segments: int = SEGMENTS) -> torch.Tensor:
    """Per-second multi-hot [T, C]: second s is on for an event when onset <= s < offset, as the official eval's
    `GT[idx, onset:offset] = 1` (so an event with onset == offset marks nothing; repeated rows change nothing)."""
    out = torch.zeros(segments, len(CLASSES))
    for e in events:
        out[max(e.onset, 0):max(min(e.offset, segments), 0), CLASSES.index(e.label)] = 1.0
    return out


class LLPDataset(VideoOrFramesDataset):
    """LLP items as Clips of 10 one-second segments with labels {"avvp": {"weak" [25], "audio" [10, 25],
    "visual" [10, 25]}}; the train split has "weak" only.

    Eval rows are matched to videos by exact filename, as the official evaluation does; rows whose filename is
    damaged in the release (`KvIjsmANkxI_10_20` with a trailing backtick, `Baby_cry_infant_cry`, ids that lost
    their leading characters such as `P7x4FV4lg_570_580`) therefore label nothing.

    Args:
        root: the LLP folder (see LAYOUT).
        split: "train", "val" or "test".
        frame_size: side of the square output frames.
        sample_rate: output audio rate.
        media: "auto", "video" or "frames" (see VideoOrFramesDataset).
    """

    name = "avvp"
    segments = SEGMENTS
    layout = LAYOUT
    media_layout = MEDIA
    classes = CLASSES

    def _read_items(self) -> list[LLPVideo]:
        path = self.root / WEAK_FILES[self.split]
        videos = parse_weak(read_text(path, f"LLP {self.split} label file", LAYOUT), str(path))
        self.events: dict[str, dict[str, list[LLPEvent]]] = {}
        if self.split != "train":
            for modality, file in EVAL_FILES.items():
                path = self.root / file
                self.events[modality] = parse_events(read_text(path, f"LLP {modality} eval file", LAYOUT), str(path))
        return videos

    def _keys(self, item: LLPVideo) -> list[str]:
        return [item.filename, item.youtube_id]

    def _labels(self, item: LLPVideo) -> dict[str, Any]:
        labels = {"weak": weak_labels(item.weak)}
        for modality, events in self.events.items():
            labels[modality] = segment_labels(events.get(item.filename, []), self.segments)
        return {"avvp": labels}

    def _meta(self, item: LLPVideo) -> dict[str, Any]:
        return {"video_id": item.filename}
