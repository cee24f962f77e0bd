"""AVQA head: shapes, question padding, the match term and its in-batch negatives, decode, independence."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avmoe.config import get_preset
from avmoe.heads import AVQAHead, build_head
from avmoe.model import AVMoEFeatures
from tests.heads.head_fixtures import TINY_AUDIO, TINY_VISUAL, assert_trains, perturb_sample, random_features


@pytest.fixture
def head() -> AVQAHead:
    return build_head(get_preset("tiny-avqa"), TINY_VISUAL, TINY_AUDIO)


def _questions(B: int) -> torch.Tensor:
    q = torch.randint(1, 93, (B, 14))
    q[:, 6:] = 0  # trailing <pad>
    return q


def test_shapes(head: AVQAHead) -> None:
    head.eval()  # in training the returned attention weights carry dropout
    with torch.no_grad():
        out = head(random_features(2, 10), {"question": _questions(2)})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "answer_logits": (2, 42), "match_pos": (2, 10, 2), "match_neg": (2, 10, 2), "grounding": (2, 10, 3, 3),
        "visual_attention": (2, 10), "audio_attention": (2, 10)}
    torch.testing.assert_close(out["grounding"].sum(dim=(-2, -1)), torch.ones(2, 10))
    torch.testing.assert_close(out["visual_attention"].sum(-1), torch.ones(2))


def test_forward_needs_the_question(head: AVQAHead) -> None:
    with pytest.raises(ValueError, match="question"):
        head(random_features(1, 10), {})
    with pytest.raises(ValueError, match="question token"):
        head(random_features(1, 10), {"question": torch.full((1, 14), 93)})


def test_trailing_padding_is_ignored(head: AVQAHead) -> None:
    head.eval()
    feats = random_features(2, 10)
    short = _questions(2)[:, :6]
    with torch.no_grad():
        a = head(feats, {"question": short})["answer_logits"]
        b = head(feats, {"question": F.pad(short, (0, 8))})["answer_logits"]
    torch.testing.assert_close(a, b)


def test_loss_with_match_trains_head(head: AVQAHead) -> None:
    out = head(random_features(2, 10), {"question": _questions(2)})
    losses = head.loss(out, {"answer": torch.tensor([3, 41])})
    assert set(losses) == {"loss", "answer", "match"}
    torch.testing.assert_close(losses["loss"], losses["answer"] + 0.5 * losses["match"])
    pos, neg = out["match_pos"].flatten(0, 1), out["match_neg"].flatten(0, 1)
    target = torch.cat([torch.ones(20), torch.zeros(20)]).long()
    torch.testing.assert_close(losses["match"], F.cross_entropy(torch.cat([pos, neg]), target))
    assert_trains(head, losses)


def test_match_term_skipped_for_a_single_clip(head: AVQAHead) -> None:
    out = head(random_features(1, 10), {"question": _questions(1)})
    assert "match_neg" not in out
    losses = head.loss(out, {"answer": torch.tensor([7])})
    assert set(losses) == {"loss", "answer"}
    torch.testing.assert_close(losses["loss"], F.cross_entropy(out["answer_logits"], torch.tensor([7])))
    with pytest.raises(ValueError, match="answer"):
        head.loss(out, {"answer": torch.tensor([42])})


def test_negatives_are_the_previous_clips_frames(head: AVQAHead) -> None:
    head.eval()
    feats = random_features(3, 10)
    rolled = AVMoEFeatures(feats.visual, feats.audio, feats.visual_stages[:-1] + [feats.visual_stages[-1].roll(1, 0)],
                           feats.audio_stages, feats.layers, feats.trace, feats.balance_loss)
    q = {"question": _questions(3)}
    with torch.no_grad():
        torch.testing.assert_close(head(feats, q)["match_neg"], head(rolled, q)["match_pos"])


def test_decode(head: AVQAHead) -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0, 3.0, 2.0, 4.0, -1.0], [9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    pred = head.decode({"answer_logits": logits})
    assert pred["answer"].tolist() == [1, 0]
    assert pred["top5"][0].tolist() == [1, 5, 3, 4, 2]
    probs = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(pred["top5_probs"][0], probs[0, [1, 5, 3, 4, 2]])
    assert torch.all(pred["top5_probs"][:, :-1] >= pred["top5_probs"][:, 1:])


def test_no_cross_sample_leakage_except_negatives(head: AVQAHead) -> None:
    head.eval()
    feats = random_features(3, 10)
    q = {"question": _questions(3)}
    with torch.no_grad():
        a, b = head(feats, q), head(perturb_sample(feats, 0), q)
    for key in a:
        if key == "match_neg":  # sample 1's negatives are sample 0's frames; sample 2's are not
            torch.testing.assert_close(a[key][2], b[key][2], rtol=0, atol=1e-6)
            assert not torch.allclose(a[key][1], b[key][1])
            continue
        for i in (1, 2):
            torch.testing.assert_close(a[key][i], b[key][i], rtol=0, atol=1e-6)
        assert not torch.allclose(a[key][0], b[key][0])
