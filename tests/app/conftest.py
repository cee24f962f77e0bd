"""Shared fixtures of the app tests: tiny random models in a temporary models root, a small evaluation set, a few
example clips, bad files, and one Studio over them (built once per test session)."""
from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import avmoe
from app.studio import Studio
from avmoe.data.media import MediaLimits, write_video
from avmoe.data.synthetic.make_data import generate
from avmoe.data.synthetic.registry import get_world

WORLD = "shapes"  # procedural: no downloads, fast to render
MODELS = (("ave", "avmoe"), ("ave", "frozen"), ("avvp", "avmoe"), ("s4", "avmoe"), ("ms3", "avmoe"),
          ("avqa", "avmoe"))
LIMITS = MediaLimits(max_duration_s=20.0, max_file_bytes=3_000_000)
CONDITIONS = ("av", "visual-only", "mismatched")  # a short robustness sweep keeps the tests fast
SEGMENTS = 4  # seconds the test models read (the segmentation models 2, run on windows), at FRAME_SIZE pixels
FRAME_SIZE = 64


def make_models(root: Path, world: str = WORLD, models=MODELS, segments: int = SEGMENTS,
                frame_size: int = FRAME_SIZE) -> Path:
    """Tiny random task models (gates opened so the routers matter) saved as `<task>-<variant>/` under root."""
    w = get_world(world)
    torch.manual_seed(0)
    for task, variant in models:
        kw = {"variant": variant, "segments": segments // 2 if task in ("s4", "ms3") else segments,
              "frame_size": frame_size}
        if task in ("ave", "avvp"):
            kw.update(classes=w.classes, **{"head.num_classes": len(w.classes)})
        elif task == "avqa":
            kw.update(classes=w.answer_vocab, question_words=w.question_vocab,
                      **{"head.num_classes": len(w.answer_vocab), "head.question_vocab": len(w.question_vocab)})
        else:
            kw.update(classes=["object"])
        model = avmoe.build_model(f"tiny-{task}", **kw)
        for name, p in model.named_parameters():
            if name.endswith(".gate"):
                p.data.fill_(0.5)
        avmoe.save(model, root / f"{task}-{variant}", card={"task": task, "variant": variant,
                                                             "note": "random weights for the app tests"})
    return root


def make_examples(directory: Path, work: Path, world: str = WORLD) -> Path:
    """Two make-data clips as example clips with sidecar JSON (title, questions, ground-truth AVE classes)."""
    directory.mkdir(parents=True, exist_ok=True)
    generate(world, "avqa", "test", 2, work, frame_size=96, fps=4, progress=False)
    classes = json.loads((work / "classes.json").read_text())["classes"]
    for index, name in enumerate(("first-scene", "second-scene")):
        record = json.loads((work / f"{index}.json").read_text())
        shutil.copyfile(work / f"{index}.mp4", directory / f"{name}.mp4")
        (directory / f"{name}.json").write_text(json.dumps({
            "title": f"Scene {index}", "description": f"a {world} scene", "licence": "test",
            "questions": [q["question"] for q in record["labels"]["qa"]],
            "ave": [None if c < 0 else classes[c] for c in record["labels"]["ave"]]}))
    (directory / "LICENSES.md").write_text("# Licences\n\ntest clips\n")
    return directory


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """Overlay videos, robustness tables and projections go to a temporary cache, not the repo's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AVMOE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def app_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app")
    make_models(root / "models")
    generate(WORLD, "ave", "test", 4, root / "eval" / "ave", frame_size=96, fps=4, progress=False)
    make_examples(root / "examples", root / "work")
    return root


@pytest.fixture(scope="session")
def studio(app_root) -> Studio:
    return Studio(app_root / "models", examples_dir=app_root / "examples", eval_root=app_root / "eval",
                  limits=LIMITS, conditions=CONDITIONS)


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """Files the app must refuse with a clear message."""
    root = tmp_path_factory.mktemp("bad")
    files = {"not_media": root / "notes.mp4", "audio_only": root / "sound.wav", "too_long": root / "long.mp4",
             "too_large": root / "big.mp4", "empty": root / "empty.mp4"}
    files["not_media"].write_text("this is not a video\n" * 10)
    with wave.open(str(files["audio_only"]), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes((np.random.default_rng(0).normal(0, 3000, 16000)).astype(np.int16).tobytes())
    write_video(files["too_long"], np.zeros((30, 32, 32, 3), np.uint8), fps=1)
    files["too_large"].write_bytes(b"\0" * (LIMITS.max_file_bytes + 1))
    files["empty"].write_bytes(b"")
    return files


@pytest.fixture(scope="session")
def upload(tmp_path_factory) -> Path:
    """A video that is not an example: 12 s of random frames and noise (the models see the first 10 s)."""
    g = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("upload") / "my upload.mp4"
    frames = g.integers(0, 255, (24, 64, 80, 3), dtype=np.uint8)
    return write_video(path, frames, fps=2, audio=0.1 * g.standard_normal(12 * 16000), sample_rate=16000)


@pytest.fixture(scope="session")
def server(studio):
    """The app served on 127.0.0.1 (a free port) for the client and browser tests; closed at the end."""
    from app.app import build_demo, launch_options

    demo = build_demo(studio)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(studio))
    yield url
    demo.close()
