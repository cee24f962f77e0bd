"""Pooled features of a task model per stream and layer, and their 2-D projections (t-SNE, UMAP), cached.

Features are the Predictor's pooled tokens: the stream's output ("visual", "audio") or its tokens after paired layer
L ("visual/L"), one vector per second. `level="clip"` (the default) averages a clip's seconds into one point;
`level="second"` keeps one point per second, labelled with that second's class and carrier.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from analysis.predictions import (ModelSource, Progress, as_predictor, clip_class, iter_predictions, pick_task,
                                  second_classes)
from avmoe.data.sample import Clip
from avmoe.predict import TaskPrediction

log = logging.getLogger(__name__)

METHODS = ("tsne", "umap")
LEVELS = ("clip", "second")


def pooled_features(predictor_or_models: ModelSource, clips: Dataset | Sequence[Clip], stream: str,
                    layer: Optional[int] = None, condition: str = "av", level: str = "clip",
                    task: Optional[str] = None, seed: int = 0,
                    progress: Optional[Progress] = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Features X [N, C] (float32) of one stream (and paired layer) of a model, with one meta dict per row.

    Args:
        predictor_or_models: a Predictor, a task model, a model directory or a mapping task -> model; `task`
            picks among several models (default: the first).
        stream: "visual" or "audio"; layer: a paired layer index, None for the stream's final pooled output.
        level: "clip" (N = clips, mean over seconds) or "second" (N = clips x seconds).
    Meta keys: clip, second (None at clip level), condition, class, carrier (None at clip level) and dominant (the
    expert with the highest mean weight in this stream's mixtures; None for a model without routers).
    """
    features, meta = feature_sets(predictor_or_models, clips, (stream,), layer, condition, level, task, seed,
                                  progress)
    return features[stream], meta


def feature_sets(predictor_or_models: ModelSource, clips: Dataset | Sequence[Clip],
                 streams: Sequence[str] = ("visual", "audio"), layer: Optional[int] = None, condition: str = "av",
                 level: str = "clip", task: Optional[str] = None, seed: int = 0,
                 progress: Optional[Progress] = None) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """`pooled_features` of several streams from one pass over the clips: ({stream: X}, meta); "dominant" in the
    meta is that of the first stream."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not one of {', '.join(LEVELS)}")
    bad = [s for s in streams if s not in ("visual", "audio")]
    if bad:
        raise ValueError(f"unknown stream(s) {', '.join(bad)}; streams are visual, audio")
    predictor = as_predictor(predictor_or_models)
    task = pick_task(predictor, task)
    fallback = predictor.models[task].cfg.classes
    chunks: dict[str, list[np.ndarray]] = {s: [] for s in streams}
    meta: list[dict[str, Any]] = []
    for i, _, clip, pred in iter_predictions(predictor, clips, (condition,), task, seed, progress):
        for stream in streams:
            x = _feature(pred, stream, layer)  # [T, C]
            chunks[stream].append(x.mean(0, keepdim=True) if level == "clip" else x)
        dominant = _dominant(pred, streams[0], level)
        if level == "clip":
            meta.append({"clip": i, "second": None, "condition": condition, "class": clip_class(clip, fallback),
                         "carrier": None, "dominant": dominant[0]})
        else:
            carriers = clip.meta.get("carrier") or [None] * clip.num_segments
            meta += [{"clip": i, "second": t, "condition": condition, "class": c, "carrier": carriers[t],
                      "dominant": dominant[t]} for t, c in enumerate(second_classes(clip, fallback))]
    return {s: torch.cat(c).float().numpy() for s, c in chunks.items()}, meta


def project(X: np.ndarray, method: str = "tsne", seed: int = 0, cache: Optional[Path] = None) -> np.ndarray:
    """A 2-D embedding [N, 2] of X [N, C] by t-SNE (scikit-learn) or UMAP (umap-learn), deterministic per seed.

    Neighbourhood sizes follow N (t-SNE perplexity min(30, (N - 1) / 3), UMAP n_neighbors min(15, N - 1)), so a few
    dozen points work. `cache` is a folder: the result is stored there under a hash of X, the method and the seed.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 4:
        raise ValueError(f"need features [N, C] with N >= 4 points to project, got shape {X.shape}")
    path = None
    if cache is not None:
        digest = hashlib.sha256(X.tobytes() + str((X.shape, method, seed)).encode()).hexdigest()[:20]
        path = Path(cache) / f"{method}-{digest}.npy"
        if path.is_file():
            log.debug("%s projection of %s points from the cache %s", method, X.shape[0], path)
            return np.load(path)
    n = X.shape[0]
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # OpenMP workers spin on shared cores (~100x slower here) and N is small
            Y = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca",
                     random_state=seed).fit_transform(X)
    else:
        import umap

        Y = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(X)
    Y = np.asarray(Y, dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, Y)
    return Y


def _feature(pred: TaskPrediction, stream: str, layer: Optional[int]) -> torch.Tensor:
    key = stream if layer is None else f"{stream}/{layer}"
    if key not in pred.features:
        layers = sorted(int(k.split("/")[1]) for k in pred.features if k.startswith(f"{stream}/"))
        raise ValueError(f"no features at layer {layer} of the {stream} stream; layers are {layers}")
    return pred.features[key]


def _dominant(pred: TaskPrediction, stream: str, level: str) -> list[Optional[str]]:
    """Per second (or once per clip) the expert with the highest mean weight over the stream's mixtures."""
    keys = pred.trace.keys(stream)
    segments = pred.trace.segments
    if not keys:
        return [None] * (1 if level == "clip" else segments)
    names = pred.trace.experts[keys[0]]
    weights = torch.stack([pred.trace.weights[k][0] for k in keys]).mean(0)  # [T, E]
    if level == "clip":
        weights = weights.mean(0, keepdim=True)
    return [names[int(j)] for j in weights.argmax(-1)]
