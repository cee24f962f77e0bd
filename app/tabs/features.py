"""Features tab: t-SNE or UMAP of pooled features (a stream, a layer) of a task model over the evaluation set, with
the current clip highlighted; colour by class, dominant expert or condition.

Features come from analysis.embeddings.pooled_features and projections from analysis.embeddings.project (cached
on disk); the current clip is projected together with the evaluation set so it lands among them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

import gradio as gr
import numpy as np

from analysis.embeddings import project
from app import plots
from app.inputs import Inputs
from app.studio import Session, Studio, user_errors
from avmoe.paths import cache_dir

METHODS = {"t-SNE": "tsne", "UMAP": "umap"}
COLOUR_BY = {"class": "class", "dominant expert": "dominant", "condition": "condition"}
BY_CONDITION = ("av", "visual-only", "audio-only")
"""Conditions drawn when colouring by condition; otherwise the evaluation set is shown under "av" only."""
FINAL = "final (pooled output)"


@dataclass
class FeaturesView:
    task: gr.Dropdown
    stream: gr.Radio
    layer: gr.Dropdown
    method: gr.Radio
    colour: gr.Radio
    go: gr.Button
    plot: gr.Plot


def build(studio: Studio) -> FeaturesView:
    with gr.Tab("Features", id="features"):
        if not studio.tasks:
            gr.Markdown(studio.missing_note())
        with gr.Row():
            task = gr.Dropdown(studio.tasks, value=studio.tasks[0] if studio.tasks else None, label="Task model")
            stream = gr.Radio(["visual", "audio"], value="visual", label="Stream")
            layer = gr.Dropdown([FINAL, *map(str, studio.layers())], value=FINAL, label="Layer")
        with gr.Row():
            method = gr.Radio(list(METHODS), value="t-SNE", label="Projection")
            colour = gr.Radio(list(COLOUR_BY), value="class", label="Colour by")
            go = gr.Button("Project", variant="primary", elem_id="features-project")
        plot = gr.Plot(plots.message("Press Project to embed the evaluation set"), label="features",
                       elem_id="features-plot")
    return FeaturesView(task, stream, layer, method, colour, go, plot)


@user_errors
def features(studio: Studio, task: str, stream: str, layer: str, method: str, colour: str,
             session: Optional[Session], progress: gr.Progress = gr.Progress()):
    """Embed the evaluation set's pooled features (and the current clip's, if any) in 2-D."""
    if method not in METHODS or colour not in COLOUR_BY:
        raise ValueError(f"choose a projection in {list(METHODS)} and a colouring in {list(COLOUR_BY)}")
    layer_index = None if layer in (None, FINAL) else int(layer)
    conditions = BY_CONDITION if colour == "condition" else ("av",)
    blocks, meta = [], []
    for i, condition in enumerate(conditions):
        progress(i / (len(conditions) + 1), desc=f"Features of the evaluation set under {condition}")
        x, m = studio.features(task, stream, layer_index, condition)
        blocks.append(x)
        meta += m
    highlight = [False] * len(meta)
    if session is not None and session.clip is not None:
        condition = session.prediction.condition if session.prediction else "av"
        x, _ = studio.features(task, stream, layer_index, condition, clips=[session.clip])
        blocks.append(x)
        meta.append({"clip": "current", "condition": condition, "class": "current clip", "dominant": "current clip"})
        highlight.append(True)
    progress(len(conditions) / (len(conditions) + 1), desc=f"{method} of {len(meta)} points")
    xy = project(np.concatenate(blocks), METHODS[method], seed=0, cache=cache_dir("app", "embeddings"))
    key = COLOUR_BY[colour]
    labels = [str(m.get(key)) for m in meta]
    hover = [f"clip {m['clip']} · {m['condition']} · class {m.get('class')} · dominant {m.get('dominant')}"
             for m in meta]
    where = FINAL if layer_index is None else f"layer {layer_index}"
    return plots.embedding(xy, labels, hover, highlight, title=f"{method} · {task} · {stream} · {where} · "
                                                               f"coloured by {colour}")


def wire(studio: Studio, view: FeaturesView, inputs: Inputs) -> None:
    view.go.click(partial(features, studio), [view.task, view.stream, view.layer, view.method, view.colour,
                                              inputs.session], [view.plot], api_name="features")
