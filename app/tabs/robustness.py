"""Robustness tab: the variants (avmoe, cma-only, ua-only, frozen) under every standard condition.

On the built-in evaluation set (assets/eval/<task>/, a make-data folder) the numbers are the official metrics from
`analysis.robustness.robustness_table`, cached on disk. The current clip has no labels, so there each variant's
output under a condition is scored against its own audio + visual output (agreement, %).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import torch

from analysis.robustness import is_cached, robustness_table
from app import overlays, plots
from app.inputs import Inputs
from app.studio import Session, Studio, user_errors
from avmoe.config import TASKS, VARIANTS
from avmoe.evaluate import PRIMARY
from avmoe.paths import REPO, cache_dir
from avmoe.predict import TaskPrediction

AGREEMENT = "agreement with own A+V (%)"
ROUTER_SHARE = ("router_cma_share_audio", "router_cma_share_visual")


@dataclass
class RobustnessView:
    task: gr.Dropdown
    evaluate: gr.Button
    table: gr.Dataframe
    chart: gr.Plot
    current: gr.Button
    clip_table: gr.Dataframe
    clip_chart: gr.Plot


def tasks_with_variants(studio: Studio) -> list[str]:
    """Tasks with a model of any variant, those with the most variants first."""
    counts = {t: sum(t in studio.models.get(v, {}) for v in VARIANTS) for t in TASKS}
    return sorted((t for t in TASKS if counts[t]), key=lambda t: -counts[t])


def build(studio: Studio) -> RobustnessView:
    tasks = tasks_with_variants(studio)
    eval_root = Path(studio.eval_root).resolve()
    shown = eval_root.relative_to(REPO) if eval_root.is_relative_to(REPO) else eval_root  # not the server's own path
    with gr.Tab("Robustness", id="robustness"):
        if not tasks:
            gr.Markdown(studio.missing_note())
        gr.Markdown("Each variant under every standard condition: official metrics on the built-in evaluation set "
                    f"(`{shown}/<task>/`, cached), and agreement with its own audio + visual output on "
                    "the current clip.")
        with gr.Row():
            task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task")
            evaluate = gr.Button("Evaluate the variants on the evaluation set", variant="primary",
                                 elem_id="robustness-evaluate")
            current = gr.Button("Compare the variants on the current clip", elem_id="robustness-current")
        headers = ["variant", "metric", *studio.standard_conditions()]
        table = gr.Dataframe(headers=headers, label="Evaluation set", interactive=False,
                             elem_id="robustness-table")
        chart = gr.Plot(plots.message("Press Evaluate to compare the variants"), label="evaluation set",
                        elem_id="robustness-chart")
        clip_table = gr.Dataframe(headers=headers, label="Current clip", interactive=False,
                                  elem_id="robustness-clip-table")
        clip_chart = gr.Plot(plots.message("Run a clip, then compare the variants on it"), label="current clip",
                             elem_id="robustness-clip-chart")
    return RobustnessView(task, evaluate, table, chart, current, clip_table, clip_chart)


def pivot(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows {variant, condition, metric, value} -> a table: one row per (variant, metric), one column per
    condition; NaN (a metric with nothing to measure) becomes an empty cell."""
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    cells: dict[tuple[str, str], dict[str, Optional[float]]] = {}
    for r in rows:
        value = float(r["value"])
        row = cells.setdefault((r["variant"], r["metric"]), {})
        row[r["condition"]] = None if math.isnan(value) else round(value, 4)
    data = [[variant, metric, *(values.get(c) for c in conditions)] for (variant, metric), values in cells.items()]
    return {"headers": ["variant", "metric", *conditions], "data": data}


def variant_dirs(studio: Studio, task: str) -> dict[str, Path]:
    """variant -> model directory of every variant that has a `task` model."""
    return {v: studio.models[v][task] for v in VARIANTS if task in studio.models.get(v, {})}


def evaluation_cached(studio: Studio, task: str) -> bool:
    """Whether Evaluate would read every number of `task` from the disk cache (no evaluation set or model: False)."""
    dirs = variant_dirs(studio, task)
    try:
        clips = studio.eval_set(task)
    except ValueError:
        return False
    return bool(dirs) and is_cached(dirs, clips, studio.standard_conditions(), cache_dir("app", "robustness"))


@user_errors
def evaluate_set(studio: Studio, task: str, progress: gr.Progress = gr.Progress()) -> tuple:
    """Official metrics of every variant of `task` under every standard condition on the evaluation set."""
    dirs = variant_dirs(studio, task)
    if not dirs:
        raise ValueError(f"no {task} model of any variant under {studio.models_root}")
    clips = studio.eval_set(task)
    progress(0.0, desc=f"Evaluating {len(dirs)} variants on {len(clips)} clips")
    rows = robustness_table(dirs, clips, studio.standard_conditions(), cache=cache_dir("app", "robustness"),
                            progress=progress)
    shown = [r for r in rows if r["metric"] in (PRIMARY[task], *ROUTER_SHARE)]
    return pivot(rows), plots.robustness_bars(shown, title=f"{task}: {len(clips)} evaluation clips")


def agreement(task: str, reference: TaskPrediction, other: TaskPrediction) -> float:
    """How much (%) a task's output under a condition agrees with the same model's audio + visual output:
    AVE seconds with the same event, AVVP and AVS intersection over union of the active (second, class) decisions
    and mask pixels, AVQA the same answer."""
    ref, out = reference.outputs, other.outputs
    if task == "ave":
        return float((ref["ave"] == out["ave"]).float().mean()) * 100
    if task == "avqa":
        return 100.0 * float(int(ref["answer"]) == int(out["answer"]))
    if task == "avvp":
        return 100.0 * overlays.iou(torch.cat([ref["avvp_audio"], ref["avvp_visual"]]),
                                    torch.cat([out["avvp_audio"], out["avvp_visual"]]))
    return 100.0 * overlays.iou(ref["masks"], out["masks"])


@user_errors
def compare_clip(studio: Studio, task: str, session: Optional[Session],
                 progress: gr.Progress = gr.Progress()) -> tuple:
    """Every variant of `task` on the session's clip under every standard condition, scored by `agreement`."""
    session = session or Session()
    session.require_clip()
    if task == "avqa" and not session.question:
        raise ValueError("AVQA needs a question: type one in the Predictions tab and press Run")
    variants = list(variant_dirs(studio, task))
    other = studio.other_example(session)
    conditions = studio.standard_conditions(mismatched=other is not None)  # "av" first: the reference
    rows, total = [], len(variants) * len(conditions)
    for v, variant in enumerate(variants):
        progress(v / len(variants), desc=f"Loading the {variant} models")
        reference = None
        for c, condition in enumerate(conditions):
            pred = studio.predict(session, condition, question=session.question, tasks=[task], other=other,
                                  variant=variant).tasks[task]
            reference = reference or pred
            rows.append({"variant": variant, "task": task, "condition": condition, "metric": AGREEMENT,
                         "value": agreement(task, reference, pred)})
            progress((v * len(conditions) + c + 1) / total, desc=f"{variant}: {condition}")
    return pivot(rows), plots.robustness_bars(rows, title=f"{task} on the current clip")


def wire(studio: Studio, view: RobustnessView, inputs: Inputs) -> None:
    view.evaluate.click(partial(evaluate_set, studio), [view.task], [view.table, view.chart], api_name="robustness")
    view.current.click(partial(compare_clip, studio), [view.task, inputs.session], [view.clip_table, view.clip_chart],
                       api_name="robustness_clip")
