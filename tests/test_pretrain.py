import json

import pytest
import torch
from safetensors.torch import load_file

from avmoe.backbones import build_backbone
from avmoe.config import get_preset
from avmoe.data.synthetic import SceneDataset
from avmoe.pretrain import SCENES, _frames_and_targets, pretrain


def test_pretrained_backbone_is_saved_and_loads_as_frozen_weights(tmp_path):
    card = pretrain("audio", "shapes", tmp_path, sizes=(4, 2), epochs=1, batch_size=2, workers=0)
    assert (tmp_path / "audio.safetensors").is_file()
    assert json.loads((tmp_path / "audio.json").read_text())["backbone"] == "htsat-tiny"
    assert 0.0 <= card["validation"]["top1"] <= 100.0 and len(card["history"]) == 1
    cfg = get_preset("tiny-ave", **{"audio.weights": str(tmp_path / "audio.safetensors")})
    loaded = build_backbone(cfg.audio).weights_module().state_dict()
    saved = load_file(str(tmp_path / "audio.safetensors"))
    assert saved.keys() == loaded.keys()
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k


def test_init_continues_from_the_stored_backbone(tmp_path):
    first = tmp_path / "first"
    pretrain("visual", "shapes", first, sizes=(2, 2), epochs=1, batch_size=2, workers=0, segments=2)
    again = tmp_path / "again"
    card = pretrain("visual", "shapes", again, sizes=(2, 2), epochs=1, batch_size=2, workers=0, segments=2, lr=0.0,
                    scenes="cluttered", init=first / "visual.safetensors")
    assert card["scenes"] == "cluttered" and card["init"]["weights"] == str(first / "visual.safetensors")
    assert card["init"]["card"]["scenes"] == "clean"  # the card of the run it continued, kept whole
    before, after = load_file(str(first / "visual.safetensors")), load_file(str(again / "visual.safetensors"))
    assert before.keys() == after.keys()
    for k in before:  # a step at learning rate 0 moves nothing, so what was saved is what was loaded
        assert torch.equal(before[k], after[k]), k


def test_cluttered_scenes_label_every_visible_object_and_clean_ones_show_one():
    counts = {}
    for scenes in ("clean", "cluttered"):
        ds = SceneDataset("shapes", "s4", "train", 24, 32, 16000, 2, config=SCENES[scenes])
        _, targets = _frames_and_targets([ds[i] for i in range(len(ds))], "visual")
        counts[scenes] = targets[:, :-1].sum(-1)
    assert counts["clean"].eq(1).all()
    assert counts["cluttered"].ge(1).all() and counts["cluttered"].max() == 3 and counts["cluttered"].mean() > 2


def test_unknown_scene_mix_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scenes 'busy'; choose one of clean, cluttered"):
        pretrain("visual", "shapes", tmp_path, sizes=(2, 2), scenes="busy")
