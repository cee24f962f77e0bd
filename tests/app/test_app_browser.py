"""One real browser run: headless Debian Chromium opens the app, uploads an example, runs it, waits for the router
heat-map and takes a screenshot that must show the expected texts and not be blank."""
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed")]


def test_upload_run_and_router_heatmap(server, studio, tmp_path):
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "router.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.wait_for_selector("text=AVMoE Studio")
        page.locator("input[type=file]").first.set_input_files(str(studio.examples[1].path))
        page.wait_for_selector("text=4 one-second segments", timeout=60_000)
        start = time.perf_counter()
        page.locator("#run").click()
        page.wait_for_selector("text=Event per second (AVE) · av", timeout=60_000)
        page.get_by_role("tab", name="Router explorer").click()
        page.wait_for_selector("text=Router weights · ave · visual stream · p1", timeout=60_000)
        elapsed = time.perf_counter() - start
        page.wait_for_timeout(500)  # let plotly finish drawing
        page.screenshot(path=str(shot), full_page=True)
        text = page.inner_text("body")
        browser.close()
    for expected in ("AVMoE Studio", "Scene 1", "Router explorer", "A: av · cma0", "A: av · ua0",
                     "routing entropy"):
        assert expected in text, expected
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 800 and pixels.std() > 20  # not a blank page
    heatmap_colours = len(np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0))
    assert heatmap_colours > 200
    assert elapsed < 60, f"click to router heat-map took {elapsed:.1f} s"
