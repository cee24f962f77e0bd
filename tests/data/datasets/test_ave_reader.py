"""AVE reader: labels from real annotation rows, raw-video and pre-extracted media, layout errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avmoe.data.datasets import DatasetLayoutError, open_dataset
from avmoe.data.datasets.ave import CLASSES, AVEDataset, event_labels, parse_annotations

from dataset_media import FIXTURES, amp, copy_fixture, grey, level, make_frames, make_npy, make_video, make_wav

BG = -1


@pytest.fixture
def ave_root(tmp_path: Path) -> Path:
    return copy_fixture("AVE", tmp_path / "AVE_root")


def test_classes_are_the_categories_file() -> None:
    assert list(CLASSES) == (FIXTURES / "AVE" / "categories.txt").read_text().splitlines()


def test_parse_skips_the_header_and_keeps_every_row() -> None:
    events = parse_annotations((FIXTURES / "AVE" / "Annotations.txt").read_text())
    assert len(events) == 10
    first = events[0]
    assert (first.category, first.video_id, first.quality, first.start, first.end) == (
        "Church bell", "RUhOCu3LNXM", "good", 0, 10)
    # A category with a comma survives, and the same video can carry two events.
    assert [e.category for e in events if e.video_id == "-ccciEuH9FE"] == [
        "Male speech, man speaking", "Female speech, woman speaking"]


def test_labels_follow_the_start_end_convention() -> None:
    events = {(e.video_id, e.category): e
              for e in parse_annotations((FIXTURES / "AVE" / "trainSet.txt").read_text())}

    def labels(video_id: str, category: str) -> list[int]:
        return event_labels(events[(video_id, category)]).tolist()

    assert labels("MH3m4AwEcRY", "Church bell") == [BG] * 6 + [0, 0] + [BG] * 2  # 6&8: seconds 6 and 7
    assert labels("RUhOCu3LNXM", "Church bell") == [0] * 10
    assert labels("VWi2ENBuTbw", "Church bell") == [BG] * 10  # the real 0&0 row: no event second
    assert labels("-ccciEuH9FE", "Male speech, man speaking") == [BG] * 5 + [1] * 5
    assert labels("-ccciEuH9FE", "Female speech, woman speaking") == [BG] * 5 + [5] * 5
    assert labels("1cmo1SGxJnc", "Banjo") == [17] * 10


def test_splits_read_their_files_in_order(ave_root: Path) -> None:
    (ave_root / "video_frames").mkdir()
    sizes = {s: len(AVEDataset(ave_root, s, media="frames")) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 6, "val": 2, "test": 2, "all": 10}
    # trainSet.txt order; the video of the two speech rows is an item per row.
    ids = [e.video_id for e in AVEDataset(ave_root, "train", media="frames").items]
    assert ids == ["VWi2ENBuTbw", "RUhOCu3LNXM", "MH3m4AwEcRY", "-ccciEuH9FE", "-ccciEuH9FE", "1cmo1SGxJnc"]


def test_raw_video_clip(ave_root: Path) -> None:
    make_video(ave_root / "AVE" / "MH3m4AwEcRY.mp4", seconds=10)
    ds = AVEDataset(ave_root, "train", frame_size=24, sample_rate=16000)
    clip = ds[2]  # third row of trainSet.txt
    assert clip.frames.shape == (10, 3, 24, 24) and clip.audio.shape == (10, 16000)
    assert clip.labels["ave"].tolist() == [BG] * 6 + [0, 0] + [BG] * 2
    assert grey(clip.frames) == pytest.approx([level(k) for k in range(10)], abs=3)
    rms = clip.audio.pow(2).mean(dim=1).sqrt()
    assert rms.tolist() == pytest.approx([amp(k) / 2**0.5 for k in range(10)], rel=0.15)
    assert not clip.audio_missing
    assert clip.meta["source"].endswith("AVE/MH3m4AwEcRY.mp4")
    assert clip.meta["video_id"] == "MH3m4AwEcRY" and clip.meta["split"] == "train" and clip.meta["index"] == 2
    assert clip.meta["classes"] == list(CLASSES) and clip.meta["dataset"] == "ave"


def test_pre_extracted_frames_and_npy(ave_root: Path) -> None:
    # 16 extracted frames: the official linspace(1, 16, 10) picks frames 1 2 4 6 7 9 11 12 14 16.
    make_frames(ave_root / "video_frames" / "hOuyJFqb4JM", 16)
    make_npy(ave_root / "wave" / "hOuyJFqb4JM.npy", seconds=10)
    clip = AVEDataset(ave_root, "test", frame_size=8)[0]
    assert clip.frames.shape == (10, 3, 8, 8) and clip.audio.shape == (10, 32000)
    assert grey(clip.frames) == pytest.approx([level(j) for j in (1, 2, 4, 6, 7, 9, 11, 12, 14, 16)], abs=1)
    assert torch.allclose(clip.audio, torch.tensor([amp(k) for k in range(10)]).unsqueeze(1).expand(10, 32000))
    assert clip.labels["ave"].tolist() == [0] * 5 + [BG] * 5
    assert clip.meta["source"].endswith("video_frames/hOuyJFqb4JM")


def test_pre_extracted_wav_is_resampled(ave_root: Path) -> None:
    make_frames(ave_root / "video_frames" / "1cmo1SGxJnc", 10, pattern="{:06d}.jpg")
    make_wav(ave_root / "wave" / "1cmo1SGxJnc.wav", seconds=10, rate=16000)
    clip = AVEDataset(ave_root, "test", frame_size=8, sample_rate=32000)[1]
    assert clip.audio.shape == (10, 32000)
    assert clip.audio[:, 8000:24000].mean(dim=1).tolist() == pytest.approx([amp(k) for k in range(10)], abs=2e-4)
    assert grey(clip.frames) == pytest.approx([level(j) for j in range(1, 11)], abs=1)
    assert clip.labels["ave"].tolist() == [27] * 10  # Mandolin, the last class


def test_media_mode_chooses_the_source(ave_root: Path) -> None:
    make_video(ave_root / "AVE" / "hOuyJFqb4JM.mp4", seconds=10)
    make_frames(ave_root / "video_frames" / "hOuyJFqb4JM", 10)
    make_npy(ave_root / "wave" / "hOuyJFqb4JM.npy", seconds=10)
    assert AVEDataset(ave_root, "test", frame_size=8)[0].meta["source"].endswith(".mp4")
    assert AVEDataset(ave_root, "test", frame_size=8, media="frames")[0].meta["source"].endswith("hOuyJFqb4JM")


def test_missing_root_and_files_name_the_layout(tmp_path: Path, ave_root: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="root folder not found.*nowhere") as err:
        AVEDataset(tmp_path / "nowhere", "train")
    assert "Annotations.txt" in str(err.value) and "AVE/<VideoID>.mp4" in str(err.value)
    (ave_root / "valSet.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="AVE val annotation file not found: .*valSet.txt"):
        AVEDataset(ave_root, "val")
    with pytest.raises(DatasetLayoutError, match="media folder not found"):
        AVEDataset(ave_root, "train")
    (ave_root / "AVE").mkdir()
    ds = AVEDataset(ave_root, "train")
    with pytest.raises(DatasetLayoutError, match=r"no media for ave video 'VWi2ENBuTbw'.*AVE/VWi2ENBuTbw\.mp4"):
        ds[0]
    make_frames(ave_root / "video_frames" / "VWi2ENBuTbw", 3)
    with pytest.raises(DatasetLayoutError, match=r"audio for frames .* not found: .*wave/VWi2ENBuTbw\.npy or \.wav"):
        ds[0]


def test_bad_arguments_and_rows(ave_root: Path) -> None:
    with pytest.raises(ValueError, match="split='dev' is not one of"):
        AVEDataset(ave_root, "dev")
    with pytest.raises(ValueError, match="media='mp4' is not one of"):
        AVEDataset(ave_root, "train", media="mp4")
    with pytest.raises(ValueError, match="line 2: 'Bark&abc&good&x&4'"):
        parse_annotations("Category&VideoID&Quality&StartTime&EndTime\nBark&abc&good&x&4\n")
    with pytest.raises(ValueError, match="unknown AVE category 'Barking'"):
        parse_annotations("Barking&abc&good&0&4\n")
    (ave_root / "AVE").mkdir()
    with pytest.raises(IndexError, match="index 6 is out of range for 6 ave train items"):
        AVEDataset(ave_root, "train")[6]


def test_registry_opens_ave(ave_root: Path) -> None:
    (ave_root / "AVE").mkdir()
    ds = open_dataset("ave", ave_root, "val", frame_size=32)
    assert isinstance(ds, AVEDataset) and len(ds) == 2 and ds.frame_size == 32
    with pytest.raises(ValueError, match=r"unknown dataset 'avx'; choose one of \['ave', 'avqa', 'avvp', 'ms3', 's4'"):
        open_dataset("avx", ave_root)
