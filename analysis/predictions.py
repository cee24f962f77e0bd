"""Run a Predictor over a dataset's clips under conditions, the way `avmoe.evaluate` conditions them."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

from torch.utils.data import Dataset

from avmoe.data.corrupt import parse_condition
from avmoe.data.sample import BACKGROUND, Clip
from avmoe.model import TaskModel
from avmoe.predict import Predictor, TaskPrediction

Progress = Callable[[float, str], None]
"""progress(fraction done in [0, 1], message); a gradio.Progress fits."""


ModelSource = Union[Predictor, TaskModel, str, Path, Mapping[str, Union[TaskModel, str, Path]]]


def as_predictor(source: ModelSource) -> Predictor:
    """A Predictor from a Predictor, a built task model, a model directory or a mapping task -> model (or folder)."""
    if isinstance(source, Predictor):
        return source
    if isinstance(source, Mapping):
        return Predictor(source)
    if isinstance(source, TaskModel):
        return Predictor({source.cfg.task: source})
    import avmoe

    model = avmoe.load(source)
    return Predictor({model.cfg.task: model})


def pick_task(predictor: Predictor, task: Optional[str]) -> str:
    """`task`, checked against the predictor's models; None picks its first model."""
    if task is None:
        return next(iter(predictor.models))
    if task not in predictor.models:
        raise ValueError(f"the predictor has no {task!r} model; it has {', '.join(predictor.models)}")
    return task


def iter_predictions(predictor: Predictor, clips: Dataset | Sequence[Clip], conditions: Sequence[str], task: str,
                     seed: int = 0, progress: Optional[Progress] = None
                     ) -> Iterator[tuple[int, str, Clip, TaskPrediction]]:
    """(clip index, condition, the clip before the condition, the task's prediction) for every clip x condition.

    As in `avmoe.evaluate.ConditionedClips`, clip i is corrupted with seed `seed + i` and "mismatched" takes the
    audio of clip i + 1 (wrapping), so per-clip statistics line up with the metrics of `evaluate`.
    """
    for condition in conditions:
        parse_condition(condition)  # a bad condition fails before any model runs
    n = len(clips)
    load = lru_cache(maxsize=2)(clips.__getitem__)
    for i in range(n):
        clip = load(i)
        for j, condition in enumerate(conditions):
            other = load((i + 1) % n) if parse_condition(condition).needs_other else None
            pred = predictor.predict(clip, condition, tasks=[task], other=other, seed=seed + i)
            if progress is not None:
                progress((i * len(conditions) + j + 1) / (n * len(conditions)), f"clip {i + 1}/{n}, {condition}")
            yield i, condition, clip, pred.tasks[task]


def second_classes(clip: Clip, fallback: Sequence[str] = ()) -> list[Optional[str]]:
    """The AVE class name of each second ("background" where no event), or None per second without labels."""
    if "ave" not in clip.labels:
        return [None] * clip.num_segments
    names = clip.meta.get("classes") or list(fallback)
    return ["background" if c == BACKGROUND else names[c] if c < len(names) else str(c)
            for c in clip.labels["ave"].tolist()]


def clip_class(clip: Clip, fallback: Sequence[str] = ()) -> Optional[str]:
    """The clip's event class: its most frequent non-background second class, else "background"."""
    seconds = second_classes(clip, fallback)
    if seconds[0] is None:
        return None
    events = [c for c in seconds if c != "background"]
    return max(sorted(set(events)), key=events.count) if events else "background"
