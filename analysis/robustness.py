"""Robustness sweeps: model variants x input conditions -> one tidy table of official metrics.

Every number is computed by `avmoe.evaluate.evaluate` on the same clips; nothing here re-implements a metric. Rows are
{variant, task, condition, metric, value}, one per number `evaluate` returns (the task's metrics and the mean
cross-modal share of the router per stream). Results are cached per model as CSV files in a cache folder, keyed by a
hash of the model's files (sizes and modification times; for a loaded model, its tensors), the clips and the
evaluation settings; conditions missing from a model's file are evaluated and appended to it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from torch.utils.data import Dataset, Subset

import avmoe
from analysis.labels import condition_label, metric_label, task_label, variant_label
from analysis.predictions import Progress
from avmoe.checkpoint import CONFIG, WEIGHTS
from avmoe.config import ModelConfig
from avmoe.data.corrupt import parse_condition
from avmoe.evaluate import PRIMARY, evaluate
from avmoe.model import TaskModel

log = logging.getLogger(__name__)

COLUMNS = ("variant", "task", "condition", "metric", "value")


def robustness_table(model_dirs: Mapping[str, str | Path | TaskModel], clips: Dataset, conditions: Sequence[str],
                     classes: Optional[list[str]] = None, cache: Optional[Path] = None,
                     progress: Optional[Progress] = None, batch_size: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Rows {variant, task, condition, metric, value} of every model (variant name -> model directory, or a loaded
    TaskModel) on `clips` under every condition, from `avmoe.evaluate.evaluate(model, clips, classes, condition,
    batch_size, seed)`.

    Args:
        classes: label names for the metric (default: each model's own `cfg.classes`).
        cache: a folder for the per-model CSV caches; None computes everything.
        progress: called as progress(fraction, message) after each evaluation.
    """
    for condition in conditions:
        parse_condition(condition)
    source = None if cache is None else _describe(clips)
    rows: list[dict[str, Any]] = []
    total, done = len(model_dirs) * len(conditions), 0
    for variant, given in model_dirs.items():
        model = given if isinstance(given, TaskModel) else None
        task = model.cfg.task if model is not None else ModelConfig.load(Path(given) / CONFIG).task
        path = None if cache is None else _cache_file(cache, given, source, classes, batch_size, seed)
        cached = _read(path)
        for condition in conditions:
            if condition not in cached:
                model = model or avmoe.load(given)
                result = evaluate(model, clips, classes or model.cfg.classes, condition, batch_size, seed,
                                  question_words=model.cfg.question_words)
                cached[condition] = [{"task": task, "condition": condition, "metric": k, "value": float(v)}
                                     for k, v in result.items() if k not in ("condition", "n")]
                if path is not None:
                    _append(path, cached[condition])
            else:
                log.debug("robustness of %s under %s from the cache %s", variant, condition, path)
            rows.extend({"variant": variant, **r} for r in cached[condition])
            done += 1
            if progress is not None:
                progress(done / total, f"{variant}: {condition}")
    return rows


def is_cached(model_dirs: Mapping[str, str | Path | TaskModel], clips: Dataset, conditions: Sequence[str],
              cache: Path, classes: Optional[list[str]] = None, batch_size: int = 8, seed: int = 0) -> bool:
    """Whether `robustness_table` with these arguments would read every number from `cache` and evaluate nothing
    (e.g. to offer a comparison only when it is instant)."""
    source = _describe(clips)
    return all(set(conditions) <= set(_read(_cache_file(cache, given, source, classes, batch_size, seed)))
               for given in model_dirs.values())


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Rows as CSV, columns in the order keys first appear; floats written exactly (repr)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(rows))
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows written by `write_csv` for a robustness table, with "value" back as a float."""
    with open(path, newline="") as f:
        return [{**r, "value": float(r["value"])} for r in csv.DictReader(f)]


def to_latex(rows: Sequence[dict[str, Any]], conditions: Optional[Sequence[str]] = None,
             metric: Optional[str] = None) -> str:
    """A booktabs table per task: variants down, conditions across, the task's primary metric (or `metric`) in each
    cell, one decimal, the best of each column in bold."""
    blocks = []
    for task in dict.fromkeys(r["task"] for r in rows):
        name = metric or PRIMARY[task]
        cells = {(r["variant"], r["condition"]): r["value"] for r in rows if r["task"] == task and r["metric"] == name}
        wanted = [c for c in (conditions or dict.fromkeys(c for _, c in cells)) if any(c == k[1] for k in cells)]
        variants = list(dict.fromkeys(v for v, _ in cells))
        lines = [r"\begin{tabular}{l" + "c" * len(wanted) + "}", r"\toprule",
                 rf"\multicolumn{{{len(wanted) + 1}}}{{l}}{{{_tex(task_label(task))}: {_tex(metric_label(name))}}} \\",
                 r"\midrule",
                 " & ".join(["Variant", *(_tex(condition_label(c)) for c in wanted)]) + r" \\", r"\midrule"]
        best = {c: max((v for (_, cc), v in cells.items() if cc == c and not math.isnan(v)), default=math.nan)
                for c in wanted}
        for variant in variants:
            row = [_tex(variant_label(variant))]
            for c in wanted:
                value = cells.get((variant, c))
                text = "--" if value is None or math.isnan(value) else f"{value:.1f}"
                row.append(rf"\textbf{{{text}}}" if value == best[c] else text)
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _tex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text (see `write_csv`)."""
    columns = list(dict.fromkeys(k for r in rows for k in r)) or list(COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    return buffer.getvalue()


def _read(path: Optional[Path]) -> dict[str, list[dict[str, Any]]]:
    """condition -> rows (without the variant) of a cache file; empty if there is none."""
    by_condition: dict[str, list[dict[str, Any]]] = {}
    if path is not None and path.is_file():
        for row in read_csv(path):
            by_condition.setdefault(row["condition"], []).append(row)
    return by_condition


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = csv_text(rows)
    with open(path, "a") as f:
        f.write(text if f.tell() == 0 else text.split("\n", 1)[1])


def _cache_file(cache: Path, model: str | Path | TaskModel, source: Any, classes: Optional[list[str]],
                batch_size: int, seed: int) -> Path:
    return Path(cache) / f"robustness-{_key(model, source, classes, batch_size, seed)}.csv"


def _key(model: str | Path | TaskModel, source: Any, classes: Optional[list[str]], batch_size: int, seed: int) -> str:
    """A hash of what decides a model's numbers: its files (or, for a loaded model, its config and tensors), the
    clips, the label names and the settings."""
    text = json.dumps([_model_stamp(model), source, classes, batch_size, seed], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_stamp(model: str | Path | TaskModel) -> Any:
    if isinstance(model, TaskModel):
        digest = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()
    directory = Path(model)
    files = [directory / CONFIG, directory / WEIGHTS]
    cfg = json.loads(files[0].read_text())
    files += [Path(cfg[s]["weights"]) if Path(cfg[s]["weights"]).is_absolute() else directory / cfg[s]["weights"]
              for s in ("visual", "audio") if cfg[s].get("weights")]
    return [(str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.is_file()]


def _describe(clips: Dataset) -> Any:
    """What identifies a dataset for the cache: its source settings where it has them (a make-data folder, a scene
    world), else a hash of every clip's frames and audio."""
    if isinstance(clips, Subset):
        return [_describe(clips.dataset), list(clips.indices)]
    settings = {k: getattr(getattr(clips, k), "name", getattr(clips, k))
                for k in ("directory", "world", "task", "split", "segments", "frame_size", "sample_rate", "indices")
                if hasattr(clips, k)}
    if "directory" not in settings and "world" not in settings:
        digest = hashlib.sha256()
        for i in range(len(clips)):
            clip = clips[i]
            digest.update(clip.frames.numpy().tobytes())
            digest.update(clip.audio.numpy().tobytes())
        settings["content"] = digest.hexdigest()
    return [type(clips).__name__, len(clips), settings]
