"""Integration: a few training steps on the shapes world, checkpoints, exact resume, and evaluation."""
import json
import shutil

import pytest
import torch

import avmoe
from avmoe.cli import main
from avmoe.data.tasks import DataSpec, open_task_data
from avmoe.layers import Router
from avmoe.train import TrainConfig, build_for_data, lr_at, modality_dropout, param_groups, train

SMALL = dict(preset="tiny-ave", world="shapes", sizes=(8, 4, 4), epochs=2, batch_size=2, accum=2, workers=0,
             lr=3e-3, seed=5, overrides={"segments": 3})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = train(TrainConfig(out=str(out), conditions=("av", "visual-only"), **SMALL))
    return out, result


def test_a_run_writes_model_card_logs_and_checkpoints(full_run):
    out, result = full_run
    assert result["steps"] == 4  # 8 clips / batch 2 = 4 batches, accumulated by 2 -> 2 steps per epoch
    for name in ("last.pt", "log.csv", "card.json", "best/model.safetensors", "best/config.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text())
    assert set(card["test"]) == {"av", "visual-only"}
    assert 0.0 <= card["test"]["av"]["accuracy"] <= 100.0
    assert card["data"]["world"] == "shapes"
    model = avmoe.load(out / "best")
    assert model.cfg.classes and model.cfg.head.num_classes == len(model.cfg.classes)


def test_training_changes_adapters_but_no_backbone_weight_or_statistic(full_run):
    out, _ = full_run
    trained = avmoe.load(out / "best")
    fresh = avmoe.build_model(trained.cfg)  # same config, untrained: its gates are still zero
    t, f = trained.state_dict(), fresh.state_dict()
    backbone = [k for k in t if k.startswith(("encoder.visual.", "encoder.audio."))]
    assert any("bn0.running_mean" in k for k in backbone)  # HTS-AT's BatchNorm statistics are among them
    stored = avmoe.checkpoint.read_state_dict(out / "best" / "model.safetensors")
    ckpt = torch.load(out / "last.pt", weights_only=True)["model"]
    assert not any(k.startswith(("encoder.visual.", "encoder.audio.")) for k in ckpt)
    for k in backbone:
        torch.testing.assert_close(stored[k], t[k])
    assert any(not torch.equal(t[k], f[k]) for k in t if "adapters" in k and k.endswith("gate"))


def test_resume_after_a_pause_gives_the_same_weights(full_run, tmp_path):
    out, _ = full_run
    paused = train(TrainConfig(out=str(tmp_path), pause_after=3, eval_test=False, **SMALL))
    assert paused == {"paused_at_step": 3}
    train(TrainConfig(out=str(tmp_path), eval_test=False, **SMALL), resume=True)
    a = torch.load(out / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=0, rtol=0)


def test_schedule_and_modality_dropout():
    assert lr_at(0, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    frames, audio = torch.rand(64, 2, 3, 8, 8), torch.randn(64, 2, 100)
    f, a = modality_dropout(frames, audio, 0.5, seed=1)
    no_audio = (a.abs().sum((1, 2)) == 0)
    changed_frames = (f != frames).flatten(1).any(1)
    assert 5 < int(no_audio.sum()) < 27 and 5 < int(changed_frames.sum()) < 27
    assert not (no_audio & changed_frames).any()  # one modality at most per clip
    f2, a2 = modality_dropout(frames, audio, 0.5, seed=1)
    assert torch.equal(f, f2) and torch.equal(a, a2)


def test_gate_lr_scale_zero_keeps_the_adapter_gates_at_zero(tmp_path):
    train(TrainConfig(out=str(tmp_path), eval_test=False, gate_lr_scale=0.0, **{**SMALL, "epochs": 1}))
    state = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    gates = [k for k in state if "adapters" in k and k.endswith("gate")]
    assert gates and all(float(state[k].abs().max()) == 0.0 for k in gates)  # zero-initialised and never moved


def test_head_lr_scale_zero_keeps_the_head_while_the_adapters_train(tmp_path):
    cfg = TrainConfig(out=str(tmp_path), eval_test=False, head_lr_scale=0.0, **{**SMALL, "epochs": 1})
    torch.manual_seed(cfg.seed)
    fresh = build_for_data(cfg, open_task_data(DataSpec("ave", "shapes", None, cfg.sizes), 96, 32000, 3,
                                               splits=("train",)))
    scales = {g["lr_scale"] for g in param_groups(fresh, cfg)}
    assert scales == {0.0, 1.0}
    train(cfg)
    state = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    start = fresh.state_dict()
    head = [k for k in state if k.startswith("head.") and "running" not in k and "num_batches" not in k]
    assert head and all(torch.equal(state[k], start[k]) for k in head)
    assert any(not torch.equal(state[k], start[k]) for k in state if "adapters" in k)


def test_eval_command_matches_the_card_and_runs_inference_top_k(full_run, tmp_path):
    out, _ = full_run
    model_dir = tmp_path / "model"
    shutil.copytree(out / "best", model_dir)
    shutil.copy(out / "card.json", model_dir / "card.json")  # as `avmoe export` does: eval reads the data from it
    card = json.loads((out / "card.json").read_text())
    assert main(["eval", "--model", str(model_dir), "--split", "test"]) == 0
    dense = json.loads((model_dir / "eval-test.json").read_text())["av"]
    assert dense["accuracy"] == pytest.approx(card["test"]["av"]["accuracy"])
    assert main(["eval", "--model", str(model_dir), "--split", "test", "--top-k", "1"]) == 0
    top1 = json.loads((model_dir / "eval-test-top1.json").read_text())["av"]
    assert top1["n"] == dense["n"] and 0.0 <= top1["accuracy"] <= 100.0
    assert {r.top_k for r in avmoe.load(model_dir, **{"router.top_k": 1}).modules() if isinstance(r, Router)} == {1}
    with pytest.raises(ValueError, match="top_k=3 exceeds num_experts=2"):
        main(["eval", "--model", str(model_dir), "--split", "test", "--top-k", "3"])


@pytest.mark.parametrize("variant", ["avmoe", "frozen"])
def test_after_a_head_warm_up_only_the_frozen_variant_may_select_the_untouched_encoder(tmp_path, variant):
    train(TrainConfig(preset="tiny-ave", world="shapes", sizes=(4, 2, 2), epochs=1, batch_size=2, workers=0, lr=3e-3,
                      overrides={"segments": 3}, variant=variant, head_warmup=10, out=str(tmp_path), eval_test=False))
    card = json.loads((tmp_path / "card.json").read_text())
    scores = [h["val"]["accuracy"] for h in card["history"]]
    assert [h["epoch"] for h in card["history"]] == [0, 1]
    gates = [v for k, v in avmoe.load(tmp_path / "best").state_dict().items() if k.endswith("gate")]
    if variant == "frozen":
        assert card["best_validation"] == max(scores) and not gates
    else:  # the warmed-up model has every gate at zero; the selected one has trained experts
        assert card["best_validation"] == scores[1]
        assert gates and any(g.abs().sum() > 0 for g in gates)
