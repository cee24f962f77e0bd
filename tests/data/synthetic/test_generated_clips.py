"""GeneratedClips reads a make-data folder as a Dataset, in index order, at the requested size and length."""
from __future__ import annotations

import pytest
import torch

from avmoe.data.synthetic.make_data import GeneratedClips, generate, load_generated


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    generate("shapes", "ave", "test", 2, out, frame_size=32, fps=2, segments=3, sample_rate=8000, start_index=5,
             progress=False)
    generate("shapes", "ave", "test", 1, out, frame_size=32, fps=2, segments=3, sample_rate=8000, start_index=1,
             progress=False)
    return out


def test_items_are_the_generated_clips_in_index_order(folder):
    clips = GeneratedClips(folder)
    assert len(clips) == 3 and clips.indices == [1, 5, 6]
    for i, index in enumerate(clips.indices):
        clip, direct = clips[i], load_generated(folder, index)
        assert clip.meta["index"] == index
        assert torch.equal(clip.frames, direct.frames) and torch.equal(clip.labels["ave"], direct.labels["ave"])
    assert clips[-1].meta["index"] == 6
    with pytest.raises(IndexError, match="out of range for 3 clips"):
        clips[3]


def test_size_rate_and_length_are_passed_on(folder):
    clip = GeneratedClips(folder, frame_size=16, sample_rate=4000, segments=2)[0]
    assert clip.frames.shape == (2, 3, 16, 16) and clip.audio.shape == (2, 4000)
    assert clip.labels["masks"].shape == (2, 16, 16) and len(clip.meta["carrier"]) == 2


def test_a_folder_that_is_not_make_data_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a make-data folder"):
        GeneratedClips(tmp_path)
