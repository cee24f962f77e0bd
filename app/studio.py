"""The app's one handle on the library: the models found under a root, decoded clips, conditions and predictions.

Everything the tabs ask of the library goes through a Studio and from there through `avmoe.predict.Predictor`.
Per-session data (the decoded clip and its latest predictions) lives in a `Session` kept in gr.State, so a clip is
decoded once however many events use it.
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
import torch

from analysis.embeddings import pooled_features
from avmoe.config import TASKS, VARIANTS
from avmoe.data.corrupt import CONDITIONS, parse_condition
from avmoe.data.media import MediaError, MediaLimits
from avmoe.data.sample import Clip
from avmoe.data.synthetic.make_data import GeneratedClips
from avmoe.layers import RouterOverride
from avmoe.paths import ASSETS
from avmoe.predict import Prediction, Predictor

log = logging.getLogger(__name__)

EXAMPLES = ASSETS / "examples"
EVAL = ASSETS / "eval"
MAIN_VARIANT = "avmoe"
LIMITS = MediaLimits(max_duration_s=600.0, max_width=3840, max_height=2160, max_file_bytes=200_000_000)
MAX_UPLOAD = LIMITS.max_file_bytes  # Gradio's own upload limit in bytes ("200mb" would be 200 MiB, 5 % more)
PREDICTION_CACHE = 32  # predictions kept per Studio, keyed by clip, condition, question and override

CONDITION_LABELS = {
    "audio + visual": "av",
    "visual only": "visual-only",
    "audio only": "audio-only",
    "audio from another clip": "mismatched",
    "audio noise": "audio-noise",
    "visual noise": "visual-noise",
}
"""Menu label -> condition kind; the noise kinds take the SNR slider's value."""
NOISY = ("audio noise", "visual noise")


def condition_string(label: str, snr: float = 0.0) -> str:
    """The library's condition string for a menu label, e.g. ("audio noise", 5) -> "audio-noise:5"."""
    if label not in CONDITION_LABELS:
        raise ValueError(f"unknown condition {label!r}; choose one of {', '.join(CONDITION_LABELS)}")
    kind = CONDITION_LABELS[label]
    return str(parse_condition(f"{kind}:{float(snr):g}" if label in NOISY else kind))


def user_errors(fn: Callable) -> Callable:
    """Show ValueError, MediaError and FileNotFoundError as a gr.Error message instead of a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError) as err:
            title = "Cannot use this file" if isinstance(err, (MediaError, FileNotFoundError)) else "Cannot do that"
            raise gr.Error(str(err), title=title) from err
    return wrapper


def _plain_media_error(err: MediaError, path: str | Path) -> str:
    """A media error's text for the user: the file's name instead of its server path, and without the decoder's
    own words in brackets (the error's cause, e.g. "[Errno 1094995529] Invalid data found when processing ...")."""
    text = str(err)
    if err.__cause__ is not None:
        text = text.replace(f" ({err.__cause__})", "")
    return text.replace(str(path), Path(path).name)


@dataclass(frozen=True)
class Example:
    """An example clip in assets/examples and what its sidecar JSON says about it."""

    name: str
    path: Path
    title: str
    description: str = ""
    questions: tuple[str, ...] = ()
    ave: tuple[Optional[str], ...] = ()  # ground-truth event per second (stamps clips)
    licence: str = ""


def find_examples(directory: Path = EXAMPLES) -> list[Example]:
    """The example clips of a folder, in name order; a clip without a sidecar gets its file name as title."""
    found = []
    for path in sorted(Path(directory).glob("*.mp4")):
        side = path.with_suffix(".json")
        meta = json.loads(side.read_text()) if side.is_file() else {}
        found.append(Example(path.stem, path, meta.get("title", path.stem), meta.get("description", ""),
                             tuple(meta.get("questions", ())), tuple(meta.get("ave", ())), meta.get("licence", "")))
    return found


def find_models(root: Path) -> dict[str, dict[str, Path]]:
    """variant -> task -> model directory, for every `<task>-<variant>/config.json` under root."""
    found: dict[str, dict[str, Path]] = {}
    for variant in VARIANTS:
        for task in TASKS:
            directory = Path(root) / f"{task}-{variant}"
            if (directory / "config.json").is_file():
                found.setdefault(variant, {})[task] = directory
    return found


@dataclass
class Session:
    """One browser session's clip (decoded once) and its latest predictions."""

    path: Optional[str] = None
    clip: Optional[Clip] = None
    prediction: Optional[Prediction] = None  # the Run button's
    compare: Optional[Prediction] = None  # the router explorer's second condition
    question: Optional[str] = None
    other: Optional[str] = None  # example whose audio "audio from another clip" takes

    def require_clip(self) -> Clip:
        if self.clip is None:
            raise ValueError("no clip yet: upload a video or pick an example first")
        return self.clip

    def require_prediction(self) -> Prediction:
        if self.prediction is None:
            raise ValueError("nothing to show yet: pick a clip and press Run first")
        return self.prediction


@dataclass
class Studio:
    """Models under `models_root` (loaded on first use), example clips, and cached predictions.

    Args:
        models_root: folder of `<task>-<variant>/` model directories.
        examples: folder of example clips with sidecar JSON.
        eval_root: folder of `<task>/` make-data folders, the built-in evaluation sets.
        limits: media limits for uploads.
        conditions: the conditions of the robustness comparisons.
    """

    models_root: Path
    examples_dir: Path = EXAMPLES
    eval_root: Path = EVAL
    limits: MediaLimits = LIMITS
    conditions: tuple[str, ...] = CONDITIONS
    models: dict[str, dict[str, Path]] = field(init=False)
    examples: list[Example] = field(init=False)
    _predictors: dict[str, Predictor] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _others: dict[str, Clip] = field(init=False, default_factory=dict)
    _cache: OrderedDict = field(init=False, default_factory=OrderedDict)
    _features: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.models_root = Path(self.models_root)
        self.models = find_models(self.models_root)
        self.examples = find_examples(self.examples_dir)
        log.info("models under %s: %s", self.models_root,
                 {v: sorted(t) for v, t in self.models.items()} or "none")

    # ------------------------------------------------------------------------------------------------ models
    @property
    def tasks(self) -> list[str]:
        """Tasks with a model of the main variant, in the library's task order."""
        return [t for t in TASKS if t in self.models.get(MAIN_VARIANT, {})]

    def missing_note(self, task: Optional[str] = None) -> str:
        """Which models are missing and where they are expected (plain text, also fine as Markdown)."""
        what = f"{task}-{MAIN_VARIANT} model" if task else f"{MAIN_VARIANT} models (folders like ave-{MAIN_VARIANT})"
        return (f"No {what} under {self.models_root}. Put trained model folders there (TASK-VARIANT with "
                f"config.json and model.safetensors), or start the app with --models DIR.")

    def predictor(self, variant: str = MAIN_VARIANT) -> Predictor:
        """The variant's Predictor over every task it has, loaded on first use."""
        with self._lock:
            if variant not in self._predictors:
                if variant not in self.models:
                    raise ValueError(self.missing_note() if variant == MAIN_VARIANT else
                                     f"no {variant!r} models under {self.models_root}")
                self._predictors[variant] = Predictor(self.models[variant], limits=self.limits,
                                                      share_with=list(self._predictors.values()))
            return self._predictors[variant]

    def warm_up(self) -> None:
        """One prediction of every main task on a blank clip, so the first visitor does not wait for the first run."""
        start = time.perf_counter()
        predictor = self.predictor()
        blank = Clip(torch.zeros(predictor.segments, 3, predictor.frame_size, predictor.frame_size),
                     torch.zeros(predictor.segments, predictor.sample_rate), predictor.sample_rate)
        with self._lock:
            predictor.predict(blank, question="how many sounding objects are in the video?")
        log.info("warmed up in %.1f s", time.perf_counter() - start)

    def experts(self) -> list[str]:
        """Expert names of the main variant's mixtures (cma0, ..., ua0, ...)."""
        if not self.tasks:
            return []
        num_cma, num_ua = self.predictor().models[self.tasks[0]].cfg.experts
        return [f"cma{i}" for i in range(num_cma)] + [f"ua{i}" for i in range(num_ua)]

    def layers(self) -> list[int]:
        """Indices of the layers that carry mixtures in any of the main variant's task models."""
        if not self.tasks:
            return []
        models = self.predictor().models
        return sorted({m.key[1] for task in self.tasks for m in models[task].encoder.adapters.values()})

    def cards(self) -> dict[str, dict]:
        """Model directory name -> its card.json (empty when it has none)."""
        cards = {}
        for tasks in self.models.values():
            for directory in tasks.values():
                card = directory / "card.json"
                cards[directory.name] = json.loads(card.read_text()) if card.is_file() else {}
        return dict(sorted(cards.items()))

    # ------------------------------------------------------------------------------------------------- clips
    def decode(self, path: str | Path) -> Clip:
        """Decode a media file for the main models; error texts as `_plain_media_error` words them, details to the
        log."""
        try:
            return self.predictor().load_clip(path)
        except MediaError as err:
            log.info("cannot decode %s: %s", path, err)
            raise MediaError(_plain_media_error(err, path)) from err
        except FileNotFoundError as err:  # e.g. an upload the app's hourly cleanup removed while its page stayed open
            raise FileNotFoundError(f"no such media file: {Path(path).name} is not on the server (any more); "
                                    f"upload it again or pick an example") from err

    def session_for(self, session: Optional[Session], video: Optional[str]) -> Session:
        """The session for `video`: the same one when it holds this file already, else a new one with it decoded."""
        if not video:
            raise ValueError("no video: upload one or pick an example")
        if session is not None and session.path == str(video) and session.clip is not None:
            return session
        return Session(path=str(video), clip=self.decode(video))

    def example(self, name: str) -> Example:
        for example in self.examples:
            if example.name == name:
                return example
        raise ValueError(f"no example clip named {name!r}; examples: {', '.join(e.name for e in self.examples)}")

    def example_for(self, path: Optional[str]) -> Optional[Example]:
        """The example a path is a copy of (Gradio copies example files), matched by file name."""
        if not path:
            return None
        return next((e for e in self.examples if Path(path).name == e.path.name), None)

    def other_clip(self, name: str) -> Clip:
        """An example decoded like the main clip, for "audio from another clip"; decoded once per Studio."""
        if name not in self._others:
            self._others[name] = self.decode(self.example(name).path)
        return self._others[name]

    # ----------------------------------------------------------------------------------------- predictions
    def predict(self, session: Session, condition: str, question: Optional[str] = None,
                override: Optional[RouterOverride] = None, tasks: Optional[list[str]] = None,
                other: Optional[str] = None, variant: str = MAIN_VARIANT) -> Prediction:
        """One Predictor.predict of the variant's requested tasks (default: every main task; AVQA only with a
        question) on the session's clip, cached by its arguments. `other` names the example lending its audio."""
        clip = session.require_clip()
        condition = str(parse_condition(condition))
        needs_other = parse_condition(condition).needs_other
        if needs_other and not other:
            raise ValueError("'audio from another clip' needs the other clip: choose one in the menu")
        tasks = list(tasks or self.tasks)
        key = (session.path, variant, condition, question, repr(override), tuple(tasks), other if needs_other else None)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        other_clip = self.other_clip(other) if needs_other else None
        predictor = self.predictor(variant)
        with self._lock:  # a router override changes the shared models' state while it runs
            result = predictor.predict(clip, condition, tasks=tasks, question=question, override=override,
                                       other=other_clip)
            self._cache[key] = result
            while len(self._cache) > PREDICTION_CACHE:
                self._cache.popitem(last=False)
        return result

    def eval_set(self, task: str) -> GeneratedClips:
        """The task's built-in evaluation clips (a make-data folder), read at its main model's size and length."""
        directory = self.eval_root / task
        if not (directory / "classes.json").is_file():
            raise ValueError(f"no evaluation set for {task} at {directory}; write one with `python -m avmoe make-data "
                             f"--task {task} --split test --n 16 --out {directory}`")
        if task not in self.tasks:
            return GeneratedClips(directory)
        cfg = self.predictor().models[task].cfg
        return GeneratedClips(directory, frame_size=cfg.frame_size, sample_rate=cfg.sample_rate, segments=cfg.segments)

    def features(self, task: str, stream: str, layer: Optional[int], condition: str,
                 clips: Optional[list[Clip]] = None, progress: Optional[Callable] = None) -> tuple[np.ndarray, list]:
        """analysis.embeddings.pooled_features of the main `task` model over `clips` (default: the evaluation set,
        cached per stream, layer and condition)."""
        key = (task, stream, layer, condition)
        if clips is None and key in self._features:
            return self._features[key]
        source = self.eval_set(task) if clips is None else clips
        predictor = self.predictor()
        with self._lock:
            result = pooled_features(predictor, source, stream, layer, condition, task=task, progress=progress)
        if clips is None:
            self._features[key] = result
        return result

    def standard_conditions(self, mismatched: bool = True) -> list[str]:
        """The robustness conditions, "av" first; "mismatched" only when asked for (it needs a clip to lend audio)."""
        return ["av"] + [c for c in self.conditions if c != "av" and (c != "mismatched" or mismatched)]

    def other_example(self, session: Session) -> Optional[str]:
        """The example that lends its audio to the session's clip: the session's choice, else the first example
        that is not the clip itself."""
        current = Path(session.path or "").name
        return session.other or next((e.name for e in self.examples if e.path.name != current), None)
