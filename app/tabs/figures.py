"""Figures tab: make the paper-style figures of `analysis.figures` from the models and evaluation sets, preview
them and download PNG and PDF (plus the tables some figures come with)."""
from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from analysis.figures import FIGURES, Context
from app.studio import Studio, user_errors
from avmoe.paths import cache_dir

MAX_AGE_S = 3600.0  # figure folders older than this are removed when a new one is made
PREVIEWS = 2  # the most figures one entry of FIGURES makes


@dataclass
class FiguresView:
    name: gr.Dropdown
    make: gr.Button
    status: gr.Markdown
    previews: list[gr.Image]
    files: gr.File
    context: Context  # memoises the models and routing rows the figures load


def build(studio: Studio) -> FiguresView:
    with gr.Tab("Figures", id="figures"):
        gr.Markdown("The paper-style figures of `python -m analysis figures`, made from the models and the built-in "
                    "evaluation sets (this can take a while; results are cached).\n\n" +
                    "\n".join(f"- **{name}**: {spec.description}" for name, spec in FIGURES.items()))
        with gr.Row():
            name = gr.Dropdown(list(FIGURES), value=next(iter(FIGURES)), label="Figure")
            make = gr.Button("Make", variant="primary", elem_id="figure-make")
        status = gr.Markdown(elem_id="figure-status")
        with gr.Row():
            previews = [gr.Image(label="Preview", type="filepath", interactive=False, height=520, visible=i == 0,
                                 elem_id=f"figure-preview-{i}")
                        for i in range(PREVIEWS)]
        files = gr.File(label="Download (PNG, PDF, tables)", file_count="multiple", interactive=False)
    ctx = Context(models=studio.models_root, eval_root=studio.eval_root, cache=cache_dir("analysis"))
    return FiguresView(name, make, status, previews, files, ctx)


def _fresh_folder() -> Path:
    """A new folder for one request's files; folders older than MAX_AGE_S go."""
    root = cache_dir("app", "figures")
    now = time.time()
    for old in root.iterdir():
        if old.is_dir() and now - old.stat().st_mtime > MAX_AGE_S:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder


@user_errors
def make_figure(ctx: Context, name: str, progress: gr.Progress = gr.Progress()) -> tuple:
    """Build one figure of analysis.figures.FIGURES; returns a status line, a preview of each PNG (up to PREVIEWS)
    and every file."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; figures: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    missing = spec.needs(ctx)
    if missing:
        raise ValueError(f"cannot make {name!r}, missing: " + "; ".join(missing))
    progress(0.0, desc=f"Making {name}")
    ctx.progress = progress
    made = spec.build(ctx)
    paths = made.write(_fresh_folder())
    pngs = [p for p in paths if p.suffix == ".png"]
    previews = [gr.Image(str(pngs[i]), label=pngs[i].stem, visible=True) if i < len(pngs) else
                gr.Image(None, visible=False) for i in range(PREVIEWS)]
    status = "\n".join(f"- **{stem}**: {caption}" for stem, caption in made.captions.items())
    return status, *previews, [str(p) for p in paths]


def wire(view: FiguresView) -> None:
    view.make.click(partial(make_figure, view.context), [view.name], [view.status, *view.previews, view.files],
                    api_name="figure")

