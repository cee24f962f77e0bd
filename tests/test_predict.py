import json

import pytest
import torch

from avmoe.data.media import write_video
from avmoe.data.sample import Clip
from avmoe.layers import RouterOverride
from avmoe.model import build_model
from avmoe.predict import Predictor

CLASSES = [f"class{i}" for i in range(6)]
WORDS = ["<pad>", "<unk>", "what", "is", "making", "sound", "?"]
ANSWERS = ["yes", "no", "zero", "one", "two", "three"]


def _open_gates(model):
    for name, p in model.named_parameters():
        if name.endswith("gate"):
            p.data.fill_(0.5)
    return model


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    models = {
        "ave": build_model("tiny-ave", classes=CLASSES, **{"head.num_classes": 6}),
        "s4": build_model("tiny-s4", classes=["object"]),
        "avqa": build_model("tiny-avqa", classes=ANSWERS, question_words=WORDS,
                            **{"head.num_classes": 6, "head.question_vocab": len(WORDS)}),
    }
    return Predictor({t: _open_gates(m) for t, m in models.items()})


def _clip(seconds=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Clip(torch.rand(seconds, 3, 96, 96, generator=g), 0.1 * torch.randn(seconds, 32000, generator=g), 32000)


def test_every_task_on_a_ten_second_clip(predictor):
    pred = predictor.predict(_clip(), question="what is making sound?")
    assert set(pred.tasks) == {"ave", "s4", "avqa"}
    ave, s4, qa = pred.tasks["ave"], pred.tasks["s4"], pred.tasks["avqa"]
    assert ave.outputs["ave"].shape == (10,) and ave.outputs["class_probs"].shape == (6,)
    assert s4.outputs["masks"].shape == (10, 96, 96)  # the 5-s model ran on two windows
    assert qa.outputs["top5"].shape == (5,)
    for p in pred.tasks.values():
        for w in p.trace.weights.values():
            assert w.shape[:2] == (1, 10)
            torch.testing.assert_close(w.sum(-1), torch.ones(1, 10))
        assert p.features["visual"].shape[0] == 10
    summary = json.loads(json.dumps(pred.to_dict()))
    assert len(summary["tasks"]["ave"]["predictions"]) == 10
    assert summary["tasks"]["avqa"]["predictions"]["answer"] in ANSWERS


def test_windows_are_the_same_as_running_each_half(predictor):
    clip = _clip(seed=3)
    whole = predictor.predict(clip, tasks=["s4"]).tasks["s4"]
    second = predictor.predict(Clip(clip.frames[5:], clip.audio[5:], 32000), tasks=["s4"]).tasks["s4"]
    torch.testing.assert_close(whole.outputs["mask_probs"][5:], second.outputs["mask_probs"])


def test_conditions_and_overrides_change_what_the_model_sees(predictor):
    clip = _clip(seed=1)
    base = predictor.predict(clip, tasks=["ave"])
    silent = predictor.predict(clip, "visual-only", tasks=["ave"])
    assert silent.clip.audio_missing and torch.count_nonzero(silent.clip.audio) == 0
    key = ("visual", 0, "p1")
    assert not torch.equal(base.tasks["ave"].trace.weights[key], silent.tasks["ave"].trace.weights[key])
    forced = predictor.predict(clip, tasks=["ave"], override=RouterOverride("cma"))
    w = forced.tasks["ave"].trace.weights[key]
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0]).expand_as(w))
    other = _clip(seed=9)
    mismatched = predictor.predict(clip, "mismatched", tasks=["ave"], other=other)
    assert torch.equal(mismatched.clip.audio, other.audio)


def test_bad_requests_get_clear_errors(predictor, tmp_path):
    with pytest.raises(ValueError, match="question is empty"):
        predictor.predict(_clip(), question="   ")
    with pytest.raises(ValueError, match="no model loaded for avvp"):
        predictor.predict(_clip(), tasks=["avvp"])
    with pytest.raises(ValueError, match="needs 10 one-second segments"):
        predictor.predict(_clip(seconds=4), tasks=["ave"])
    with pytest.raises(ValueError, match="unknown condition"):
        predictor.predict(_clip(), "upside-down")
    with pytest.raises(ValueError, match="unknown task"):
        Predictor({"asr": build_model("tiny-ave")})


def test_a_media_file_goes_through(predictor, tmp_path):
    frames = (torch.rand(40, 96, 96, 3) * 255).to(torch.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, fps=4, audio=0.1 * torch.randn(10 * 32000), sample_rate=32000)
    pred = predictor.predict(path, tasks=["ave", "s4"])
    assert pred.clip.num_segments == 10 and pred.tasks["s4"].outputs["masks"].shape[0] == 10
