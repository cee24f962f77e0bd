"""Crash and resume: a training run killed with SIGKILL mid-epoch, then resumed with --resume, ends with exactly the
weights of an uninterrupted run (CPU, one thread, so every run is bit-reproducible)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avmoe.checkpoint import read_state_dict

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# 8 clips / batch 2 = 4 optimizer steps per epoch, 8 in all; a checkpoint after every step.
ARGS = ["--preset", "tiny-ave", "--world", "shapes", "--sizes", "8", "2", "2", "--epochs", "2", "--batch-size", "2",
        "--workers", "0", "--save-every", "1", "--seed", "3", "--no-test", "--set", "segments=2"]
STEPS = 8
TIMEOUT_S = 120


@pytest.fixture
def runs():
    """Start `python -m avmoe train` runs; any still alive when the test ends (a failure) are killed."""
    started: list[subprocess.Popen] = []

    def start(out: Path, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started.append(subprocess.Popen([sys.executable, "-m", "avmoe", "train", *ARGS, "--out", str(out), *extra],
                                        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _finish(proc: subprocess.Popen) -> str:
    """Wait for a run; its log (stderr)."""
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()[-2000:]
    return err.decode()


def _checkpoint(out: Path) -> dict:
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)


def test_kill_9_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path, runs):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    uninterrupted, proc = runs(reference), runs(crashed)  # side by side: the test takes less wall time
    deadline = time.monotonic() + TIMEOUT_S
    while not (crashed / "last.pt").is_file():  # written by os.replace, so it is whole as soon as it exists
        assert proc.poll() is None, "the run ended before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within the time limit"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL

    killed_at = _checkpoint(crashed)["state"]
    assert 0 < killed_at["step"] < STEPS and killed_at["batch"] > 0  # mid-epoch, before the end
    assert not (crashed / "card.json").exists()

    _finish(uninterrupted)
    log = _finish(runs(crashed, "--resume"))
    assert f"epoch 0 batch {killed_at['batch']} step {killed_at['step']}" in log  # it resumed, it did not restart
    done, expected = _checkpoint(crashed), _checkpoint(reference)
    assert done["state"]["step"] == expected["state"]["step"] == STEPS
    assert done["model"].keys() == expected["model"].keys()
    for key, value in expected["model"].items():
        assert torch.equal(done["model"][key], value), key
    for a, b in zip(done["optimizer"]["state"].values(), expected["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert [h["val"] for h in done["state"]["history"]] == [h["val"] for h in expected["state"]["history"]]
    best, best_expected = (read_state_dict(out / "best" / "model.safetensors") for out in (crashed, reference))
    assert all(torch.equal(best[k], v) for k, v in best_expected.items())
