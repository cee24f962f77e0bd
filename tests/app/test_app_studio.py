"""Studio: models found under a root, conditions, decode-once sessions, cached predictions, overlays, bad input."""
import os
import time
import gradio as gr
import numpy as np
import pytest
import torch

from app import overlays
import app.app as app_module
from app.app import CONCURRENCY, available_cores, build_demo, default_threads, serve
from app.tabs import predictions
from app.studio import Session, Studio, condition_string, find_models, user_errors
from avmoe.data.media import MediaError, probe
from avmoe.data.sample import Clip


def test_condition_menu_maps_to_library_conditions():
    assert condition_string("audio + visual") == "av"
    assert condition_string("visual only", 7) == "visual-only"  # the slider only matters for noise
    assert condition_string("audio noise", 5) == "audio-noise:5"
    assert condition_string("visual noise", -2.5) == "visual-noise:-2.5"
    assert condition_string("audio from another clip") == "mismatched"
    with pytest.raises(ValueError, match="unknown condition 'upside down'"):
        condition_string("upside down")


def test_the_app_splits_the_cores_among_its_event_slots(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    cpu_max = tmp_path / "cpu.max"
    assert available_cores(cpu_max) == 16  # no cgroup file
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == 16
    cpu_max.write_text("150000 100000\n")  # a 1.5-CPU quota, as a container's
    assert available_cores(cpu_max) == 2
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(app_module, "available_cores", lambda: 8)
    assert default_threads() == 8 // CONCURRENCY
    monkeypatch.setattr(app_module, "available_cores", lambda: 1)
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins
    assert default_threads() == 3
    with pytest.raises(ValueError, match="threads=0 must be at least 1"):
        serve(threads=0)


def test_models_are_found_by_folder_name(app_root, tmp_path):
    found = find_models(app_root / "models")
    assert sorted(found) == ["avmoe", "frozen"]
    assert sorted(found["avmoe"]) == ["ave", "avqa", "avvp", "ms3", "s4"] and list(found["frozen"]) == ["ave"]
    (tmp_path / "ave-avmoe").mkdir()  # no config.json: not a model
    empty = Studio(tmp_path, examples_dir=tmp_path, eval_root=tmp_path)
    assert empty.tasks == [] and empty.examples == []
    assert empty.missing_note().startswith(f"No avmoe models (folders like ave-avmoe) under {tmp_path}.")
    assert empty.missing_note("avqa").startswith("No avqa-avmoe model under")
    with pytest.raises(ValueError, match="No avmoe models"):
        empty.predictor()


def test_the_app_starts_without_models_and_says_so(tmp_path, upload):
    empty = Studio(tmp_path, examples_dir=tmp_path, eval_root=tmp_path)
    demo = build_demo(empty)
    notes = [c["props"].get("value") for c in demo.get_config_file()["components"] if c["type"] == "markdown"]
    assert sum("No avmoe models" in str(n) for n in notes) >= 4  # each model tab says so
    with pytest.raises(gr.Error, match="No avmoe models"):
        predictions.run(empty, str(upload), "audio + visual", 0, None, "", None)


def test_studio_knows_tasks_experts_layers_examples_and_cards(studio):
    assert studio.tasks == ["ave", "avvp", "s4", "ms3", "avqa"]
    assert studio.experts() == ["cma0", "ua0"]
    assert studio.layers() and all(isinstance(i, int) for i in studio.layers())
    assert [e.name for e in studio.examples] == ["first-scene", "second-scene"]
    assert studio.examples[0].questions and len(studio.examples[0].ave) == 10
    assert studio.cards()["ave-frozen"]["variant"] == "frozen"


def test_a_clip_is_decoded_once_per_session(studio, upload):
    session = studio.session_for(None, str(upload))
    assert session.clip.num_segments == 4 and session.clip.frames.shape[-1] == 64
    assert studio.session_for(session, str(upload)) is session
    other = studio.session_for(session, str(studio.examples[0].path))
    assert other is not session and other.path.endswith("first-scene.mp4")


def test_predictions_are_cached_by_their_arguments(studio, upload):
    session = studio.session_for(None, str(upload))
    first = studio.predict(session, "av", tasks=["ave"])
    assert studio.predict(session, "av", tasks=["ave"]) is first
    noisy = studio.predict(session, "audio-noise:0", tasks=["ave"])
    assert noisy is not first and noisy.condition == "audio-noise:0"
    swapped = studio.predict(session, "mismatched", tasks=["ave"], other="second-scene")
    assert torch.equal(swapped.clip.audio, studio.other_clip("second-scene").audio)
    with pytest.raises(ValueError, match="needs the other clip"):
        studio.predict(session, "mismatched", tasks=["ave"])
    with pytest.raises(ValueError, match="no clip yet"):
        studio.predict(Session(), "av")


def test_bad_files_get_clear_messages(studio, bad_files):
    expected = {"not_media": "notes.mp4 is not a media file PyAV can read",
                "audio_only": "sound.wav has no video stream",
                "too_long": "long.mp4 lasts 30 s, over the 20 s limit",
                "too_large": "big.mp4 is 3 MB, over the 3 MB limit",
                "empty": "empty.mp4 is empty"}
    for name, text in expected.items():
        with pytest.raises(MediaError) as err:
            studio.decode(bad_files[name])
        assert str(err.value).startswith(text), (name, str(err.value))
        assert str(bad_files[name].parent) not in str(err.value)  # the file's name, not the server's temp path


def test_user_errors_become_gradio_errors():
    @user_errors
    def fails(kind):
        raise {"value": ValueError("bad value x"), "missing": FileNotFoundError("no such file y")}[kind]
    for kind, text in (("value", "bad value x"), ("missing", "no such file y")):
        with pytest.raises(gr.Error, match=text):
            fails(kind)


def test_overlays_colour_the_masked_pixels_and_play_in_the_browser(tmp_path):
    clip = Clip(torch.zeros(2, 3, 8, 8), torch.zeros(2, 16000), 16000)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, :4] = True
    frames = overlays.overlay_frames(clip, {"s4": masks}, side=16)
    assert frames.shape == (2, 16, 16, 3) and frames.dtype == np.uint8
    assert tuple(frames[0, 0, 0]) == (128, 24, 24)  # half of (255, 48, 48) over black
    assert tuple(frames[0, -1, 0]) == (0, 0, 0)
    path = overlays.overlay_video(clip, frames, tmp_path)
    info = probe(path)
    assert info["has_video"] and info["has_audio"] and info["video_duration"] == pytest.approx(2.0, abs=0.3)


def test_old_overlay_videos_are_cleaned(tmp_path):
    paths = [tmp_path / f"{i}.mp4" for i in range(5)]
    for i, p in enumerate(paths):
        p.write_bytes(b"x")
        os.utime(p, (time.time() - 100 * (5 - i),) * 2)  # 0.mp4 is the oldest
    overlays.clean(tmp_path, max_age_s=450, max_files=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.mp4", "4.mp4"]  # 0 too old; room left for a new one


def test_the_robustness_tab_names_the_evaluation_sets_by_their_repo_path(tmp_path):
    from avmoe.paths import REPO

    def note(eval_root):
        demo = build_demo(Studio(tmp_path, examples_dir=tmp_path, eval_root=eval_root))
        texts = [c["props"].get("value") for c in demo.config["components"] if c.get("type") == "markdown"]
        return next(t for t in texts if t and "built-in evaluation set" in t)

    assert "(`assets/eval/<task>/`, cached)" in note(REPO / "assets" / "eval")
    assert f"(`{tmp_path.resolve()}/<task>/`, cached)" in note(tmp_path)  # outside the repo: the full path
