"""Readers of the four real datasets in their official layouts; every item is an `avmoe.data.sample.Clip`.

`open_dataset("ave" | "avvp" | "s4" | "ms3" | "avqa", root, split, **kw)` is the one entry point the CLI uses
(`--data ave:PATH`). Each reader's module docstring and LAYOUT constant give the folder layout it expects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from avmoe.data.datasets.ave import AVEDataset
from avmoe.data.datasets.avqa import AVQADataset, QuestionTokenizer
from avmoe.data.datasets.avsbench import MS3Dataset, S4Dataset
from avmoe.data.datasets.base import DatasetLayoutError, RealDataset
from avmoe.data.datasets.llp import LLPDataset

__all__ = ["DATASETS", "AVEDataset", "AVQADataset", "DatasetLayoutError", "LLPDataset", "MS3Dataset",
           "QuestionTokenizer", "RealDataset", "S4Dataset", "open_dataset"]

DATASETS: dict[str, type[RealDataset]] = {
    "ave": AVEDataset,
    "avvp": LLPDataset,
    "s4": S4Dataset,
    "ms3": MS3Dataset,
    "avqa": AVQADataset,
}


def open_dataset(name: str, root: str | Path, split: str = "train", **kwargs: Any) -> RealDataset:
    """The reader `name` over `root`; kwargs go to its constructor (frame_size, sample_rate, media, ...)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root, split, **kwargs)
