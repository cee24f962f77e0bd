"""robustness_table is avmoe.evaluate over variants x conditions, cached per model and invalidated by its files."""
from __future__ import annotations

import os
import re

import pytest

from analysis.robustness import is_cached, read_csv, robustness_table, to_latex, write_csv
from avmoe.evaluate import evaluate


def test_rows_equal_evaluate_and_the_cache_is_used_until_the_model_changes(assets, ctx, tmp_path):
    root, _ = assets
    model = ctx.model("ave", "avmoe")
    clips = ctx.clips_for("ave", model.cfg)
    directory = root / "models" / "ave-avmoe"
    seen = []
    assert not is_cached({"avmoe": directory}, clips, ["audio-noise:0"], tmp_path)
    rows = robustness_table({"avmoe": directory}, clips, ["audio-noise:0"], cache=tmp_path,
                            progress=lambda f, m: seen.append((f, m)))
    expected = evaluate(model, clips, model.cfg.classes, "audio-noise:0")
    assert {r["metric"]: r["value"] for r in rows} == {k: v for k, v in expected.items() if k not in ("condition",
                                                                                                       "n")}
    assert all((r["variant"], r["task"], r["condition"]) == ("avmoe", "ave", "audio-noise:0") for r in rows)
    assert seen == [(1.0, "avmoe: audio-noise:0")]
    (cache_file,) = tmp_path.glob("robustness-*.csv")
    assert is_cached({"avmoe": directory}, clips, ["audio-noise:0"], tmp_path)
    assert not is_cached({"avmoe": directory}, clips, ["audio-noise:0", "visual-only"], tmp_path)
    assert not is_cached({"avmoe": directory}, clips, ["audio-noise:0"], tmp_path, seed=1)  # other settings
    cache_file.write_text(re.sub(r"accuracy,[^\n]*", "accuracy,12.5", cache_file.read_text()))
    cached = robustness_table({"avmoe": directory}, clips, ["audio-noise:0"], cache=tmp_path)
    assert {r["metric"]: r["value"] for r in cached}["accuracy"] == 12.5  # read back, not recomputed
    weights = directory / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert not is_cached({"avmoe": directory}, clips, ["audio-noise:0"], tmp_path)  # the model changed
    fresh = robustness_table({"avmoe": directory}, clips, ["audio-noise:0"], cache=tmp_path)
    assert {r["metric"]: r["value"] for r in fresh}["accuracy"] == expected["accuracy"]
    assert len(list(tmp_path.glob("robustness-*.csv"))) == 2


def test_bad_conditions_fail_before_any_work(assets, ctx):
    root, _ = assets
    with pytest.raises(ValueError, match="unknown condition"):
        robustness_table({"avmoe": root / "models" / "ave-avmoe"}, [], ["underwater"])


ROWS = [{"variant": v, "task": "ave", "condition": c, "metric": m, "value": x}
        for v, c, m, x in [("avmoe", "av", "accuracy", 71.25), ("avmoe", "visual-only", "accuracy", 60.0),
                           ("cma-only", "av", "accuracy", 72.5), ("cma-only", "visual-only", "accuracy", 41.0 / 3),
                           ("avmoe", "av", "router_cma_share_audio", 0.25)]]


def test_csv_round_trips_exactly(tmp_path):
    path = write_csv(ROWS, tmp_path / "t" / "table.csv")
    assert read_csv(path) == ROWS


def test_latex_table_has_the_primary_metric_with_the_best_in_bold():
    tex = to_latex(ROWS)
    assert tex.startswith(r"\begin{tabular}{lcc}") and r"\bottomrule" in tex
    assert r"AVE: Accuracy (\%)" in tex
    assert r"AVMoE & 71.2 & \textbf{60.0} \\" in tex
    assert r"CMA only & \textbf{72.5} & 13.7 \\" in tex
    assert "0.2" not in tex  # router shares are not the task metric
    assert "visual only" in to_latex(ROWS, conditions=["visual-only"]) and "A+V" not in to_latex(
        ROWS, conditions=["visual-only"])


def test_robustness_figure_legend_names_every_variant_of_every_task():
    from analysis.plots import robustness_figure

    rows = [{"task": task, "variant": variant, "condition": condition, "metric": metric, "value": 50.0}
            for task, metric, variants in (("ave", "accuracy", ("avmoe", "frozen")),
                                           ("s4", "miou", ("avmoe", "ua-only", "frozen")))
            for variant in variants for condition in ("av", "audio-noise:0", "visual-noise:0")]
    fig = robustness_figure(rows)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["AVMoE", "Frozen", "UA only"]
