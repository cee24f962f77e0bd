"""make-data writes mp4 + JSON that decode back to the clips and labels it rendered."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from avmoe.cli import main
from avmoe.data.synthetic import SceneDataset
from avmoe.data.synthetic.make_data import generate, generated_indices, load_generated

SIZE, RATE, SEGMENTS, FPS = 32, 16000, 4, 4


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("made")
    generate("shapes", "ms3", "val", 2, out, frame_size=SIZE, fps=FPS, segments=SEGMENTS, sample_rate=RATE,
             start_index=3, progress=False)
    return out


def test_writes_every_file(written):
    names = {p.name for p in written.iterdir()}
    assert {"3.mp4", "3.json", "3.masks.npz", "4.mp4", "4.json", "4.masks.npz", "classes.json",
            "ATTRIBUTION.txt"} == names
    assert generated_indices(written) == [3, 4]
    assert json.loads((written / "classes.json").read_text())["classes"][:2] == ["circle", "square"]


def test_json_labels_are_the_rendered_labels(written):
    clip = SceneDataset("shapes", "ms3", "val", 5, SIZE, RATE, SEGMENTS)[4]
    record = json.loads((written / "4.json").read_text())
    assert (record["split"], record["index"], record["seed"]) == ("val", 4, SceneDataset(
        "shapes", "ms3", "val", 5).seed(4))
    assert record["labels"]["ave"] == clip.labels["ave"].tolist()
    assert record["labels"]["qa"] == clip.labels["qa"]
    assert record["carrier"] == clip.meta["carrier"] and record["scene"] == clip.meta["scene"]
    for second, classes in enumerate(record["labels"]["avvp"]["audio"]):
        assert classes == torch.nonzero(clip.labels["avvp"]["audio"][second]).flatten().tolist()


def test_decoded_clip_matches_the_rendered_one(written):
    clip = SceneDataset("shapes", "ms3", "val", 5, SIZE, RATE, SEGMENTS)[4]
    loaded = load_generated(written, 4)
    assert loaded.frames.shape == clip.frames.shape and loaded.audio.shape == clip.audio.shape
    assert (loaded.frames - clip.frames).abs().mean() < 0.025  # H.264 at a small size; a frame off is ~0.03
    assert torch.equal(loaded.labels["masks"], clip.labels["masks"])
    assert torch.equal(loaded.labels["ave"], clip.labels["ave"])
    assert loaded.labels["qa"] == clip.labels["qa"]
    assert loaded.meta["carrier"] == clip.meta["carrier"] and loaded.meta["index"] == 4
    assert torch.allclose(_rms(loaded), _rms(clip), rtol=0.1, atol=1e-3)  # AAC keeps the loudness per second


def _rms(clip) -> torch.Tensor:
    return clip.audio.pow(2).mean(dim=1).sqrt()


def test_reading_at_another_size_and_length(written):
    loaded = load_generated(written, 3, frame_size=48, sample_rate=8000, segments=3)
    assert loaded.frames.shape == (3, 3, 48, 48) and loaded.audio.shape == (3, 8000)
    assert loaded.labels["masks"].shape == (3, 48, 48)
    full = load_generated(written, 3)
    resized = torch.nn.functional.interpolate(full.labels["masks"][None, :3], size=(48, 48), mode="nearest")[0]
    assert torch.equal(loaded.labels["masks"], resized)


def test_cli_writes_clips_and_a_preview(tmp_path):
    out, preview = tmp_path / "clips", tmp_path / "sheet.png"
    code = main(["make-data", "--world", "shapes", "--task", "avqa", "--split", "test", "--n", "2", "--out", str(out),
                 "--frame-size", "32", "--fps", "2", "--segments", "3", "--sample-rate", "8000",
                 "--preview", str(preview)])
    assert code == 0
    assert generated_indices(out) == [0, 1]
    sheet = Image.open(preview)
    assert sheet.width > 3 * 96 and sheet.height > 2 * 96
    assert np.asarray(sheet).std() > 10
    assert "MIT" in (out / "ATTRIBUTION.txt").read_text()
