"""Paper figures as functions of data (rows, arrays) that return a matplotlib Figure; nothing here runs a model.

Each function draws inside `apply_style()` and leaves saving to the caller (`style.save`). Artists that carry the
plotted numbers have a `gid` naming what they show (e.g. "avmoe/audio-noise/accuracy"), so tests and the app can
read the numbers back from the figure.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.labels import STREAMS, condition_label, expert_label, metric_label, task_label, variant_label
from analysis.router_stats import expert_names, expert_usage
from analysis.style import (COLUMN, CONDITION_COLOURS, GT_COLOUR, GREY, PAGE, VARIANT_COLOURS, apply_style,
                            class_styles, expert_colour, new_figure)
from avmoe.data.corrupt import parse_condition
from avmoe.evaluate import PRIMARY

STREAM_ORDER = ("visual", "audio")
_POSITION_STYLE = {"p1": ("-", "o"), "p2": ("--", "s")}
_POSITION_LABEL = {"p1": "p1 (beside attention)", "p2": "p2 (beside FFN)"}


def router_weights_figure(rows: Sequence[dict[str, Any]], conditions: Sequence[str] = ("av", "visual-only")) -> Figure:
    """Share of router weight on the unimodal experts per paired layer and position, one panel per stream, one colour
    per condition (from `collect_routing` rows). The dotted line is the share of a uniform router."""
    usage = [u for u in expert_usage(rows, by=("stream", "layer", "position", "condition"))
             if u["condition"] in conditions]
    if not usage:
        raise ValueError(f"no routing rows under {', '.join(conditions)}; collect them with collect_routing")
    experts = expert_names(rows)
    uniform = sum(n.startswith("ua") for n in experts) / len(experts)
    with apply_style():
        fig = new_figure(COLUMN, 2.1)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, stream in zip(axes, STREAM_ORDER):
            mine = [u for u in usage if u["stream"] == stream]
            layers = sorted({u["layer"] for u in mine})
            for k, condition in enumerate(conditions):
                for position, (dash, marker) in _POSITION_STYLE.items():
                    points = sorted((u["layer"], u["ua_share"]) for u in mine
                                    if u["condition"] == condition and u["position"] == position)
                    if points:  # later conditions on top, thinner and hollow, so coinciding curves stay visible
                        ax.plot([layers.index(layer) for layer, _ in points], [s for _, s in points], dash,
                                marker=marker, color=_condition_colour(condition), mfc="none" if k else None,
                                lw=0.9 if k else None, ms=5 if k else None, zorder=2 + k,
                                gid=f"{stream}/{condition}/{position}")
            ax.axhline(uniform, color=GREY, lw=0.8, ls=":", zorder=0)
            ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
            ax.set_xlabel("Paired layer")
            ax.set_title(STREAMS[stream])
            ax.set_ylim(0, 1)
            ax.grid(axis="y")
        axes[0].set_ylabel("Router weight on UA experts")
        handles = [Line2D([], [], color=_condition_colour(c), marker="o", mfc="none" if k else None,
                          label=condition_label(c)) for k, c in enumerate(conditions)]
        handles += [Line2D([], [], color="#555555", ls=dash, marker=marker, label=_POSITION_LABEL[p])
                    for p, (dash, marker) in _POSITION_STYLE.items()]
        fig.legend(handles=handles, loc="outside upper center", ncols=2, handlelength=2.2, columnspacing=1.0)
    return fig


def expert_usage_figure(rows: Sequence[dict[str, Any]], conditions: Optional[Sequence[str]] = None,
                        class_condition: str = "av", max_classes: int = 12) -> Figure:
    """Mean router weight of each expert (stacked bars) per condition (left) and per class under `class_condition`
    (right; the `max_classes` most frequent event classes, then background), visual stream on top, audio below.
    Rows come from `collect_routing`."""
    experts = expert_names(rows)
    if not experts:
        raise ValueError("the routing rows have no experts (a frozen model has no routers)")
    conditions = list(conditions or dict.fromkeys(r["condition"] for r in rows))
    by_condition = expert_usage(rows, by=("stream", "condition"))
    by_class = expert_usage([r for r in rows if r["condition"] == class_condition and r["class"] is not None],
                            by=("stream", "class"))
    counts = {u["class"]: u["n"] for u in by_class if u["class"] != "background"}
    classes = sorted(sorted(counts, key=lambda c: -counts[c])[:max_classes])
    classes += ["background"] if any(u["class"] == "background" for u in by_class) else []
    with apply_style():
        fig = new_figure(PAGE, 3.3)
        axes = fig.subplots(2, 2, sharey=True, width_ratios=[max(2, len(conditions)), max(2, len(classes))])
        for row, stream in enumerate(STREAM_ORDER):
            _stacked(axes[row, 0], [u for u in by_condition if u["stream"] == stream], "condition", conditions,
                     experts, [condition_label(c) for c in conditions], f"{stream}/condition")
            _stacked(axes[row, 1], [u for u in by_class if u["stream"] == stream], "class", classes, experts,
                     classes, f"{stream}/class")
            axes[row, 0].set_ylabel(STREAMS[stream])
            for ax in axes[row]:
                ax.tick_params(axis="x", labelbottom=row == 1, rotation=30 if ax is axes[row, 0] else 45)
                for label in ax.get_xticklabels():
                    label.set_horizontalalignment("right")
        axes[0, 0].set_title("By input condition")
        fig.supylabel("mean router weight", fontsize="medium")
        axes[0, 1].set_title(f"By event class ({condition_label(class_condition)})")
        fig.legend(handles=[Patch(color=expert_colour(e), label=expert_label(e)) for e in experts],
                   loc="outside upper center", ncols=len(experts))
    return fig


def _stacked(ax, usage: list[dict[str, Any]], key: str, groups: Sequence[str], experts: Sequence[str],
             labels: Sequence[str], gid: str) -> None:
    """One stacked bar per group: each expert's mean weight, bottom to top in `experts` order."""
    values = {u[key]: u for u in usage}
    bottom = np.zeros(len(groups))
    for expert in experts:
        heights = np.array([values[g].get(expert, 0.0) if g in values else np.nan for g in groups])
        ax.bar(range(len(groups)), heights, 0.7, bottom=bottom, color=expert_colour(expert), gid=f"{gid}/{expert}")
        bottom += np.nan_to_num(heights)
    ax.set_xticks(range(len(groups)), labels)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(groups) - 0.4)


def carrier_figure(summary: Sequence[dict[str, Any]], conditions: Optional[Sequence[str]] = None) -> Figure:
    """How often the router favours the expert family the scene's ground truth expects, per condition and stream:
    the unimodal experts where the other modality shows nothing of the event (vermillion), the cross-modal ones where
    both show it (blue). From `routing_vs_carrier`; each bar pools the carriers, weighted by their mixture count."""
    conditions = list(conditions or dict.fromkeys(s["condition"] for s in summary))
    families = {"ua": "UA expected (other modality uninformative)", "cma": "CMA expected (both show the event)"}
    width = 0.8 / len(families)
    with apply_style():
        fig = new_figure(COLUMN, 2.4)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, stream in zip(axes, STREAM_ORDER):
            for k, (family, label) in enumerate(families.items()):
                rates = []
                for condition in conditions:
                    cells = [s for s in summary if (s["stream"], s["condition"], s["expected"]) ==
                             (stream, condition, family)]
                    n = sum(s["n"] for s in cells)
                    rates.append(sum(s["hit_rate"] * s["n"] for s in cells) / n if n else np.nan)
                xs = np.arange(len(conditions)) + (k - 0.5) * width
                ax.bar(xs, rates, width * 0.92, color=expert_colour(f"{family}0"), label=label,
                       gid=f"{stream}/{family}")
            ax.axhline(0.5, color=GREY, lw=0.8, ls=":", zorder=0)
            ax.set_xticks(range(len(conditions)), [condition_label(c) for c in conditions], rotation=30,
                          ha="right")
            ax.set_title(STREAMS[stream])
            ax.set_ylim(0, 1)
            ax.grid(axis="y")
        axes[0].set_ylabel("Mixtures routed as expected")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=1)
    return fig


def robustness_figure(rows: Sequence[dict[str, Any]], metrics: Optional[Mapping[str, str]] = None) -> Figure:
    """Each task's metric against the audio (left) and visual (right) noise SNR, one line per variant, the clean
    score (condition "av") at the right end. `metrics` maps task -> metric (default: the task's primary metric)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    kinds = [k for k in ("audio-noise", "visual-noise") if any(_noise(r["condition"])[0] == k for r in rows)]
    if not kinds:
        raise ValueError("no audio-noise:SNR or visual-noise:SNR conditions in the rows; add some to the sweep")
    metrics = {t: (metrics or {}).get(t, PRIMARY[t]) for t in tasks}
    snrs = sorted({_noise(r["condition"])[1] for r in rows if _noise(r["condition"])[0] in kinds})
    clean_x = snrs[-1] + max(5.0, (snrs[-1] - snrs[0]) / 4 if len(snrs) > 1 else 5.0)
    with apply_style():
        fig = new_figure(COLUMN if len(kinds) == 1 else PAGE / 1.4, 0.4 + 1.7 * len(tasks))
        axes = np.atleast_2d(fig.subplots(len(tasks), len(kinds), sharex=True, squeeze=False))
        for i, task in enumerate(tasks):
            metric = metrics[task]
            mine = [r for r in rows if r["task"] == task and r["metric"] == metric]
            for j, kind in enumerate(kinds):
                ax = axes[i, j]
                for variant in dict.fromkeys(r["variant"] for r in mine):
                    points = sorted((_noise(r["condition"])[1], r["value"]) for r in mine
                                    if r["variant"] == variant and _noise(r["condition"])[0] == kind)
                    clean = [r["value"] for r in mine if r["variant"] == variant and r["condition"] == "av"]
                    colour = VARIANT_COLOURS.get(variant)
                    ax.plot([x for x, _ in points], [y for _, y in points], "-o", color=colour,
                            label=variant_label(variant), gid=f"{variant}/{kind}/{metric}")
                    if clean and points:
                        ax.plot([points[-1][0], clean_x], [points[-1][1], clean[0]], ":", color=colour)
                        ax.plot([clean_x], clean, "D", color=colour, gid=f"{variant}/av/{metric}")
                ax.set_xticks([*snrs, clean_x], [f"{s:g}" for s in snrs] + ["clean"])
                ax.grid(axis="y")
                if i == 0:
                    ax.set_title(f"{'Audio' if kind == 'audio-noise' else 'Visual'} noise")
                if i == len(tasks) - 1:
                    ax.set_xlabel("SNR (dB)")
                if j == 0:
                    ax.set_ylabel(f"{task_label(task)}\n{metric_label(metric)}")
        legend = {}  # every variant of every panel, once: the first panel may lack some
        for ax in axes[:, 0]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        fig.legend(legend.values(), legend.keys(), loc="outside upper center", ncols=len(legend))
    return fig


def _noise(condition: str) -> tuple[Optional[str], float]:
    """("audio-noise" | "visual-noise", SNR) for a single noise condition, else (None, nan)."""
    steps = parse_condition(condition).steps
    if len(steps) == 1 and steps[0][0] in ("audio-noise", "visual-noise"):
        return steps[0][0], float(steps[0][1])
    return None, math.nan


def ablation_figure(runs: Sequence[dict[str, Any]], conditions: Sequence[str] = ("av", "visual-only"),
                    metric: str = "accuracy") -> Figure:
    """Test `metric` of each expert-count configuration (CMA + UA experts per mixture) under each condition, from the
    runs of an ablation JSON (see `analysis.ablation`); the tick labels give the trainable parameters."""
    if not runs:
        raise ValueError("the ablation has no runs; make them with `python -m analysis ablation`")
    width = 0.8 / len(conditions)
    with apply_style():
        fig = new_figure(COLUMN, 2.3)
        ax = fig.subplots()
        for k, condition in enumerate(conditions):
            values = [run["test"][condition][metric] for run in runs]
            xs = np.arange(len(runs)) + (k - (len(conditions) - 1) / 2) * width
            bars = ax.bar(xs, values, width * 0.92, color=_condition_colour(condition),
                          label=condition_label(condition), gid=f"{condition}/{metric}")
            ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        ax.set_xticks(range(len(runs)), [f"{r['cma']}+{r['ua']}\n{r['trainable_params'] / 1e6:.2f}M" for r in runs])
        ax.set_xlabel("CMA + UA experts per mixture (trainable parameters)")
        ax.set_ylabel(metric_label(metric))
        ax.set_ylim(0, max(100.0, ax.get_ylim()[1]))
        ax.grid(axis="y")
        ax.legend(loc="upper left", bbox_to_anchor=(0, 1.16), ncols=len(conditions))
    return fig


def embeddings_figure(points: Mapping[tuple[str, str], np.ndarray], labels: Sequence[str],
                      method: str = "t-SNE", legend_title: str = "Class") -> Figure:
    """2-D projections of features, one panel per (row, column) key such as (stream, variant), each point coloured
    and shaped by its label; rows and columns in the order their keys first appear."""
    rows = list(dict.fromkeys(r for r, _ in points))
    cols = list(dict.fromkeys(c for _, c in points))
    names = sorted(set(labels), key=lambda c: (c == "background", str(c)))
    styles = class_styles(names)
    labels = np.asarray(labels, dtype=object)
    with apply_style():
        fig = new_figure(PAGE, 0.35 + 2.0 * len(rows) * min(1.0, 3.0 / len(cols)))
        axes = fig.subplots(len(rows), len(cols), squeeze=False)
        for (r, c), Y in points.items():
            ax = axes[rows.index(r), cols.index(c)]
            if len(Y) != len(labels):
                raise ValueError(f"panel {(r, c)} has {len(Y)} points but there are {len(labels)} labels")
            for name in names:
                colour, marker = styles[name]
                keep = labels == name
                ax.scatter(Y[keep, 0], Y[keep, 1], s=5 if name == "background" else 9, c=colour, marker=marker,
                           linewidths=0, alpha=0.6 if name == "background" else 0.9, label=name,
                           gid=f"{r}/{c}/{name}", zorder=1 if name == "background" else 2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_box_aspect(1)
            for side in ("top", "right"):
                ax.spines[side].set_visible(True)
            if rows.index(r) == 0:
                ax.set_title(variant_label(c))
            if cols.index(c) == 0:
                ax.set_ylabel(STREAMS.get(r, r))
        handles = [Line2D([], [], ls="", marker=styles[n][1], color=styles[n][0], label=n, markersize=4)
                   for n in names]
        fig.legend(handles=handles, loc="outside right center", title=f"{legend_title} ({method})",
                   ncols=math.ceil(len(handles) / 16))
    return fig


def avs_figure(frames: np.ndarray, gt: np.ndarray, masks: Mapping[str, np.ndarray],
               scores: Optional[Mapping[str, float]] = None, task: str = "s4") -> Figure:
    """AVS qualitative grid: the frames, the ground-truth masks and each variant's predicted masks over them, one
    column per second; `scores` (variant -> mIoU) label the rows.

    Args:
        frames: [T, 3, H, W] in [0, 1]; gt: [T, H, W] in {0, 1}; masks: variant -> [T, H, W] bool.
    """
    frames = np.asarray(frames).transpose(0, 2, 3, 1).clip(0, 1)
    T = frames.shape[0]
    rows = [("frame", "Frame", None, None), ("gt", "Ground truth", np.asarray(gt) > 0.5, GT_COLOUR)]
    for variant, m in masks.items():
        label = variant_label(variant)
        if scores and variant in scores:
            label += f"\nmIoU {scores[variant]:.1f}"
        rows.append((variant, label, np.asarray(m).astype(bool), VARIANT_COLOURS.get(variant, GREY)))
    cell = min(1.1, PAGE / (T + 0.4))
    with apply_style():
        fig = new_figure(cell * T + 0.5, cell * len(rows) + 0.25)
        axes = fig.subplots(len(rows), T, squeeze=False)
        for i, (key, label, mask, colour) in enumerate(rows):
            for t in range(T):
                ax = axes[i, t]
                ax.imshow(frames[t] if mask is None else _overlay(frames[t], mask[t], colour), gid=f"{key}/{t}")
                if mask is not None and mask[t].any() and not mask[t].all():
                    ax.contour(mask[t].astype(float), levels=[0.5], colors=[colour], linewidths=0.7)
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
                if i == 0:
                    ax.set_title(f"{t + 1} s")
            axes[i, 0].set_ylabel(label)
        fig.suptitle(task_label(task))
    return fig


def _overlay(frame: np.ndarray, mask: np.ndarray, colour: str, alpha: float = 0.4, dim: float = 0.35) -> np.ndarray:
    """The frame [H, W, 3] dimmed outside the mask and tinted with the colour inside it."""
    rgb = np.array([int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    out = frame * dim
    out[mask] = (1 - alpha) * frame[mask] + alpha * rgb
    return out


def _condition_colour(condition: str) -> str:
    return CONDITION_COLOURS.get(condition, GREY)
