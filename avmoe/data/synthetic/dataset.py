"""Scene-world clips as a torch Dataset, rendered on the fly and identical for the same (world, task, split, index).

The seed of a clip is a SHA-256 of "world/task/split/index", so it does not depend on the process, the Python hash
seed or the order of access; the split is part of the key, so train, val and test never share a seed.
"""
from __future__ import annotations

import copy
import hashlib

import numpy as np
from torch.utils.data import Dataset

from avmoe.data.sample import Clip
from avmoe.data.synthetic.registry import get_world
from avmoe.data.synthetic.sampler import TASKS, SamplerConfig
from avmoe.data.synthetic.scene import Scene
from avmoe.data.synthetic.world import World

SPLITS = ("train", "val", "test")


def scene_seed(world: str, task: str, split: str, index: int) -> int:
    """A 128-bit seed, stable across processes and machines."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    digest = hashlib.sha256(f"avmoe-synthetic/{world}/{task}/{split}/{index}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


class SceneDataset(Dataset):
    """n clips of a world for a task and split; item i is always the same Clip.

    Args:
        world: a world name (see registry.WORLDS) or a World.
        task: which scene sampler to use, one of sampler.TASKS; the clips carry labels for every task.
        split: "train", "val" or "test".
        n: number of clips.
        frame_size, sample_rate, segments: the rendered clip's frame side, audio rate and length in seconds.
        config: sampler probabilities (SamplerConfig() when None).
        cache: keep each rendered clip in memory (about 2.7 MB per 10-s clip at 96 px) and hand out copies, so a
            training run renders each clip once rather than once per epoch; the clips are identical either way.
    """

    def __init__(self, world: str | World, task: str, split: str, n: int, frame_size: int = 96,
                 sample_rate: int = 32000, segments: int = 10, config: SamplerConfig | None = None,
                 cache: bool = False) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        if n < 0:
            raise ValueError(f"n={n} must be >= 0")
        self.world = get_world(world) if isinstance(world, str) else world
        self.task, self.split, self.n = task, split, n
        self.frame_size, self.sample_rate, self.segments = frame_size, sample_rate, segments
        self.config = config
        self._cache: dict[int, Clip] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def seed(self, index: int) -> int:
        return scene_seed(self.world.name, self.task, self.split, index)

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} clips")
        rng = np.random.default_rng(self.seed(index))
        return self.world.sample_scene(self.task, rng, self.segments, self.config)

    def __getitem__(self, index: int) -> Clip:
        if self._cache is not None and index in self._cache:
            return copy.deepcopy(self._cache[index])  # callers may edit labels (QuestionItems does)
        clip = self.world.render(self.scene(index), self.frame_size, self.sample_rate)
        clip.meta.update(split=self.split, index=index)
        if self._cache is not None:
            self._cache[index] = copy.deepcopy(clip)
        return clip
