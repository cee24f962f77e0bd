"""Predictions tab: every task's output for the clip under the chosen condition, from one Predictor.predict.

AVE timeline, AVVP audio/visual tracks, S4/MS3 overlays on every frame plus an overlay video, an AVQA question box
and the whole prediction as JSON (Prediction.to_dict()).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Optional

import gradio as gr
import torch

from app import overlays, plots
from app.tabs import router
from app.inputs import Inputs, describe
from app.studio import Session, Studio, condition_string, user_errors
from avmoe.data.sample import BACKGROUND
from avmoe.data.synthetic.qa import HOW_MANY_SOUNDING, KINDS_OF_SOUND, LEFT_LOUDER, ONSET, WHERE_LOUDEST, fill
from avmoe.predict import Prediction

GENERIC_QUESTIONS = (KINDS_OF_SOUND, HOW_MANY_SOUNDING, WHERE_LOUDEST, LEFT_LOUDER, fill(ONSET, ["first"]))
"""Questions for any clip, in the training templates' words."""
MEDIA_HEIGHT = 360  # pixels of the mask gallery and the overlay video side by side (a gallery defaults to taller)


@dataclass
class PredictionsView:
    tab: gr.Tab
    ave: gr.Plot
    avvp: gr.Plot
    gallery: gr.Gallery
    overlay: gr.Video
    question: gr.Textbox
    suggestions: gr.Dropdown
    ask: gr.Button
    answer: gr.Label
    json: gr.JSON
    api: gr.Button


def build(studio: Studio) -> PredictionsView:
    with gr.Tab("Predictions", id="predictions") as tab:
        if not studio.tasks:
            gr.Markdown(studio.missing_note())
        with gr.Row():
            ave = gr.Plot(plots.message("Press Run to see the event per second (AVE)"), label="AVE",
                          visible="ave" in studio.tasks, elem_id="ave-plot")
            avvp = gr.Plot(plots.message("Press Run to see audio and visual events (AVVP)"), label="AVVP",
                           visible="avvp" in studio.tasks, elem_id="avvp-plot")
        segmentation = [f"{t.upper()} {overlays.COLOUR_NAMES[t]}" for t in ("s4", "ms3") if t in studio.tasks]
        with gr.Row(visible=bool(segmentation)):
            gallery = gr.Gallery(label=f"Sounding-object masks on every frame ({', '.join(segmentation)})",
                                 columns=5, height=MEDIA_HEIGHT, object_fit="contain", preview=False, format="jpeg",
                                 elem_id="masks")
            overlay = gr.Video(label="Overlay video", height=MEDIA_HEIGHT, interactive=False)
        with gr.Row(visible="avqa" in studio.tasks):
            with gr.Column(scale=3):
                question = gr.Textbox(label="Question about the clip (AVQA)", placeholder=GENERIC_QUESTIONS[0],
                                      elem_id="question")
                suggestions = gr.Dropdown(list(GENERIC_QUESTIONS), value=None, label="Suggested questions")
                ask = gr.Button("Ask")
            answer = gr.Label(label="Answer (top 5)", num_top_classes=5, elem_id="answer")
        with gr.Accordion("Every task's outputs and router trace as JSON", open=False):
            json_out = gr.JSON()
        api = gr.Button(visible=False)
    return PredictionsView(tab, ave, avvp, gallery, overlay, question, suggestions, ask, answer, json_out, api)


def _ave_figure(studio: Studio, session: Session, pred: Prediction):
    if "ave" not in pred.tasks:
        return plots.message("No AVE model loaded")
    out, names = pred.tasks["ave"].outputs, pred.classes["ave"]
    events = [None if int(c) == BACKGROUND else names[int(c)] for c in out["ave"]]
    example = studio.example_for(session.path)
    truth = list(example.ave[:len(events)]) if example and len(example.ave) >= len(events) else None
    return plots.ave_timeline(events, out["confidence"].tolist(), truth,
                              title=f"Event per second (AVE) · {pred.condition}")


def _avvp_figure(pred: Prediction):
    if "avvp" not in pred.tasks:
        return plots.message("No AVVP model loaded")
    out, names = pred.tasks["avvp"].outputs, pred.classes["avvp"]
    tracks = {m: [[names[c] for c in torch.nonzero(row).flatten().tolist()] for row in out[f"avvp_{m}"]]
              for m in ("audio", "visual")}
    return plots.avvp_tracks(tracks["audio"], tracks["visual"], title=f"Audio and visual events (AVVP) · "
                                                                      f"{pred.condition}")


def _gallery(pred: Prediction) -> list:
    """Each second's frame with the S4/MS3 masks blended in, captioned; empty without a segmentation model."""
    frames = _overlay_frames(pred)
    return [] if frames is None else [(f, f"{t} s") for t, f in enumerate(frames)]  # areas are in the JSON


def _overlay_frames(pred: Prediction):
    masks = {t: pred.tasks[t].outputs["masks"] for t in ("s4", "ms3") if t in pred.tasks}
    return overlays.overlay_frames(pred.clip, masks) if masks else None


@user_errors
def overlay_video(session: Optional[Session]) -> Optional[str]:
    """The overlay video of the last Run (a follow-up of Run, so its plots do not wait for the encoding)."""
    frames = _overlay_frames(session.require_prediction()) if session is not None else None
    return None if frames is None else str(overlays.overlay_video(session.prediction.clip, frames))


def answer_label(pred: Prediction) -> Optional[dict[str, float]]:
    """The AVQA top-5 as gr.Label confidences, or None when AVQA did not run."""
    if "avqa" not in pred.tasks:
        return None
    out, names = pred.tasks["avqa"].outputs, pred.classes["avqa"]
    return {names[int(i)]: float(p) for i, p in zip(out["top5"], out["top5_probs"])}


@user_errors
def run(studio: Studio, video: Optional[str], condition: str, snr: float, other: Optional[str],
        question: Optional[str], session: Optional[Session], router_task: Optional[str] = None,
        stream: str = "visual", position: str = "p1", progress: gr.Progress = gr.Progress()) -> tuple:
    """The Run button: decode (once), one prediction of every task, and every view of it, the router explorer's
    heat-maps included (drawn in the same event, for the explorer's current task, stream and position)."""
    progress(0.0, desc="Decoding the clip")
    session = studio.session_for(session, video)
    if not studio.tasks:
        raise ValueError(studio.missing_note())
    progress(0.2, desc="Running every task model")
    asked = question if question and question.strip() else None
    pred = studio.predict(session, condition_string(condition, snr), question=asked, other=other)
    session.prediction, session.question, session.other = pred, asked, other
    info = describe(studio, session, pred.condition + (f" (audio of {other})" if pred.clip.meta.get("audio_from")
                                                      else ""))
    return (session, info, _ave_figure(studio, session, pred), _avvp_figure(pred), _gallery(pred),
            *router.drawn(session, router_task or studio.tasks[0], stream, position), answer_label(pred),
            pred.to_dict())


@user_errors
def ask(studio: Studio, question: str, session: Optional[Session]) -> dict[str, float]:
    """The Ask button: AVQA alone on the session's clip, under the condition of the last Run."""
    if "avqa" not in studio.tasks:
        raise ValueError(studio.missing_note("avqa"))
    session = session or Session()
    condition = session.prediction.condition if session.prediction else "av"
    pred = studio.predict(session, condition, question=question or "", tasks=["avqa"], other=session.other)
    return answer_label(pred)


@user_errors
def predict_json(studio: Studio, video: Optional[str], condition: str, snr: float, other: Optional[str],
                 question: Optional[str]) -> dict[str, Any]:
    """For scripts: every task's outputs and router trace for a video, as JSON (Prediction.to_dict())."""
    session = studio.session_for(None, video)
    asked = question if question and question.strip() else None
    return studio.predict(session, condition_string(condition, snr), question=asked, other=other).to_dict()


def suggest(studio: Studio, video: Optional[str]) -> gr.Dropdown:
    """Suggested questions: the example's own (from its scene) first, then the generic ones."""
    example = studio.example_for(video)
    own = list(example.questions) if example else []
    return gr.Dropdown(choices=own + [q for q in GENERIC_QUESTIONS if q not in own], value=None)


def wire(studio: Studio, view: PredictionsView, inputs: Inputs, router_view: router.RouterView) -> None:
    """Wire the tab; its Run also draws the router explorer's heat-maps."""
    question_inputs = [inputs.video, inputs.condition, inputs.snr, inputs.other, view.question]
    controls = [router_view.task, router_view.stream, router_view.position]
    event = inputs.run.click(partial(run, studio), [*question_inputs, inputs.session, *controls],
                             [inputs.session, inputs.info, view.ave, view.avvp, view.gallery, router_view.heatmap,
                              router_view.summary, view.answer, view.json], api_name="run")
    event.success(overlay_video, [inputs.session], [view.overlay], api_name="overlay_video")
    view.ask.click(partial(ask, studio), [view.question, inputs.session], [view.answer], api_name="ask")
    view.question.submit(partial(ask, studio), [view.question, inputs.session], [view.answer],
                         api_visibility="private")
    view.suggestions.input(lambda q: q, [view.suggestions], [view.question], api_visibility="private")
    inputs.video.change(partial(suggest, studio), [inputs.video], [view.suggestions], api_visibility="private")
    view.api.click(partial(predict_json, studio), question_inputs, [view.json], api_name="predict")
    view.tab.select(None, js=plots.FIT_PLOTS_JS)
