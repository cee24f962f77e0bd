"""SceneDataset: determinism, split disjointness, rendering options and clear errors."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from avmoe.data.synthetic import SPLITS, TASKS, Scene, SceneDataset, get_world, scene_seed

SMALL = dict(frame_size=32, sample_rate=8000, segments=4)

DIGEST = """
import hashlib, json, sys
from avmoe.data.synthetic import SceneDataset
h = hashlib.sha256()
for task in ("ave", "avqa"):
    clip = SceneDataset("shapes", task, "val", 2, frame_size=32, sample_rate=8000, segments=4)[1]
    h.update(clip.frames.numpy().tobytes()); h.update(clip.audio.numpy().tobytes())
    h.update(json.dumps([clip.labels["qa"], clip.meta["scene"]], sort_keys=True).encode())
print(h.hexdigest())
"""


def _digest_here() -> str:
    h = hashlib.sha256()
    for task in ("ave", "avqa"):
        clip = SceneDataset("shapes", task, "val", 2, **SMALL)[1]
        h.update(clip.frames.numpy().tobytes())
        h.update(clip.audio.numpy().tobytes())
        h.update(json.dumps([clip.labels["qa"], clip.meta["scene"]], sort_keys=True).encode())
    return h.hexdigest()


@pytest.mark.parametrize("task", TASKS)
def test_same_index_gives_the_same_clip(task):
    a, b = SceneDataset("shapes", task, "train", 3, **SMALL)[2], SceneDataset("shapes", task, "train", 3, **SMALL)[2]
    assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)
    assert torch.equal(a.labels["masks"], b.labels["masks"]) and torch.equal(a.labels["ave"], b.labels["ave"])
    assert a.labels["qa"] == b.labels["qa"] and a.meta == b.meta
    assert a.meta["split"] == "train" and a.meta["index"] == 2 and a.meta["world"] == "shapes"


def test_clips_do_not_depend_on_the_process_or_its_hash_seed():
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest_here()


def test_splits_never_share_a_seed():
    seeds = [scene_seed("shapes", task, split, i) for task in TASKS for split in SPLITS for i in range(300)]
    assert len(set(seeds)) == len(seeds)


def test_splits_give_different_clips():
    scenes = {split: [json.dumps(SceneDataset("shapes", "ave", split, 50, segments=4).scene(i).to_dict())
                      for i in range(50)] for split in SPLITS}
    assert len(set(scenes["train"]) | set(scenes["val"]) | set(scenes["test"])) == 150
    clips = [SceneDataset("shapes", "s4", split, 1, **SMALL)[0] for split in SPLITS]
    assert not torch.equal(clips[0].frames, clips[1].frames) and not torch.equal(clips[1].frames, clips[2].frames)


def test_scene_round_trips_through_json():
    scene = SceneDataset("shapes", "avqa", "train", 1, segments=5).scene(0)
    assert Scene.from_dict(json.loads(json.dumps(scene.to_dict()))) == scene


def test_rendering_fewer_segments_gives_the_first_seconds():
    world = get_world("shapes")
    scene = SceneDataset("shapes", "ms3", "train", 1, segments=6).scene(0)
    full, short = world.render(scene, 32, 8000), world.render(scene, 32, 8000, segments=4)
    assert short.num_segments == 4
    assert torch.equal(short.frames, full.frames[:4])
    assert torch.equal(short.labels["masks"], full.labels["masks"][:4])
    assert torch.equal(short.labels["ave"], full.labels["ave"][:4])
    assert torch.equal(short.labels["avvp"]["audio"], full.labels["avvp"]["audio"][:4])
    assert short.meta["carrier"] == full.meta["carrier"][:4]


def test_video_frames_at_segment_centres_are_the_clip_frames():
    world = get_world("shapes")
    scene = SceneDataset("shapes", "s4", "train", 1, segments=3).scene(0)
    clip, video = world.render(scene, 32, 8000, fps=4)
    assert video.frames.shape == (12, 32, 32, 3) and video.frames.dtype == np.uint8
    centres = video.frames[2::4].astype(np.float32) / 255
    assert np.abs(centres - clip.frames.permute(0, 2, 3, 1).numpy()).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(video.masks[2::4], clip.labels["masks"].numpy() > 0.5)
    assert video.audio.shape == (3 * 8000,) and np.abs(video.audio).max() <= 1.0
    with pytest.raises(ValueError, match="even"):
        world.render(scene, 32, 8000, fps=5)


def test_bad_names_are_reported_with_the_choices():
    with pytest.raises(ValueError, match=r"known worlds: \['shapes', 'stamps'\]"):
        get_world("cubes")
    with pytest.raises(ValueError, match="choose one of"):
        SceneDataset("shapes", "avs", "train", 1)
    with pytest.raises(ValueError, match="choose one of"):
        SceneDataset("shapes", "ave", "dev", 1)
    with pytest.raises(IndexError):
        SceneDataset("shapes", "ave", "train", 2)[2]


def test_clip_meta_describes_the_clip():
    clip = SceneDataset("shapes", "avvp", "val", 1, **SMALL)[0]
    assert clip.frames.shape == (4, 3, 32, 32) and clip.audio.shape == (4, 8000) and clip.sample_rate == 8000
    assert clip.frames.min() >= 0 and clip.frames.max() <= 1
    assert clip.meta["classes"] == get_world("shapes").classes
    assert len(clip.meta["carrier"]) == 4 and clip.meta["attribution"]
    assert clip.labels["avvp"]["audio"].shape == (4, len(clip.meta["classes"]))


def test_cached_clips_equal_rendered_ones_and_edits_do_not_reach_the_cache():
    plain = SceneDataset("shapes", "avqa", "train", 2, frame_size=32, sample_rate=8000, segments=2)
    cached = SceneDataset("shapes", "avqa", "train", 2, frame_size=32, sample_rate=8000, segments=2, cache=True)
    first = cached[1]
    first.labels["qa"] = []
    first.frames.zero_()
    again, reference = cached[1], plain[1]
    assert len(cached._cache) == 1
    assert torch.equal(again.frames, reference.frames) and torch.equal(again.audio, reference.audio)
    assert again.labels["qa"] == reference.labels["qa"] != []
