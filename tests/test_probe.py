"""Head warm-up: only the head trains, on the encoder's cached features; training then starts from it."""
import json

import pytest
import torch

from avmoe.config import get_preset
from avmoe.data.tasks import Collate, DataSpec, open_task_data
from avmoe.probe import cached_features, encode_for_head, warm_up_head
from avmoe.train import TrainConfig, build_for_data, train

SEGMENTS = 3


@pytest.fixture(scope="module")
def avvp():
    cfg = TrainConfig(preset="tiny-avvp", world="shapes", overrides={"segments": SEGMENTS})
    preset = get_preset("tiny-avvp", segments=SEGMENTS)
    data = open_task_data(DataSpec("avvp", "shapes", None, (8, 2, 2)), preset.frame_size, preset.sample_rate,
                          SEGMENTS, splits=("train",))
    torch.manual_seed(0)
    return build_for_data(cfg, data), data.splits["train"], Collate("avvp", data.classes)


def test_encode_for_head_gives_the_encoder_outputs_and_labels(avvp):
    model, clips, collate = avvp
    feats, labels = encode_for_head(model, clips, collate, batch_size=3, device=torch.device("cpu"))
    assert feats["visual"].shape[:2] == feats["audio"].shape[:2] == (8, SEGMENTS)
    assert labels["avvp_weak"].shape == (8, len(model.cfg.classes))
    batch = collate([clips[i] for i in range(8)])
    with torch.no_grad():
        direct = model.encoder(batch["frames"], batch["audio"])
    torch.testing.assert_close(feats["visual"], direct.visual)
    torch.testing.assert_close(labels["avvp_weak"], batch["avvp_weak"])


def test_warm_up_trains_the_head_and_nothing_else(avvp):
    model, clips, collate = avvp
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = warm_up_head(model, clips, collate, steps=40, batch_size=4, lr=3e-3, weight_decay=0.0, grad_clip=1.0,
                          seed=0, device=torch.device("cpu"))
    assert len(losses) == 10 and losses[-1] < losses[0]
    after = model.state_dict()
    moved = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith("head.") for k in moved), sorted(moved)[:5]


def test_avs_warm_up_caches_every_visual_stage_and_the_head_reads_them_as_it_reads_the_encoder():
    preset = get_preset("tiny-s4", segments=SEGMENTS)
    data = open_task_data(DataSpec("s4", "shapes", None, (4, 1, 1)), preset.frame_size, preset.sample_rate,
                          SEGMENTS, splits=("train",))
    torch.manual_seed(0)
    model = build_for_data(TrainConfig(preset="tiny-s4", world="shapes", overrides={"segments": SEGMENTS}), data)
    collate, clips = Collate("s4", data.classes), data.splits["train"]
    feats, labels = encode_for_head(model, clips, collate, batch_size=3, device=torch.device("cpu"))
    batch = collate([clips[i] for i in range(len(clips))])
    model.eval()
    with torch.no_grad():
        direct = model(batch).outputs["mask_logits"]
        cached = model.head(cached_features(feats), labels)["mask_logits"]
    assert sorted(feats) == ["audio"] + [f"visual_stage{i}" for i in range(4)]
    torch.testing.assert_close(cached, direct)
    losses = warm_up_head(model, clips, collate, steps=30, batch_size=2, lr=3e-3, weight_decay=0.0, grad_clip=1.0,
                          seed=0, device=torch.device("cpu"))
    assert losses[-1] < losses[0]


def test_training_with_warm_up_validates_the_warmed_head_first(tmp_path):
    train(TrainConfig(preset="tiny-ave", world="shapes", sizes=(4, 2, 2), epochs=1, batch_size=2, workers=0,
                      overrides={"segments": SEGMENTS}, head_warmup=20, out=str(tmp_path), eval_test=False))
    card = json.loads((tmp_path / "card.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [0, 1]
    assert card["history"][0]["step"] == 0 and card["config"]["head_warmup"] == 20
    state = torch.load(tmp_path / "last.pt", weights_only=True)["state"]
    assert len(state["head_warmup_loss"]) == 10
    assert card["train_seconds"] >= card["head_warmup_seconds"] == state["head_warmup_seconds"] > 0


def test_avqa_warm_up_caches_the_last_visual_stage_and_the_questions():
    preset = get_preset("tiny-avqa", segments=SEGMENTS)
    data = open_task_data(DataSpec("avqa", "shapes", None, (4, 1, 1)), preset.frame_size, preset.sample_rate,
                          SEGMENTS, splits=("train",))
    model = build_for_data(TrainConfig(preset="tiny-avqa", world="shapes", overrides={"segments": SEGMENTS}), data)
    collate = Collate("avqa", data.classes, data.question_words, model.cfg.head.question_len)
    clips = data.splits["train"]
    feats, labels = encode_for_head(model, clips, collate, batch_size=4, device=torch.device("cpu"))
    assert feats["visual_map"].shape[:2] == (len(clips), SEGMENTS) and feats["visual_map"].ndim == 5
    assert labels["question"].shape == (len(clips), model.cfg.head.question_len) and "answer" in labels
    losses = warm_up_head(model, clips, collate, steps=30, batch_size=4, lr=3e-3, weight_decay=0.0, grad_clip=1.0,
                          seed=0, device=torch.device("cpu"))
    assert losses[-1] < losses[0]
