"""Every paper figure, from the shipped models and evaluation clips: the figure functions, the style, and `FIGURES`.

`FIGURES` maps a name to a `FigureSpec` whose `build(ctx)` runs the data collection (through `Predictor` and
`avmoe.evaluate`) on the models under `ctx.models` (folders `<task>-<variant>`, e.g. `ave-avmoe`) and the make-data
folders under `ctx.eval_root` (`<task>/`), and returns the figures (plus tables). `needs(ctx)` lists what is
missing, so the command can say exactly what to provide and skip the figure.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from matplotlib.figure import Figure
from torch.utils.data import Dataset, Subset

import avmoe
from analysis.embeddings import feature_sets, project
from analysis.labels import variant_label
from analysis.plots import (ablation_figure, avs_figure, carrier_figure, embeddings_figure, expert_usage_figure,
                            robustness_figure, router_weights_figure)
from analysis.predictions import Progress
from analysis.robustness import csv_text, robustness_table, to_latex
from analysis.router_stats import collect_routing, routing_vs_carrier
from analysis.style import apply_style, save
from avmoe.checkpoint import CONFIG, WEIGHTS
from avmoe.config import TASKS, VARIANTS, ModelConfig
from avmoe.data.corrupt import CONDITIONS
from avmoe.data.synthetic.make_data import GeneratedClips
from avmoe.evaluate import evaluate
from avmoe.model import TaskModel
from avmoe.paths import ASSETS, cache_dir
from avmoe.predict import Predictor

__all__ = ["FIGURES", "Context", "FigureSpec", "Made", "ablation_figure", "apply_style", "avs_figure",
           "carrier_figure", "embeddings_figure", "expert_usage_figure", "robustness_figure", "router_weights_figure",
           "save"]

log = logging.getLogger(__name__)

ROUTING_CONDITIONS = ("av", "visual-only", "audio-only", "mismatched")
EMBEDDING_VARIANTS = ("frozen", "cma-only", "avmoe")


@dataclass
class Context:
    """Where the inputs are and how much of them to use; memoises loaded models and routing rows."""

    models: Path = ASSETS / "models"
    eval_root: Path = ASSETS / "eval"
    ablation: Path = ASSETS / "ablation_ave.json"
    cache: Optional[Path] = field(default_factory=lambda: cache_dir("analysis"))
    clips: int = 0  # use the first N evaluation clips of each task (0 = all)
    snrs: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)  # noise levels of the robustness curves, dB
    conditions: tuple[str, ...] = CONDITIONS  # the robustness table's conditions (besides the noise levels)
    routing_conditions: tuple[str, ...] = ROUTING_CONDITIONS  # conditions of the router statistics
    seed: int = 0
    progress: Optional[Progress] = None
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def model_dir(self, task: str, variant: str) -> Path:
        return self.models / f"{task}-{variant}"

    def has_model(self, task: str, variant: str) -> bool:
        return ("model", task, variant) in self._memo or all(
            (self.model_dir(task, variant) / name).is_file() for name in (CONFIG, WEIGHTS))

    def add_model(self, task: str, variant: str, model: TaskModel) -> None:
        """Use an already loaded model for (task, variant) instead of loading its folder."""
        self._memo[("model", task, variant)] = model

    def model_or_dir(self, task: str, variant: str) -> TaskModel | Path:
        """The model if it is loaded already, else its folder (which lets robustness_table cache by file)."""
        return self._memo.get(("model", task, variant), self.model_dir(task, variant))

    def has_clips(self, task: str) -> bool:
        return (self.eval_root / task / "classes.json").is_file()

    def missing(self, task: str, variants: tuple[str, ...] = ()) -> list[str]:
        """What is absent among the task's evaluation folder and the named variants' model folders."""
        out = [] if self.has_clips(task) else [
            f"{self.eval_root / task}/ (evaluation clips: python -m avmoe make-data --task {task} --split test "
            f"--out {self.eval_root / task} ...)"]
        return out + [f"{self.model_dir(task, v)}/ (a model folder with {CONFIG} and {WEIGHTS})"
                      for v in variants if not self.has_model(task, v)]

    def model(self, task: str, variant: str) -> TaskModel:
        key = ("model", task, variant)
        if key not in self._memo:
            self._memo[key] = avmoe.load(self.model_dir(task, variant))
        return self._memo[key]

    def config(self, task: str, variant: str) -> ModelConfig:
        """The model's config, read from its folder unless the model is loaded."""
        loaded = self._memo.get(("model", task, variant))
        return loaded.cfg if loaded is not None else ModelConfig.load(self.model_dir(task, variant) / CONFIG)

    def clips_for(self, task: str, cfg: ModelConfig) -> Dataset:
        """The task's evaluation clips at the frame size, audio rate and length of a model config."""
        clips = GeneratedClips(self.eval_root / task, cfg.frame_size, cfg.sample_rate, cfg.segments)
        return Subset(clips, range(min(self.clips, len(clips)))) if self.clips else clips

    def routing(self, task: str, variant: str) -> list[dict[str, Any]]:
        key = ("routing", task, variant)
        if key not in self._memo:
            model = self.model(task, variant)
            self._memo[key] = collect_routing(Predictor({task: model}), self.clips_for(task, model.cfg),
                                              self.routing_conditions, task, self.progress, self.seed)
        return self._memo[key]


@dataclass
class Made:
    """What a builder made: figures and a one-line caption for each, and extra files (name -> text)."""

    figures: dict[str, Figure] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [p for name, fig in self.figures.items() for p in save(fig, out_dir, name)]
        for name, text in self.files.items():
            (out_dir / name).write_text(text)
            paths.append(out_dir / name)
        return paths


@dataclass(frozen=True)
class FigureSpec:
    name: str
    description: str
    needs: Callable[[Context], list[str]]  # what is missing; empty when the figure can be made
    build: Callable[[Context], Made]

    def __call__(self, ctx: Optional[Context] = None) -> dict[str, Figure]:
        """The figures, from the shipped models (or `ctx`); FileNotFoundError names what is missing."""
        ctx = ctx or Context()
        missing = self.needs(ctx)
        if missing:
            raise FileNotFoundError(f"cannot make {self.name}: missing " + "; ".join(missing))
        return self.build(ctx).figures


def _router_weights(ctx: Context) -> Made:
    rows = ctx.routing("ave", "avmoe")
    figure = router_weights_figure(rows, [c for c in ("av", "visual-only") if c in ctx.routing_conditions])
    return Made({"router_weights": figure}, {"router_weights": "Share of AVMoE's router weight on the unimodal "
                                             "experts per layer, with audio and visual input vs visual only."})


def _expert_usage(ctx: Context) -> Made:
    rows = ctx.routing("ave", "avmoe")
    summary = routing_vs_carrier(rows)
    return Made({"expert_usage": expert_usage_figure(rows, ctx.routing_conditions),
                 "routing_vs_carrier": carrier_figure(summary, ctx.routing_conditions)},
                {"expert_usage": "Mean router weight of each expert by input condition and by event class, visual "
                                 "and audio streams.",
                 "routing_vs_carrier": "How often the router favours the unimodal experts where the other "
                                       "modality shows nothing of the event, and the cross-modal ones where both "
                                       "show it (scene ground truth), per input condition; the numbers per "
                                       "carrier are in routing_vs_carrier.csv."},
                {"routing_vs_carrier.csv": csv_text(summary)})


def _robustness(ctx: Context) -> Made:
    noise = [f"{kind}:{snr:g}" for kind in ("audio-noise", "visual-noise") for snr in ctx.snrs]
    conditions = list(dict.fromkeys([*ctx.conditions, *noise]))
    rows = []
    for task in TASKS:
        variants = [v for v in VARIANTS if ctx.has_model(task, v)]
        if not variants or not ctx.has_clips(task):
            continue
        clips = ctx.clips_for(task, ctx.config(task, variants[0]))
        rows += robustness_table({v: ctx.model_or_dir(task, v) for v in variants}, clips, conditions,
                                 cache=ctx.cache, progress=ctx.progress, seed=ctx.seed)
        log.info("robustness of %s: %s", task, ", ".join(variants))
    return Made({"robustness": robustness_figure(rows)},
                {"robustness": "Each task's metric against audio and visual noise SNR per variant, clean input at "
                               "the right; the full table is robustness.csv / robustness.tex."},
                {"robustness.csv": csv_text(rows), "robustness.tex": to_latex(rows, ctx.conditions)})


def _robustness_needs(ctx: Context) -> list[str]:
    if any(ctx.has_clips(t) and any(ctx.has_model(t, v) for v in VARIANTS) for t in TASKS):
        return []
    return ctx.missing("ave", ("avmoe",))


def _ablation(ctx: Context) -> Made:
    doc = json.loads(ctx.ablation.read_text())
    conditions = [c for c in ("av", "visual-only", "audio-only") if c in doc["runs"][0]["test"]]
    return Made({"ablation": ablation_figure(doc["runs"], conditions)},
                {"ablation": "AVE test accuracy of AVMoE with different numbers of cross-modal + unimodal experts, "
                             "with and without a modality."})


def _embeddings(ctx: Context) -> Made:
    points: dict[str, dict[tuple[str, str], Any]] = {"tsne": {}, "umap": {}}
    labels: list[str] = []
    for variant in EMBEDDING_VARIANTS:
        model = ctx.model("ave", variant)
        features, meta = feature_sets(model, ctx.clips_for("ave", model.cfg), ("visual", "audio"),
                                      level="second", seed=ctx.seed, progress=ctx.progress)
        labels = [m["class"] for m in meta]
        for stream, X in features.items():
            for method in points:
                points[method][(stream, variant)] = project(X, method, ctx.seed, ctx.cache)
    made = Made()
    for method, title in (("tsne", "t-SNE"), ("umap", "UMAP")):
        made.figures[f"embeddings_{method}"] = embeddings_figure(points[method], labels, title)
        made.captions[f"embeddings_{method}"] = (f"{title} of per-second features of the frozen encoders, the "
                                                 f"cross-modal-adapter-only model and AVMoE, coloured by event class.")
    return made


def _avs(ctx: Context) -> Made:
    made = Made()
    for task in ("s4", "ms3"):
        variants = [v for v in VARIANTS if ctx.has_model(task, v)]
        if not ctx.has_clips(task) or "avmoe" not in variants:
            log.info("no AVS %s figure: missing %s", task, "; ".join(ctx.missing(task, ("avmoe",))))
            continue
        clips = ctx.clips_for(task, ctx.config(task, "avmoe"))
        clip = max((clips[i] for i in range(min(8, len(clips)))),
                   key=lambda c: int((c.labels["masks"].flatten(1).sum(1) > 0).sum()))  # the most sounding frames
        masks, scores = {}, {}
        for variant in variants:
            model = ctx.model(task, variant)
            masks[variant] = Predictor({task: model}).predict(clip, tasks=[task]).tasks[task].outputs["masks"]
            scores[variant] = evaluate(model, [clip], model.cfg.classes, "av", seed=ctx.seed)["miou"]
        made.figures[f"avs_{task}"] = avs_figure(clip.frames, clip.labels["masks"], masks, scores, task)
        made.captions[f"avs_{task}"] = (f"AVS {task.upper()}: frames, ground truth and each variant's masks "
                                        f"({', '.join(map(variant_label, variants))}) with their mIoU on the clip.")
    return made


def _avs_needs(ctx: Context) -> list[str]:
    ready = any(ctx.has_clips(t) and ctx.has_model(t, "avmoe") for t in ("s4", "ms3"))
    return [] if ready else ctx.missing("s4", ("avmoe",)) + ctx.missing("ms3", ("avmoe",))


FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    FigureSpec("router_weights", "router weights per layer, both streams, A+V vs visual only",
               lambda ctx: ctx.missing("ave", ("avmoe",)), _router_weights),
    FigureSpec("expert_usage", "expert usage by condition and by class; routing against the modality carrier",
               lambda ctx: ctx.missing("ave", ("avmoe",)), _expert_usage),
    FigureSpec("robustness", "robustness table (CSV, LaTeX) and metric vs noise SNR curves per variant",
               _robustness_needs, _robustness),
    FigureSpec("ablation", "expert-count ablation on tiny AVE",
               lambda ctx: [] if ctx.ablation.is_file() else [
                   f"{ctx.ablation} (make it with: python -m analysis ablation --out {ctx.ablation})"], _ablation),
    FigureSpec("embeddings", "t-SNE and UMAP of frozen vs cma-only vs avmoe features by class",
               lambda ctx: ctx.missing("ave", EMBEDDING_VARIANTS), _embeddings),
    FigureSpec("avs", "AVS qualitative grid (S4, MS3): frames, ground truth, each variant's masks",
               _avs_needs, _avs),
)}
