"""Router statistics over a dataset: expert usage and routing entropy, and routing against the modality carrier.

`collect_routing` runs a Predictor and returns tidy rows, one per (clip, condition, stream, layer, position,
second) with each expert's weight under its own name ("cma0", "ua0", ...); the other functions are pure functions
of those rows. The carrier of a second (clip.meta["carrier"]: "av" | "audio" | "visual" | "none") is what the scene
worlds know about which modality shows the event; a condition can take a modality away ("visual-only" removes the
audio, "audio-only" the picture, "mismatched" swaps in another clip's audio), which `informative` accounts for.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Optional, Sequence

from torch.utils.data import Dataset

from analysis.predictions import Progress, iter_predictions, pick_task, second_classes
from avmoe.data.corrupt import parse_condition
from avmoe.data.sample import Clip
from avmoe.predict import Predictor

EXPERT = re.compile(r"^(cma|ua)\d+$")
SHARES = ("cma_share", "ua_share")
VALUES = ("entropy", *SHARES)
"""Per-row numbers besides the expert weights: routing entropy (nats) and the total weight of each expert family."""

_REMOVES = {"visual-only": "audio", "mismatched": "audio", "audio-only": "visual"}  # condition step -> lost modality


def collect_routing(predictor: Predictor, clips: Dataset | Sequence[Clip], conditions: Sequence[str] = ("av",),
                    task: Optional[str] = "ave", progress: Optional[Progress] = None,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Tidy routing rows of `predictor`'s `task` model on every clip under every condition.

    Keys of a row: variant, clip (index in `clips`), condition, stream, layer, position, second, carrier and class
    of that second (None where the clip has no such labels), entropy, cma_share, ua_share, and one key per expert
    with its weight. Clips are conditioned as `avmoe.evaluate` does (seed + index; mismatched takes the next clip).
    """
    task = pick_task(predictor, task)
    variant = predictor.models[task].cfg.variant
    fallback = predictor.models[task].cfg.classes
    rows: list[dict[str, Any]] = []
    for i, condition, clip, pred in iter_predictions(predictor, clips, conditions, task, seed, progress):
        carriers = clip.meta.get("carrier") or [None] * clip.num_segments
        classes = second_classes(clip, fallback)
        trace = pred.trace
        for stream, layer, position in trace.keys():
            names = trace.experts[(stream, layer, position)]
            weights = trace.weights[(stream, layer, position)][0].double().tolist()  # [T][E]
            for second, w in enumerate(weights):
                row = {"variant": variant, "clip": i, "condition": condition, "stream": stream, "layer": layer,
                       "position": position, "second": second, "carrier": carriers[second],
                       "class": classes[second], "entropy": entropy(w),
                       "cma_share": sum(p for n, p in zip(names, w) if n.startswith("cma")),
                       "ua_share": sum(p for n, p in zip(names, w) if n.startswith("ua"))}
                row.update(zip(names, w))
                rows.append(row)
    return rows


def entropy(weights: Iterable[float]) -> float:
    """Shannon entropy in nats of one mixture's routing weights (0 log 0 = 0)."""
    return -sum(p * math.log(p) for p in weights if p > 0)


def expert_names(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Expert names found in the rows, cross-modal first, each family in index order."""
    names = {k for row in rows for k in row if EXPERT.match(k)}
    return sorted(names, key=lambda n: (not n.startswith("cma"), int(re.sub(r"\D", "", n))))


def expert_usage(rows: Sequence[dict[str, Any]],
                 by: Sequence[str] = ("stream", "layer", "position", "condition")) -> list[dict[str, Any]]:
    """Mean weight of each expert, mean routing entropy and mean family shares per group of `by` keys.

    Groups come out in the order they first appear; "n" counts the rows of a group. An expert absent from some rows
    of a group (rows of several variants) is averaged over the rows that have it.
    """
    absent = sorted({k for k in by if rows and k not in rows[0]})
    if absent:
        raise ValueError(f"cannot group by {', '.join(absent)}: routing rows have keys {', '.join(rows[0])}")
    experts = expert_names(rows)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        summary: dict[str, Any] = {**dict(zip(by, key)), "n": len(members)}
        for name in (*VALUES, *experts):
            values = [r[name] for r in members if name in r]
            if values:
                summary[name] = sum(values) / len(values)
        out.append(summary)
    return out


def informative(carrier: str, condition: str) -> set[str]:
    """The modalities that show a second's event as the model sees it: the carrier minus what the condition removed.

    Noise and occlusion leave both modalities in place (they degrade, not remove), so they change nothing here.
    """
    shown = {"av": {"audio", "visual"}, "audio": {"audio"}, "visual": {"visual"}, "none": set()}
    if carrier not in shown:
        raise ValueError(f"unknown carrier {carrier!r}; carriers are av, audio, visual, none")
    lost = {_REMOVES[kind] for kind, _ in parse_condition(condition).steps if kind in _REMOVES}
    return shown[carrier] - lost


def expected_family(stream: str, carrier: str, condition: str) -> Optional[str]:
    """"ua" where the other modality shows nothing of the event, "cma" where both show it, else None."""
    other = "audio" if stream == "visual" else "visual"
    shown = informative(carrier, condition)
    if other not in shown:
        return "ua"
    return "cma" if stream in shown else None


def routing_vs_carrier(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (carrier, condition, stream): mean unimodal share of the router weight, and how often the router favours
    the family the ground truth expects (`expected_family`).

    Keys: carrier, condition, stream, n, ua_share (mean), favours_ua (fraction of mixtures with ua_share > 0.5),
    expected ("ua" | "cma" | None) and hit_rate (fraction of mixtures favouring the expected family, None when
    nothing is expected). Rows without a carrier are left out.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["carrier"] is not None:
            groups.setdefault((row["carrier"], row["condition"], row["stream"]), []).append(row)
    out = []
    for (carrier, condition, stream), members in groups.items():
        n = len(members)
        favours = {"ua": sum(r["ua_share"] > 0.5 for r in members) / n,
                   "cma": sum(r["cma_share"] > 0.5 for r in members) / n}
        expected = expected_family(stream, carrier, condition)
        out.append({"carrier": carrier, "condition": condition, "stream": stream, "n": n,
                    "ua_share": sum(r["ua_share"] for r in members) / n, "favours_ua": favours["ua"],
                    "expected": expected, "hit_rate": None if expected is None else favours[expected]})
    return out
