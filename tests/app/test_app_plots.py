"""The pure plotly figure functions: the numbers that go in are the numbers drawn."""
import numpy as np
import pytest

from app import plots


def test_ave_timeline_draws_each_second_with_its_event_and_the_truth():
    fig = plots.ave_timeline(["dog", None, "cat"], [0.9, 0.8, 0.4], truth=["dog", "dog", None])
    bars, truth = fig.data
    assert list(bars.y) == [0.9, 0.8, 0.4]
    assert list(bars.text) == ["dog", "background", "cat"]
    assert bars.marker.color[1] == "#c8c8c8"  # background is grey
    assert bars.marker.color[0] == truth.marker.color[0]  # one colour per class across prediction and truth
    assert "confidence 0.8000" in bars.hovertext[1] and "truth: dog" in bars.hovertext[1]
    assert list(truth.text) == ["dog", "dog", "-"] and truth.mode == "markers+text"
    long = plots.ave_timeline(["a"], [0.5], truth=["heron_greatblue_flying"])
    assert long.data[1].mode == "markers"  # long names would overlap: shown on hover


def test_avvp_tracks_mark_the_seconds_each_class_is_heard_and_seen():
    fig = plots.avvp_tracks([["dog"], [], ["dog", "car"]], [[], ["car"], ["car"]])
    heat = fig.data[0]
    assert list(heat.y) == ["A · car", "A · dog", "V · car", "V · dog"]
    assert [list(r) for r in heat.z] == [[0, 0, 1], [1, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert "no audio or visual event" in plots.avvp_tracks([[], []], [[], []]).layout.annotations[0].text.lower()


def test_router_heatmaps_show_each_expert_per_condition_and_their_difference():
    rng = np.random.default_rng(0)
    a = rng.dirichlet([1, 1], size=(3, 5))  # [layers, seconds, experts]
    b = rng.dirichlet([1, 1], size=(3, 5))
    fig = plots.router_heatmaps([("A", a), ("B", b)], ["cma0", "ua0"], [0, 2, 5])
    assert len(fig.data) == 6  # 2 experts x (A, B, A-B)
    by_title = {(t.coloraxis, t.hovertemplate.split("<br>")[0], t.hovertemplate.split("<br>")[1]): t for t in fig.data}
    np.testing.assert_allclose(by_title[("coloraxis", "A", "expert ua0")].z, a[:, :, 1])
    np.testing.assert_allclose(by_title[("coloraxis2", "A − B", "expert cma0")].z, a[:, :, 0] - b[:, :, 0])
    assert list(fig.data[0].y) == ["0", "2", "5"]
    assert fig.layout.coloraxis2.cmax == pytest.approx(np.abs(a - b).max())
    single = plots.router_heatmaps([("A", a)], ["cma0", "ua0"], [0, 2, 5])
    assert len(single.data) == 2


def test_entropy_and_usage_per_layer():
    uniform = np.full((2, 4, 2), 0.5)
    certain = np.zeros((2, 4, 2))
    certain[..., 0] = 1.0
    np.testing.assert_allclose(plots.entropy(uniform), [np.log(2)] * 2)
    np.testing.assert_allclose(plots.entropy(certain), [0.0, 0.0], atol=1e-9)
    fig = plots.router_summary([("A", certain)], ["cma0", "ua0"], [0, 1])
    usage = [t for t in fig.data if t.type == "bar"]
    np.testing.assert_allclose(usage[0].y, [1.0, 1.0])
    np.testing.assert_allclose(usage[1].y, [0.0, 0.0])
    np.testing.assert_allclose(usage[1].base.astype(float), [1.0, 1.0])  # stacked on cma0


def test_comparison_robustness_and_embedding():
    fig = plots.comparison([{"title": "AVE", "x": [0, 1], "untouched": [0.2, 0.4], "intervened": [0.1, 0.5]}])
    assert [list(t.y) for t in fig.data] == [[0.2, 0.4], [0.1, 0.5]]
    rows = [{"variant": v, "condition": c, "metric": "accuracy", "value": i + 10 * j}
            for i, v in enumerate(["avmoe", "frozen"]) for j, c in enumerate(["av", "visual-only"])]
    fig = plots.robustness_bars(rows)
    assert {t.name for t in fig.data} == {"avmoe", "frozen"}
    assert sorted(fig.data[1].y) == [1, 11]
    xy = np.arange(8, dtype=float).reshape(4, 2)
    fig = plots.embedding(xy, ["a", "b", "a", "now"], ["p0", "p1", "p2", "p3"], [False, False, False, True])
    star = [t for t in fig.data if t.name == "current clip"][0]
    assert list(star.x) == [6.0] and star.marker.symbol == "star"
    assert sum(len(t.x) for t in fig.data) == 4
