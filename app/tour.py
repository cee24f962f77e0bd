"""`python -m app.tour`: serve AVMoE Studio in this process and walk headless Chromium through it.

Measures start-up (process start to the page being served; memory after the models' warm-up) and "click to all
plots" (Run on a 10-s example until every Predictions plot and the router heat-map are drawn), then visits every tab,
triggers its main action and saves a full-page screenshot of each, plus one of a bad upload, to --out; the numbers
go to <out>/tour.json and a short table to stdout. Uses Debian's /usr/bin/chromium and never downloads a browser.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import torch
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app.app import Served, default_threads, serve
from app.stress import memory_mb
from app.studio import EVAL, EXAMPLES, Example, Studio, condition_string
from app.tabs.robustness import evaluation_cached, tasks_with_variants
from avmoe.data.media import probe
from avmoe.paths import cache_dir

log = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
TARGET_S = 1.5  # the app's goal: click to all plots within this, warm, on a 10-s example
CLIP_SECONDS = 10.0
FIRST_SNR = 10  # each Run gets its own noise SNR (dB): the app caches predictions by condition
SETTLE_MS = 400  # plotly may still lay out after the awaited text appears: wait this long before a screenshot
ERROR_TOAST = ".toast-body.error"
TOAST_TEXT = "[data-testid=toast-text]"  # one per message of a toast
NO_AVVP_EVENTS = "No audio or visual event detected"  # plots.avvp_tracks' figure when nothing is detected

# Each spec [elem_id, texts]: the element is shown and one of its plot (SVG) texts, or its visible text, holds one of
# `texts`; with no texts, it shows an image instead. A plot must also fill its container's width (plotly draws a
# figure that arrives in a hidden tab at a default width until it is resized).
SHOWN = """specs => specs.every(([id, texts]) => {
  const el = document.getElementById(id);
  if (!el || !el.offsetParent) return false;
  if (!texts.length) return !!el.querySelector('img[src]');
  const plot = el.querySelector('.js-plotly-plot'), svg = el.querySelector('.main-svg');
  if (plot && svg && Math.abs(plot.getBoundingClientRect().width - svg.getBoundingClientRect().width) > 2) return false;
  const parts = [...el.querySelectorAll('svg text')].map(t => t.textContent).concat([el.innerText]);
  return texts.some(t => parts.some(p => p.includes(t)));
})"""


class TourError(RuntimeError):
    """A step of the tour did not reach its result: a timeout or an error message of the app."""


# ------------------------------------------------------------------------------------------------- measuring
def process_age_s() -> float:
    """Seconds since this process started (Linux /proc), so start-up includes the imports."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")


def ten_second_example(studio: Studio) -> tuple[Example, float]:
    """The first example clip whose duration is closest to 10 s, and that duration."""
    if not studio.examples:
        raise TourError(f"no example clips in {studio.examples_dir}; make them with `python -m app.make_examples`")
    durations = {e.name: probe(e.path)["duration"] or 0.0 for e in studio.examples}
    best = min(studio.examples, key=lambda e: abs(durations[e.name] - CLIP_SECONDS))
    return best, durations[best.name]


# ---------------------------------------------------------------------------------------------------- serving
def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def serve_warm(models: Optional[str] = None, eval_root: Path = EVAL, examples: Path = EXAMPLES,
               timeout_s: float = 300.0, threads: Optional[int] = None) -> tuple[Served, dict[str, float]]:
    """app.app.serve on 127.0.0.1 and a free port, once the page is served and the warm-up is done; with the
    start-up numbers (seconds since process start when built, served and warm; memory after the warm-up)."""
    started = process_age_s()
    served = serve(models, eval_root, examples, host="127.0.0.1", quiet=True, threads=threads)
    deadline = time.monotonic() + timeout_s
    try:
        while not _serves(served.url):
            if time.monotonic() > deadline:
                raise TourError(f"the app at {served.url} did not serve its page within {timeout_s:.0f} s")
            time.sleep(0.05)
        served_at = process_age_s()
        if served.warm_up is not None:
            served.warm_up.join(max(1.0, deadline - time.monotonic()))
            if served.warm_up.is_alive():
                raise TourError(f"the models' warm-up took over {timeout_s:.0f} s")
    except TourError:
        served.demo.close()
        raise
    startup = {"process_to_built_s": started + served.build_s, "process_to_served_s": served_at,
               "process_to_warm_s": process_age_s()}
    startup = {k: round(v, 2) for k, v in startup.items()}
    return served, {**startup, **{f"{k}_after_warm_up": v for k, v in memory_mb().items()}}


# ----------------------------------------------------------------------------------------------------- the tour
@dataclass
class Step:
    n: int
    name: str
    action: str
    seconds: Optional[float] = None  # from the action's click to its result
    screenshot: Optional[str] = None
    error: Optional[str] = None
    note: Optional[str] = None


class Tour:
    """One browser page on the app: actions that wait for their results, and screenshots."""

    def __init__(self, page: Page, url: str, studio: Studio, out: Path, timeout_s: float):
        self.page, self.url, self.studio, self.out, self.timeout_s = page, url, studio, out, timeout_s
        self.steps: list[Step] = []
        self.task = studio.tasks[0] if studio.tasks else None  # the first task model, as the tabs default to
        self.example: Optional[Example] = None  # the loaded example

    # -------------------------------------------------------------------------------------------- primitives
    def wait(self, specs: list[tuple[str, list[str]]], what: str) -> None:
        """Wait until every spec is shown (see SHOWN); an error toast of the app or the timeout raises TourError."""
        try:
            self.page.wait_for_function(f"specs => ({SHOWN})(specs) || !!document.querySelector('{ERROR_TOAST}')",
                                        arg=[list(s) for s in specs], timeout=self.timeout_s * 1000)
        except PlaywrightTimeout:
            raise TourError(f"timed out after {self.timeout_s:.0f} s waiting for {what}") from None
        if self.page.locator(ERROR_TOAST).count():
            messages = self.toast_messages()
            self.dismiss_toasts()
            raise TourError(f"the app showed an error while waiting for {what}: {messages}")

    def wait_text(self, text: str, what: str) -> None:
        """Wait until `text` is shown anywhere on the page."""
        try:
            self.page.get_by_text(text).first.wait_for(state="visible", timeout=self.timeout_s * 1000)
        except PlaywrightTimeout:
            raise TourError(f"timed out after {self.timeout_s:.0f} s waiting for {what}") from None

    def toast_messages(self) -> str:
        return " | ".join(" ".join(t.inner_text().split()) for t in self.page.locator(TOAST_TEXT).all())

    def dismiss_toasts(self) -> None:
        for button in self.page.locator(".toast-close").all():
            button.click()

    def open_tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()

    def click(self, selector: str) -> float:
        """Click and return the time of the click (perf_counter)."""
        self.page.locator(selector).click()
        return time.perf_counter()

    def step(self, name: str, action: str, act: Callable[[], Optional[str]], tab: Optional[str] = None) -> Step:
        """Open `tab`, run `act` (it clicks and waits; may return a note), record its time or error, screenshot."""
        record = Step(len(self.steps) + 1, name, action)
        try:
            if tab:
                self.open_tab(tab)
            start = time.perf_counter()
            record.note = act()
            record.seconds = round(time.perf_counter() - start, 3)
        except (TourError, PlaywrightError) as err:
            record.error = str(err).strip().splitlines()[0]
            log.error("%s: %s", name, record.error)
        self.page.mouse.move(0, 0)  # no hover highlight on the clicked button
        self.page.wait_for_timeout(SETTLE_MS)
        path = self.out / f"{record.n}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        record.screenshot = path.name
        self.steps.append(record)
        log.info("%d %s: %s", record.n, name, record.error or f"{record.seconds} s")
        return record

    # ----------------------------------------------------------------------------------------- click to plots
    def load_example(self, example: Example) -> None:
        self.page.get_by_role("button", name=example.title, exact=True).first.click()
        self.wait([("clip-info", [f"{example.title}:"]), ("clip-info", ["one-second segments"])],
                  f"the example {example.name!r} to load")
        self.example = example

    def plot_specs(self, condition: str) -> list[tuple[str, list[str]]]:
        """What the Predictions tab shows once a Run under `condition` is drawn (its plots and mask gallery)."""
        tasks, specs = self.studio.tasks, []
        if "ave" in tasks:
            specs.append(("ave-plot", [f"Event per second (AVE) · {condition}"]))
        if "avvp" in tasks:
            specs.append(("avvp-plot", [f"(AVVP) · {condition}", NO_AVVP_EVENTS]))
        if "s4" in tasks or "ms3" in tasks:
            specs.append(("masks", []))
        return specs

    def run(self, condition: str) -> tuple[float, float]:
        """Click Run; seconds until the Predictions tab is drawn, and until the router heat-map is drawn too
        (the script opens the Router explorer as soon as the Predictions plots show, then goes back)."""
        start = self.click("#run")
        self.wait(self.plot_specs(condition), f"the Predictions plots under {condition}")
        drawn = time.perf_counter() - start
        self.open_tab("Router explorer")
        self.wait([("router-heatmap", [f"A: {condition} · "])], f"the router heat-map under {condition}")
        total = time.perf_counter() - start
        self.open_tab("Predictions")
        return drawn, total

    def set_snr(self, snr: int) -> str:
        box = self.page.get_by_label("number input for Noise SNR (dB)")
        box.fill(str(snr))
        box.press("Enter")
        return condition_string("audio noise", snr)

    def click_to_all_plots(self, example: Example, duration: float, repeats: int) -> dict[str, Any]:
        """One untimed Run, then `repeats` timed ones, each under a new noise SNR so none is served from the app's
        prediction cache; then one cache hit (the first timed condition again)."""
        self.load_example(example)
        self.page.get_by_role("radio", name="audio noise", exact=True).click()
        self.run(self.set_snr(FIRST_SNR - 1))
        drawn, totals = [], []
        for i in range(repeats):
            d, t = self.run(self.set_snr(FIRST_SNR + i))
            drawn.append(round(d, 3))
            totals.append(round(t, 3))
        _, cached = self.run(self.set_snr(FIRST_SNR))
        median = statistics.median(totals)
        return {"clip": example.name, "clip_duration_s": duration, "repeats": repeats, "runs_s": totals,
                "median_s": round(median, 3), "min_s": min(totals), "max_s": max(totals),
                "run_to_predictions_plots_s": drawn,
                "run_to_predictions_plots_median_s": round(statistics.median(drawn), 3),
                "cached_repeat_s": round(cached, 3), "target_s": TARGET_S, "meets_target": median <= TARGET_S,
                "protocol": "warm (one untimed Run first); each timed Run uses condition 'audio noise' at a new SNR "
                            "so the app's prediction cache (by clip, condition, question, override) misses; timed "
                            "from the click on Run until the AVE/AVVP plots and mask gallery show the new "
                            "condition, then the Router explorer tab is opened at once and its heat-map awaited"}

    # -------------------------------------------------------------------------------------------------- tabs
    def predictions(self) -> str:
        question = None
        if "avqa" in self.studio.tasks:
            question = (self.example.questions if self.example and self.example.questions else
                        ("how many sounding objects are in the video?",))[0]
            self.page.locator("#question textarea").fill(question)
        self.page.get_by_role("radio", name="audio + visual", exact=True).click()
        self.click("#run")
        specs = self.plot_specs("av") + ([("answer", ["%"])] if question else [])
        self.wait(specs, "the Predictions tab under av")
        return f"question: {question}" if question else None

    def router(self) -> None:
        self.wait([("router-heatmap", ["A: av · "]), ("router-summary", ["routing entropy"])],
                  "the router heat-map and usage")

    def router_compare(self) -> str:
        condition = condition_string("visual only")
        self.click("#router-compare")
        self.wait([("router-heatmap", [f"B: {condition} · "]), ("router-heatmap", [" − "])],
                  f"the router heat-maps of av and {condition}")
        return f"compared with {condition}"

    def intervene(self) -> str:
        self.click("#intervene-go")
        self.wait([("intervene-effects", ["Untouched vs intervened"]), ("intervene-router", ["intervened · "]),
                   ("intervene-summary", ["Override"])], "the intervention's effects")
        return "unimodal only, every layer, both streams"

    def robustness(self) -> str:
        task = tasks_with_variants(self.studio)[0]
        cached = evaluation_cached(self.studio, task)
        if cached:
            self.click("#robustness-evaluate")
            self.wait([("robustness-chart", ["evaluation clips"])], f"the cached evaluation-set table of {task}")
        self.click("#robustness-current")
        self.wait([("robustness-clip-chart", ["on the current clip"])], f"the current-clip comparison of {task}")
        return (f"{task}: evaluation set (cached) and current clip" if cached else
                f"{task}: current clip only (the evaluation-set table is not cached)")

    def features(self) -> str:
        self.click("#features-project")
        self.wait([("features-plot", [f"t-SNE · {self.task}"])], "the t-SNE plot")
        return f"t-SNE of {self.task}, visual stream, final layer"

    def figures(self) -> str:
        self.click("#figure-make")
        self.wait([("figure-preview-0", [])], "the figure's preview")
        return self.page.locator("#figure-preview-0").inner_text().strip().splitlines()[0]

    def about(self) -> None:
        self.wait_text("Models under", "the About tab's model table")
        self.page.get_by_text("Model cards", exact=True).click()
        first = next(iter(self.studio.cards()), None)
        if first:
            self.wait_text(first, "the model cards")

    def bad_upload(self, path: Path) -> str:
        """A fresh page uploads a text file named .mp4; an error message naming the file is the expected result."""
        self.page.goto(self.url)
        self.page.locator("#clip input[type=file]").set_input_files(str(path))
        try:
            self.page.locator(TOAST_TEXT, has_text=path.name).first.wait_for(timeout=self.timeout_s * 1000)
        except PlaywrightTimeout:
            raise TourError(f"no error message naming {path.name} within {self.timeout_s:.0f} s of its upload; "
                            f"shown: {self.toast_messages() or 'nothing'}") from None
        return self.toast_messages()


def tour(url: str, studio: Studio, out: Optional[Path] = None, repeats: int = 5, timeout_s: float = 300.0,
         startup: Optional[dict] = None) -> dict[str, Any]:
    """Drive Chromium through the app at `url` (served with `studio`); screenshots and tour.json go to `out`."""
    if not CHROMIUM.is_file():
        raise TourError(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    out = Path(out) if out else cache_dir("app", "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"url": url, "models_root": str(studio.models_root),
                              "models": {v: sorted(t) for v, t in studio.models.items()}, "tasks": studio.tasks,
                              "cpu": {"cores": os.cpu_count(), "load_average": os.getloadavg(),
                                      "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                                      "torch_threads": torch.get_num_threads()}}
    if startup:
        result["startup"] = startup
    bad = out / "not-a-video.mp4"
    bad.write_text("this is a text file, not a video\n" * 20)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            walk = Tour(page, url, studio, out, timeout_s)
            start = time.perf_counter()
            try:
                page.goto(url, timeout=timeout_s * 1000)
                page.wait_for_selector("#run", timeout=timeout_s * 1000)
            except PlaywrightError as err:
                raise TourError(f"the page at {url} did not load: {str(err).strip().splitlines()[0]}") from None
            result["page_load_s"] = round(time.perf_counter() - start, 3)
            try:
                example, duration = ten_second_example(studio)
                result["click_to_all_plots"] = walk.click_to_all_plots(example, duration, repeats)
            except (TourError, PlaywrightError) as err:
                result["click_to_all_plots"] = {"error": str(err).strip().splitlines()[0]}
                log.error("click to all plots: %s", result["click_to_all_plots"]["error"])
            walk.step("predictions", "Run under audio + visual", walk.predictions, tab="Predictions")
            walk.step("router", "open the tab (heat-maps of the Run)", walk.router, tab="Router explorer")
            walk.step("router-compare", "Compare with visual only", walk.router_compare)
            walk.step("intervene", "Intervene: unimodal only", walk.intervene, tab="Intervene")
            walk.step("robustness", "compare the variants", walk.robustness, tab="Robustness")
            walk.step("features", "Project (t-SNE)", walk.features, tab="Features")
            walk.step("figures", "Make the first figure", walk.figures, tab="Figures")
            walk.step("about", "open the model cards", walk.about, tab="About")
            walk.step("bad-upload", f"upload {bad.name} (a text file)", lambda: walk.bad_upload(bad))
        finally:
            browser.close()
    bad.unlink()
    result["steps"] = [asdict(s) for s in walk.steps]
    result["memory_at_end"] = memory_mb()
    (out / "tour.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict[str, Any]) -> str:
    """A short plain-text summary of a tour's result."""
    lines = []
    if "startup" in result:
        s = result["startup"]
        lines.append(f"start-up: page served {s['process_to_served_s']:.1f} s after process start, models warm at "
                     f"{s['process_to_warm_s']:.1f} s; RSS after warm-up {s.get('rss_mb_after_warm_up', '?')} MB")
    c = result.get("click_to_all_plots", {})
    if "error" in c:
        lines.append(f"click to all plots: FAILED: {c['error']}")
    elif c:
        lines.append(f"click to all plots ({c['clip']}, {c['clip_duration_s']:.1f} s clip, {c['repeats']} warm runs): "
                     f"median {c['median_s']:.2f} s, min {c['min_s']:.2f}, max {c['max_s']:.2f} "
                     f"(target {c['target_s']} s: {'met' if c['meets_target'] else 'NOT met'}); to the Predictions "
                     f"plots alone median {c['run_to_predictions_plots_median_s']:.2f} s; a cached repeat "
                     f"{c['cached_repeat_s']:.2f} s")
    lines.append(f"{'n':>2}  {'step':<15} {'seconds':>8}  result")
    for s in result.get("steps", []):
        seconds = f"{s['seconds']:.2f}" if s["seconds"] is not None else "-"
        outcome = f"FAILED: {s['error']}" if s["error"] else (s["note"] or "ok")
        lines.append(f"{s['n']:>2}  {s['name']:<15} {seconds:>8}  {s['screenshot']}: {outcome}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="folder of <task>-<variant>/ model folders (default $AVMOE_MODELS, "
                                         "else assets/models)")
    parser.add_argument("--eval", type=Path, default=EVAL, help="folder of <task>/ evaluation sets")
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="folder of example clips")
    parser.add_argument("--out", type=Path, help="screenshots and tour.json (default .cache/app/screenshots)")
    parser.add_argument("--repeats", type=int, default=5, help="timed Runs for click to all plots")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for any one result")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="torch threads per model run, as the app's option (default: the app's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    served, startup = serve_warm(args.models, args.eval, args.examples, args.timeout, args.threads)
    try:
        result = tour(served.url, served.studio, args.out, args.repeats, args.timeout, startup)
    finally:
        served.demo.close()
    print(table(result))
    print(f"screenshots and tour.json in {args.out or cache_dir('app', 'screenshots')}")
    failed = "error" in result["click_to_all_plots"] or any(s["error"] for s in result["steps"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
