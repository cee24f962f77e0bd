"""`python app/app.py`: AVMoE Studio, a Gradio app to run the shipped AVMoE models on a clip and explore the router.

Models come from `--models DIR`, else $AVMOE_MODELS, else assets/models; the app starts with whatever subset of
`<task>-<variant>/` folders exists. Runs unchanged as a Hugging Face Space (it puts the repo root on sys.path).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Optional  # noqa: E402

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from app import inputs as clip_panel  # noqa: E402
from app.studio import EVAL, EXAMPLES, MAX_UPLOAD, Studio  # noqa: E402
from app.tabs import about, features, figures, intervene, predictions, robustness, router  # noqa: E402
from avmoe.paths import ASSETS, cache_dir  # noqa: E402

log = logging.getLogger("app")

# Events running at once; more users wait in the queue instead of exhausting memory. Model forwards are serialised
# by Studio's lock anyway (the models are shared, and a router override changes their state), so a second slot only
# lets one request upload, decode or draw while another runs the models; more slots would just hold more decoded
# clips and activations in memory.
CONCURRENCY = 2
# Events waiting beyond those; when it is full a new one is refused at once ("queue is full") rather than left
# waiting for minutes: a Run takes 0.5-2 s on one CPU thread (more with more task models), so 32 waiting is about a
# minute at worst. `python -m app.stress load` measures it.
QUEUE_SIZE = 32
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" or "max PERIOD" (cgroup v2)
CLEANUP = (3600, 3 * 3600)  # every hour, delete uploads and served files older than a session's clip state (3 h)
HEADER = ("# AVMoE Studio\nMixtures of audio-visual experts (NeurIPS 2024): pick a clip and a condition, press "
          "**Run**, then explore what every task model predicts and how its routers weigh the experts.")


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container, such as a Space,
    sees the host's cores in os.cpu_count())."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read
    return cores


def default_threads() -> int:
    """Torch intra-op threads for the app: $OMP_NUM_THREADS if set, else the available cores split among the
    CONCURRENCY event slots. Two events that each use every core slow each other down (a Run and the overlay video
    after it, two visitors); on this 2-core machine one thread per event took click-to-plots from 1.46-1.67 s to
    1.17-1.22 s (`python -m app.tour`)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, available_cores() // CONCURRENCY)


def models_root(arg: Optional[str | Path] = None) -> Path:
    """--models, else $AVMOE_MODELS, else assets/models."""
    return Path(arg or os.environ.get("AVMOE_MODELS") or ASSETS / "models")


def build_demo(studio: Studio) -> gr.Blocks:
    """The whole app: the clip panel above the tabs, layout first, then the wiring."""
    with gr.Blocks(title="AVMoE Studio", analytics_enabled=False, delete_cache=CLEANUP) as demo:
        gr.Markdown(HEADER)
        panel = clip_panel.build(studio)
        with gr.Tabs():
            predictions_view = predictions.build(studio)
            router_view = router.build(studio)
            intervene_view = intervene.build(studio)
            robustness_view = robustness.build(studio)
            features_view = features.build(studio)
            figures_view = figures.build(studio)
            about.build(studio)
        clip_panel.wire(studio, panel)
        predictions.wire(studio, predictions_view, panel, router_view)
        router.wire(studio, router_view, panel)
        intervene.wire(studio, intervene_view, panel)
        robustness.wire(studio, robustness_view, panel)
        features.wire(studio, features_view, panel)
        figures.wire(figures_view)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def launch_options(studio: Studio) -> dict[str, Any]:
    """launch() arguments: serve only the example clips and the app's cache, cap uploads."""
    return {"allowed_paths": [str(studio.examples_dir), str(cache_dir("app"))], "max_file_size": MAX_UPLOAD,
            "theme": gr.themes.Soft()}


@dataclass
class Served:
    """A launched app: its Blocks (close it to stop), its Studio, its local URL, the models' warm-up (None without
    models) and the seconds it took to build the Studio and the Blocks."""

    demo: gr.Blocks
    studio: Studio
    url: str
    warm_up: Optional[threading.Thread]
    build_s: float


def serve(models: Optional[str | Path] = None, eval_root: Path = EVAL, examples: Path = EXAMPLES,
          host: Optional[str] = None, port: Optional[int] = None, quiet: bool = False,
          threads: Optional[int] = None) -> Served:
    """Build the Studio and the app, start the models' warm-up (their first forward is slow) beside the starting
    server, and launch without blocking. `models` as for `models_root`; host and port default to Gradio's;
    `threads` sets torch's intra-op threads for the whole process (None leaves them)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be at least 1")
        torch.set_num_threads(threads)
    start = time.perf_counter()
    studio = Studio(models_root(models), examples_dir=examples, eval_root=eval_root)
    demo = build_demo(studio)
    build_s = time.perf_counter() - start
    log.info("built in %.1f s", build_s)
    warm_up = threading.Thread(target=studio.warm_up, name="warm-up", daemon=True) if studio.tasks else None
    if warm_up is not None:
        warm_up.start()
    _, url, _ = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=quiet,
                            **launch_options(studio))
    return Served(demo, studio, url, warm_up, build_s)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="folder of <task>-<variant>/ model folders (default $AVMOE_MODELS, "
                                         "else assets/models)")
    parser.add_argument("--eval", type=Path, default=EVAL, help="folder of <task>/ evaluation sets (make-data "
                                                                "folders; default assets/eval)")
    parser.add_argument("--host", default=None, help="server name (default: Gradio's, 0.0.0.0 on Spaces)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: Gradio's, 7860)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="torch threads per model run (default: $OMP_NUM_THREADS, else cores / concurrent events)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    serve_until_stopped(serve(args.models, args.eval, host=args.host, port=args.port, threads=args.threads).demo)
    return 0


def serve_until_stopped(demo: gr.Blocks) -> None:
    """Block until Ctrl-C or SIGTERM, then close the app fully. Blocks.close() also ends the clients' heartbeat
    streams (Gradio's own Ctrl-C handling does not), so the server stops at once and deletes its temporary files."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a container or Space stopping sends SIGTERM
    try:
        while demo.is_running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        demo.close()


if __name__ == "__main__":
    sys.exit(main())
