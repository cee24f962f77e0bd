"""Intervene tab: override the router (pin the weights, cross-modal only, unimodal only, knock out one expert; per
layer or everywhere, per stream) and compare every task's output with the untouched run.

The override is the library's RouterOverride, passed to Predictor.predict; the app only builds it from the controls.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

import gradio as gr

from app import overlays, plots
from app.inputs import Inputs
from app.studio import Session, Studio, user_errors
from app.tabs.router import panel
from avmoe.layers import RouterOverride
from avmoe.predict import Prediction

MODES = {"pin weights": "pin", "cross-modal only": "cma", "unimodal only": "ua", "knock out one expert": "knockout"}


@dataclass
class InterveneView:
    mode: gr.Radio
    weights: gr.Textbox
    expert: gr.Dropdown
    layers: gr.CheckboxGroup
    streams: gr.CheckboxGroup
    go: gr.Button
    summary: gr.Markdown
    effects: gr.Plot
    router: gr.Plot


def build(studio: Studio) -> InterveneView:
    experts = studio.experts()
    with gr.Tab("Intervene", id="intervene"):
        if not studio.tasks:
            gr.Markdown(studio.missing_note())
        gr.Markdown("Override the router inside every task model and compare with the untouched run of the same "
                    "clip and condition (press Run first).")
        with gr.Row():
            mode = gr.Radio(list(MODES), value="unimodal only", label="Override")
            weights = gr.Textbox(", ".join(f"{1 / max(1, len(experts)):.2f}" for _ in experts),
                                 label=f"Pinned weights ({', '.join(experts)})", visible=False)
            expert = gr.Dropdown(experts, value=experts[0] if experts else None, label="Expert to knock out",
                                 visible=False)
        with gr.Row():
            layers = gr.CheckboxGroup(studio.layers(), value=[], label="Layers (none ticked: every layer)")
            streams = gr.CheckboxGroup(["audio", "visual"], value=["audio", "visual"], label="Streams")
            go = gr.Button("Intervene", variant="primary", elem_id="intervene-go")
        summary = gr.Markdown(elem_id="intervene-summary")
        effects = gr.Plot(plots.message("Every task's output, untouched and intervened, appears here"),
                          label="effects", elem_id="intervene-effects")
        router = gr.Plot(plots.message("The router weights with and without the override appear here"),
                         label="router", elem_id="intervene-router")
    return InterveneView(mode, weights, expert, layers, streams, go, summary, effects, router)


def make_override(mode: str, weights: str, expert: Optional[str], layers: list[int],
                  streams: list[str]) -> RouterOverride:
    """The RouterOverride the controls describe; bad values raise ValueError naming them."""
    if mode not in MODES:
        raise ValueError(f"unknown override {mode!r}; choose one of {', '.join(MODES)}")
    if not streams:
        raise ValueError("no stream ticked: tick audio, visual or both")
    pinned = None
    if MODES[mode] == "pin":
        try:
            pinned = tuple(float(w) for w in weights.replace(";", ",").split(","))
        except ValueError:
            raise ValueError(f"pinned weights {weights!r} must be numbers separated by commas, e.g. 0.8, 0.2") from None
        if any(w < 0 for w in pinned) or sum(pinned) <= 0:
            raise ValueError(f"pinned weights {weights!r} must be >= 0 with a positive sum")
    return RouterOverride(MODES[mode], weights=pinned, expert=expert if MODES[mode] == "knockout" else None,
                          layers=tuple(int(x) for x in layers) or None, streams=tuple(streams))


def effects(before: Prediction, after: Prediction) -> tuple[list[dict], list[str]]:
    """Per task: a comparison row for plots.comparison and a one-line summary of what changed."""
    rows, lines = [], []
    for task, new in after.tasks.items():
        old, names = before.tasks[task].outputs, after.classes[task]
        out = new.outputs
        seconds = list(range(after.clip.num_segments))
        if task == "ave":
            changed = int((old["ave"] != out["ave"]).sum())
            rows.append({"title": f"AVE: confidence per second ({changed} of {len(seconds)} s change event)",
                         "x": seconds, "untouched": old["confidence"].tolist(),
                         "intervened": out["confidence"].tolist(), "y_title": "confidence"})
            lines.append(f"**AVE**: {changed} of {len(seconds)} seconds change event; mean confidence "
                         f"{float(old['confidence'].mean()):.3f} -> {float(out['confidence'].mean()):.3f}.")
        elif task == "avvp":
            flips = {m: int((old[f"avvp_{m}"] != out[f"avvp_{m}"]).sum()) for m in ("audio", "visual")}
            count = {k: (o["avvp_audio"].sum(-1) + o["avvp_visual"].sum(-1)).tolist()
                     for k, o in (("untouched", old), ("intervened", out))}
            rows.append({"title": "AVVP: events per second (audio + visual)", "x": seconds, **count,
                         "y_title": "events"})
            lines.append(f"**AVVP**: {flips['audio']} audio and {flips['visual']} visual (second, class) "
                         f"decisions flip.")
        elif task in ("s4", "ms3"):
            area = {k: o["masks"].float().flatten(1).mean(1).tolist() for k, o in (("untouched", old),
                                                                                   ("intervened", out))}
            iou = overlays.iou(old["masks"], out["masks"])
            rows.append({"title": f"{task.upper()}: mask area per second (IoU between runs {iou:.3f})",
                         "x": seconds, **area, "y_title": "fraction of frame"})
            lines.append(f"**{task.upper()}**: masks overlap the untouched ones with IoU {iou:.3f}.")
        elif task == "avqa":
            probs = {k: {names[int(i)]: float(p) for i, p in zip(o["top5"], o["top5_probs"])}
                     for k, o in (("untouched", old), ("intervened", out))}
            answers = list(dict.fromkeys([*probs["untouched"], *probs["intervened"]]))
            rows.append({"title": "AVQA: top-5 answer probabilities", "x": answers,
                         **{k: [p.get(a, 0.0) for a in answers] for k, p in probs.items()}, "y_title": "probability"})
            lines.append(f"**AVQA**: answer {names[int(old['answer'])]!r} -> {names[int(out['answer'])]!r}.")
    return rows, lines


@user_errors
def intervene(studio: Studio, mode: str, weights: str, expert: Optional[str], layers: list[int],
              streams: list[str], session: Optional[Session], progress: gr.Progress = gr.Progress()) -> tuple:
    """Run every task with the override under the Run's condition and compare with the untouched run."""
    session = session or Session()
    before = session.require_prediction()
    override = make_override(mode, weights, expert, layers, streams)
    progress(0.1, desc="Running every task with the router overridden")
    after = studio.predict(session, before.condition, question=session.question, override=override,
                           other=session.other)
    rows, lines = effects(before, after)
    task, stream = next(iter(after.tasks)), override.streams[0]
    panels = []
    for name, pred in (("untouched", before), ("intervened", after)):
        w, experts, layer_ids = panel(pred, task, stream, "p1")
        panels.append((name, w))
    router = plots.router_heatmaps(panels, experts, layer_ids, title=f"Router weights · {task} · {stream} · p1")
    where = "every layer" if override.layers is None else f"layers {', '.join(map(str, override.layers))}"
    summary = f"Override `{override.mode}` on {where}, streams {', '.join(override.streams)}.\n\n" + "\n".join(
        f"- {line}" for line in lines)
    return summary, plots.comparison(rows, title=f"Untouched vs intervened · {before.condition}"), router


def show_mode_controls(mode: str) -> tuple[gr.Textbox, gr.Dropdown]:
    return gr.Textbox(visible=mode == "pin weights"), gr.Dropdown(visible=mode == "knock out one expert")


def wire(studio: Studio, view: InterveneView, inputs: Inputs) -> None:
    view.mode.change(show_mode_controls, [view.mode], [view.weights, view.expert], api_visibility="private")
    view.go.click(partial(intervene, studio), [view.mode, view.weights, view.expert, view.layers, view.streams,
                                               inputs.session], [view.summary, view.effects, view.router],
                  api_name="intervene")
