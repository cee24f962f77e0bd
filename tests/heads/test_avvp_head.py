"""AVVP head: shapes and probability ranges, the official weak-label loss, decode = the metric's decisions."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avmoe.config import get_preset
from avmoe.heads import AVVPHead, build_head
from avmoe.metrics import avvp_decisions
from tests.heads.head_fixtures import TINY_AUDIO, TINY_VISUAL, assert_no_leakage, assert_trains, random_features


@pytest.fixture
def head() -> AVVPHead:
    return build_head(get_preset("tiny-avvp"), TINY_VISUAL, TINY_AUDIO)


def test_shapes_and_probabilities(head: AVVPHead) -> None:
    with torch.no_grad():
        out = head(random_features(2, 10), {})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "global_prob": (2, 25), "a_prob": (2, 25), "v_prob": (2, 25),
        "a_frame_prob": (2, 10, 25), "v_frame_prob": (2, 10, 25)}
    for value in out.values():
        assert float(value.min()) >= 0 and float(value.max()) <= 1
    # MIL pooling: a video-level probability is a weighted mean of its frame probabilities.
    assert torch.all(out["a_prob"] <= out["a_frame_prob"].amax(dim=1) + 1e-6)
    assert torch.all(out["global_prob"] <= torch.maximum(out["a_frame_prob"], out["v_frame_prob"]).amax(1) + 1e-6)


def test_loss_trains_head(head: AVVPHead) -> None:
    y = torch.zeros(2, 25)
    y[0, [1, 7]] = 1
    y[1, 3] = 1
    losses = head.loss(head(random_features(2, 10), {}), {"avvp_weak": y})
    assert set(losses) == {"loss", "global", "audio", "visual"}
    assert_trains(head, losses)


def test_loss_values_with_visual_smoothing(head: AVVPHead) -> None:
    outputs = {name: torch.rand(2, 25) for name in ("global_prob", "a_prob", "v_prob")}
    y = (torch.rand(2, 25) > 0.7).float()
    losses = head.loss(outputs, {"avvp_weak": y})
    torch.testing.assert_close(losses["global"], F.binary_cross_entropy(outputs["global_prob"], y))
    torch.testing.assert_close(losses["audio"], F.binary_cross_entropy(outputs["a_prob"], y))
    torch.testing.assert_close(losses["visual"], F.binary_cross_entropy(outputs["v_prob"], 0.9 * y + 0.05))
    with pytest.raises(ValueError, match="avvp_weak"):
        head.loss(outputs, {"avvp_audio": torch.zeros(2, 10, 25)})


def test_decode_hand_made(head: AVVPHead) -> None:
    # Class 0 present at video level (0.5 counts: >= 0.5), class 1 absent; frame probs decide the seconds.
    outputs = {"global_prob": torch.tensor([[0.5, 0.4]]),
               "a_frame_prob": torch.tensor([[[0.9, 0.9], [0.2, 0.9], [0.5, 0.1]]]),
               "v_frame_prob": torch.tensor([[[0.1, 0.9], [0.6, 0.9], [0.49, 0.1]]])}
    pred = head.decode(outputs)
    assert pred["avvp_weak"].tolist() == [[True, False]]
    assert pred["avvp_audio"][0].tolist() == [[True, False], [False, False], [True, False]]
    assert pred["avvp_visual"][0].tolist() == [[False, False], [True, False], [False, False]]


def test_decode_matches_metric(head: AVVPHead) -> None:
    out = head(random_features(2, 10), {})
    pred = head.decode(out)
    for b in range(2):
        audio, visual = avvp_decisions(out["global_prob"][b].detach(), out["a_frame_prob"][b].detach(),
                                       out["v_frame_prob"][b].detach())
        assert (pred["avvp_audio"][b].numpy() == audio).all() and (pred["avvp_visual"][b].numpy() == visual).all()


def test_no_cross_sample_leakage(head: AVVPHead) -> None:
    assert_no_leakage(head)


def test_loss_accepts_pooled_probabilities_above_one(head: AVVPHead) -> None:
    # HAN's global pooling sums attention-weighted probabilities over both modalities, which can exceed 1.
    outputs = {"global_prob": torch.full((1, 25), 1.2), "a_prob": torch.full((1, 25), 0.5),
               "v_prob": torch.full((1, 25), 0.5)}
    losses = head.loss(outputs, {"avvp_weak": torch.ones(1, 25)})
    assert float(losses["global"]) == 0.0  # clamped to 1, the target
    assert torch.isfinite(losses["loss"])
