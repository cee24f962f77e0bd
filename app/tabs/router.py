"""Router explorer tab: layer x second heat-maps of each expert's weight for a stream and position, for the Run's
condition and a second one side by side with their difference; expert usage and routing entropy per layer."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

import gradio as gr
import numpy as np

from app import plots
from app.inputs import Inputs
from app.studio import CONDITION_LABELS, NOISY, Session, Studio, condition_string, user_errors
from avmoe.predict import Prediction

STREAMS = ("visual", "audio")
POSITIONS = ("p1", "p2")


@dataclass
class RouterView:
    tab: gr.Tab
    task: gr.Radio
    stream: gr.Radio
    position: gr.Radio
    condition: gr.Dropdown
    snr: gr.Slider
    compare: gr.Button
    heatmap: gr.Plot
    summary: gr.Plot


def build(studio: Studio) -> RouterView:
    with gr.Tab("Router explorer", id="router") as tab:
        if not studio.tasks:
            gr.Markdown(studio.missing_note())
        gr.Markdown("Each mixture's router weighs its experts (cma = cross-modal, ua = unimodal) per second. "
                    "p1 sits beside attention, p2 beside the feed-forward block. Hover for exact values.")
        with gr.Row():
            task = gr.Radio(studio.tasks, value=studio.tasks[0] if studio.tasks else None, label="Task model")
            stream = gr.Radio(list(STREAMS), value="visual", label="Stream")
            position = gr.Radio(list(POSITIONS), value="p1", label="Position")
        with gr.Row():
            condition = gr.Dropdown(list(CONDITION_LABELS), value="visual only", label="Compare with condition")
            snr = gr.Slider(-20, 30, value=0, step=1, label="SNR (dB) of the compared noise", visible=False)
            compare = gr.Button("Compare", elem_id="router-compare")
        heatmap = gr.Plot(plots.message("Press Run to see the router weights"), label="router weights",
                          elem_id="router-heatmap")
        summary = gr.Plot(plots.message("Expert usage and routing entropy per layer appear here"), label="usage",
                          elem_id="router-summary")
    return RouterView(tab, task, stream, position, condition, snr, compare, heatmap, summary)


def panel(pred: Prediction, task: str, stream: str, position: str) -> tuple[np.ndarray, list[str], list[int]]:
    """Router weights of one task, stream and position: [layers, seconds, experts], expert names, layer indices."""
    if task not in pred.tasks:
        advice = ("type a question in the Predictions tab and press Run again" if task == "avqa" else
                  f"pick a task model that ran: {', '.join(pred.tasks)}")
        raise ValueError(f"the {task} model did not run on this clip; {advice}")
    trace = pred.tasks[task].trace
    keys = trace.keys(stream, position)
    if not keys:
        raise ValueError(f"the {task} model has no router at {stream}/{position}; pick another stream or position")
    return trace.stack(stream, position)[:, 0].numpy(), list(trace.experts[keys[0]]), [k[1] for k in keys]


def figures(session: Session, task: str, stream: str, position: str) -> tuple:
    """The heat-maps and the usage/entropy figure of the session's Run and, if any, its compared condition."""
    runs = [session.require_prediction()] + ([session.compare] if session.compare is not None else [])
    panels = []
    for i, pred in enumerate(runs):
        weights, experts, layers = panel(pred, task, stream, position)
        panels.append((f"{'AB'[i]}: {pred.condition}", weights))
    title = f"Router weights · {task} · {stream} stream · {position}"
    return plots.router_heatmaps(panels, experts, layers, title=title), plots.router_summary(panels, experts, layers)


def drawn(session: Session, task: str, stream: str, position: str) -> tuple:
    """`figures` for the Run button: what cannot be drawn becomes a message in the plot, not an error (the Run
    itself succeeded)."""
    try:
        return figures(session, task, stream, position)
    except ValueError as err:
        return plots.message(str(err)), plots.message("")


@user_errors
def render(task: str, stream: str, position: str, session: Optional[Session]) -> tuple:
    """Redraw from the session's predictions (no model run)."""
    if session is None or session.prediction is None:
        return plots.message("Press Run to see the router weights"), plots.message("")
    return figures(session, task, stream, position)


@user_errors
def compare(studio: Studio, task: str, stream: str, position: str, condition: str, snr: float,
            other: Optional[str], session: Optional[Session], progress: gr.Progress = gr.Progress()) -> tuple:
    """Run every task under a second condition and show it beside the Run's."""
    session = session or Session()
    session.require_prediction()
    progress(0.1, desc=f"Running every task under '{condition}'")
    session.compare = studio.predict(session, condition_string(condition, snr), question=session.question,
                                     other=other)
    return (session, *figures(session, task, stream, position))


def wire(studio: Studio, view: RouterView, inputs: Inputs) -> None:
    """Wire the tab (the Run button draws its heat-maps too: `predictions.wire`)."""
    controls = [view.task, view.stream, view.position]
    gr.on([c.input for c in controls], render, [*controls, inputs.session], [view.heatmap, view.summary],
          api_name="router")
    view.tab.select(None, js=plots.FIT_PLOTS_JS)  # a Run draws the heat-maps while this tab may be hidden
    view.condition.change(lambda label: gr.Slider(visible=label in NOISY), [view.condition], [view.snr],
                          api_visibility="private")
    view.compare.click(partial(compare, studio), [*controls, view.condition, view.snr, inputs.other, inputs.session],
                       [inputs.session, view.heatmap, view.summary], api_name="compare")
