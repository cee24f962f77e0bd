"""AVSBench S4 / MS3 readers on generated PNG frames, masks and wavs in the official layout.

No AVSBench annotation file is public (the data comes on request), so the meta csvs here are written from the
official loaders' description: comma-separated with `name`, `split` (and `category` for S4) columns.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avmoe.data.datasets import DatasetLayoutError, MS3Dataset, S4Dataset, open_dataset
from avmoe.data.datasets.avsbench import parse_meta

from dataset_media import amp, grey, level, make_wav

SIZE = 32  # generated PNG side (AVSBench's are 224)
S4_CSV = "name,split,category\nvid_a,train,dog_barking\nvid_b,test,playing_piano\nvid_c,val,dog_barking\n"
MS3_CSV = "name,split\nms_a,train\nms_b,test\n"


def box(i: int) -> np.ndarray:
    """The ground-truth mask of frame i: a box whose width grows with i (uint8 0/255, as AVSBench's)."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[4:12, 2:2 + 4 * i] = 255
    return mask


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_s4(root: Path, with_all_train_masks: bool = False) -> Path:
    base = root / "Single-source"
    base.mkdir(parents=True)
    (base / "s4_meta_data.csv").write_text(S4_CSV)
    data = base / "s4_data"
    for name, split, category in [line.split(",") for line in S4_CSV.splitlines()[1:]]:
        for i in range(1, 6):
            write_png(data / "visual_frames" / split / category / name / f"{name}_{i}.png",
                      np.full((SIZE, SIZE, 3), level(i), np.uint8))
            if split != "train" or i == 1 or with_all_train_masks:
                write_png(data / "gt_masks" / split / category / name / f"{name}_{i}.png", box(i))
        make_wav(data / "audio_wav" / split / category / f"{name}.wav", seconds=5, rate=16000)
    return root


def make_ms3(root: Path) -> Path:
    base = root / "Multi-sources"
    base.mkdir(parents=True)
    (base / "ms3_meta_data.csv").write_text(MS3_CSV)
    data = base / "ms3_data"
    for name, split in [line.split(",") for line in MS3_CSV.splitlines()[1:]]:
        for i in range(1, 6):
            frame = np.full((SIZE, SIZE, 3), level(i), np.uint8)
            write_png(data / "visual_frames" / name / f"{name}.mp4_{i}.png", frame)
            write_png(data / "gt_masks" / split / name / f"{name}_{i}.png", box(i))
        make_wav(data / "audio_wav" / split / f"{name}.wav", seconds=5, rate=16000, channels=1)
    return root


def test_s4_train_has_only_the_first_mask(tmp_path: Path) -> None:
    # Even where more masks exist on disk, train reads mask 1 only, as the official S4 loader.
    ds = S4Dataset(make_s4(tmp_path, with_all_train_masks=True), "train", frame_size=SIZE)
    assert len(ds) == 1
    clip = ds[0]
    assert clip.frames.shape == (5, 3, SIZE, SIZE) and clip.audio.shape == (5, 32000)
    assert grey(clip.frames) == pytest.approx([level(i) for i in range(1, 6)], abs=0.1)
    assert clip.labels["mask_valid"].tolist() == [True, False, False, False, False]
    assert torch.equal(clip.labels["masks"][0], torch.from_numpy(box(1) / 255.0).float())
    assert clip.labels["masks"][1:].sum() == 0
    assert clip.meta["video_id"] == "vid_a" and clip.meta["category"] == "dog_barking"
    assert clip.meta["classes"] == ["dog_barking", "playing_piano"]
    # A 16 kHz stereo wav, resampled to 32 kHz: second k holds the constant amp(k).
    assert clip.audio[:, 8000:24000].mean(dim=1).tolist() == pytest.approx([amp(k) for k in range(5)], abs=2e-4)


def test_s4_test_has_all_masks_resized(tmp_path: Path) -> None:
    clip = S4Dataset(make_s4(tmp_path), "test", frame_size=SIZE // 2)[0]
    masks = clip.labels["masks"]
    assert masks.shape == (5, SIZE // 2, SIZE // 2) and clip.labels["mask_valid"].all()
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert masks.sum(dim=(1, 2)).tolist() == [box(i).astype(bool).sum() / 4 for i in range(1, 6)]
    assert clip.frames.shape == (5, 3, SIZE // 2, SIZE // 2)


def test_ms3_reads_its_own_layout(tmp_path: Path) -> None:
    ds = open_dataset("ms3", make_ms3(tmp_path) / "Multi-sources", "train", frame_size=SIZE, sample_rate=16000)
    assert isinstance(ds, MS3Dataset) and len(ds) == 1
    clip = ds[0]
    assert clip.labels["mask_valid"].all() and clip.audio.shape == (5, 16000)
    assert [m.sum().item() for m in clip.labels["masks"]] == [box(i).astype(bool).sum() for i in range(1, 6)]
    assert grey(clip.frames) == pytest.approx([level(i) for i in range(1, 6)], abs=0.1)
    assert clip.meta["source"].endswith("ms3_data/visual_frames/ms_a") and clip.meta["classes"] == []


def test_missing_files_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"S4 meta csv not found: .*s4_meta_data\.csv") as err:
        S4Dataset(tmp_path, "test")
    assert "s4_data/gt_masks/<split>/<category>/<name>/<name>_<i>.png" in str(err.value)
    root = make_s4(tmp_path)
    (root / "Single-source/s4_data/gt_masks/test/playing_piano/vid_b/vid_b_3.png").unlink()
    ds = S4Dataset(root, "test")
    with pytest.raises(DatasetLayoutError, match=r"S4 mask not found: .*vid_b/vid_b_3\.png"):
        ds[0]
    (root / "Single-source/s4_data/audio_wav/test/playing_piano/vid_b.wav").unlink()
    with pytest.raises(DatasetLayoutError, match=r"S4 audio file not found: .*vid_b\.wav"):
        ds[0]


def test_meta_csv_columns() -> None:
    rows = parse_meta("vid,split,category\nx,test,cat\n", need_category=True)  # no "name": the first column
    assert [(r.name, r.split, r.category) for r in rows] == [("x", "test", "cat")]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['category'\]"):
        parse_meta(MS3_CSV, "ms3.csv", need_category=True)
