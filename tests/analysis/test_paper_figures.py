"""Every registered figure is built from the tiny assets, written as PNG + PDF, and shows the numbers that
`avmoe.evaluate` and the Predictor give for the same models and clips."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import avmoe
from analysis.embeddings import feature_sets, project
from analysis.figures import FIGURES
from analysis.plots import _overlay
from analysis.robustness import read_csv
from analysis.router_stats import expected_family, expert_usage, routing_vs_carrier
from analysis.style import VARIANT_COLOURS, GT_COLOUR
from avmoe.data.synthetic import SceneDataset
from avmoe.evaluate import evaluate
from avmoe.predict import Predictor


@pytest.fixture(scope="session")
def made(ctx):
    return {name: spec.build(ctx) for name, spec in FIGURES.items()}


def _artists(fig, gid):
    found = [a for ax in fig.axes for a in (*ax.lines, *ax.patches, *ax.collections, *ax.images)
             if a.get_gid() == gid]
    assert found, f"no artist {gid!r}"
    return found


def test_every_figure_is_written_as_png_and_pdf(made, tmp_path):
    names = {n for m in made.values() for n in m.figures}
    assert names == {"router_weights", "expert_usage", "routing_vs_carrier", "robustness", "ablation",
                     "embeddings_tsne", "embeddings_umap", "avs_s4"}
    for m in made.values():
        assert set(m.captions) == set(m.figures)
        m.write(tmp_path)
    for name in names:
        png = Image.open(tmp_path / f"{name}.png")
        assert png.width > 400 and np.asarray(png.convert("L")).std() > 5, name
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    for table in ("robustness.csv", "robustness.tex", "routing_vs_carrier.csv"):
        assert (tmp_path / table).stat().st_size > 50


def test_router_figures_show_the_predictors_routing_which_matches_evaluate(ctx, made):
    rows = ctx.routing("ave", "avmoe")
    model = ctx.model("ave", "avmoe")
    clips = ctx.clips_for("ave", model.cfg)
    result = evaluate(model, clips, model.cfg.classes, "av")
    for stream in ("visual", "audio"):
        shares = [r["cma_share"] for r in rows if r["condition"] == "av" and r["stream"] == stream]
        assert np.mean(shares) == pytest.approx(result[f"router_cma_share_{stream}"], rel=1e-5)
    usage = expert_usage(rows, by=("stream", "layer", "position", "condition"))
    line = _artists(made["router_weights"].figures["router_weights"], "audio/visual-only/p2")[0]
    expected = [u["ua_share"] for u in sorted(usage, key=lambda u: u["layer"])
                if (u["stream"], u["condition"], u["position"]) == ("audio", "visual-only", "p2")]
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=0, atol=0)
    bars = _artists(made["expert_usage"].figures["expert_usage"], "visual/condition/ua0")
    by_condition = {u["condition"]: u["ua0"] for u in expert_usage(rows, by=("stream", "condition"))
                    if u["stream"] == "visual"}
    assert [b.get_height() for b in bars] == pytest.approx([by_condition["av"], by_condition["visual-only"]], abs=1e-15)
    summary = routing_vs_carrier(rows)
    bars = _artists(made["expert_usage"].figures["routing_vs_carrier"], "audio/ua")
    for bar, condition in zip(bars, ("av", "visual-only")):
        cells = [s for s in summary if (s["stream"], s["condition"], s["expected"]) == ("audio", condition, "ua")]
        hits = sum(s["hit_rate"] * s["n"] for s in cells) / sum(s["n"] for s in cells)
        assert bar.get_height() == pytest.approx(hits, abs=1e-15)
        assert hits == pytest.approx(np.mean([r["ua_share"] > 0.5 for r in rows if r["stream"] == "audio"
                                             and r["condition"] == condition
                                             and expected_family("audio", r["carrier"], condition) == "ua"]))

def test_robustness_table_and_curves_equal_evaluate(ctx, made, tmp_path):
    m = made["robustness"]
    (tmp_path / "r.csv").write_text(m.files["robustness.csv"])
    rows = read_csv(tmp_path / "r.csv")
    assert {(r["task"], r["variant"]) for r in rows} == {("ave", "avmoe"), ("ave", "cma-only"), ("ave", "frozen"),
                                                         ("s4", "avmoe")}
    assert {r["condition"] for r in rows} == {"av", "visual-only", "audio-noise:0", "visual-noise:0"}
    model = ctx.model("ave", "cma-only")
    clips = ctx.clips_for("ave", model.cfg)
    result = evaluate(model, clips, model.cfg.classes, "visual-noise:0")
    table = {r["metric"]: r["value"] for r in rows if (r["variant"], r["condition"]) == ("cma-only", "visual-noise:0")}
    assert table == {k: v for k, v in result.items() if k not in ("condition", "n")}
    fig = m.figures["robustness"]
    assert list(_artists(fig, "cma-only/visual-noise/accuracy")[0].get_ydata()) == [result["accuracy"]]
    s4 = {r["variant"]: r["value"] for r in rows if r["task"] == "s4" and r["metric"] == "miou"
          and r["condition"] == "av"}
    assert list(_artists(fig, "avmoe/av/miou")[0].get_ydata()) == [s4["avmoe"]]
    assert r"\textbf" in m.files["robustness.tex"] and "AVS-S4" in m.files["robustness.tex"]


def test_ablation_figure_shows_the_runs_test_evaluation(ctx, made):
    doc = json.loads(ctx.ablation.read_text())
    (run,) = doc["runs"]
    assert (run["cma"], run["ua"]) == (1, 2) and run["trainable_params"] > 0
    best = avmoe.load(ctx.ablation.parent / "runs" / "cma1-ua2" / "best")
    assert best.cfg.experts == (1, 2)
    test = SceneDataset("shapes", "ave", "test", 1, best.cfg.frame_size, best.cfg.sample_rate)  # as train.py builds it
    fig = made["ablation"].figures["ablation"]
    for condition in ("av", "visual-only"):
        accuracy = evaluate(best, test, best.cfg.classes, condition, batch_size=2, seed=1)["accuracy"]
        assert run["test"][condition]["accuracy"] == accuracy
        assert [b.get_height() for b in _artists(fig, f"{condition}/accuracy")] == [accuracy]


def test_embedding_panels_are_the_projected_features(ctx, made):
    model = ctx.model("ave", "avmoe")
    features, meta = feature_sets(model, ctx.clips_for("ave", model.cfg), ("visual", "audio"), level="second")
    labels = np.array([m["class"] for m in meta])
    Y = project(features["audio"], "umap", 0, ctx.cache)  # the figure's projection, from the cache
    fig = made["embeddings"].figures["embeddings_umap"]
    for name in set(labels):
        (points,) = _artists(fig, f"audio/avmoe/{name}")
        np.testing.assert_array_equal(points.get_offsets(), Y[labels == name])


def test_avs_grid_shows_the_predictors_masks_and_evaluates_miou(ctx, made):
    fig = made["avs"].figures["avs_s4"]
    model = ctx.model("s4", "avmoe")
    clips = ctx.clips_for("s4", model.cfg)
    sounding = [int((clips[i].labels["masks"].flatten(1).sum(1) > 0).sum()) for i in range(len(clips))]
    clip = clips[sounding.index(max(sounding))]  # the builder shows the clip with the most sounding frames
    masks = Predictor({"s4": model}).predict(clip, tasks=["s4"]).tasks["s4"].outputs["masks"].numpy()
    frames = clip.frames.permute(0, 2, 3, 1).numpy()
    for t in range(clip.num_segments):
        (image,) = _artists(fig, f"avmoe/{t}")
        np.testing.assert_allclose(image.get_array(), _overlay(frames[t], masks[t], VARIANT_COLOURS["avmoe"]))
        (truth,) = _artists(fig, f"gt/{t}")
        np.testing.assert_allclose(truth.get_array(), _overlay(frames[t], clip.labels["masks"][t].numpy() > 0.5,
                                                               GT_COLOUR))
    miou = evaluate(model, [clip], model.cfg.classes, "av")["miou"]
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert f"AVMoE\nmIoU {miou:.1f}" in labels
