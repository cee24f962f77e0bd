"""Routing rows are the Predictor's trace, one mixture per row summing to one; usage and carrier statistics are the
right averages of them."""
from __future__ import annotations

import math

import pytest

from analysis.router_stats import (entropy, expected_family, expert_names, expert_usage, informative,
                                   routing_vs_carrier)
from avmoe.predict import Predictor


def test_rows_are_the_predictors_trace_and_sum_to_one(ctx):
    rows = ctx.routing("ave", "avmoe")
    model = ctx.model("ave", "avmoe")
    clips = ctx.clips_for("ave", model.cfg)
    mixtures = 16  # 4 adapted paired layers x p1, p2 x 2 streams in tiny-ave
    assert len(rows) == len(clips) * 2 * mixtures * 3  # clips x conditions x mixtures x seconds
    for row in rows:
        assert row["cma0"] + row["ua0"] == pytest.approx(1.0, abs=1e-6)
        assert (row["cma_share"], row["ua_share"]) == (row["cma0"], row["ua0"])
        assert 0.0 <= row["entropy"] <= math.log(2) + 1e-9
    clip = clips[1]
    trace = Predictor({"ave": model}).predict(clip, "visual-only", tasks=["ave"], seed=1).tasks["ave"].trace
    for (stream, layer, position), weights in trace.weights.items():
        mine = sorted((r for r in rows if (r["clip"], r["condition"], r["stream"], r["layer"], r["position"]) ==
                       (1, "visual-only", stream, layer, position)), key=lambda r: r["second"])
        assert [[r[e] for e in trace.experts[(stream, layer, position)]] for r in mine] == weights[0].tolist()
        assert [r["carrier"] for r in mine] == clip.meta["carrier"]
    assert {r["class"] for r in rows if r["clip"] == 1} <= {*clip.meta["classes"], "background"}


def _row(stream, condition, carrier, cma, ua0, ua1=0.0):
    return {"variant": "avmoe", "clip": 0, "condition": condition, "stream": stream, "layer": 0, "position": "p1",
            "second": 0, "carrier": carrier, "class": "dog", "entropy": entropy([cma, ua0, ua1]),
            "cma_share": cma, "ua_share": ua0 + ua1, "cma0": cma, "ua0": ua0, "ua1": ua1}


def test_expert_usage_averages_per_group():
    rows = [_row("visual", "av", "av", 0.8, 0.2), _row("visual", "av", "av", 0.4, 0.3, 0.3),
            _row("audio", "av", "av", 0.1, 0.9)]
    assert expert_names(rows) == ["cma0", "ua0", "ua1"]
    visual, audio = expert_usage(rows, by=("stream",))
    assert visual["n"] == 2 and visual["cma0"] == pytest.approx(0.6) and visual["ua1"] == pytest.approx(0.15)
    assert visual["entropy"] == pytest.approx((entropy([0.8, 0.2]) + entropy([0.4, 0.3, 0.3])) / 2)
    assert audio["ua_share"] == pytest.approx(0.9)
    assert entropy([0.5, 0.5, 0.0]) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="cannot group by colour"):
        expert_usage(rows, by=("colour",))


def test_what_the_ground_truth_expects_of_the_router():
    assert informative("av", "av") == {"audio", "visual"}
    assert informative("av", "visual-only") == {"visual"}
    assert informative("av", "mismatched") == {"visual"}
    assert informative("audio", "audio-only") == {"audio"}
    assert informative("av", "audio-noise:0+occlusion:0.5") == {"audio", "visual"}
    assert expected_family("visual", "av", "av") == "cma"
    assert expected_family("visual", "av", "visual-only") == "ua"  # audio removed: nothing to read across
    assert expected_family("audio", "audio", "av") == "ua"  # off screen: the picture shows nothing
    assert expected_family("visual", "audio", "av") is None  # only the other modality shows it
    assert expected_family("audio", "none", "av") == "ua"
    with pytest.raises(ValueError, match="unknown carrier"):
        informative("smell", "av")


def test_routing_vs_carrier_counts_hits():
    rows = [_row("visual", "av", "av", 0.7, 0.3), _row("visual", "av", "av", 0.2, 0.8),
            _row("visual", "visual-only", "av", 0.3, 0.7), _row("audio", "av", "audio", 0.9, 0.1),
            {**_row("audio", "av", None, 0.5, 0.5)}]
    out = {(r["carrier"], r["condition"], r["stream"]): r for r in routing_vs_carrier(rows)}
    assert set(out) == {("av", "av", "visual"), ("av", "visual-only", "visual"), ("audio", "av", "audio")}
    both = out[("av", "av", "visual")]
    assert (both["n"], both["expected"], both["hit_rate"], both["favours_ua"]) == (2, "cma", 0.5, 0.5)
    assert both["ua_share"] == pytest.approx(0.55)
    assert out[("av", "visual-only", "visual")]["hit_rate"] == 1.0
    assert out[("audio", "av", "audio")]["hit_rate"] == 0.0
