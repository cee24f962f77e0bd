"""AVE (Tian et al., ECCV 2018): audio-visual event localisation, one event class per second of a 10-s video.

Annotation rows are `Category&VideoID&Quality&StartTime&EndTime` (whole seconds). `Annotations.txt` starts with that
header line; `trainSet.txt`, `valSet.txt` and `testSet.txt` are rows of the same form without a header. Each row is
one item, as in the official `labels.h5` (4143 rows): 45 videos carry two or three rows (Banjo and Mandolin, Male
and Female speech, ...) and so appear once per event, sometimes in two splits (8 train/test, 10 train/val videos).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from avmoe.data.datasets.base import MediaLayout, VideoOrFramesDataset, read_text
from avmoe.data.sample import BACKGROUND

HEADER = "Category&VideoID&Quality&StartTime&EndTime"

CLASSES = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane", "Race car, auto racing",
    "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute", "Ukulele", "Frying (food)", "Truck",
    "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus",
    "Chainsaw", "Cat", "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)
"""The 28 event classes in `categories.txt` order (also their order of first appearance in Annotations.txt): index i
is column i of the official one-hot `labels.h5`, whose column 28 is background (our BACKGROUND = -1)."""

SEGMENTS = 10
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt", "all": "Annotations.txt"}
MEDIA = MediaLayout(video_dirs=("AVE",))
LAYOUT = f"""  <root>/Annotations.txt   ({HEADER}, one header line)
  <root>/trainSet.txt, valSet.txt, testSet.txt   (rows of the same form, no header)
{MEDIA.describe()}
  where <key> is the VideoID (raw videos as in AVE.zip: <root>/AVE/<VideoID>.mp4)"""


@dataclass(frozen=True)
class AVEEvent:
    """One annotation row: an event of `category` over the seconds [start, end) of video `video_id`."""

    category: str
    video_id: str
    quality: str
    start: int
    end: int


def parse_annotations(text: str, source: str = "<text>") -> list[AVEEvent]:
    """Rows of an AVE annotation file (Annotations.txt or a split file); the header line, if any, is skipped."""
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or (number == 1 and line == HEADER):
            continue
        fields = line.rsplit("&", 4)  # the category is the only field that could hold odd characters
        try:
            category, video_id, quality, start, end = fields
            event = AVEEvent(category, video_id, quality, int(start), int(end))
        except ValueError as err:
            raise ValueError(f"{source} line {number}: {line!r} is not {HEADER} with whole seconds") from err
        if category not in CLASSES:
            raise ValueError(f"{source} line {number}: unknown AVE category {category!r}; expected one of the 28 "
                             f"in categories.txt")
        events.append(event)
    return events


def event_labels(event: AVEEvent, segments: int = SEGMENTS) -> torch.Tensor:
    """Per-second class [T]: second s (the interval [s, s+1)) has the event's class when start <= s < end, else
    BACKGROUND, i.e. `label[start:end] = class` as the official labels.h5 is built (not checked against the h5
    itself, which is not here). So the real 0&0 row is all background and a 6&8 row labels seconds 6 and 7."""
    labels = torch.full((segments,), BACKGROUND, dtype=torch.long)
    labels[max(event.start, 0):max(min(event.end, segments), 0)] = CLASSES.index(event.category)
    return labels


class AVEDataset(VideoOrFramesDataset):
    """AVE items as Clips of 10 one-second segments with labels {"ave": LongTensor [10]}.

    Args:
        root: the AVE folder (see LAYOUT).
        split: "train", "val", "test" (the official split files) or "all" (every row of Annotations.txt).
        frame_size: side of the square output frames.
        sample_rate: output audio rate.
        media: "auto", "video" or "frames" (see VideoOrFramesDataset).
    """

    name = "ave"
    segments = SEGMENTS
    layout = LAYOUT
    splits = tuple(SPLIT_FILES)
    media_layout = MEDIA
    classes = CLASSES

    def _read_items(self) -> list[AVEEvent]:
        path = self.root / SPLIT_FILES[self.split]
        return parse_annotations(read_text(path, f"AVE {self.split} annotation file", LAYOUT), str(path))

    def _labels(self, item: AVEEvent) -> dict[str, Any]:
        return {"ave": event_labels(item, self.segments)}

    def _meta(self, item: AVEEvent) -> dict[str, Any]:
        return {"video_id": item.video_id}
