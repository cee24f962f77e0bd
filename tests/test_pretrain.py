import json

import torch
from safetensors.torch import load_file

from avmoe.backbones import build_backbone
from avmoe.config import get_preset
from avmoe.pretrain import pretrain


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
