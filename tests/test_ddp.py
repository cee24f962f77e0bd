"""The training command under torchrun: two CPU processes (gloo) train one model with DDP."""
import json
import subprocess
import sys

import avmoe


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "avmoe", "train",
           "--preset", "tiny-ave", "--world", "shapes", "--sizes", "8", "4", "4", "--epochs", "1", "--batch-size", "2",
           "--workers", "0", "--no-test", "--set", "segments=3", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{"):done.stdout.rindex("}") + 1])
    assert report["steps"] == 2  # 8 clips over 2 ranks with batch 2 per rank
    assert done.stdout.count('"steps"') == 1  # only rank 0 reports
    assert avmoe.load(out / "best").cfg.task == "ave"
