"""The bad-inputs matrix of app/stress.py against the test Studio and the served app: each kind of bad or odd input
gets a specific readable error or is handled correctly, nothing crashes, no temporary files are left, and the served
app hands out only its own files."""
import math
import re
import tempfile
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import av
import httpx
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client

from app import overlays, stress
from app.app import launch_options
from app.studio import LIMITS
from avmoe.data import media
from avmoe.paths import cache_dir

pytestmark = pytest.mark.slow

# Refused inputs: the words every stage's message must hold, and the advice it gives.
REFUSED = {
    "zero_bytes": (r"is empty \(0 bytes\)", "upload or pick a real video file"),
    "truncated_mp4": (r"looks like MP4/MOV but cannot be read", "re-upload the complete file"),
    "text_as_mp4": (r"is not a media file PyAV can read", "expected a video such as mp4"),
    "audio_only": (r"has no video stream", "a video is needed"),
    "two_hours": (r"lasts 7200 s, over the 20 s limit", "trim it first"),
    "frames_8k": (r"is 7680x4320, over the 3840x2160 limit", "downscale it first"),
    "resolution_jump": (r"is 7680x4320, over the 3840x2160 limit", "downscale it first"),
    "corrupt_middle": (r"video data is corrupt or truncated", "re-encode it"),
    "too_big": (r"is 3 MB, over the 3 MB limit", "trim or re-encode it"),
    "missing_file": (r"no such media file", "deleted-before-upload.mp4"),  # the handler adds "upload it again"
}
HANDLED = ("png_image", "png_as_mp4", "video_only", "one_frame", "rate_11025", "rate_4000", "surround_51",
           "variable_frame_rate", "rotated_90", "deep_colour", "tiny_frames", "good_clip")
STAGES = ("decode", "predictor", "handler", "endpoint")


@pytest.fixture(scope="module")
def matrix(studio, server, tmp_path_factory):
    """case name -> Row, with the library's temporary files sent to a folder of their own (to count them)."""
    work, scratch = tmp_path_factory.mktemp("bad-inputs"), tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as patch, closing(Client(server, verbose=False, download_files=False)) as client:
        patch.setenv("GRADIO_TEMP_DIR", get_upload_folder())  # the served app's uploads stay where they were
        patch.setattr(tempfile, "tempdir", str(scratch))
        rows = stress.run_matrix(studio, work, client)
    return {row.case: row for row in rows}, work, scratch


def _outcomes(row):
    return {stage: getattr(row, stage) for stage in STAGES if getattr(row, stage) is not None}


def _clip(studio, matrix, name):
    """The case's input decoded as the app decodes it."""
    return studio.predictor().load_clip(Path(matrix[0][name].input))


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    return float(np.fft.rfftfreq(wave.shape[-1], 1 / rate)[np.abs(np.fft.rfft(wave)).argmax()])


def test_every_kind_is_covered_and_nothing_crashes(matrix):
    rows, _, scratch = matrix
    assert len(rows) >= 20 and set(REFUSED) | set(HANDLED) <= set(rows)
    crashes = {(name, stage): o.message for name, row in rows.items() for stage, o in _outcomes(row).items()
               if o.status == "crash"}
    assert crashes == {}
    assert stress.files_under(scratch) == []  # decoding, predicting and the handlers left no temporary files
    assert len(list(cache_dir("app", "overlays").glob("*.mp4"))) <= overlays.MAX_FILES
    table = stress.markdown(list(rows.values()))
    assert table.count("\n") == len(rows) + 1 and "| frames_8k | one 7680x4320 frame | **error** MediaError:" in table


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_inputs_say_what_is_wrong_and_what_to_do(matrix, name):
    rows, work, _ = matrix
    words, advice = REFUSED[name]
    outcomes = _outcomes(rows[name])
    assert set(outcomes) >= {"decode", "predictor", "handler"}
    for stage, outcome in outcomes.items():
        assert outcome.status == "error", (stage, outcome.message)
        assert re.search(words, outcome.message) and advice in outcome.message, (stage, outcome.message)
    for stage in ("handler", "endpoint"):  # the user sees the file's name, never a server folder or FFmpeg's words
        if stage in outcomes:
            assert str(work) not in outcomes[stage].message and "/gradio/" not in outcomes[stage].message
            assert "Errno" not in outcomes[stage].message and "Invalid data found" not in outcomes[stage].message
    if name == "text_as_mp4":  # ... which stay in the library's own message
        assert "[Errno " in outcomes["decode"].message and "Invalid data found" in outcomes["decode"].message


def test_limits_reject_before_decoding(studio, matrix, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("frames were decoded")

    monkeypatch.setattr(media, "_read_frames", no_decoding)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        for name in ("two_hours", "frames_8k"):
            with av.logging.Capture() as logs, pytest.raises(media.MediaError, match="limit"):
                _clip(studio, matrix, name)
    finally:
        av.logging.set_level(level)
    # Not even av.open's stream probe decodes the 33-megapixel frame: the decoder is refused a buffer for it.
    assert any("exceeds specified max pixel count 8294400" in message for _, _, message in logs)


@pytest.mark.parametrize("name", HANDLED)
def test_odd_inputs_run_through_every_stage(matrix, name):
    rows, _, _ = matrix
    outcomes = _outcomes(rows[name])
    assert set(outcomes) == set(STAGES)
    assert all(o.status == "ok" for o in outcomes.values()), outcomes
    assert "tasks ave, avvp, s4, ms3" in outcomes["endpoint"].message


def test_a_clip_without_audio_is_silent_and_flagged(studio, matrix):
    clip = _clip(studio, matrix, "video_only")
    assert clip.audio_missing and not clip.audio.any()
    assert clip.meta["duration"] == pytest.approx(4.0) and clip.meta["padded_segments"] == 0
    rows, _, _ = matrix
    assert "no audio track (silence)" in rows["video_only"].handler.message


@pytest.mark.parametrize("name", ["png_image", "png_as_mp4"])
def test_an_image_is_a_still_clip_without_audio(studio, matrix, name):
    clip = _clip(studio, matrix, name)
    assert clip.audio_missing and not clip.audio.any()
    assert clip.meta["padded_segments"] == studio.predictor().segments - 1
    assert all(np.array_equal(f, clip.frames[0]) for f in clip.frames)
    source = stress.block_frames(1)[0].reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(clip.frames[0].mean((1, 2)).numpy(), source, atol=0.02)


def test_one_frame_keeps_its_quarter_second_of_sound(studio, matrix):
    clip = _clip(studio, matrix, "one_frame")
    rate = clip.sample_rate
    assert clip.meta["duration"] == pytest.approx(0.25) and clip.meta["padded_segments"] == 3
    assert all(np.array_equal(f, clip.frames[0]) for f in clip.frames)
    first = clip.audio[0].numpy()
    assert _peak_hz(first, rate) == pytest.approx(stress.TONE_HZ, abs=5)
    assert np.abs(first[:int(0.2 * rate)]).max() > 0.4 and not clip.audio[1:].any()


@pytest.mark.parametrize("name", ["rate_11025", "rate_4000", "surround_51"])
def test_odd_rates_and_surround_resample_and_downmix(studio, matrix, name):
    clip = _clip(studio, matrix, name)
    for second in clip.audio:
        assert _peak_hz(second.numpy(), clip.sample_rate) == pytest.approx(stress.TONE_HZ, abs=2)
    amplitude = np.mean(stress.LEVELS_51) if name == "surround_51" else 0.5
    assert float(clip.audio[1:3].std()) == pytest.approx(amplitude / math.sqrt(2), rel=0.03)


def test_variable_frame_rate_takes_the_frame_nearest_each_centre(studio, matrix):
    clip = _clip(studio, matrix, "variable_frame_rate")
    times = stress.vfr_times()
    shown = [round((float(f.mean()) * 255 - 10) / 12) for f in clip.frames]
    assert shown == [int(np.argmin(np.abs(times - (i + 0.5)))) for i in range(clip.num_segments)]


def test_rotation_is_applied(studio, matrix):
    red = _clip(studio, matrix, "rotated_90").frames[0, 0]  # turned 90 degrees: the top-left block is bottom-left
    assert float(red[-12:, :12].mean()) > 0.9
    assert float(red[:12, :12].mean()) < 0.1 and float(red[-12:, -12:].mean()) < 0.1


def test_deep_colour_and_tiny_frames_decode_to_their_colours(studio, matrix):
    clip = _clip(studio, matrix, "deep_colour")
    source = stress.block_frames(stress.SECONDS * stress.FPS)
    for i, frame in enumerate(clip.frames):  # segment i shows frame 4 i + 2 (its centre, i + 0.5 s, at 4 fps)
        expected = source[stress.FPS * i + stress.FPS // 2].reshape(-1, 3).mean(0) / 255
        np.testing.assert_allclose(frame.mean((1, 2)).numpy(), expected, atol=0.03)
    tiny = _clip(studio, matrix, "tiny_frames")
    assert float((tiny.frames - 200 / 255).abs().max()) < 0.03


def test_requests_with_bad_questions_conditions_and_tasks(matrix):
    rows, _, _ = matrix
    empty = rows["empty_question"]
    assert empty.predictor.status == "error" and "the question is empty" in empty.predictor.message
    assert empty.handler.status == "ok" and "avqa" not in empty.handler.message  # Run skips AVQA without a question
    assert empty.endpoint.status == "ok" and "avqa" not in empty.endpoint.message
    for o in _outcomes(rows["long_question"]).values():
        assert o.status == "error" and "characters long; keep it under 500" in o.message
    sideways = rows["unknown_condition"]
    assert "unknown condition 'sideways' in 'sideways'; valid parts: av," in sideways.predictor.message
    assert "unknown condition 'sideways'; choose one of audio + visual" in sideways.handler.message
    assert "'sideways' (type: <class 'str'>) is not in the list of choices" in sideways.endpoint.message
    task = rows["unknown_task"]
    assert "no model loaded for segmentation; loaded: ave, avvp, s4, ms3, avqa" in task.predictor.message
    assert "the segmentation model did not run on this clip; pick a task model that ran: ave, avvp, s4, ms3" in (
        task.handler.message)
    assert "'segmentation' (type: <class 'str'>) is not in the list of choices" in task.endpoint.message
    assert all(o.status == "error" for row in (sideways, task) for o in _outcomes(row).values())


@pytest.mark.parametrize("name, words", [
    ("ckpt_missing_tensor", r"does not fit its config: missing \['head\.[^']+'\], unexpected \[\], wrong shape \[\]"),
    ("ckpt_wrong_shape", r"does not fit its config: missing \[\], unexpected \[\], wrong shape \['head\.[^']+: file"),
    ("ckpt_truncated", r"is not a readable safetensors file .*download or save it again"),
])
def test_damaged_model_directories_are_named_and_refused(matrix, name, words):
    rows, _, _ = matrix
    outcomes = _outcomes(rows[name])
    assert set(outcomes) == {"predictor", "handler"}
    for outcome in outcomes.values():
        assert outcome.status == "error", outcome.message
        assert re.search(words, outcome.message) and f"{name}/models/ave-avmoe/model.safetensors" in outcome.message


def test_the_app_serves_only_its_own_files(server, studio):
    example = studio.examples[0].path
    secret = studio.models_root / "ave-avmoe" / "model.safetensors"
    with httpx.Client(base_url=server, timeout=10, follow_redirects=True) as http:
        served = http.get(f"gradio_api/file={example}")
        assert served.status_code == 200 and served.content == example.read_bytes()
        refused = [
            "gradio_api/file=/etc/passwd", "file=/etc/passwd", f"gradio_api/file={secret}",
            f"gradio_api/file={stress.REPO / 'avmoe' / 'train.py'}",  # the working directory is not served either
            f"gradio_api/file={quote(str(example.parent))}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            f"gradio_api/file={quote(str(example.parent))}/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
            f"gradio_api/file=http://127.0.0.1:{httpx.URL(server).port}/config",  # no fetching from inside either
        ]
        for path in refused:
            response = http.get(path)
            assert response.status_code in (403, 404), (path, response.status_code)
            assert b"root:" not in response.content and not response.content.startswith(b"{\"version\"")


def test_upload_and_media_limits_are_configured(server, studio):
    config = httpx.get(f"{server}config", timeout=10).json()
    assert config["max_file_size"] == LIMITS.max_file_bytes == 200_000_000  # Gradio refuses bigger uploads
    assert launch_options(studio)["max_file_size"] == LIMITS.max_file_bytes
    assert (LIMITS.max_duration_s, LIMITS.max_width, LIMITS.max_height) == (600.0, 3840, 2160)
