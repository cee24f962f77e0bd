"""Readable names for conditions, variants, tasks and metrics, shared by figures and tables."""
from __future__ import annotations

from avmoe.data.corrupt import parse_condition

VARIANTS = {"avmoe": "AVMoE", "cma-only": "CMA only", "ua-only": "UA only", "frozen": "Frozen"}
TASKS = {"ave": "AVE", "avvp": "AVVP", "s4": "AVS-S4", "ms3": "AVS-MS3", "avqa": "AVQA"}
METRICS = {"accuracy": "Accuracy (%)", "miou": "mIoU (%)", "f_score": "F-score (%)", "seg_type": "Type@AV seg. F1",
           "Avg": "Avg. accuracy (%)"}
STREAMS = {"visual": "Visual stream", "audio": "Audio stream"}
_KINDS = {"visual-only": "visual only", "audio-only": "audio only", "mismatched": "mismatched",
          "audio-noise": "audio noise", "visual-noise": "visual noise", "occlusion": "occlusion"}


def condition_label(condition: str) -> str:
    """"av" -> "A+V", "audio-noise:0" -> "audio noise 0 dB", "occlusion:0.5" -> "occlusion 50%"."""
    parts = []
    for kind, value in parse_condition(condition).steps:
        if value is None:
            parts.append(_KINDS[kind])
        elif kind == "occlusion":
            parts.append(f"{_KINDS[kind]} {value * 100:g}%")
        else:
            parts.append(f"{_KINDS[kind]} {value:g} dB")
    return " + ".join(parts) or "A+V"


def expert_label(name: str) -> str:
    """"cma0" -> "CMA 1", "ua1" -> "UA 2" (numbered from one, as in the paper's figures)."""
    family = "cma" if name.startswith("cma") else "ua"
    return f"{family.upper()} {int(name[len(family):]) + 1}"


def variant_label(variant: str) -> str:
    return VARIANTS.get(variant, variant)


def metric_label(metric: str) -> str:
    return METRICS.get(metric, metric)


def task_label(task: str) -> str:
    return TASKS.get(task, task)
