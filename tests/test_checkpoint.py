import os
import pickle

import pytest
import torch

import avmoe
from avmoe.backbones import build_backbone
from avmoe.checkpoint import CheckpointError, load_backbone_weights, read_state_dict
from avmoe.config import BackboneConfig
from avmoe.model import build_model


def _batch(cfg, B=2):
    g = torch.Generator().manual_seed(3)
    batch = {"frames": torch.rand(B, cfg.segments, 3, cfg.frame_size, cfg.frame_size, generator=g),
             "audio": 0.1 * torch.randn(B, cfg.segments, cfg.sample_rate, generator=g)}
    if cfg.task == "avqa":
        batch["question"] = torch.randint(1, cfg.head.question_vocab, (B, cfg.head.question_len), generator=g)
    return batch


@pytest.mark.parametrize("preset", ["tiny-ave", "tiny-avqa"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, preset):
    model = build_model(preset, segments=2).eval()
    for name, p in model.named_parameters():
        if name.endswith("gate"):
            p.data.fill_(0.3)
    batch = _batch(model.cfg)
    with torch.no_grad():
        before = model(batch).outputs
    avmoe.save(model, tmp_path / "m")
    loaded = avmoe.load(tmp_path / "m")
    assert loaded.cfg == model.cfg
    with torch.no_grad():
        after = loaded(batch).outputs
    assert before.keys() == after.keys()
    for k in before:
        torch.testing.assert_close(after[k], before[k], atol=0, rtol=0)


def test_shared_backbone_weights_are_referenced_not_copied(tmp_path):
    visual = build_backbone(BackboneConfig("swinv2-tiny"))
    torch.save(visual.weights_module().state_dict(), tmp_path / "visual.pth")
    model = build_model("tiny-ave", segments=2, **{"visual.weights": str(tmp_path / "visual.pth")})
    torch.testing.assert_close(model.encoder.visual.net.patch_embed.proj.weight, visual.net.patch_embed.proj.weight)
    avmoe.save(model, tmp_path / "m")
    stored = read_state_dict(tmp_path / "m" / "model.safetensors")
    assert not any(k.startswith("encoder.visual.") for k in stored)
    assert any(k.startswith("encoder.audio.") for k in stored)
    loaded = avmoe.load(tmp_path / "m")
    torch.testing.assert_close(loaded.encoder.visual.net.patch_embed.proj.weight, visual.net.patch_embed.proj.weight)


def test_timm_weights_load_from_a_local_file_with_a_report(tmp_path):
    source = build_backbone(BackboneConfig("swinv2-tiny"))
    state = source.weights_module().state_dict()
    state["head.fc.weight"] = torch.zeros(3, 3)  # a classifier the backbone does not have
    del state["norm.weight"]
    torch.save({"state_dict": state}, tmp_path / "swin.ckpt")
    target = build_backbone(BackboneConfig("swinv2-tiny"))
    report = load_backbone_weights(target, tmp_path / "swin.ckpt")
    assert report.unexpected == ["head.fc.weight"] and report.missing == ["norm.weight"]
    torch.testing.assert_close(target.net.layers[1].blocks[0].mlp.fc1.weight,
                               source.net.layers[1].blocks[0].mlp.fc1.weight)


def test_wrong_shapes_and_wrong_files_are_reported(tmp_path):
    target = build_backbone(BackboneConfig("swinv2-tiny"))
    torch.save({"patch_embed.proj.weight": torch.zeros(1, 2, 3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_backbone_weights(target, tmp_path / "bad.pth")
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="matches none"):
        load_backbone_weights(target, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Payload()}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(path)


def test_model_directory_errors(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        avmoe.load(tmp_path)
    model = build_model("tiny-ave", segments=2)
    avmoe.save(model, tmp_path / "m")
    cfg = model.cfg
    cfg.adapter.num_ua = 2  # the weights no longer fit the config
    cfg.save(tmp_path / "m" / "config.json")
    with pytest.raises(CheckpointError, match="does not fit its config"):
        avmoe.load(tmp_path / "m")


def test_official_htsat_checkpoint_layout_loads_with_prefix_and_front_end_keys(tmp_path):
    from avmoe.backbones.htsat import OFFICIAL_SKIPPED_KEYS

    source = build_backbone(BackboneConfig("htsat-tiny"))
    state = {"sed_model." + k: v for k, v in source.weights_module().state_dict().items()}
    for k in OFFICIAL_SKIPPED_KEYS:  # the official file also stores torchlibrosa's fixed STFT/mel kernels
        state["sed_model." + k] = torch.zeros(1)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "HTSAT_tiny.ckpt")
    target = build_backbone(BackboneConfig("htsat-tiny"))
    report = load_backbone_weights(target, tmp_path / "HTSAT_tiny.ckpt")
    assert report.missing == [] and report.unexpected == []
    x = 0.1 * torch.randn(2, 32000)
    torch.testing.assert_close(target.eval()(x), source.eval()(x))
