"""`train --data ave:PATH` trains on a dataset in the official AVE layout (real annotation rows, generated media)."""
import json
from pathlib import Path

from avmoe.data.datasets.ave import parse_annotations
from avmoe.train import TrainConfig, train

from dataset_media import copy_fixture, make_video


def test_train_and_evaluate_on_the_official_ave_layout(tmp_path: Path) -> None:
    root = copy_fixture("AVE", tmp_path / "AVE_root")
    ids = {e.video_id for split in ("trainSet", "valSet", "testSet")
           for e in parse_annotations((root / f"{split}.txt").read_text())}
    for vid in ids:
        make_video(root / "AVE" / f"{vid}.mp4", seconds=10, size=32)
    out = tmp_path / "run"
    result = train(TrainConfig(preset="tiny-ave", data=str(root), out=str(out), epochs=1, batch_size=2, workers=0,
                               conditions=("av",)))
    assert result["steps"] == 3  # 6 training rows, batch 2
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["root"] == str(root) and "accuracy" in card["test"]["av"]
    assert json.loads((out / "best" / "config.json").read_text())["head"]["num_classes"] == 28
