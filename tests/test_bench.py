"""`python -m avmoe bench`: the quick run times every row and reports every ratio; the loop/stacked comparison runs."""
import json

import pytest

from avmoe import bench
from avmoe.cli import main
from avmoe.config import apply_overrides, get_preset


def test_quick_bench_reports_every_row_and_ratio(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["quick"] and (result["repeats"], result["warmup"]) == (2, 1)
    assert list(result["rows"]) == list(bench.ROWS)
    shipped = any((bench.ASSETS / "models").glob("*/config.json"))
    for name, row in result["rows"].items():
        if name == "predictor" and not shipped:
            assert "skipped" in row
            continue
        assert row["n"] == 2 and 0 < row["min_s"] <= row["q1_s"] <= row["median_s"] <= row["q3_s"] <= row["max_s"]
    ratios = result["ratios"]
    assert ratios["avmoe_over_backbones"] > 0 and 0 < ratios["router_share"] < 1 and ratios["train_steps_per_s"] > 0
    assert ratios["top1_over_dense"] == result["rows"]["avmoe_top1"]["median_s"] / result["rows"]["avmoe_forward"][
        "median_s"]
    assert ratios["predictor_s"] == result["rows"]["predictor"].get("median_s")
    assert ratios["paper_ave"] == {"skipped": "--quick"}
    assert set(result["targets"]) == {"predictor_s", "avmoe_over_backbones", "router_share", "paper_experts_speedup"}
    assert result["peak_rss_mb"]["training"] >= result["peak_rss_mb"]["inference"] > 0
    table = bench.format_report(result)
    assert all(name in table for name in bench.ROWS) and "paper-ave experts        skipped (--quick)" in table


def test_compare_experts_runs_both_paths_on_the_same_weights():
    cfg = apply_overrides(get_preset("tiny-ave"), {"segments": 2})
    out = bench.compare_experts(cfg, repeats=1, warmup=0)
    assert out["mixtures"] == out["stacked_mixtures"] == 16
    assert out["max_abs_diff"] < 1e-4  # gates are 0.5, so the experts do contribute
    assert out["experts_speedup"] > 0 and out["forward_speedup"] > 0 and out["peak_rss_mb"] > 0
    assert out["experts_loop"]["n"] == out["experts_batched"]["n"] == out["experts_batched_reused"]["n"] == 1
    assert out["experts_speedup_reused"] > 0


def test_summarise():
    s = bench.summarise([0.4, 0.1, 0.3, 0.2])
    assert s == pytest.approx({"median_s": 0.25, "q1_s": 0.175, "q3_s": 0.325, "min_s": 0.1, "max_s": 0.4, "n": 4})
    assert bench.summarise([0.5])["q1_s"] == 0.5


def test_bad_repeats_are_rejected():
    with pytest.raises(ValueError, match="repeats=0"):
        bench.run_bench(repeats=0)
