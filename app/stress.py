"""`python -m app.stress bad-inputs|load`: the app's reliability checks (issue #9).

bad-inputs writes small, deterministic bad or odd inputs (PyAV and numpy only, no downloads) and runs each through
media decoding, the Predictor, the Run button's handler and the /predict endpoint of the app served in this process,
then prints `input -> what happens` as a Markdown table (the JSON goes beside it). load serves app/app.py in a
subprocess and runs concurrent gradio_client users against a named endpoint, then reports failures, latency
percentiles and the server's peak memory.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import av
import gradio as gr
import numpy as np
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors.torch import load_file, save_file

from app.app import build_demo, launch_options, models_root
from app.studio import CONDITION_LABELS, LIMITS, MAIN_VARIANT, Studio, find_examples
from app.tabs import predictions, router
from avmoe.config import ModelConfig
from avmoe.data.sample import Clip
from avmoe.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)  # height, width of the generated clips
FPS = 4
RATE = 16000
SECONDS = 4
TONE_HZ = 440.0
LEVELS_51 = (0.4, 0.2, 0.3, 0.0, 0.1, 0.1)  # tone amplitude of each 5.1 channel; the decoder keeps their mean
QUESTION = "how many sounding objects are in the video?"
SHOWN_CHARS = 170  # of a message, in the Markdown table (the JSON keeps all of it)
NOISE_SNR = (-20, 30)  # the SNR slider's range, dB, in whole steps


# ------------------------------------------------------------------------------------------------ generators
def block_frames(count: int) -> np.ndarray:
    """uint8 [count, H, W, 3] of 8x8-pixel random blocks (they survive H.264 well), the same on every call."""
    blocks = np.random.default_rng(0).integers(0, 256, (count, SIZE[0] // 8, SIZE[1] // 8, 3))
    return np.kron(blocks, np.ones((1, 8, 8, 1))).astype(np.uint8)


def _tone(rate: int, seconds: float, hz: float = TONE_HZ) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _encode(path: Path, frames: Optional[np.ndarray] = None, times: Optional[np.ndarray] = None,
            rotation: float = 0.0, pix_fmt: str = "yuv420p", audio: Optional[np.ndarray] = None, rate: int = RATE,
            layout: str = "mono", audio_codec: str = "aac") -> Path:
    """H.264 and/or audio written with PyAV directly, for what write_video does not make (VFR, rotation, PCM...).

    frames: uint8 [N, H, W, 3], shown at `times` (s) or at FPS. audio: float [channels, samples] in [-1, 1].
    """
    with av.open(str(path), "w") as container:
        video = None
        if frames is not None:
            video = container.add_stream("libx264", rate=FPS)
            video.height, video.width = frames.shape[1:3]
            video.pix_fmt = pix_fmt
            video.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                video.set_display_rotation(rotation)
        if audio is not None:
            sound = container.add_stream(audio_codec, rate=rate, layout=layout)
            pcm = audio_codec.startswith("pcm_s16")
            samples = (audio * 32767).astype(np.int16).T.reshape(1, -1) if pcm else audio.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="s16" if pcm else "fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts = rate, 0
            container.mux(sound.encode(frame) + sound.encode(None))
        for i, image in enumerate(frames if frames is not None else ()):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = round(1000 * (times[i] if times is not None else i / FPS)), Fraction(1, 1000)
            container.mux(video.encode(frame))
        if video is not None:
            container.mux(video.encode(None))
    return path


def _blank_h264(width: int, height: int, count: int, container_format: Optional[str] = None) -> bytes:
    """`count` black frames at width x height, H.264 (ultrafast), without building RGB arrays of that size."""
    out = io.BytesIO()
    with av.open(out, "w", format=container_format or "mp4") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for i in range(count):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, value in zip(frame.planes, (16, 128, 128)):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return out.getvalue()


def good_clip(folder: Path) -> Path:
    """4 s of 64x48 blocks at 4 fps with a 440 Hz tone at 16 kHz: the control, and the clip of the request cases."""
    return _encode(folder / "good.mp4", block_frames(SECONDS * FPS), audio=_tone(RATE, SECONDS)[None])


def zero_bytes(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def truncated_mp4(folder: Path) -> Path:
    data = good_clip(folder).read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[:int(len(data) * 0.4)])
    return path


def text_as_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("meeting notes, not a video\n" * 40)
    return path


def png_image(folder: Path) -> Path:
    path = folder / "still.png"
    Image.fromarray(block_frames(1)[0]).save(path)
    return path


def png_as_mp4(folder: Path) -> Path:
    path = folder / "still-renamed.mp4"
    path.write_bytes(png_image(folder).read_bytes())
    return path


def audio_only(folder: Path) -> Path:
    return _encode(folder / "sound.m4a", audio=_tone(RATE, SECONDS)[None])


def video_only(folder: Path) -> Path:
    return _encode(folder / "mute.mp4", block_frames(SECONDS * FPS))


def one_frame(folder: Path) -> Path:
    """A single frame (shown for 1/FPS s) with as much audio."""
    return _encode(folder / "one-frame.mp4", block_frames(1), audio=_tone(RATE, 1 / FPS)[None])


def two_hours(folder: Path) -> Path:
    """Two hours of 16x16 video at one frame every 20 s: a 10 kB file whose header says 7200 s."""
    return _encode(folder / "two-hours.mp4", np.zeros((361, 16, 16, 3), np.uint8), times=np.arange(361) * 20.0)


def frames_8k(folder: Path) -> Path:
    path = folder / "8k.mp4"
    path.write_bytes(_blank_h264(7680, 4320, 1))
    return path


def resolution_jump(folder: Path) -> Path:
    """A raw H.264 stream (no container, no duration) that switches from 64x48 to 8K after four frames."""
    path = folder / "jump.h264"
    path.write_bytes(_blank_h264(64, 48, 4, "h264") + _blank_h264(7680, 4320, 2, "h264"))
    return path


def rate_11025(folder: Path) -> Path:
    return _encode(folder / "rate-11025.mp4", block_frames(SECONDS * FPS), audio=_tone(11025, SECONDS)[None],
                   rate=11025)


def rate_4000(folder: Path) -> Path:
    """4 kHz audio, below what AAC takes: 16-bit PCM in Matroska."""
    return _encode(folder / "rate-4000.mkv", block_frames(SECONDS * FPS), audio=_tone(4000, SECONDS)[None], rate=4000,
                   audio_codec="pcm_s16le")


def surround_51(folder: Path) -> Path:
    channels = np.stack([level / 0.5 * _tone(48000, SECONDS) for level in LEVELS_51])
    return _encode(folder / "surround.mp4", block_frames(SECONDS * FPS), audio=channels, rate=48000, layout="5.1")


def vfr_times() -> np.ndarray:
    """Frame times (s) of the variable-frame-rate clip: gaps of 40 to 400 ms."""
    gaps = np.random.default_rng(1).integers(40, 400, 15) / 1000.0
    return np.concatenate([[0.0], np.cumsum(gaps)])


def variable_frame_rate(folder: Path) -> Path:
    times = vfr_times()
    frames = np.stack([np.full((*SIZE, 3), 10 + 12 * i, np.uint8) for i in range(len(times))])  # grey = index
    return _encode(folder / "vfr.mp4", frames, times=times, audio=_tone(RATE, SECONDS)[None])


def rotated_90(folder: Path) -> Path:
    """A red block at the coded frame's top-left, tagged to be shown turned 90 degrees counter-clockwise."""
    frames = np.zeros((SECONDS * FPS, *SIZE, 3), np.uint8)
    frames[:, :16, :16] = (255, 0, 0)
    return _encode(folder / "rotated.mp4", frames, rotation=90, audio=_tone(RATE, SECONDS)[None])


def deep_colour(folder: Path) -> Path:
    """10-bit 4:4:4 H.264 (High 4:4:4 profile), as cameras and editors export."""
    return _encode(folder / "10bit-444.mp4", block_frames(SECONDS * FPS), pix_fmt="yuv444p10le",
                   audio=_tone(RATE, SECONDS)[None])


def tiny_frames(folder: Path) -> Path:
    return _encode(folder / "2x2.mp4", np.full((SECONDS * FPS, 2, 2, 3), 200, np.uint8),
                   audio=_tone(RATE, SECONDS)[None])


def corrupt_middle(folder: Path) -> Path:
    """The control clip with 2 kB of random bytes written over the middle of the file."""
    data = bytearray(good_clip(folder).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2048] = np.random.default_rng(2).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    path = folder / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


def too_big(folder: Path, max_bytes: int = LIMITS.max_file_bytes) -> Path:
    """A sparse file one byte over the size limit (it takes no disk space)."""
    path = folder / "huge.mp4"
    with path.open("wb") as f:
        f.truncate(max_bytes + 1)
    return path


def missing_file(folder: Path) -> Path:
    return folder / "deleted-before-upload.mp4"


def _copy_model(model_dir: Path, folder: Path) -> tuple[Path, dict]:
    """A copy of a model directory under folder/models (backbone weights paths made absolute) and its tensors."""
    target = folder / "models" / model_dir.name
    target.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig.load(model_dir / "config.json")
    for stream in (cfg.visual, cfg.audio):
        if stream.weights and not Path(stream.weights).is_absolute():
            stream.weights = str((model_dir / stream.weights).resolve())
    cfg.save(target / "config.json")
    return target, load_file(str(model_dir / "model.safetensors"))


def missing_tensor(model_dir: Path, folder: Path) -> Path:
    """A models root whose copy of model_dir lacks one head tensor."""
    target, state = _copy_model(model_dir, folder)
    del state[next(k for k in state if k.startswith("head."))]
    save_file(state, str(target / "model.safetensors"))
    return target.parent


def wrong_shape(model_dir: Path, folder: Path) -> Path:
    """A models root whose copy of model_dir has one head tensor with an extra row."""
    target, state = _copy_model(model_dir, folder)
    key = next(k for k in state if k.startswith("head.") and state[k].ndim == 2)
    state[key] = state[key].new_zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(target / "model.safetensors"))
    return target.parent


def truncated_weights(model_dir: Path, folder: Path) -> Path:
    """A models root whose copy of model_dir has its safetensors file cut in half (an interrupted download)."""
    target, _ = _copy_model(model_dir, folder)
    data = (model_dir / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(data[:len(data) // 2])
    return target.parent


# ------------------------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class Case:
    """One bad or odd input: a media file, a request on the control clip, or a damaged model directory."""

    name: str
    what: str
    make: Callable[[Path], Path] = good_clip  # writes the video into a folder, returns its path
    condition: str = "audio + visual"  # the app's menu label (the Predictor gets its condition string)
    question: str = ""
    task: Optional[str] = None  # a task to ask for by name
    damage: Optional[Callable[[Path, Path], Path]] = None  # (model dir, folder) -> a models root with a damaged copy
    media: bool = True  # False: the input is the request or the model, and the clip is the good control clip


def cases(max_bytes: int = LIMITS.max_file_bytes) -> list[Case]:
    """Every kind, the control clip last (it shows the server still answers after all the others)."""
    return [
        Case("zero_bytes", "empty .mp4 (0 bytes)", zero_bytes),
        Case("truncated_mp4", "first 40 % of an mp4", truncated_mp4),
        Case("text_as_mp4", "a text file renamed .mp4", text_as_mp4),
        Case("png_image", "a PNG image uploaded as the clip", png_image),
        Case("png_as_mp4", "PNG bytes renamed .mp4", png_as_mp4),
        Case("audio_only", "AAC in .m4a, no video stream", audio_only),
        Case("video_only", "H.264 without an audio track", video_only),
        Case("one_frame", "a single frame with 0.25 s of audio", one_frame),
        Case("two_hours", "2 h of 16x16 video (1 frame / 20 s, 10 kB)", two_hours),
        Case("frames_8k", "one 7680x4320 frame", frames_8k),
        Case("resolution_jump", "raw H.264, 64x48 then 8K, no duration", resolution_jump),
        Case("rate_11025", "AAC at 11025 Hz (440 Hz tone)", rate_11025),
        Case("rate_4000", "16-bit PCM at 4000 Hz in .mkv (440 Hz tone)", rate_4000),
        Case("surround_51", "5.1 AAC at 48 kHz, a level per channel", surround_51),
        Case("variable_frame_rate", "frames 40-400 ms apart", variable_frame_rate),
        Case("rotated_90", "display matrix: rotate 90 degrees", rotated_90),
        Case("deep_colour", "10-bit 4:4:4 H.264", deep_colour),
        Case("tiny_frames", "2x2-pixel frames", tiny_frames),
        Case("corrupt_middle", "2 kB of random bytes over the middle", corrupt_middle),
        Case("too_big", f"sparse file of {max_bytes + 1} bytes", partial(too_big, max_bytes=max_bytes)),
        Case("missing_file", "a path that does not exist", missing_file),
        Case("empty_question", "AVQA question of spaces", question="   ", media=False),
        Case("long_question", "AVQA question of 10 kB", question=(QUESTION + " ") * 227, media=False),
        Case("unknown_condition", "condition 'sideways'", condition="sideways", media=False),
        Case("unknown_task", "task 'segmentation'", task="segmentation", media=False),
        Case("ckpt_missing_tensor", "model dir lacking a head tensor", damage=missing_tensor, media=False),
        Case("ckpt_wrong_shape", "model dir with a head tensor of the wrong shape", damage=wrong_shape, media=False),
        Case("ckpt_truncated", "model.safetensors cut in half", damage=truncated_weights, media=False),
        Case("good_clip", "control: a good 4 s clip, after all the above", good_clip),
    ]


# ----------------------------------------------------------------------------------------------------- runner
@dataclass
class Outcome:
    """What one stage did with an input: "ok", "error" (a readable message) or "crash" (anything else)."""

    status: str
    message: str
    seconds: float


@dataclass
class Row:
    case: str
    what: str
    input: str  # the file the case wrote (the control clip for request and model cases)
    decode: Optional[Outcome]  # None where the stage does not apply
    predictor: Optional[Outcome]
    handler: Optional[Outcome]
    endpoint: Optional[Outcome]


READABLE = (ValueError, FileNotFoundError, gr.Error, AppError)  # MediaError and CheckpointError are ValueErrors
HIDDEN_ERROR = "verbose error reporting"  # Gradio's text for an exception a handler did not turn into gr.Error
MAX_SENT_BYTES = 16_000_000  # larger inputs are not uploaded to the endpoint


def attempt(stage: Callable[[], str]) -> Outcome:
    """Run one stage; an exception with a readable message is an "error", any other exception a "crash"."""
    start = time.perf_counter()
    try:
        status, message = "ok", stage()
    except READABLE as err:
        text = str(getattr(err, "message", None) or err)
        status = "crash" if HIDDEN_ERROR in text or not text.strip() else "error"
        message = f"{type(err).__name__}: {text}"
    except Exception as err:  # noqa: BLE001 - exactly what the matrix is looking for
        status, message = "crash", f"{type(err).__name__}: {err}"
    return Outcome(status, message, round(time.perf_counter() - start, 3))


def describe_clip(clip: Clip) -> str:
    """Segments, frame size, audio (missing, silent or its strongest frequency), stated duration and padding."""
    if clip.audio_missing:
        audio = "no audio track (silence)"
    elif not float(clip.audio.abs().max()) > 0:
        audio = "silent audio"
    else:
        spectrum = np.abs(np.fft.rfft(clip.audio.reshape(-1).numpy()))
        peak = np.fft.rfftfreq(clip.audio.numel(), 1 / clip.sample_rate)[spectrum.argmax()]
        audio = f"audio peak {peak:.0f} Hz, rms {float(clip.audio.std()):.3f}"
    duration = clip.meta.get("duration")
    return (f"{clip.num_segments} x {clip.frames.shape[2]}x{clip.frames.shape[3]} frames, {audio}, "
            f"{'unknown' if duration is None else f'{duration:.2f} s'} long, {clip.meta.get('padded_segments')} "
            f"padded")


def _condition(label: str) -> str:
    return CONDITION_LABELS.get(label, label)


def _predictor_stage(studio: Studio, case: Case, path: Path, models: Optional[Path]) -> str:
    if models is not None:
        predictor = Predictor({d.name.split("-")[0]: d for d in sorted(models.iterdir())}, limits=studio.limits)
    else:
        predictor = studio.predictor()
    pred = predictor.predict(path, _condition(case.condition), tasks=[case.task] if case.task else None,
                             question=case.question if case.question else None)
    summary = pred.to_dict()["tasks"]
    answer = f", AVQA answer {summary['avqa']['predictions']['answer']!r}" if "avqa" in summary else ""
    return f"ran {', '.join(summary)} on {pred.clip.num_segments} segments{answer}"


def _handler_stage(studio: Studio, case: Case, path: Path, models: Optional[Path]) -> str:
    if models is not None:
        studio = Studio(models, examples_dir=studio.examples_dir, eval_root=studio.eval_root, limits=studio.limits)
    session, info, *_, summary = predictions.run(studio, str(path), case.condition, 0, None, case.question, None)
    if case.task:  # the router explorer is where a task is picked by name
        router.render(case.task, "visual", "p1", session)
        return f"router tab drew {case.task}"
    return f"{info.splitlines()[0]} Tasks run: {', '.join(summary['tasks'])}."


def _endpoint_stage(client: Client, case: Case, path: Path) -> str:
    if case.task:
        client.predict(case.task, "visual", "p1", api_name="/router")
        return f"/router drew {case.task}"
    summary = client.predict(handle_file(str(path)), case.condition, 0, None, case.question, api_name="/predict")
    return f"{summary['segments']} segments, tasks {', '.join(summary['tasks'])}"


def run_case(studio: Studio, case: Case, folder: Path, client: Optional[Client] = None) -> Row:
    """One case through every stage that applies to it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = case.make(folder)
    models = None
    if case.damage is not None:
        models = case.damage(studio.models[MAIN_VARIANT][studio.tasks[0]], folder)
    decode = attempt(lambda: describe_clip(studio.predictor().load_clip(path))) if case.media else None
    predictor = attempt(lambda: _predictor_stage(studio, case, path, models))
    handler = attempt(lambda: _handler_stage(studio, case, path, models))
    sendable = path.is_file() and path.stat().st_size <= MAX_SENT_BYTES and models is None
    endpoint = attempt(lambda: _endpoint_stage(client, case, path)) if client is not None and sendable else None
    return Row(case.name, case.what, str(path), decode, predictor, handler, endpoint)


def run_matrix(studio: Studio, work: Path, client: Optional[Client] = None) -> list[Row]:
    """Every case in its own folder under work; the endpoint stage only with a client."""
    return [run_case(studio, case, work / case.name, client) for case in cases(studio.limits.max_file_bytes)]


def markdown(rows: list[Row]) -> str:
    """The matrix as a Markdown table: one row per input, one column per stage."""
    def cell(outcome: Optional[Outcome]) -> str:
        if outcome is None:
            return "-"
        text = outcome.message if len(outcome.message) <= SHOWN_CHARS else outcome.message[:SHOWN_CHARS] + "..."
        return f"**{outcome.status}** {text}".replace("|", "\\|").replace("\n", " ")

    lines = ["| input | what it is | decoding | Predictor | Run handler | endpoint |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.case} | {r.what} | {cell(r.decode)} | {cell(r.predictor)} | {cell(r.handler)} | "
              f"{cell(r.endpoint)} |" for r in rows]
    return "\n".join(lines)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).is_dir() else []


def bad_inputs(out: Path, models: Optional[str], examples: Path) -> dict[str, Any]:
    """The matrix against a Studio over `models` and the app served in this process; writes bad_inputs.md/.json."""
    out.mkdir(parents=True, exist_ok=True)
    uploads, scratch = out / "gradio", out / "tmp"
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # read when the Blocks are built
    scratch.mkdir(exist_ok=True)
    tempfile.tempdir = str(scratch)  # anything the library puts in a temporary file lands here and is counted
    studio = Studio(models_root(models), examples_dir=examples, limits=LIMITS)
    demo = build_demo(studio)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(studio))
    try:
        with closing(Client(url, verbose=False, download_files=False)) as client:
            rows = run_matrix(studio, out / "inputs", client)
    finally:
        demo.close()
    outcomes = [o for r in rows for o in (r.decode, r.predictor, r.handler, r.endpoint) if o is not None]
    report = {"rows": [asdict(r) for r in rows], "crashes": sum(o.status == "crash" for o in outcomes),
              "temp_files_left": [str(p) for p in files_under(scratch)],
              "upload_files_left_after_close": len(files_under(uploads))}
    (out / "bad_inputs.json").write_text(json.dumps(report, indent=2))
    (out / "bad_inputs.md").write_text(markdown(rows) + "\n")
    return report


# ------------------------------------------------------------------------------------------------------- load
@dataclass
class LoadReport:
    users: int
    requests: int
    ok: int
    failures: list[str]
    p50_s: float
    p95_s: float
    max_s: float
    wall_s: float
    startup_s: float
    server_peak_rss_mb: Optional[float]
    upload_files_left_after_stop: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """A process's resident memory now and at its peak in MB (Linux /proc); empty where /proc has no such file."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: round(int(fields[key].split()[0]) / 1024, 1)
            for name, key in (("rss_mb", "VmRSS"), ("peak_rss_mb", "VmHWM")) if key in fields}


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode} before serving:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout_s:.0f} s; see {log}")


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C (Gradio closes the server and deletes its temporary files), then harder if it hangs."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


@dataclass
class _Tally:
    """Latencies of the requests that succeeded and a line per failure, from every user thread."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency: Optional[float] = None, failure: Optional[str] = None) -> None:
        with self.lock:
            if failure is None:
                self.latencies.append(latency)
            else:
                self.failures.append(failure)


def _user(url: str, index: int, requests: int, request: Callable[[Client, int, float], None], deadline: float,
          tally: _Tally) -> None:
    """One user: its own client (so its own Gradio session) sending `requests` requests one after another."""
    try:
        # closing() ends the client's heartbeat stream, without which the server cannot stop promptly
        with closing(Client(url, verbose=False, download_files=False)) as client:
            for number in range(index * requests, (index + 1) * requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tally.add(failure=f"user {index}: not sent, past the time limit")
                    continue
                start = time.perf_counter()
                try:
                    request(client, number, remaining)
                    tally.add(time.perf_counter() - start)
                except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                    tally.add(failure=f"user {index}: {type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - a client that cannot connect is a failure too
        tally.add(failure=f"user {index}: no connection: {type(err).__name__}: {err}")


def run_load(users: int, requests: int, clip: Path, out: Path, models: Optional[str] = None,
             endpoint: str = "/predict", question: str = "", timeout_s: float = 600.0) -> LoadReport:
    """Serve app/app.py on 127.0.0.1 (a free port) in a subprocess; `users` gradio_client users each send
    `requests` requests of `endpoint` (/predict or /run: both take video, condition, snr, other, question) on
    `clip`, one after another; no request starts after timeout_s."""
    if not 1 <= users <= 64 or not 1 <= requests <= 100:
        raise ValueError(f"users={users} and requests={requests} must be within 1..64 and 1..100")
    out.mkdir(parents=True, exist_ok=True)
    uploads = out / "gradio"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, str(REPO / "app" / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--models", models] if models else []
    log = out / "server.log"
    started = time.monotonic()
    with log.open("w") as log_file:
        proc = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "GRADIO_TEMP_DIR": str(uploads), "GRADIO_ANALYTICS_ENABLED": "0"})
    tally = _Tally()

    def request(client: Client, number: int, timeout: float) -> None:
        # Audio noise at a different SNR each time, so no request is answered from the Studio's prediction cache.
        snr = number % (NOISE_SNR[1] - NOISE_SNR[0] + 1) + NOISE_SNR[0]
        client.submit(handle_file(str(clip)), "audio noise", snr, None, question, api_name=endpoint).result(timeout)

    try:
        _wait_until_up(url, proc, log, timeout_s=180)
        begun = time.monotonic()
        deadline = begun + timeout_s
        with ThreadPoolExecutor(users) as pool:
            list(pool.map(lambda i: _user(url, i, requests, request, deadline, tally), range(users)))
        wall, startup = time.monotonic() - begun, begun - started
        peak = memory_mb(proc.pid).get("peak_rss_mb")
    finally:
        _stop(proc)
    p50, p95, top = (float(np.percentile(tally.latencies, q)) if tally.latencies else math.nan for q in (50, 95, 100))
    return LoadReport(users, requests, len(tally.latencies), tally.failures, round(p50, 2), round(p95, 2),
                      round(top, 2), round(wall, 1), round(startup, 1), peak, len(files_under(uploads)))


# -------------------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bad = sub.add_parser("bad-inputs", help="the bad-inputs matrix")
    bad.add_argument("--out", type=Path, default=REPO / ".cache" / "stress" / "bad-inputs")
    bad.add_argument("--models", help="models root (default: the app's)")
    bad.add_argument("--examples", type=Path, default=REPO / "assets" / "examples")
    load = sub.add_parser("load", help="concurrent users against the served app")
    load.add_argument("--users", type=int, default=8)
    load.add_argument("--requests", type=int, default=5, help="requests per user")
    load.add_argument("--small", action="store_true", help="2 users x 2 requests on a generated 4 s clip")
    load.add_argument("--clip", type=Path, help="video to send (default: the first example clip)")
    load.add_argument("--models", help="models root (default: the app's)")
    load.add_argument("--endpoint", default="/predict")
    load.add_argument("--timeout", type=float, default=600.0, help="no request starts after this many seconds")
    load.add_argument("--out", type=Path, default=REPO / ".cache" / "stress" / "load")
    args = parser.parse_args(argv)
    if args.command == "bad-inputs":
        report = bad_inputs(args.out, args.models, args.examples)
        print((args.out / "bad_inputs.md").read_text())
        print(f"crashes: {report['crashes']}; temporary files left: {len(report['temp_files_left'])}; uploads left "
              f"after close: {report['upload_files_left_after_close']}; JSON: {args.out / 'bad_inputs.json'}")
        return 1 if report["crashes"] or report["temp_files_left"] else 0
    if args.small:
        args.users, args.requests = 2, 2
    args.out.mkdir(parents=True, exist_ok=True)
    clip = args.clip or (good_clip(args.out) if args.small else find_examples()[0].path)
    report = run_load(args.users, args.requests, clip, args.out, args.models, args.endpoint, timeout_s=args.timeout)
    print(json.dumps(asdict(report), indent=2))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
