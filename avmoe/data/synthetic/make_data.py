"""`python -m avmoe make-data`: render scene-world clips to mp4 files with their labels, and read them back.

For each index the output folder gets:
  <index>.mp4        H.264 + AAC (media.write_video), at --fps (even, so a frame sits on every segment centre);
                     masks are not drawn in
  <index>.json       world, task, split, index, seed, sizes, labels (ave; avvp as class indices per second; qa),
                     carrier per second, the scene, attribution
  <index>.masks.npz  the masks of the segment-centre frames, bit-packed, at the rendered frame size
and once per folder classes.json (classes and vocabularies) and ATTRIBUTION.txt (licences of the media used).
`load_generated` decodes an mp4 with media.decode_clip, takes the masks from the npz (resized, nearest, when a
different frame size is asked for) and derives the labels from the stored scene, so a shorter read stays right.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from avmoe.data.media import decode_clip, write_video
from avmoe.data.sample import Clip
from avmoe.data.synthetic.dataset import SPLITS, SceneDataset
from avmoe.data.synthetic.labels import carrier, scene_labels
from avmoe.data.synthetic.preview import contact_sheet
from avmoe.data.synthetic.registry import WORLDS
from avmoe.data.synthetic.sampler import TASKS
from avmoe.data.synthetic.scene import Scene

log = logging.getLogger(__name__)

PREVIEW_CLIPS = 4  # clips shown in the --preview contact sheet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", choices=sorted(WORLDS), default="stamps", help="scene world")
    parser.add_argument("--task", choices=TASKS, required=True, help="which scene sampler (labels are for all tasks)")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--n", type=int, required=True, help="number of clips")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--frame-size", type=int, default=128, help="side of the square frames, pixels")
    parser.add_argument("--fps", type=int, default=8, help="video frame rate (even)")
    parser.add_argument("--segments", type=int, default=10, help="clip length, seconds")
    parser.add_argument("--sample-rate", type=int, default=32000, help="audio rate, Hz")
    parser.add_argument("--start-index", type=int, default=0, help="index of the first clip (to generate in parts)")
    parser.add_argument("--preview", type=Path, help="also write a contact sheet of the first clips to this PNG")


def run(args: argparse.Namespace) -> int:
    paths = generate(args.world, args.task, args.split, args.n, args.out, frame_size=args.frame_size, fps=args.fps,
                     segments=args.segments, sample_rate=args.sample_rate, start_index=args.start_index,
                     preview=args.preview)
    log.info("wrote %d clips to %s", len(paths), args.out)
    return 0


def generate(world: str, task: str, split: str, n: int, out: Path, frame_size: int = 128, fps: int = 8,
             segments: int = 10, sample_rate: int = 32000, start_index: int = 0, preview: Path | None = None,
             progress: bool = True) -> list[Path]:
    """Write clips start_index .. start_index + n - 1 of (world, task, split) into `out`; returns the mp4 paths."""
    if n < 1 or start_index < 0:
        raise ValueError(f"need n >= 1 and start_index >= 0, got n={n}, start_index={start_index}")
    scenes = SceneDataset(world, task, split, start_index + n, frame_size, sample_rate, segments)
    w = scenes.world
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ATTRIBUTION.txt").write_text(w.attribution + "\n")
    _write_json(out / "classes.json", {"world": w.name, "classes": w.classes, "answer_vocab": w.answer_vocab,
                                       "question_vocab": w.question_vocab})
    paths = []
    for index in tqdm(range(start_index, start_index + n), desc=f"{w.name}/{task}/{split}", unit="clip",
                      disable=not progress):
        clip, video = w.render(scenes.scene(index), frame_size, sample_rate, fps=fps)
        stem = out / str(index)
        paths.append(write_video(stem.with_suffix(".mp4"), video.frames, fps, video.audio, sample_rate))
        masks = clip.labels["masks"].numpy() > 0.5
        np.savez_compressed(f"{stem}.masks.npz", bits=np.packbits(masks, axis=-1), shape=np.array(masks.shape))
        _write_json(stem.with_suffix(".json"), _record(clip, split, index, scenes.seed(index), fps))
    if preview is not None:
        shown = range(start_index, start_index + min(n, PREVIEW_CLIPS))
        contact_sheet([load_generated(out, i) for i in shown], cell=max(96, frame_size)).save(preview)
        log.info("preview of %d clips in %s", len(shown), preview)
    return paths


def generated_indices(directory: Path) -> list[int]:
    """Indices of the clips in a make-data folder, sorted."""
    return sorted(int(p.stem) for p in Path(directory).glob("*.json") if p.stem.isdigit())


def load_generated(directory: Path, index: int, frame_size: int | None = None, sample_rate: int | None = None,
                   segments: int | None = None) -> Clip:
    """A make-data clip as a Clip: decoded mp4, stored masks, labels from the stored scene.

    frame_size, sample_rate and segments default to those it was generated with; segments may be fewer.
    """
    directory = Path(directory)
    record = json.loads((directory / f"{index}.json").read_text())
    classes = json.loads((directory / "classes.json").read_text())["classes"]
    frame_size = frame_size or record["frame_size"]
    segments = segments or record["segments"]
    scene = Scene.from_dict(record["scene"]).crop(segments)
    clip = decode_clip(directory / f"{index}.mp4", segments=segments, start=0.0, frame_size=frame_size,
                       sample_rate=sample_rate or record["sample_rate"])
    packed = np.load(directory / f"{index}.masks.npz")
    shape = tuple(int(s) for s in packed["shape"])
    masks = np.unpackbits(packed["bits"], axis=-1, count=shape[-1]).reshape(shape)[:segments]
    masks = torch.nn.functional.interpolate(torch.from_numpy(masks).float()[None], size=clip.frames.shape[-2:],
                                            mode="nearest")[0]
    clip.labels = {**scene_labels(scene, classes), "masks": masks,
                   "mask_valid": torch.ones(segments, dtype=torch.bool)}
    clip.meta.update(world=record["world"], task=record["task"], split=record["split"], index=record["index"],
                     classes=classes, carrier=carrier(scene), scene=scene.to_dict(),
                     attribution=record["attribution"])
    return clip


def _record(clip: Clip, split: str, index: int, seed: int, fps: int) -> dict[str, Any]:
    labels = clip.labels
    avvp = labels["avvp"]
    per_second = {k: [torch.nonzero(row).flatten().tolist() for row in avvp[k]] for k in ("audio", "visual")}
    return {
        "world": clip.meta["world"], "task": clip.meta["task"], "split": split, "index": index, "seed": seed,
        "segments": clip.num_segments, "frame_size": clip.frames.shape[-1], "fps": fps,
        "sample_rate": clip.sample_rate,
        "labels": {"ave": labels["ave"].tolist(),
                   "avvp": {**per_second, "weak": torch.nonzero(avvp["weak"]).flatten().tolist()},
                   "qa": labels["qa"]},
        "carrier": clip.meta["carrier"], "scene": clip.meta["scene"], "attribution": clip.meta["attribution"],
        "masks": f"{index}.masks.npz",
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


class GeneratedClips(Dataset):
    """A make-data folder as a Dataset: item i is `load_generated(directory, indices[i], ...)`, indices sorted.

    Args:
        directory: a folder written by `generate` (or `python -m avmoe make-data`).
        frame_size, sample_rate, segments: as in `load_generated`; None keeps what the clips were generated with.
    """

    def __init__(self, directory: str | Path, frame_size: int | None = None, sample_rate: int | None = None,
                 segments: int | None = None) -> None:
        self.directory = Path(directory)
        if not (self.directory / "classes.json").is_file():
            raise FileNotFoundError(f"{self.directory} is not a make-data folder (no classes.json); write one with "
                                    f"`python -m avmoe make-data --out {self.directory} ...`")
        self.indices = generated_indices(self.directory)
        self.frame_size, self.sample_rate, self.segments = frame_size, sample_rate, segments

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Clip:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips in {self.directory}")
        return load_generated(self.directory, self.indices[i], self.frame_size, self.sample_rate, self.segments)
