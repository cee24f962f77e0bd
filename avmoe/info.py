"""`python -m avmoe info [--preset NAME]`: build a preset on the meta device and count its parameters by part."""
from __future__ import annotations

import argparse
from collections import OrderedDict

import torch
from torch import nn

from avmoe.config import get_preset, list_presets
from avmoe.layers import MoEAdapter

PARTS = ("visual backbone", "audio backbone", "token maps (N_o->N_s)", "channel maps (C_o->C_s)", "routers",
         "cross-modal experts", "unimodal experts", "head")


_PREFIXES = {"encoder.visual.": "visual backbone", "encoder.audio.": "audio backbone", "head.": "head"}


def parameter_table(model: nn.Module) -> "OrderedDict[str, tuple[int, int]]":
    """(trainable, total) parameters per part of a TaskModel; works on the meta device."""
    part_of: dict[int, str] = {}
    for m in model.modules():
        if isinstance(m, MoEAdapter):
            for p in m.router.parameters() if m.router is not None else ():
                part_of[id(p)] = "routers"
            if m.token_map is not None:
                for p in m.token_map.channels.parameters():
                    part_of[id(p)] = "channel maps (C_o->C_s)"
                for p in (m.token_map.tokens.parameters() if m.token_map.tokens is not None else ()):
                    part_of[id(p)] = "token maps (N_o->N_s)"
            for e in m.experts:
                for p in e.parameters():
                    part_of[id(p)] = "cross-modal experts" if e.kind == "cma" else "unimodal experts"
    table: OrderedDict[str, tuple[int, int]] = OrderedDict((part, (0, 0)) for part in PARTS)
    for name, p in model.named_parameters():
        part = part_of.get(id(p)) or next(v for k, v in _PREFIXES.items() if name.startswith(k))
        trainable, total = table[part]
        table[part] = (trainable + p.numel() * p.requires_grad, total + p.numel())
    return table


def build_on_meta(preset: str) -> nn.Module:
    """The preset's TaskModel with every tensor on the meta device (no memory, no weights loaded)."""
    from avmoe.model import TaskModel

    cfg = get_preset(preset)
    cfg.visual.weights = cfg.audio.weights = None
    with torch.device("meta"):
        return TaskModel(cfg)


def format_table(preset: str, table: "OrderedDict[str, tuple[int, int]]") -> str:
    cfg = get_preset(preset)
    cma, ua = cfg.experts
    lines = [f"{preset}: task {cfg.task}, {cfg.visual.name} + {cfg.audio.name}, {cma} CMA + {ua} UA per mixture, "
             f"skip {cfg.adapter.skip}, token map {cfg.adapter.token_map}",
             f"  {'part':<26}{'trainable':>14}{'total':>14}"]
    for part, (trainable, total) in table.items():
        lines.append(f"  {part:<26}{trainable:>14,}{total:>14,}")
    adapters = sum(t for part, (t, _) in table.items() if part not in ("head", "visual backbone", "audio backbone"))
    lines.append(f"  {'adapters (all mixtures)':<26}{adapters:>14,}")
    lines.append(f"  {'all':<26}{sum(t for t, _ in table.values()):>14,}{sum(n for _, n in table.values()):>14,}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", action="append", choices=list_presets(),
                        help="preset to describe (repeatable); default: every preset")


def run(args: argparse.Namespace) -> int:
    for preset in args.preset or list_presets():
        print(format_table(preset, parameter_table(build_on_meta(preset))))
        print()
    return 0
