"""AVS head (S4 / MS3): pyramid and mask sizes, TPAVI, loss on annotated frames only, decode, independence."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avmoe.config import get_preset
from avmoe.heads import AVSHead, build_head
from avmoe.heads.avs import TPAVI
from tests.heads.head_fixtures import TINY_AUDIO, TINY_VISUAL, assert_trains, perturb_sample, random_features


@pytest.fixture
def head() -> AVSHead:
    return build_head(get_preset("tiny-s4"), TINY_VISUAL, TINY_AUDIO)


def _masks(B: int, T: int, size: int = 96) -> torch.Tensor:
    masks = torch.zeros(B, T, size, size)
    masks[..., size // 4: size // 2, size // 3: 2 * size // 3] = 1
    return masks


def test_build_per_task() -> None:
    s4 = build_head(get_preset("tiny-s4"), TINY_VISUAL, TINY_AUDIO)
    ms3 = build_head(get_preset("tiny-ms3"), TINY_VISUAL, TINY_AUDIO)
    assert (s4.task, s4.gamma, ms3.task, ms3.gamma) == ("s4", 0.05, "ms3", 0.1)
    assert s4.sizes == (24, 12, 6, 3)  # H/4 .. H/32 of the 96 px frames, as 56 .. 7 for 224 px
    paper = build_head(get_preset("tiny-s4", **{"head.mask_size": 224}), TINY_VISUAL, TINY_AUDIO)
    assert paper.sizes == (56, 28, 14, 7)


@pytest.mark.parametrize("mask_size", [0, 100])
def test_output_size(mask_size: int) -> None:
    head = build_head(get_preset("tiny-s4", **{"head.mask_size": mask_size}), TINY_VISUAL, TINY_AUDIO)
    side = mask_size or 96
    out = head(random_features(2, 5), {})
    assert set(out) == {"mask_logits"} and out["mask_logits"].shape == (2, 5, side, side)


def test_tpavi_matches_the_full_non_local_sum() -> None:
    block = TPAVI(dim=8, audio_dim=4)
    torch.nn.init.normal_(block.w_z_norm.weight)  # leave the zero-initialised (identity) start
    x, audio = torch.randn(2, 3, 8, 4, 5), torch.randn(2, 3, 4)
    # The official form: phi of the audio repeated over every position, an N x N affinity divided by N.
    B, T, D, h, w = x.shape
    xs = x.permute(0, 1, 3, 4, 2)
    theta = block.theta(xs).reshape(B, -1, D // 2)
    phi = block.phi(block.align(audio))[:, :, None, None].expand(B, T, h, w, D // 2).reshape(B, -1, D // 2)
    g = block.g(xs).reshape(B, -1, D // 2)
    y = (theta @ phi.transpose(1, 2)) / phi.shape[1] @ g
    y = block.w_z(y).reshape(B, T, h, w, D).permute(0, 4, 1, 2, 3)
    expected = block.norm(xs + block.w_z_norm(y).permute(0, 2, 3, 4, 1)).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(block(x, audio), expected)
    # Freshly built, the block is LayerNorm(x): the audio has no effect yet.
    fresh = TPAVI(dim=8, audio_dim=4)
    torch.testing.assert_close(fresh(x, audio), fresh(x, torch.randn(2, 3, 4)))


def test_loss_trains_head(head: AVSHead) -> None:
    losses = head.loss(head(random_features(2, 5), {}), {"masks": _masks(2, 5)})
    assert set(losses) == {"loss", "mask"}
    assert_trains(head, losses)


def test_loss_uses_only_annotated_frames(head: AVSHead) -> None:
    logits = torch.randn(2, 5, 96, 96)
    outputs = {"mask_logits": logits}
    masks = _masks(2, 5)
    valid = torch.zeros(2, 5, dtype=torch.bool)
    valid[:, 0] = True  # AVSBench S4 train: only the first frame is annotated
    loss = head.loss(outputs, {"masks": masks, "mask_valid": valid})["loss"]
    changed = masks.clone()
    changed[:, 1:] = torch.rand(2, 4, 96, 96).round()
    changed[1, 3] = float("nan")
    torch.testing.assert_close(head.loss(outputs, {"masks": changed, "mask_valid": valid})["loss"], loss)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], masks[:, 0])
    torch.testing.assert_close(loss, expected)
    # Without mask_valid every frame counts.
    all_frames = head.loss(outputs, {"masks": masks})["loss"]
    torch.testing.assert_close(all_frames, F.binary_cross_entropy_with_logits(logits, masks))
    none = head.loss(outputs, {"masks": masks, "mask_valid": torch.zeros(2, 5, dtype=torch.bool)})["loss"]
    assert float(none) == 0.0


def test_loss_resizes_logits_to_the_masks(head: AVSHead) -> None:
    logits = torch.randn(1, 5, 96, 96)
    masks = _masks(1, 5, size=48)
    loss = head.loss({"mask_logits": logits}, {"masks": masks})["loss"]
    small = F.interpolate(logits, size=(48, 48), mode="bilinear")
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(small, masks))
    with pytest.raises(ValueError, match="mask_valid"):
        head.loss({"mask_logits": logits}, {"masks": _masks(1, 5), "mask_valid": torch.ones(1, 4, dtype=torch.bool)})


def test_dice_loss_on_a_hand_computed_case() -> None:
    head = build_head(get_preset("tiny-s4", **{"head.dice_weight": 0.5}), TINY_VISUAL, TINY_AUDIO)
    # Two annotated 1x2 frames: probabilities (0.5, 0.5) against (1, 0), and (0.5, 0.5) against an empty mask.
    logits = torch.zeros(1, 3, 1, 2)
    masks = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]]])
    valid = torch.tensor([[True, True, False]])
    losses = head.loss({"mask_logits": logits}, {"masks": masks, "mask_valid": valid})
    dice = ((1 - (2 * 0.5 + 1) / (1 + 1 + 1)) + (1 - 1 / (1 + 0 + 1))) / 2  # 1/3 and 1/2
    torch.testing.assert_close(losses["dice"], torch.tensor(dice))
    torch.testing.assert_close(losses["mask"], torch.tensor(2.0).log())  # BCE at p = 0.5
    torch.testing.assert_close(losses["loss"], losses["mask"] + 0.5 * losses["dice"])
    perfect = head.loss({"mask_logits": (masks * 2 - 1) * 50}, {"masks": masks})
    assert float(perfect["dice"]) < 1e-6
    assert set(head.loss(head(random_features(2, 5), {}), {"masks": _masks(2, 5)})) == {"loss", "mask", "dice"}


def test_decode(head: AVSHead) -> None:
    logits = torch.tensor([[[[-1.0, 0.0], [1e-3, 5.0]]]])
    pred = head.decode({"mask_logits": logits})
    assert pred["masks"].tolist() == [[[[False, False], [True, True]]]]  # sigmoid(0) = 0.5 is not > 0.5
    torch.testing.assert_close(pred["mask_probs"], torch.sigmoid(logits))


def test_no_cross_sample_leakage(head: AVSHead) -> None:
    head.eval()
    feats = random_features(2, 5)
    with torch.no_grad():
        a, b = head(feats, {})["mask_logits"], head(perturb_sample(feats, 0), {})["mask_logits"]
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-5)
    assert not torch.allclose(a[0], b[0])
