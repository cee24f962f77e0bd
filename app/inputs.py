"""The clip panel above the tabs: a video (upload or example), the input condition and the Run button.

Picking or uploading a video decodes it once into the session (gr.State); every tab then works on that clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import gradio as gr

from app.studio import CONDITION_LABELS, NOISY, Session, Studio, user_errors


@dataclass
class Inputs:
    session: gr.State
    video: gr.Video
    condition: gr.Radio
    snr: gr.Slider
    other: gr.Dropdown
    run: gr.Button
    info: gr.Markdown


def build(studio: Studio) -> Inputs:
    session = gr.State(None, time_to_live=3 * 3600)
    names = [e.name for e in studio.examples]
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            video = gr.Video(label="Clip (upload any video)", sources=["upload"], height=250, elem_id="clip")
            if studio.examples:
                gr.Examples([[str(e.path)] for e in studio.examples], inputs=[video], label="Example clips",
                            example_labels=[e.title for e in studio.examples], cache_examples=False)
        with gr.Column(scale=2):
            condition = gr.Radio(list(CONDITION_LABELS), value="audio + visual", label="Condition")
            snr = gr.Slider(-20, 30, value=0, step=1, label="Noise SNR (dB)", visible=False)
            other = gr.Dropdown(names, value=names[-1] if names else None, label="Audio taken from", visible=False)
            run = gr.Button("Run", variant="primary", elem_id="run")
            info = gr.Markdown("Pick an example or upload a video, then press **Run**.", elem_id="clip-info")
    return Inputs(session, video, condition, snr, other, run, info)


def describe(studio: Studio, session: Session, condition: Optional[str] = None) -> str:
    """Markdown about the session's clip: its source, how much of it the models see, and the condition."""
    clip = session.require_clip()
    meta = clip.meta
    example = studio.example_for(session.path)
    name = example.title if example else Path(session.path).name
    duration = f"{meta['duration']:.1f} s" if meta.get("duration") else "unknown length"
    padded = f", last {meta['padded_segments']} s padded" if meta.get("padded_segments") else ""
    audio = ("no audio track (silence)" if clip.audio_missing else
             "with a silent audio track" if not clip.audio.abs().max() > 0 else "with audio")
    lines = [f"**{name}**: {duration}, {audio}; the models see {clip.num_segments} one-second segments{padded}."]
    if example and example.description:
        lines.append(example.description)
    if condition:
        lines.append(f"Condition: `{condition}`.")
    return "\n\n".join(lines)


@user_errors
def load_clip(studio: Studio, video: Optional[str], session: Optional[Session]) -> tuple[Optional[Session], str]:
    """Decode a newly picked or uploaded video into the session."""
    if not video:
        return None, "Pick an example or upload a video, then press **Run**."
    session = studio.session_for(session, video)
    return session, describe(studio, session)


def show_condition_controls(label: str) -> tuple[gr.Slider, gr.Dropdown]:
    return gr.Slider(visible=label in NOISY), gr.Dropdown(visible=label == "audio from another clip")


def wire(studio: Studio, inputs: Inputs) -> None:
    inputs.condition.change(show_condition_controls, [inputs.condition], [inputs.snr, inputs.other],
                            api_visibility="private")
    # No progress on the clip info: Gradio would cover its text with a red "Error" badge when a file is refused
    # (the message itself is a toast).
    inputs.video.change(partial(load_clip, studio), [inputs.video, inputs.session], [inputs.session, inputs.info],
                        api_name="load_clip", show_progress="hidden")
