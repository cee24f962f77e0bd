"""`python -m avmoe export --model runs/ave/best --out assets/models/ave-avmoe --backbones assets/backbones`.

Turns a trained run into a shippable model directory: fp16 weights, the shared frozen backbones copied (once, fp16)
into one folder and referenced by relative paths, and the run's model card beside them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

import avmoe
from avmoe.checkpoint import CARD

log = logging.getLogger(__name__)


def export(model_dir: Path, out: Path, backbones: Path) -> Path:
    """Write `out` (config, fp16 weights, card) with its backbones stored in `backbones/` as fp16 safetensors."""
    model = avmoe.load(model_dir)
    backbones.mkdir(parents=True, exist_ok=True)
    for stream in ("visual", "audio"):
        bcfg = getattr(model.cfg, stream)
        if not bcfg.weights:
            continue
        target = backbones / f"{stream}.safetensors"
        if not target.exists() or os.path.getmtime(target) < os.path.getmtime(bcfg.weights):
            tensors = load_file(bcfg.weights)
            save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(target))
            card = Path(bcfg.weights).with_suffix(".json")
            if card.is_file():
                shutil.copy(card, backbones / card.name)
        bcfg.weights = os.path.relpath(target.resolve(), out.resolve())
    card_path = Path(model_dir) / CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    if card is None:  # a run writes its card last, after the test evaluation
        log.warning("%s has no %s (has its run finished?): the export carries no model card", model_dir, CARD)
    return avmoe.save(model, out, card=card, half=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a trained model directory (e.g. runs/ave/best)")
    parser.add_argument("--out", required=True, help="the model directory to write")
    parser.add_argument("--backbones", default="assets/backbones", help="shared folder for the frozen backbones")


def run(args: argparse.Namespace) -> int:
    out = export(Path(args.model), Path(args.out), Path(args.backbones))
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0
