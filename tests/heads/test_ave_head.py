"""AVE head: shapes, loss terms and their labels, decode rule, per-sample independence."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avmoe.config import get_preset
from avmoe.heads import AVEHead, build_head
from avmoe.metrics import ave_predictions
from tests.heads.head_fixtures import TINY_AUDIO, TINY_VISUAL, assert_no_leakage, assert_trains, random_features


@pytest.fixture
def head() -> AVEHead:
    return build_head(get_preset("tiny-ave"), TINY_VISUAL, TINY_AUDIO)


def test_shapes_without_labels(head: AVEHead) -> None:
    out = head(random_features(2, 10), {})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "is_event": (2, 10), "event_scores": (2, 28), "av_score": (2, 28),
        "visual_cas": (2, 10, 28), "audio_cas": (2, 10, 28)}


def test_fewer_segments_than_top_k(head: AVEHead) -> None:
    head.eval()
    out = head(random_features(1, 3), {})
    # With T = 3 < 4 the top-k mean is the mean over all segments.
    expected = (out["visual_cas"].mean(dim=1) + out["audio_cas"].mean(dim=1)) / 2
    torch.testing.assert_close(out["av_score"], expected)


def test_loss_trains_head(head: AVEHead) -> None:
    labels = torch.tensor([[-1, 3, 3, 3, -1, -1, -1, -1, -1, -1], [5] * 10])
    losses = head.loss(head(random_features(2, 10), {}), {"ave": labels})
    assert set(losses) == {"loss", "is_event", "av_score", "event"}
    torch.testing.assert_close(losses["loss"], losses["is_event"] + losses["av_score"] + losses["event"])
    assert_trains(head, losses)


def test_loss_values_and_video_without_event() -> None:
    head = AVEHead(visual_in=8, audio_in=8, num_classes=6, dim=16)
    outputs = {"is_event": torch.randn(3, 4), "event_scores": torch.randn(3, 6), "av_score": torch.randn(3, 6)}
    # Video 0: class 2 in 3 seconds and class 4 in one -> y = 2; video 1: no event; video 2: tie 1 vs 5 -> y = 1.
    labels = torch.tensor([[2, 2, 4, 2], [-1, -1, -1, -1], [5, 1, -1, -1]])
    losses = head.loss(outputs, {"ave": labels})
    y = torch.tensor([2, 1])
    keep = torch.tensor([0, 2])
    torch.testing.assert_close(losses["is_event"], F.binary_cross_entropy_with_logits(
        outputs["is_event"], (labels >= 0).float()))
    torch.testing.assert_close(losses["event"], F.cross_entropy(outputs["event_scores"][keep], y))
    torch.testing.assert_close(losses["av_score"], F.cross_entropy(outputs["av_score"][keep], y))
    # A batch where no video has an event: the CE terms are zero, the BCE term remains.
    none = head.loss(outputs, {"ave": torch.full((3, 4), -1)})
    assert float(none["event"]) == 0.0 and float(none["av_score"]) == 0.0 and float(none["is_event"]) > 0


def test_loss_needs_labels_and_valid_classes(head: AVEHead) -> None:
    out = head(random_features(1, 10), {})
    with pytest.raises(ValueError, match="'ave'"):
        head.loss(out, {"avvp_weak": torch.zeros(1, 25)})
    with pytest.raises(ValueError, match=r"must lie in \[-1, 28\)"):
        head.loss(out, {"ave": torch.full((1, 10), 28)})


def test_decode_background_and_confidence(head: AVEHead) -> None:
    # sigmoid(0) = 0.5 is not > 0.5, so a zero logit is background as in the official metric.
    outputs = {"is_event": torch.tensor([[2.0, 0.0, -1.0, 0.1]]), "event_scores": torch.tensor([[0.0, 3.0, 1.0]])}
    pred = head.decode(outputs)
    assert pred["ave"].tolist() == [[1, -1, -1, 1]]
    p_event = torch.sigmoid(outputs["is_event"][0])
    p_class = torch.softmax(outputs["event_scores"][0], dim=0)[1]
    torch.testing.assert_close(pred["confidence"][0], torch.stack(
        [p_event[0] * p_class, 1 - p_event[1], 1 - p_event[2], p_event[3] * p_class]))
    torch.testing.assert_close(pred["class_probs"].sum(-1), torch.ones(1))


def test_decode_matches_metric(head: AVEHead) -> None:
    out = head(random_features(3, 10), {})
    assert torch.equal(head.decode(out)["ave"], ave_predictions(out["event_scores"], out["is_event"]))


def test_no_cross_sample_leakage(head: AVEHead) -> None:
    assert_no_leakage(head)
