"""Tiny random models (gates opened so routing matters) and a few shapes-world clips, laid out as the shipped assets
(`models/<task>-<variant>/`, `eval/<task>/`), plus a tiny expert-count ablation trained on the shapes world."""
from __future__ import annotations

import contextlib

import pytest
import torch

import avmoe
from analysis.__main__ import main
from analysis.figures import Context
from avmoe.data.synthetic import get_world
from avmoe.data.synthetic.make_data import generate

SEGMENTS = 3
CLASSES = list(get_world("shapes").classes)
MODELS = (("ave", "avmoe"), ("ave", "cma-only"), ("ave", "frozen"), ("s4", "avmoe"))


def open_gates(model):
    for name, p in model.named_parameters():
        if name.endswith(".gate"):
            p.data.fill_(0.5)
    return model


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """(assets root, {(task, variant): built model})."""
    root = tmp_path_factory.mktemp("assets")
    generate("shapes", "ave", "test", 3, root / "eval" / "ave", frame_size=96, fps=2, segments=SEGMENTS,
             sample_rate=32000, progress=False)
    generate("shapes", "s4", "test", 2, root / "eval" / "s4", frame_size=96, fps=2, segments=SEGMENTS,
             sample_rate=32000, progress=False)
    torch.manual_seed(0)
    models = {}
    for task, variant in MODELS:
        extra = {"head.num_classes": len(CLASSES)} if task == "ave" else {}
        model = avmoe.build_model(f"tiny-{task}", segments=SEGMENTS, variant=variant,
                                  classes=CLASSES if task == "ave" else ["object"], **extra)
        models[(task, variant)] = open_gates(model).eval()
        avmoe.save(model, root / "models" / f"{task}-{variant}")
    return root, models


@pytest.fixture(scope="session")
def ablation_json(tmp_path_factory):
    """A one-configuration ablation (1 CMA + 2 UA), a 2-step head warm-up and one optimizer step on the shapes
    world, via the CLI."""
    out = tmp_path_factory.mktemp("ablation")
    code = main(["ablation", "--out", str(out / "ablation_ave.json"), "--world", "shapes", "--sizes", "2", "1", "1",
                 "--epochs", "1", "--batch-size", "2", "--config", "1+2", "--workers", "0", "--condition", "av",
                 "--condition", "visual-only", "--work", str(out / "runs"), "--head-warmup", "2",
                 "--head-lr-scale", "0.5", "--gate-lr-scale", "3"])
    assert code == 0
    return out / "ablation_ave.json"


@pytest.fixture(scope="session")
def ctx(assets, ablation_json, tmp_path_factory):
    """A figure context on the tiny assets, with the built models in memory (nothing is loaded twice)."""
    root, models = assets
    context = Context(models=root / "models", eval_root=root / "eval", ablation=ablation_json,
                      cache=tmp_path_factory.mktemp("cache"), snrs=(0.0,), conditions=("av", "visual-only"),
                      routing_conditions=("av", "visual-only"))
    for (task, variant), model in models.items():
        context.add_model(task, variant, model)
    return context


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _one_thread():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _one_thread():
        return (yield)


@contextlib.contextmanager
def _one_thread():
    """One torch thread while this folder's fixtures and tests run: on cores shared with a training run, two OpenMP
    threads make a tiny forward pass 10-50x slower (0.1 s -> 8 s measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
