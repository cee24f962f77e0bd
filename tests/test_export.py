import json

import torch
from safetensors.torch import save_file

import avmoe
from avmoe.backbones import build_backbone
from avmoe.config import BackboneConfig
from avmoe.export import export
from avmoe.model import build_model


def test_export_writes_fp16_weights_and_relative_shared_backbones(tmp_path):
    paths = {}
    for stream, name in (("visual", "swinv2-tiny"), ("audio", "htsat-tiny")):
        state = build_backbone(BackboneConfig(name)).weights_module().state_dict()
        paths[stream] = tmp_path / f"{stream}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(paths[stream]))
    model = build_model("tiny-ave", segments=2, **{f"{s}.weights": str(p) for s, p in paths.items()}).eval()
    for name, p in model.named_parameters():
        if name.endswith("gate"):
            p.data.fill_(0.4)
    avmoe.save(model, tmp_path / "run", card={"test": {"av": {"accuracy": 1.0}}})
    out = export(tmp_path / "run", tmp_path / "assets" / "models" / "ave-avmoe", tmp_path / "assets" / "backbones")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["visual"]["weights"] == "../../backbones/visual.safetensors"
    assert json.loads((out / "card.json").read_text())["test"]["av"]["accuracy"] == 1.0
    stored = avmoe.checkpoint.read_state_dict(out / "model.safetensors")
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    assert not any(k.startswith(("encoder.visual.", "encoder.audio.")) for k in stored)  # backbones are shared
    loaded = avmoe.load(out)
    batch = {"frames": torch.rand(1, 2, 3, 96, 96), "audio": 0.1 * torch.randn(1, 2, 32000)}
    with torch.no_grad():
        a, b = model(batch).outputs, loaded(batch).outputs
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-2, rtol=2e-2)  # fp16 storage


def test_export_of_an_unfinished_run_warns_that_it_has_no_card(tmp_path, caplog):
    avmoe.save(build_model("tiny-ave", segments=2), tmp_path / "run")  # a best/ saved before the test evaluation
    with caplog.at_level("WARNING", logger="avmoe.export"):
        out = export(tmp_path / "run", tmp_path / "out", tmp_path / "backbones")
    assert not (out / "card.json").exists()
    assert "has no card.json (has its run finished?)" in caplog.text
