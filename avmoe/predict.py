"""Predictor: the one door from the app and `analysis` into the library.

A clip (a file path or a `Clip`) and a condition go in; every loaded task model's decoded outputs, its router trace
and its pooled features come out. Models whose clips are shorter than the input (AVS: 5 s) run on consecutive windows
batched together, and their outputs are joined back along time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

import avmoe
from avmoe.config import TASKS
from avmoe.data.corrupt import apply_condition
from avmoe.data.media import MediaLimits, decode_clip
from avmoe.data.sample import BACKGROUND, Clip
from avmoe.layers import RouterOverride, RouterTrace, reuse_folds
from avmoe.model import TaskModel, reuse_embeddings, share_backbones
from avmoe.paths import ASSETS

MODELS = ASSETS / "models"
VIDEO_LEVEL = frozenset({"class_probs", "avvp_weak", "answer", "top5", "top5_probs"})
"""Decoded outputs with no time axis (one value per clip); every other output is per second."""


@dataclass
class TaskPrediction:
    """One task model's view of one clip: decoded outputs (time first, no batch axis), routing and features."""

    task: str
    outputs: dict[str, torch.Tensor]
    trace: RouterTrace  # batch 1, segments = the clip's T
    features: dict[str, torch.Tensor]  # "visual"/"audio": [T, C]; "visual/3": [T, C] pooled after paired layer 3


@dataclass
class Prediction:
    clip: Clip  # the clip as the models saw it (after the condition)
    condition: str
    tasks: dict[str, TaskPrediction] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: per task the readable predictions, plus every router trace."""
        out: dict[str, Any] = {"condition": self.condition, "segments": self.clip.num_segments, "tasks": {}}
        for task, p in self.tasks.items():
            names = self.classes[task]
            o = p.outputs
            if task == "ave":
                summary = [{"second": t, "event": None if int(c) == BACKGROUND else names[int(c)],
                            "confidence": round(float(o["confidence"][t]), 4)} for t, c in enumerate(o["ave"])]
            elif task == "avvp":
                summary = {m: [[names[c] for c in torch.nonzero(row).flatten().tolist()] for row in o[f"avvp_{m}"]]
                           for m in ("audio", "visual")}
            elif task == "avqa":
                summary = {"answer": names[int(o["answer"])],
                           "top5": [{"answer": names[int(i)], "probability": round(float(p_), 4)}
                                    for i, p_ in zip(o["top5"], o["top5_probs"])]}
            else:
                summary = {"mask_fraction": [round(float(m.float().mean()), 4) for m in o["masks"]]}
            out["tasks"][task] = {"predictions": summary, "router": p.trace.to_dict()}
        return out


class Predictor:
    """Runs loaded task models on clips under input conditions and router overrides.

    Args:
        models: task name -> a model directory or a built `TaskModel`.
        device: where the models run.
        limits: media limits for decoding uploaded files.
        share_with: other Predictors whose models may lend their equal frozen backbones (one copy in memory).
    """

    def __init__(self, models: Mapping[str, str | Path | TaskModel], device: str = "cpu",
                 limits: Optional[MediaLimits] = None, share_with: Sequence["Predictor"] = ()) -> None:
        if not models:
            raise ValueError("Predictor needs at least one task model")
        self.device = torch.device(device)
        self.models: dict[str, TaskModel] = {}
        for task, model in models.items():
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
            built = model if isinstance(model, TaskModel) else avmoe.load(model)
            if built.cfg.task != task:
                raise ValueError(f"model for {task!r} was built for task {built.cfg.task!r}")
            self.models[task] = built.to(self.device).eval()
        # Equal backbones (the shipped models all have the same) become one module: one copy, embedded once per clip.
        share_backbones([m for p in share_with for m in p.models.values()] + list(self.models.values()))
        self.limits = limits or MediaLimits()
        first = next(iter(self.models.values())).cfg
        self.frame_size = max(m.cfg.frame_size for m in self.models.values())
        self.sample_rate = first.sample_rate
        self.segments = max(m.cfg.segments for m in self.models.values())

    @classmethod
    def from_assets(cls, variant: str = "avmoe", root: Path = MODELS, **kw: Any) -> "Predictor":
        """The shipped models of one variant: `assets/models/<task>-<variant>/` for every task present."""
        found = {t: root / f"{t}-{variant}" for t in TASKS if (root / f"{t}-{variant}" / "config.json").is_file()}
        if not found:
            raise FileNotFoundError(f"no {variant!r} models under {root}; expected folders like {root}/ave-{variant}")
        return cls(found, **kw)

    def load_clip(self, path: str | Path, start: float = 0.0) -> Clip:
        """Decode a media file into the clip every loaded model can read."""
        return decode_clip(path, segments=self.segments, start=start, frame_size=self.frame_size,
                           sample_rate=self.sample_rate, limits=self.limits)

    @torch.inference_mode()
    def predict(self, clip: Clip | str | Path, condition: str = "av", tasks: Optional[list[str]] = None,
                question: Optional[str] = None, override: Optional[RouterOverride] = None,
                other: Optional[Clip] = None, seed: int = 0) -> Prediction:
        """Every requested task's outputs for `clip` under `condition` ("mismatched" takes `other`'s audio).

        AVQA runs only when a question is given. `override` pins or restricts the router in every model.
        """
        if not isinstance(clip, Clip):
            clip = self.load_clip(clip)
        clip = apply_condition(clip, condition, seed=seed, other=other)
        wanted = [t for t in (tasks or list(self.models)) if t != "avqa" or question is not None]
        unknown = [t for t in wanted if t not in self.models]
        if unknown:
            raise ValueError(f"no model loaded for {', '.join(unknown)}; loaded: {', '.join(self.models)}")
        # A bad question is refused before any model runs (AVQA comes last in the task order).
        tokens = self._tokenize(self.models["avqa"], question) if "avqa" in wanted else None
        result = Prediction(clip, condition, classes={t: self.models[t].cfg.classes for t in wanted})
        with reuse_folds(), reuse_embeddings():
            for task in wanted:
                result.tasks[task] = self._run(self.models[task], clip, tokens, override)
        return result

    def _run(self, model: TaskModel, clip: Clip, tokens: Optional[torch.Tensor],
             override: Optional[RouterOverride]) -> TaskPrediction:
        t_model, t_clip = model.cfg.segments, clip.num_segments
        if t_clip < t_model:
            raise ValueError(f"the {model.cfg.task} model needs {t_model} one-second segments, the clip has {t_clip}")
        starts = list(range(0, t_clip - t_model + 1, t_model))
        if starts[-1] + t_model < t_clip:
            starts.append(t_clip - t_model)  # a last window that overlaps the previous one
        batch: dict[str, Any] = {
            "frames": torch.stack([clip.frames[s:s + t_model] for s in starts]).to(self.device),
            "audio": torch.stack([clip.audio[s:s + t_model] for s in starts]).to(self.device),
        }
        if model.cfg.task == "avqa":
            batch["question"] = tokens.expand(len(starts), -1).to(self.device)
        with model.override_router(override):
            out = model(batch)
        decoded = model.head.decode(out.outputs)
        keep = [(w, s, max(s, starts[w - 1] + t_model) if w else s) for w, s in enumerate(starts)]
        outputs = {k: v[0] if k in VIDEO_LEVEL else _join(v, keep) for k, v in decoded.items()}
        trace = RouterTrace(1, t_clip)
        for key, w in out.features.trace.weights.items():
            trace.record(key, _join(w, keep), out.features.trace.experts[key])
        feats = {"visual": _join(out.features.visual, keep), "audio": _join(out.features.audio, keep)}
        for stream, layers in out.features.layers.items():
            for i, x in enumerate(layers):
                feats[f"{stream}/{i}"] = _join(x, keep)
        return TaskPrediction(model.cfg.task, outputs, trace, feats)

    @staticmethod
    def _tokenize(model: TaskModel, question: Optional[str]) -> torch.Tensor:
        from avmoe.data.datasets.avqa import QuestionTokenizer

        if question is None or not question.strip():
            raise ValueError("the question is empty: type a question about the clip")
        if len(question) > 500:
            raise ValueError(f"the question is {len(question)} characters long; keep it under 500")
        return QuestionTokenizer(model.cfg.question_words, model.cfg.head.question_len).encode(question)[None]


def _join(x: torch.Tensor, keep: list[tuple[int, int, int]]) -> torch.Tensor:
    """Per-window outputs [W, t, ...] -> [T, ...]; an overlapping window contributes only its new seconds."""
    return torch.cat([x[w, first - s:] for w, s, first in keep])
