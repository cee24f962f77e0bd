"""The app tour end to end on the tiny test models: it serves the app, measures it, visits every tab and leaves a
non-blank screenshot per step and a tour.json with the timings."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed")]

STEPS = ("predictions", "router", "router-compare", "intervene", "robustness", "features", "figures", "about",
         "bad-upload")


def test_tour_measures_and_screenshots_every_tab(app_root, tmp_path, capsys):
    from app.tour import main

    out = tmp_path / "tour"
    threads = torch.get_num_threads()  # the app's option sets them for the process: keep the test session's
    code = main(["--models", str(app_root / "models"), "--eval", str(app_root / "eval"), "--examples",
                 str(app_root / "examples"), "--out", str(out), "--repeats", "1", "--timeout", "60",
                 "--threads", str(threads)])
    result = json.loads((out / "tour.json").read_text())
    assert code == 0, [s["error"] for s in result["steps"]]
    assert result["cpu"]["torch_threads"] == threads
    startup = result["startup"]
    assert 0 < startup["process_to_built_s"] <= startup["process_to_served_s"] <= startup["process_to_warm_s"]
    assert startup["rss_mb_after_warm_up"] > 100
    plots = result["click_to_all_plots"]
    assert plots["clip_duration_s"] == 10.0 and len(plots["runs_s"]) == 1
    assert 0 < plots["min_s"] <= plots["median_s"] <= plots["max_s"] < 60
    assert all(0 < d <= t for d, t in zip(plots["run_to_predictions_plots_s"], plots["runs_s"]))
    assert [s["name"] for s in result["steps"]] == list(STEPS)
    for step in result["steps"]:
        assert step["seconds"] is not None and step["seconds"] >= 0, step
        shot = out / f"{step['n']}-{step['name']}.png"
        assert step["screenshot"] == shot.name
        pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
        assert pixels.shape[0] >= 900 and pixels.std() > 20, shot.name  # a full page, not blank
    refused = result["steps"][-1]["note"]
    assert "not-a-video.mp4 is not a media file" in refused and "Errno" not in refused
    assert "click to all plots" in capsys.readouterr().out
