"""LLP (AVVP) reader: weak and per-modality segment labels from real rows, both media paths, layout errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avmoe.data.datasets import DatasetLayoutError, LLPDataset, open_dataset
from avmoe.data.datasets.llp import CLASSES, parse_events, parse_weak

from dataset_media import FIXTURES, amp, copy_fixture, grey, level, make_frames, make_npy, make_video

C = {name: i for i, name in enumerate(CLASSES)}


@pytest.fixture
def llp_root(tmp_path: Path) -> Path:
    root = copy_fixture("LLP_AVVP", tmp_path / "LLP")
    (root / "video").mkdir()
    return root


def on(labels: torch.Tensor, name: str) -> list[int]:
    """Seconds in which class `name` is on in a [T, C] label."""
    return torch.nonzero(labels[:, C[name]]).flatten().tolist()


def test_classes_are_the_official_25_and_cover_the_files() -> None:
    assert len(set(CLASSES)) == 25 and CLASSES[:4] == ("Speech", "Car", "Cheering", "Dog")
    assert CLASSES[-1] == "Clapping"
    used = {c for f in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv")
            for v in parse_weak((FIXTURES / "LLP_AVVP" / f).read_text()) for c in v.weak}
    assert used <= set(CLASSES)


def test_parse_keeps_fractional_names_and_damaged_rows() -> None:
    train = parse_weak((FIXTURES / "LLP_AVVP" / "AVVP_train.csv").read_text())
    assert [(v.filename, v.youtube_id, v.weak) for v in train][2] == (
        "AP0061o0Nvk_101.8_111.8", "AP0061o0Nvk", ("Cello",))
    events = parse_events((FIXTURES / "LLP_AVVP" / "AVVP_eval_audio.csv").read_text())
    assert "KvIjsmANkxI_10_20`" in events and "Baby_cry_infant_cry" in events  # as in the release
    assert len(events["Ishr8cHsJkc_180_190"]) == 7


def test_train_split_has_weak_labels_only(llp_root: Path) -> None:
    make_video(llp_root / "video" / "BjCEufrlXm4_20_30.mp4", seconds=10)
    clip = LLPDataset(llp_root, "train", frame_size=16, sample_rate=16000)[0]
    avvp = clip.labels["avvp"]
    assert set(avvp) == {"weak"}
    assert torch.nonzero(avvp["weak"]).flatten().tolist() == [C["Speech"], C["Dog"]]
    assert clip.frames.shape == (10, 3, 16, 16) and clip.audio.shape == (10, 16000)
    assert grey(clip.frames) == pytest.approx([level(k) for k in range(10)], abs=3)
    assert clip.meta["video_id"] == "BjCEufrlXm4_20_30" and clip.meta["classes"] == list(CLASSES)


def test_test_split_segment_labels_by_hand(llp_root: Path) -> None:
    for video in parse_weak((llp_root / "AVVP_test_pd.csv").read_text()):
        make_frames(llp_root / "video_frames" / video.filename, 10)
        make_npy(llp_root / "wave" / f"{video.filename}.npy", seconds=10)
    ds = LLPDataset(llp_root, "test", frame_size=8, media="frames")
    labels = {clip.meta["video_id"]: clip.labels["avvp"] for clip in ds}
    blender = labels["KSRjje7GH44_60_70"]
    assert on(blender["audio"], "Blender") == [8, 9] and on(blender["audio"], "Speech") == list(range(8))
    assert on(blender["visual"], "Blender") == list(range(10)) and on(blender["visual"], "Speech") == []
    assert torch.nonzero(blender["weak"]).flatten().tolist() == [C["Speech"], C["Blender"]]
    mixed = labels["CaC2xvdLC34_250_260"]["audio"]
    assert on(mixed, "Violin_fiddle") == list(range(9)) and on(mixed, "Singing") == list(range(8))
    assert on(mixed, "Clapping") == [9] and on(mixed, "Speech") == []  # the real "9 9 Speech" row marks nothing
    assert on(labels["Ishr8cHsJkc_180_190"]["audio"], "Speech") == [5, 7]  # repeated rows change nothing
    assert on(labels["Ishr8cHsJkc_180_190"]["audio"], "Dog") == [1, 3, 8, 9]
    # Exact filename match, as the official eval: the backticked "0 1 Cat" row is lost.
    assert on(labels["KvIjsmANkxI_10_20"]["audio"], "Cat") == [3, 4, 5, 6, 8, 9]
    helicopter = labels["I8SDFfuMux8_30_40"]  # a test video with no audio rows in the release
    assert helicopter["audio"].sum() == 0 and on(helicopter["visual"], "Helicopter") == list(range(10))
    assert all(v["audio"].shape == (10, 25) and v["visual"].shape == (10, 25) for v in labels.values())


def test_val_split_and_extracted_media_by_youtube_id(llp_root: Path) -> None:
    # The official AVVP loader names extracted media by the bare youtube id.
    make_frames(llp_root / "video_frames" / "4O9rI-FpqLg", 10)
    make_npy(llp_root / "wave" / "4O9rI-FpqLg.npy", seconds=10)
    ds = LLPDataset(llp_root, "val", frame_size=8, media="frames")
    assert len(ds) == 2
    clip = ds[0]
    assert grey(clip.frames) == pytest.approx([level(j) for j in range(1, 11)], abs=1)
    assert clip.audio[:, 0].tolist() == pytest.approx([amp(k) for k in range(10)])
    avvp = clip.labels["avvp"]
    assert on(avvp["audio"], "Clapping") == list(range(10)) and on(avvp["visual"], "Cheering") == list(range(10))
    assert on(avvp["audio"], "Cheering") == []


def test_eval_files_are_required_for_val_and_test(llp_root: Path) -> None:
    (llp_root / "AVVP_eval_visual.csv").unlink()
    assert len(LLPDataset(llp_root, "train")) == 3
    with pytest.raises(DatasetLayoutError, match=r"LLP visual eval file not found: .*AVVP_eval_visual\.csv"):
        LLPDataset(llp_root, "test")


def test_bad_files_raise(llp_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown LLP class 'Barking'"):
        parse_weak("filename\tevent_labels\nabc_0_10\tBarking\n")
    with pytest.raises(ValueError, match="header .* is not the expected"):
        parse_weak("filename,event_labels\nabc_0_10,Dog\n")
    with pytest.raises(ValueError, match="line 2: .* has 3 tab-separated fields"):
        parse_weak("filename\tevent_labels\nabc_0_10\tDog\textra\n")
    with pytest.raises(ValueError, match="onset '0.5'"):
        parse_events("filename\tonset\toffset\tevent_labels\nabc_0_10\t0.5\t2\tDog\n")
    (llp_root / "video").rmdir()
    with pytest.raises(DatasetLayoutError, match=r"media folder not found.*LLP/video or .*LLP/video_frames"):
        open_dataset("avvp", llp_root, "train")
