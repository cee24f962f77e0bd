"""Evaluation metrics of the four tasks, exactly as the official code computes them (reference section 6).

Units: task-level results (the numbers in the paper's tables) are percentages; the per-video building blocks
(`avvp_video_scores`, `mask_iou`, `f_score`) are fractions in [0, 1], as in the official utilities.
Inputs may be numpy arrays or torch tensors on any device; results are Python floats.
Each task also has a small `*Metric` accumulator (update per batch, compute at the end) that calls the same functions.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from avmoe.data.sample import BACKGROUND

ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "AVQA_QUESTION_TYPES",
    "AVEMetric",
    "AVQAMetric",
    "AVSMetric",
    "AVVPMetric",
    "ave_accuracy",
    "ave_predictions",
    "ave_segment_accuracy",
    "avqa_accuracy",
    "avvp_aggregate",
    "avvp_decisions",
    "avvp_scores_from_decisions",
    "avvp_video_scores",
    "f_score",
    "mask_iou",
]


def _tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """A detached CPU tensor with the input's dtype."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    return torch.as_tensor(x).detach().cpu()


def _float_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """float32 (the official metrics run in float32)."""
    return _tensor(x, name).float()


def _numpy(x: ArrayLike, name: str) -> np.ndarray:
    t = _tensor(x, name)
    return (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()


def _check_binary(x: np.ndarray | torch.Tensor, name: str) -> None:
    values = torch.unique(torch.as_tensor(x)).tolist()
    if not set(values) <= {0, 1}:
        raise ValueError(f"{name} must hold only 0 and 1, got values {values[:5]}; binarise the ground truth first")


def _percent(correct: int, total: int) -> float:
    # Official AVE: correct_num * (100. / numel).
    return correct * (100.0 / total)


# ---------------------------------------------------------------------------------------------------------------------
# AVE: segment accuracy (CMBS / DG-SCT `compute_accuracy_supervised`)


def ave_predictions(event_scores: ArrayLike, is_event_logits: ArrayLike) -> torch.Tensor:
    """Per-segment decisions [N, T] (LongTensor): the argmax class where sigmoid(is_event) > 0.5, else BACKGROUND.

    Args:
        event_scores: foreground class scores, [N, C] (one class per video, broadcast over its segments, as the
            official CMBS head outputs) or [N, T, C] (one class per segment).
        is_event_logits: event-vs-background logits [N, T] (not probabilities: the sigmoid is applied here).
    """
    is_event = _float_tensor(is_event_logits, "is_event_logits")
    scores = _float_tensor(event_scores, "event_scores")
    if is_event.ndim != 2:
        raise ValueError(f"is_event_logits must be [N, T], got {tuple(is_event.shape)}")
    n, t = is_event.shape
    if scores.ndim not in (2, 3) or scores.shape[0] != n or (scores.ndim == 3 and scores.shape[1] != t):
        raise ValueError(f"event_scores must be [N, C] or [N, T, C] with N={n}, T={t}, got {tuple(scores.shape)}")
    if scores.ndim == 2:
        scores = scores[:, None, :]
    event_class = scores.argmax(-1).expand(n, t)  # ties: the first maximal class, as torch.max
    # Official: sigmoid in float32, then a strict > 0.5, so logits within ~1e-7 of zero count as background.
    foreground = torch.sigmoid(is_event) > 0.5
    return torch.where(foreground, event_class, torch.full_like(event_class, BACKGROUND))


def _ave_counts(predictions: ArrayLike, labels: ArrayLike) -> tuple[int, int]:
    pred, target = _tensor(predictions, "predictions"), _tensor(labels, "labels")
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"predictions and labels must both be [N, T], got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(f"predictions and labels must be integer classes (BACKGROUND={BACKGROUND}), not floats")
    if target.numel() and int(target.min()) < BACKGROUND:
        raise ValueError(f"labels must be class indices or BACKGROUND={BACKGROUND}, got {int(target.min())}")
    return int((pred == target).sum()), target.numel()


def ave_segment_accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Accuracy (%) of already-decided segment predictions [N, T] against labels [N, T] (BACKGROUND = -1)."""
    correct, total = _ave_counts(predictions, labels)
    if total == 0:
        raise ValueError("no segments to score: predictions and labels are empty")
    return _percent(correct, total)


def ave_accuracy(event_scores: ArrayLike, is_event_logits: ArrayLike, labels: ArrayLike) -> float:
    """AVE accuracy (%) over all N*T segments: `ave_predictions` compared with labels [N, T] (BACKGROUND = -1)."""
    return ave_segment_accuracy(ave_predictions(event_scores, is_event_logits), labels)


class AVEMetric:
    """AVE accuracy (%) pooled over every segment seen: the official number, which uses test batch size 1."""

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, event_scores: ArrayLike, is_event_logits: ArrayLike, labels: ArrayLike) -> None:
        correct, total = _ave_counts(ave_predictions(event_scores, is_event_logits), labels)
        self.correct += correct
        self.total += total

    def compute(self) -> dict[str, float]:
        if self.total == 0:
            raise ValueError("AVEMetric has seen no segments; call update() first")
        return {"accuracy": _percent(self.correct, self.total)}


# ---------------------------------------------------------------------------------------------------------------------
# AVVP: segment- and event-level F1 (HAN `utils/eval_metrics.py`, used unchanged by MGN, DG-SCT and AVMoE)
#
# Layout here is [T, C] (the project's), HAN's is [C, T]. Keys of the per-video and aggregate dicts:
#   seg_* segment level, evt_* event level; *_a audio, *_v visual, *_av audio-visual (both modalities at once),
#   *_event "Event@AV" (F of the audio and visual counts pooled per class), *_type "Type@AV" (aggregate only).

AVVP_THRESHOLD = 0.5
_AVVP_VIDEO_KEYS = ("seg_a", "seg_v", "seg_av", "seg_event", "evt_a", "evt_v", "evt_av", "evt_event")


def avvp_decisions(
    global_prob: ArrayLike, a_frame_prob: ArrayLike, v_frame_prob: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """One video's audio and visual event decisions [T, C] (bool): frame prob >= 0.5 AND video-level prob >= 0.5.

    Args:
        global_prob: video-level class probabilities [C] (after the sigmoid).
        a_frame_prob, v_frame_prob: per-segment class probabilities [T, C] of each modality.
    """
    video = _numpy(global_prob, "global_prob")
    audio = _numpy(a_frame_prob, "a_frame_prob")
    visual = _numpy(v_frame_prob, "v_frame_prob")
    if video.ndim != 1 or audio.ndim != 2 or audio.shape != visual.shape or audio.shape[1] != video.shape[0]:
        raise ValueError(
            "expected global_prob [C], a_frame_prob [T, C] and v_frame_prob [T, C], got "
            f"{video.shape}, {audio.shape} and {visual.shape}"
        )
    # The video-level decision filters out frame-level false positives (HAN: Pa * repeat(o)).
    present = video >= AVVP_THRESHOLD
    return (audio >= AVVP_THRESHOLD) & present, (visual >= AVVP_THRESHOLD) & present


def _segment_counts(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[3, C] per-class (TP, FP, FN) over segments."""
    return np.stack([(pred & gt).sum(0), (pred & ~gt).sum(0), (~pred & gt).sum(0)])


def _runs(seq: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive 1s: HAN's `extract_event`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], seq.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _iou_at_least_half(a: tuple[int, int], b: tuple[int, int]) -> bool:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter >= 0.5 * union  # HAN: sum(x1*x2) >= 0.5 * sum(x1 + x2 - x1*x2), so IoU == 0.5 is a match


def _event_counts(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[3, C] per-class (TP, FP, FN) over events (HAN `event_wise_metric`).

    A predicted event is a TP if it matches any GT event of its class, else a FP; a GT event matching no prediction
    is a FN. HAN does not enforce one-to-one matching; for runs of one sequence at IoU >= 0.5 it makes no difference.
    """
    counts = np.zeros((3, pred.shape[1]), dtype=np.int64)
    for c in range(pred.shape[1]):
        pred_events, gt_events = _runs(pred[:, c]), _runs(gt[:, c])
        tp = sum(any(_iou_at_least_half(p, g) for g in gt_events) for p in pred_events)
        fn = sum(not any(_iou_at_least_half(g, p) for p in pred_events) for g in gt_events)
        counts[:, c] = (tp, len(pred_events) - tp, fn)
    return counts


def _mean_class_f(counts: np.ndarray) -> float:
    """Mean of 2TP/(2TP+FN+FP) over the classes with any prediction or GT; 1.0 if there are none (HAN)."""
    tp, fp, fn = counts.astype(np.float64)
    present = (tp + fp != 0) | (tp + fn != 0)
    if not present.any():
        return 1.0  # HAN: "all true negatives"
    f = 2 * tp[present] / (2 * tp[present] + (fn + fp)[present])
    return sum(f.tolist()) / len(f)  # HAN sums a Python list


def avvp_scores_from_decisions(
    so_a: ArrayLike, so_v: ArrayLike, gt_audio: ArrayLike, gt_visual: ArrayLike
) -> dict[str, float]:
    """One video's segment- and event-level F (fractions), from decisions and GT, all [T, C] in {0, 1}.

    The audio-visual decisions and GT are the products audio*visual, as in HAN.
    """
    arrays = {"so_a": so_a, "so_v": so_v, "gt_audio": gt_audio, "gt_visual": gt_visual}
    arrays = {name: _numpy(x, name) for name, x in arrays.items()}
    shapes = {name: x.shape for name, x in arrays.items()}
    if len(set(shapes.values())) != 1 or len(shapes["so_a"]) != 2:
        raise ValueError(f"decisions and ground truth must all be [T, C], got shapes {shapes}")
    for name, x in arrays.items():
        _check_binary(x, name)
    pa, pv, ga, gv = (x.astype(bool) for x in arrays.values())
    scores = {}
    for level, count in (("seg", _segment_counts), ("evt", _event_counts)):
        audio, visual, both = count(pa, ga), count(pv, gv), count(pa & pv, ga & gv)
        scores[f"{level}_a"] = _mean_class_f(audio)
        scores[f"{level}_v"] = _mean_class_f(visual)
        scores[f"{level}_av"] = _mean_class_f(both)
        scores[f"{level}_event"] = _mean_class_f(audio + visual)
    return scores


def avvp_video_scores(
    global_prob: ArrayLike,
    a_frame_prob: ArrayLike,
    v_frame_prob: ArrayLike,
    gt_audio: ArrayLike,
    gt_visual: ArrayLike,
) -> dict[str, float]:
    """One video's segment- and event-level F (fractions) from the model's probabilities and GT [T, C]."""
    so_a, so_v = avvp_decisions(global_prob, a_frame_prob, v_frame_prob)
    return avvp_scores_from_decisions(so_a, so_v, gt_audio, gt_visual)


def avvp_aggregate(videos: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The AVVP table (%): each per-video F averaged over videos, and Type@AV = mean of the A, V and AV columns."""
    if not videos:
        raise ValueError("no AVVP videos to aggregate")
    table = {key: 100 * float(np.mean([v[key] for v in videos])) for key in _AVVP_VIDEO_KEYS}
    for level in ("seg", "evt"):
        table[f"{level}_type"] = (table[f"{level}_av"] + table[f"{level}_a"] + table[f"{level}_v"]) / 3.0
    return table


class AVVPMetric:
    """Collects per-video AVVP scores; `compute` gives the table (%). `videos` keeps the per-video fractions."""

    def __init__(self) -> None:
        self.videos: list[dict[str, float]] = []

    def update(
        self,
        global_prob: ArrayLike,
        a_frame_prob: ArrayLike,
        v_frame_prob: ArrayLike,
        gt_audio: ArrayLike,
        gt_visual: ArrayLike,
    ) -> None:
        """One video (global [C], others [T, C]) or a batch (global [B, C], others [B, T, C])."""
        if _numpy(global_prob, "global_prob").ndim == 1:
            self.videos.append(avvp_video_scores(global_prob, a_frame_prob, v_frame_prob, gt_audio, gt_visual))
            return
        for video in zip(global_prob, a_frame_prob, v_frame_prob, gt_audio, gt_visual, strict=True):
            self.videos.append(avvp_video_scores(*video))

    def compute(self) -> dict[str, float]:
        return avvp_aggregate(self.videos)


# ---------------------------------------------------------------------------------------------------------------------
# AVS: mIoU (M_J) and F-score (M_F) (AVSBench `utils/utility.py`; one video = 5 frames = one official test batch)

_IOU_EPS = 1e-7
_PR_STEPS = 255
_F_BETA2 = 0.3


def _avs_inputs(pred: ArrayLike, gt: ArrayLike, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, binary GT), both float32 [T, H, W]."""
    probs = _float_tensor(pred, "pred")
    mask = _float_tensor(gt, "gt")
    if probs.ndim != 3 or probs.shape != mask.shape:
        raise ValueError(
            f"pred and gt must both be one video's frames [T, H, W], got {tuple(probs.shape)} and "
            f"{tuple(mask.shape)}; squeeze a channel axis, or add a leading axis for a single frame"
        )
    _check_binary(mask, "gt")
    return (torch.sigmoid(probs) if from_logits else probs), mask


def mask_iou(pred: ArrayLike, gt: ArrayLike, *, from_logits: bool) -> float:
    """Mean IoU (fraction) over one video's frames [T, H, W], binarised at a strict > 0.5 on probabilities.

    A frame with an empty GT scores the fraction of pixels correctly predicted negative (AVSBench).

    Args:
        pred: the decoder's output per pixel; logits if from_logits, else probabilities.
        gt: binary masks.
        from_logits: whether pred holds logits (the sigmoid is applied here) or probabilities.
    """
    probs, mask = _avs_inputs(pred, gt, from_logits)
    binary = (probs > 0.5).float()
    inter = (binary * mask).sum((1, 2))
    union = torch.maximum(binary, mask).sum((1, 2))
    empty = mask.sum((1, 2)) == 0
    inter = torch.where(empty, ((1 - mask) * (1 - binary)).sum((1, 2)), inter)
    union = torch.where(empty, torch.full_like(union, mask.shape[1] * mask.shape[2]), union)
    return float(torch.sum(inter / (union + _IOU_EPS)) / mask.shape[0])


def _f_curve(prob: torch.Tensor, mask: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """F_beta at each threshold for one frame (AVSBench `_eval_pr`), pixels predicted positive where prob >= t."""
    def at_least(values: torch.Tensor) -> torch.Tensor:
        # Number of values >= each threshold; integer counts are exact, as the official float32 sums of 0/1 are.
        return (values.numel() - torch.searchsorted(values.sort().values, thresholds)).float()

    predicted = at_least(prob)
    tp = at_least(prob[mask > 0])
    precision = tp / (predicted + 1e-20)
    recall = tp / (mask.sum() + 1e-20)
    f = (1 + _F_BETA2) * precision * recall / (_F_BETA2 * precision + recall)
    return torch.nan_to_num(f, nan=0.0)


def f_score(pred: ArrayLike, gt: ArrayLike, *, from_logits: bool) -> float:
    """F-score (fraction, beta^2 = 0.3) of one video's frames [T, H, W], as AVSBench's `Eval_Fmeasure`.

    The F curves over 255 thresholds of the frames with a non-empty GT are averaged, and the best threshold is
    chosen for this video (optimistic, as in the official code). A video whose GT is empty in every frame scores 0.0
    (the official score stays all zeros). Args as `mask_iou`.
    """
    probs, mask = _avs_inputs(pred, gt, from_logits)
    # float32 as the official: 1 - 1e-10 rounds to 1.0, so the last threshold is exactly 1.0.
    thresholds = torch.linspace(0, 1 - 1e-10, _PR_STEPS)
    total = torch.zeros(_PR_STEPS)
    frames = 0
    for frame_prob, frame_mask in zip(probs, mask):
        if frame_mask.sum() == 0:
            continue
        total = total + _f_curve(frame_prob.flatten(), frame_mask.flatten(), thresholds)
        frames += 1
    if frames == 0:
        return 0.0
    return float((total / frames).max())


class AVSMetric:
    """mIoU and F-score (%) as the mean over videos of the per-video values; `videos` keeps those (fractions)."""

    def __init__(self, *, from_logits: bool) -> None:
        self.from_logits = from_logits
        self.videos: list[dict[str, float]] = []

    def update(self, pred: ArrayLike, gt: ArrayLike) -> None:
        """One video [T, H, W] or a batch of videos [B, T, H, W], each scored on its own."""
        if _float_tensor(pred, "pred").ndim == 3:
            pred, gt = pred[None], gt[None]
        for video_pred, video_gt in zip(pred, gt, strict=True):
            self.videos.append(
                {
                    "miou": mask_iou(video_pred, video_gt, from_logits=self.from_logits),
                    "f_score": f_score(video_pred, video_gt, from_logits=self.from_logits),
                }
            )

    def compute(self) -> dict[str, float]:
        if not self.videos:
            raise ValueError("AVSMetric has seen no videos; call update() first")
        return {key: 100 * sum(v[key] for v in self.videos) / len(self.videos) for key in ("miou", "f_score")}


# ---------------------------------------------------------------------------------------------------------------------
# AVQA: accuracy per question type (AVST / LAVisH `test()`)

AVQA_QUESTION_TYPES: dict[str, tuple[str, ...]] = {
    "Audio": ("Counting", "Comparative"),
    "Visual": ("Counting", "Location"),
    "Audio-Visual": ("Existential", "Counting", "Location", "Comparative", "Temporal"),
}
"""MUSIC-AVQA question types, [modality, kind] as in the dataset's `type` field."""


def avqa_accuracy(records: Iterable[tuple[Any, Any, Sequence[str]]]) -> dict[str, float]:
    """Accuracy (%) overall and per question type, from (predicted answer, true answer, [modality, kind]) records.

    Keys: "<modality>/<kind>" for the 9 types, "<modality>" for the 3 groups (micro-averaged: correct over questions
    of the group) and "Avg" (correct over all questions, not the mean of the groups). A type with no questions gives
    NaN (the official script divides by zero). Unknown types raise: MUSIC-AVQA has only the 9 above.
    """
    correct: dict[tuple[str, str], int] = {}
    asked: dict[tuple[str, str], int] = {}
    for pred, answer, question_type in records:
        if isinstance(question_type, str) or len(question_type) != 2:
            raise ValueError(f"question type must be [modality, kind], got {question_type!r}; parse the JSON string")
        modality, kind = question_type
        if kind not in AVQA_QUESTION_TYPES.get(modality, ()):
            raise ValueError(f"unknown AVQA question type {[modality, kind]}; known: {AVQA_QUESTION_TYPES}")
        asked[modality, kind] = asked.get((modality, kind), 0) + 1
        correct[modality, kind] = correct.get((modality, kind), 0) + bool(pred == answer)
    if not asked:
        raise ValueError("no AVQA questions to score")

    def accuracy(types: list[tuple[str, str]]) -> float:
        n = sum(asked.get(t, 0) for t in types)
        return 100 * sum(correct.get(t, 0) for t in types) / n if n else math.nan

    result = {}
    for modality, kinds in AVQA_QUESTION_TYPES.items():
        for kind in kinds:
            result[f"{modality}/{kind}"] = accuracy([(modality, kind)])
        result[modality] = accuracy([(modality, kind) for kind in kinds])
    result["Avg"] = accuracy(list(asked))
    return result


class AVQAMetric:
    """Collects (prediction, answer, type) records; `compute` gives `avqa_accuracy`."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, Any, Sequence[str]]] = []

    def update(
        self, predictions: Sequence[Any] | ArrayLike, answers: Sequence[Any] | ArrayLike, types: Sequence[Sequence[str]]
    ) -> None:
        """A batch: predicted answers, true answers (strings or class indices) and [modality, kind] per question."""
        predictions = predictions.tolist() if isinstance(predictions, (np.ndarray, torch.Tensor)) else predictions
        answers = answers.tolist() if isinstance(answers, (np.ndarray, torch.Tensor)) else answers
        self.records.extend(zip(predictions, answers, types, strict=True))

    def compute(self) -> dict[str, float]:
        return avqa_accuracy(self.records)
