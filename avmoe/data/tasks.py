"""Where a task's clips come from (a scene world or a real dataset) and how clips become batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from avmoe.data.sample import Clip

SPLITS = ("train", "val", "test")


@dataclass
class DataSpec:
    """A training/evaluation data source, as written on the command line and stored in model cards.

    `world` names a scene world (clips rendered in memory, `sizes` per split); `root` a real dataset folder.
    """

    task: str
    world: Optional[str] = None
    root: Optional[str] = None
    sizes: tuple[int, int, int] = (2000, 300, 300)  # train, val, test clips of a world

    def __post_init__(self) -> None:
        if (self.world is None) == (self.root is None):
            raise ValueError("give exactly one data source: a scene world (--world) or a dataset (--data TASK:PATH)")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "world": self.world, "root": self.root, "sizes": list(self.sizes)}


class QuestionItems(Dataset):
    """One item per (clip, question): item j is question j % Q of clip j // Q, as a Clip whose "qa" holds it."""

    def __init__(self, clips: Dataset, per_clip: int) -> None:
        self.clips, self.per_clip = clips, per_clip

    def __len__(self) -> int:
        return len(self.clips) * self.per_clip

    def __getitem__(self, j: int) -> Clip:
        clip = self.clips[j // self.per_clip]
        questions = clip.labels["qa"]
        if not questions:
            raise ValueError(f"clip {j // self.per_clip} has no questions")
        clip.labels["qa"] = [questions[(j % self.per_clip) % len(questions)]]
        return clip


@dataclass
class TaskData:
    """The datasets of the three splits plus the label vocabularies a model built for them needs."""

    spec: DataSpec
    splits: dict[str, Dataset]
    classes: list[str]  # event classes, or AVQA answers
    question_words: list[str]  # AVQA question vocabulary (empty for other tasks)
    attribution: str = ""


QUESTIONS_PER_CLIP = 4


def open_task_data(spec: DataSpec, frame_size: int, sample_rate: int, segments: int,
                   splits: Sequence[str] = SPLITS, cache_train: bool = False) -> TaskData:
    """Datasets of a scene world (rendered on the fly, deterministic per index) or of a real dataset folder.

    cache_train keeps the rendered train clips of a world in memory for the next epochs (see SceneDataset).
    """
    if spec.world is not None:
        from avmoe.data.synthetic import SceneDataset, get_world

        world = get_world(spec.world)
        sets: dict[str, Dataset] = {
            split: SceneDataset(world, spec.task, split, n, frame_size=frame_size, sample_rate=sample_rate,
                                segments=segments, cache=cache_train and split == "train")
            for split, n in zip(SPLITS, spec.sizes) if split in splits}
        classes = list(world.answer_vocab) if spec.task == "avqa" else list(world.classes)
        words = list(world.question_vocab) if spec.task == "avqa" else []
        attribution = world.attribution
    else:
        from avmoe.data.datasets import open_dataset

        sets = {split: open_dataset(spec.task, spec.root, split, frame_size=frame_size, sample_rate=sample_rate)
                for split in splits}
        first = next(iter(sets.values()))
        classes = list(first.answers if spec.task == "avqa" else first.classes)
        words = list(first.question_vocab) if spec.task == "avqa" else []
        attribution = ""
    if spec.task == "avqa" and spec.world is not None:
        sets = {k: QuestionItems(v, QUESTIONS_PER_CLIP) for k, v in sets.items()}
    return TaskData(spec, sets, classes, words, attribution)


class Collate:
    """Clips -> a batch dict of stacked tensors with the labels of one task (see `avmoe.heads` for the keys)."""

    def __init__(self, task: str, classes: Sequence[str], question_words: Sequence[str] = (),
                 question_len: int = 14) -> None:
        self.task = task
        self.answers = {a: i for i, a in enumerate(classes)}
        self.tokenizer = None
        if task == "avqa":
            from avmoe.data.datasets.avqa import QuestionTokenizer

            self.tokenizer = QuestionTokenizer(list(question_words), max_len=question_len)

    def __call__(self, clips: list[Clip]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "frames": torch.stack([c.frames for c in clips]),
            "audio": torch.stack([c.audio for c in clips]),
            "audio_missing": torch.tensor([c.audio_missing for c in clips]),
            "visual_missing": torch.tensor([c.visual_missing for c in clips]),
            "meta": [c.meta for c in clips],
        }
        labels = [c.labels for c in clips]
        if self.task == "ave" and all("ave" in lb for lb in labels):
            batch["ave"] = torch.stack([torch.as_tensor(lb["ave"]).long() for lb in labels])
        if self.task == "avvp" and all("avvp" in lb for lb in labels):
            for key in ("audio", "visual", "weak"):
                if all(key in lb["avvp"] for lb in labels):
                    batch[f"avvp_{key}"] = torch.stack([torch.as_tensor(lb["avvp"][key]).float() for lb in labels])
        if self.task in ("s4", "ms3") and all("masks" in lb for lb in labels):
            batch["masks"] = torch.stack([torch.as_tensor(lb["masks"]).float() for lb in labels])
            batch["mask_valid"] = torch.stack([
                torch.as_tensor(lb["mask_valid"]).bool() if "mask_valid" in lb
                else torch.ones(len(lb["masks"]), dtype=torch.bool) for lb in labels])
        if self.task == "avqa":
            qa = [lb["qa"][0] for lb in labels]
            batch["question"] = torch.stack([self.tokenizer.encode(q["question"]) for q in qa])
            batch["qtype"] = [list(q["type"]) for q in qa]
            if all(q.get("answer") in self.answers for q in qa):
                batch["answer"] = torch.tensor([self.answers[q["answer"]] for q in qa])
        return batch
