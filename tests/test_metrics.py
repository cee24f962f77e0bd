"""Metric values on hand-computed cases; the arithmetic is in the comments."""
import math

import numpy as np
import pytest
import torch

from avmoe.data.sample import BACKGROUND
from avmoe.metrics import (
    AVEMetric,
    AVQAMetric,
    AVSMetric,
    AVVPMetric,
    ave_accuracy,
    ave_predictions,
    ave_segment_accuracy,
    avqa_accuracy,
    avvp_aggregate,
    avvp_decisions,
    avvp_scores_from_decisions,
    avvp_video_scores,
    f_score,
    mask_iou,
)

B = BACKGROUND


# ----------------------------------------------------------------------------------------------------------------- AVE


def test_ave_per_video_class_broadcast_and_strict_threshold():
    # One video, T=4, C=3. Video class = argmax([0.1, 2.0, 0.5]) = 1.
    # sigmoid(is_event) > 0.5: [2 -> yes, -1 -> no, 0 -> 0.5 not > 0.5, 3 -> yes] => pred [1, B, B, 1]
    scores = torch.tensor([[0.1, 2.0, 0.5]])
    is_event = torch.tensor([[2.0, -1.0, 0.0, 3.0]])
    assert ave_predictions(scores, is_event).tolist() == [[1, B, B, 1]]
    # labels [1, B, 2, 0]: correct, correct, wrong, wrong => 2/4 = 50 %
    assert ave_accuracy(scores, is_event, torch.tensor([[1, B, 2, 0]])) == pytest.approx(50.0)


def test_ave_tiny_positive_logit_is_background_in_float32():
    # sigmoid(1e-9) = 0.5 + 2.5e-10 rounds to exactly 0.5 in float32, so the official test calls it background.
    assert ave_predictions(np.zeros((1, 2)), np.array([[1e-9, 1e-3]])).tolist() == [[B, 0]]


def test_ave_per_segment_scores_and_numpy_inputs():
    # Two videos, T=2, C=2, one class per segment: argmaxes [[0, 1], [1, 1]]; all segments foreground.
    scores = np.array([[[3.0, 1.0], [0.0, 1.0]], [[0.0, 2.0], [1.0, 5.0]]])
    pred = ave_predictions(scores, np.ones((2, 2)))
    assert pred.tolist() == [[0, 1], [1, 1]]
    # labels [[0, 0], [1, B]] => correct: 1 + 1 = 2 of 4 = 50 %
    assert ave_segment_accuracy(pred, np.array([[0, 0], [1, B]])) == pytest.approx(50.0)


def test_ave_all_background_video():
    labels = torch.full((1, 10), B)
    # All-background video predicted all background (every is_event logit negative): 10/10 = 100 %.
    assert ave_accuracy(torch.randn(1, 28), torch.full((1, 10), -3.0), labels) == pytest.approx(100.0)
    # Same GT, every segment called an event: 0/10 = 0 %.
    assert ave_accuracy(torch.randn(1, 28), torch.full((1, 10), 3.0), labels) == 0.0


def test_ave_metric_pools_segments_not_batches():
    metric = AVEMetric()
    # Batch 1 (1 video, T=4): 2/4 correct (the first test's case).
    metric.update(torch.tensor([[0.1, 2.0, 0.5]]), torch.tensor([[2.0, -1.0, 0.0, 3.0]]), torch.tensor([[1, B, 2, 0]]))
    # Batch 2 (2 videos, T=4): every segment background and labelled background: 8/8.
    metric.update(torch.zeros(2, 3), torch.full((2, 4), -1.0), torch.full((2, 4), B))
    # Pooled: 10/12 = 83.33 % (the mean of batch accuracies would be (50 + 100)/2 = 75).
    assert metric.compute()["accuracy"] == pytest.approx(1000 / 12)


def test_ave_rejects_bad_inputs():
    with pytest.raises(ValueError, match="event_scores"):
        ave_predictions(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="labels"):
        ave_segment_accuracy(torch.zeros(1, 3, dtype=torch.long), torch.tensor([[0, -2, 1]]))
    with pytest.raises(ValueError, match="integer"):
        ave_segment_accuracy(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="update"):
        AVEMetric().compute()


# ---------------------------------------------------------------------------------------------------------------- AVVP
# Video 1, T=4, C=3, layout [T, C] (columns below are classes written over time).
G1 = np.array([0.9, 0.2, 0.6])
A1 = np.array(
    [  # class 0          class 1          class 2
        [0.8, 0.9, 0.1],
        [0.7, 0.9, 0.6],
        [0.2, 0.9, 0.5],
        [0.1, 0.1, 0.4],
    ]
)
V1 = np.array([[0.1, 0.0, 0.0], [0.6, 0.0, 0.0], [0.5, 0.0, 0.0], [0.3, 0.0, 0.0]])
GT_A1 = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
GT_V1 = np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]])
# Decisions (frame >= 0.5 and global >= 0.5; class 1 is vetoed by global 0.2):
#   SO_a: c0 [1,1,0,0], c1 0, c2 [0,1,1,0] (0.5 >= 0.5)      GT_a: c0 [1,1,1,0]
#   SO_v: c0 [0,1,1,0]                                     GT_v: c0 [0,1,1,1], c1 [1,0,0,0]
#   SO_av = c0 [0,1,0,0]                                   GT_av = c0 [0,1,1,0]
VIDEO1 = {
    # segment audio: c0 TP2 FP0 FN1 -> 4/5; c2 TP0 FP2 -> 0; c1 absent. mean(0.8, 0) = 0.4
    "seg_a": 0.4,
    # segment visual: c0 TP2 FN1 -> 0.8; c1 FN1 -> 0; mean = 0.4
    "seg_v": 0.4,
    # segment AV: c0 TP1 FN1 -> 2/3
    "seg_av": 2 / 3,
    # pooled per class: c0 TP4 FP0 FN2 -> 8/10; c1 FN1 -> 0; c2 FP2 -> 0. mean = 0.8/3
    "seg_event": 0.8 / 3,
    # event audio: c0 pred [0,2) vs GT [0,3): inter 2 >= 0.5*union 3 -> TP, F=1; c2 pred [1,3), no GT -> FP, F=0
    "evt_a": 0.5,
    # event visual: c0 pred [1,3) vs GT [1,4): 2 >= 1.5 -> TP, F=1; c1 GT [0,1) unmatched -> FN, F=0
    "evt_v": 0.5,
    # event AV: c0 pred [1,2) vs GT [1,3): inter 1, union 2, IoU exactly 0.5 -> TP (>=), F=1
    "evt_av": 1.0,
    # pooled: c0 TP2 -> 1; c1 FN1 -> 0; c2 FP1 -> 0. mean = 1/3
    "evt_event": 1 / 3,
}


def test_avvp_decisions_veto_by_video_level_prob():
    so_a, so_v = avvp_decisions(G1, A1, V1)
    assert so_a.T.astype(int).tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0]]
    assert so_v.T.astype(int).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_avvp_video_scores_hand_computed():
    scores = avvp_video_scores(torch.tensor(G1), torch.tensor(A1), torch.tensor(V1), GT_A1, GT_V1)
    assert scores == pytest.approx(VIDEO1)


def test_avvp_empty_video_scores_one():
    # No GT events and no predictions: every class is absent, so every F is 1.0 by HAN's convention.
    zeros = np.zeros((10, 25))
    scores = avvp_video_scores(np.full(25, 0.1), np.full((10, 25), 0.9), np.full((10, 25), 0.9), zeros, zeros)
    assert scores == {key: 1.0 for key in VIDEO1}


def test_avvp_event_level_below_half_iou_and_unmatched_split():
    # One class, T=4. Audio pred [1,1,0,1] vs GT [1,1,1,1]:
    #   events: pred [0,2) (inter 2 >= 0.5*4 -> TP) and [3,4) (inter 1 < 2 -> FP); GT [0,4) matched. F = 2/(2+1) = 2/3
    #   segments: TP3 FN1 -> 6/7
    # Visual pred [1,0,0,0] vs GT [1,1,1,0]: event inter 1 < 0.5*3 -> FP and FN, F = 0; segments TP1 FN2 -> 2/4
    pa, ga = np.array([[1], [1], [0], [1]]), np.ones((4, 1))
    pv, gv = np.array([[1], [0], [0], [0]]), np.array([[1], [1], [1], [0]])
    scores = avvp_scores_from_decisions(pa, pv, ga, gv)
    assert scores["evt_a"] == pytest.approx(2 / 3)
    assert scores["seg_a"] == pytest.approx(6 / 7)
    assert scores["evt_v"] == 0.0
    assert scores["seg_v"] == pytest.approx(0.5)
    # AV: pred [1,0,0,0] vs GT [1,1,1,0] -> same as visual.
    assert (scores["seg_av"], scores["evt_av"]) == pytest.approx((0.5, 0.0))
    # Pooled events: TP1 FP2 FN1 -> 2/(2+3) = 0.4; pooled segments TP4 FP0 FN3 -> 8/11
    assert (scores["evt_event"], scores["seg_event"]) == pytest.approx((0.4, 8 / 11))


def test_avvp_aggregate_and_metric():
    empty = {key: 1.0 for key in VIDEO1}
    table = avvp_aggregate([VIDEO1, empty])
    # Means over the two videos, x100: seg_a (0.4+1)/2 = 70; seg_av (2/3+1)/2 = 83.33; seg_event (0.2667+1)/2 = 63.33
    expected = {
        "seg_a": 70.0, "seg_v": 70.0, "seg_av": 250 / 3, "seg_event": 190 / 3,
        "evt_a": 75.0, "evt_v": 75.0, "evt_av": 100.0, "evt_event": 200 / 3,
        "seg_type": (70 + 70 + 250 / 3) / 3,  # 74.44
        "evt_type": (75 + 75 + 100) / 3,  # 83.33
    }  # fmt: skip
    assert table == pytest.approx(expected)

    # The accumulator on a batch of the same two videos ([B, ...] inputs) gives the same table.
    metric = AVVPMetric()
    zeros = np.zeros((4, 3))
    metric.update(
        np.stack([G1, np.zeros(3)]), np.stack([A1, zeros]), np.stack([V1, zeros]),
        np.stack([GT_A1, zeros]), np.stack([GT_V1, zeros]),
    )  # fmt: skip
    assert metric.compute() == pytest.approx(expected)


def test_avvp_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[T, C\]"):
        avvp_decisions(G1, A1, V1[:, :2])
    with pytest.raises(ValueError, match="gt_audio must hold only 0 and 1"):
        avvp_video_scores(G1, A1, V1, GT_A1 * 0.5, GT_V1)
    with pytest.raises(ValueError, match="no AVVP videos"):
        AVVPMetric().compute()


# ----------------------------------------------------------------------------------------------------------------- AVS
def test_mask_iou_strict_threshold_and_empty_frame():
    # Frame 1 logits -> sigmoid > 0.5: [[1,0,0],[1,1,0]] (logit 0 -> 0.5, not positive). GT [[1,1,0],[0,1,0]].
    #   inter = 2 ((0,0),(1,1)); union = 4 ((0,0),(0,1),(1,0),(1,1)) -> IoU 0.5
    # Frame 2 GT empty, prediction [[1,0,0],[0,0,0]]: 5 of 6 pixels correctly negative -> 5/6
    # Video mean: (0.5 + 5/6) / 2 = 2/3 (eps 1e-7 in the denominators is far below the tolerance)
    logits = torch.tensor([[[2.0, -1.0, 0.0], [3.0, 3.0, -2.0]], [[4.0, -4.0, -4.0], [-4.0, -4.0, -4.0]]])
    gt = torch.tensor([[[1, 1, 0], [0, 1, 0]], [[0, 0, 0], [0, 0, 0]]])
    assert mask_iou(logits, gt, from_logits=True) == pytest.approx(2 / 3, rel=1e-6)
    # The same decisions from probabilities: 0.5 stays negative.
    probs = torch.sigmoid(logits)
    probs[0, 0, 2] = 0.5
    assert mask_iou(probs.numpy(), gt.numpy(), from_logits=False) == pytest.approx(2 / 3, rel=1e-6)
    # An empty GT predicted all empty scores 1.
    assert mask_iou(torch.full((1, 2, 2), -5.0), torch.zeros(1, 2, 2), from_logits=True) == pytest.approx(1.0)


# Frame A (1x4): probs [0.9, 0.6, 0.3, 0.1], GT [1,0,1,0]. Positives = pixels with prob >= t (t ~ i/254):
#   t <= 0.1      : all 4, TP2, P 1/2, R 1    -> F = 1.3*0.5/(0.15+1)     = 0.5652
#   0.1 < t <= 0.3: 3,     TP2, P 2/3, R 1    -> F = 1.3*(2/3)/(0.2+1)    = 0.7222
#   0.3 < t <= 0.6: 2,     TP1, P 1/2, R 1/2  -> F = 1.3*0.25/(0.15+0.5)  = 0.5
#   0.6 < t <= 0.9: 1,     TP1, P 1,   R 1/2  -> F = 1.3*0.5/(0.3+0.5)    = 0.8125  <- max
#   t > 0.9       : none, P = R = 0 -> NaN -> 0
FRAME_A = (torch.tensor([[0.9, 0.6, 0.3, 0.1]]), torch.tensor([[1, 0, 1, 0]]))
# Frame B (1x4): probs [0.4, 0.2, 0.05, 0.05], GT [1,1,0,0]:
#   t <= 0.05: 4, TP2, P 1/2 -> 0.5652;  0.05 < t <= 0.2: 2, TP2 -> 1.0  <- max;
#   0.2 < t <= 0.4: 1, TP1, P 1, R 1/2 -> 0.8125;  t > 0.4: 0
FRAME_B = (torch.tensor([[0.4, 0.2, 0.05, 0.05]]), torch.tensor([[1, 1, 0, 0]]))


def test_f_score_single_frame():
    assert f_score(FRAME_A[0][None], FRAME_A[1][None], from_logits=False) == pytest.approx(0.8125, rel=1e-6)
    logits = torch.logit(FRAME_A[0][None].double()).float()
    assert f_score(logits, FRAME_A[1][None], from_logits=True) == pytest.approx(0.8125, rel=1e-6)


def test_f_score_threshold_is_chosen_per_video_on_the_mean_curve():
    # Mean curve of A and B by threshold interval:
    #   (0.05,0.1]: (0.5652+1)/2 = 0.7826   (0.1,0.2]: (0.7222+1)/2 = 0.8611 <- max
    #   (0.2,0.3]: (0.7222+0.8125)/2 = 0.7674   (0.3,0.4]: (0.5+0.8125)/2 = 0.6563   (0.6,0.9]: 0.8125/2 = 0.4063
    # So 31/36 = 0.8611, not the mean of per-frame maxima (0.8125+1)/2 = 0.90625.
    probs = torch.stack([FRAME_A[0], FRAME_B[0]])
    gt = torch.stack([FRAME_A[1], FRAME_B[1]])
    assert f_score(probs, gt, from_logits=False) == pytest.approx(31 / 36, rel=1e-6)


def test_f_score_ignores_empty_frames_and_all_empty_video_scores_zero():
    # An empty-GT frame is left out of the mean curve: A + empty = A alone.
    probs = torch.stack([FRAME_A[0], torch.full((1, 4), 0.7)])
    gt = torch.stack([FRAME_A[1], torch.zeros(1, 4, dtype=torch.long)])
    assert f_score(probs, gt, from_logits=False) == pytest.approx(0.8125, rel=1e-6)
    # A video with no non-empty frame scores 0 (official quirk), even for a perfect prediction.
    assert f_score(torch.zeros(2, 1, 4), torch.zeros(2, 1, 4), from_logits=False) == 0.0


def test_f_score_matches_a_direct_threshold_loop_with_ties():
    # Probabilities drawn from the threshold grid itself, so ties with `>=` are exercised.
    gen = torch.Generator().manual_seed(0)
    thresholds = torch.linspace(0, 1 - 1e-10, 255)
    probs = thresholds[torch.randint(0, 255, (3, 8, 8), generator=gen)]
    gt = (torch.rand(3, 8, 8, generator=gen) > 0.6).float()
    curves = []
    for p, g in zip(probs, gt):
        positive = (p[None] >= thresholds[:, None, None]).float()
        tp = (positive * g).sum((1, 2))
        prec, rec = tp / (positive.sum((1, 2)) + 1e-20), tp / (g.sum() + 1e-20)
        curves.append(torch.nan_to_num(1.3 * prec * rec / (0.3 * prec + rec)))
    expected = (sum(curves) / 3).max().item()
    assert f_score(probs, gt, from_logits=False) == pytest.approx(expected, rel=1e-6)
    # The first threshold is 0 and positives are prob >= t, so all-zero probabilities on a full GT score F = 1.
    assert f_score(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), from_logits=False) == pytest.approx(1.0)


def test_avs_metric_means_over_videos_in_percent():
    metric = AVSMetric(from_logits=False)
    # Video 1: frame A alone. Binarised at > 0.5: [1,1,0,0] vs GT [1,0,1,0]: IoU 1/3; F 0.8125
    metric.update(FRAME_A[0][None], FRAME_A[1][None])
    # Batch of one video whose GT is empty and prediction empty: IoU 1 (all negative correct); F 0 (quirk)
    metric.update(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))
    result = metric.compute()
    assert result["miou"] == pytest.approx(100 * (1 / 3 + 1) / 2, rel=1e-6)  # 66.67
    assert result["f_score"] == pytest.approx(100 * 0.8125 / 2, rel=1e-6)  # 40.63


def test_avs_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        mask_iou(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), from_logits=True)
    with pytest.raises(ValueError, match="gt must hold only 0 and 1"):
        f_score(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5), from_logits=False)
    with pytest.raises(TypeError):
        mask_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))  # from_logits must be said


# ---------------------------------------------------------------------------------------------------------------- AVQA
RECORDS = [
    ("two", "two", ["Audio", "Counting"]),
    ("one", "two", ["Audio", "Counting"]),  # Audio/Counting: 1/2 = 50
    ("yes", "yes", ["Audio", "Comparative"]),  # Audio/Comparative: 1/1 = 100
    ("left", "left", ["Visual", "Location"]),
    ("right", "right", ["Visual", "Location"]),  # Visual/Location: 2/2 = 100
    ("yes", "yes", ["Audio-Visual", "Existential"]),
    ("yes", "no", ["Audio-Visual", "Existential"]),
    ("no", "yes", ["Audio-Visual", "Existential"]),
    ("no", "yes", ["Audio-Visual", "Existential"]),  # AV/Existential: 1/4 = 25
    ("piano", "flute", ["Audio-Visual", "Temporal"]),  # AV/Temporal: 0/1 = 0
]


def test_avqa_group_micro_average_and_overall():
    result = avqa_accuracy(RECORDS)
    assert result["Audio/Counting"] == pytest.approx(50.0)
    assert result["Audio/Comparative"] == pytest.approx(100.0)
    # Audio group: (1 + 1) / (2 + 1) = 66.67, not the mean of its types (50 + 100) / 2 = 75
    assert result["Audio"] == pytest.approx(200 / 3)
    assert result["Visual"] == pytest.approx(100.0)
    assert result["Audio-Visual"] == pytest.approx(20.0)  # 1 / 5
    # Avg: 5 / 10 = 50, not the mean of the groups (66.67 + 100 + 20) / 3 = 62.2
    assert result["Avg"] == pytest.approx(50.0)
    # Types with no questions are NaN.
    assert math.isnan(result["Visual/Counting"]) and math.isnan(result["Audio-Visual/Location"])
    assert len(result) == 9 + 3 + 1


def test_avqa_metric_batches_and_index_answers():
    metric = AVQAMetric()
    metric.update(torch.tensor([3, 1]), torch.tensor([3, 2]), [["Visual", "Counting"], ["Visual", "Counting"]])
    metric.update(np.array([0]), np.array([0]), [["Audio-Visual", "Comparative"]])
    result = metric.compute()
    # Visual/Counting 1/2 = 50; AV/Comparative 1/1 = 100; Avg 2/3
    assert (result["Visual/Counting"], result["Audio-Visual/Comparative"]) == pytest.approx((50.0, 100.0))
    assert result["Avg"] == pytest.approx(200 / 3)


def test_avqa_rejects_bad_types():
    with pytest.raises(ValueError, match="unknown AVQA question type"):
        avqa_accuracy([("a", "a", ["Visual", "Temporal"])])
    with pytest.raises(ValueError, match="parse the JSON string"):
        avqa_accuracy([("a", "a", '["Audio", "Counting"]')])
    with pytest.raises(ValueError, match="no AVQA questions"):
        AVQAMetric().compute()
