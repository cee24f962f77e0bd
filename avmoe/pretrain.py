"""Pretrain a tiny backbone on its own modality of the scene data, then store it frozen for every task model.

`python -m avmoe pretrain --modality visual --world stamps --out assets/backbones` trains the preset's visual
backbone (plus a linear classifier that is thrown away) to name the classes visible in each second of the scenes
that `--scenes` picks; `--modality audio` does the same for the classes heard. This stands in for the paper's
ImageNet and AudioSet pretraining; the task models then meet the harder scenes (distractors, off-screen sounds) with
it frozen. `--init` continues from a stored backbone, so a curriculum (clean scenes, then cluttered) is two runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader

from avmoe.backbones import build_backbone
from avmoe.config import get_preset, list_presets
from avmoe.data.synthetic import SceneDataset, get_world
from avmoe.data.synthetic.sampler import SamplerConfig
from avmoe.train import EpochOrder, lr_at, seed_everything

log = logging.getLogger(__name__)

SCENES = {
    # One large object, seen and heard all clip long (the S4 sampler with no distractors): clean per-second labels,
    # as ImageNet and AudioSet give the paper's encoders.
    "clean": SamplerConfig(p_offscreen=0.0, p_silent=0.0, p_distractor_sound=0.0, p_distractor_visual=0.0,
                           p_noise_burst=0.0, size=(0.4, 0.9)),
    # One to three objects of different classes side by side, large to small, every one labelled: the backbone must
    # tell apart the objects of one frame, as segmentation and question answering need.
    "cluttered": SamplerConfig(p_offscreen=0.0, p_silent=0.0, p_distractor_sound=0.0, p_distractor_visual=0.75,
                               p_noise_burst=0.0, size=(0.25, 0.9)),
}


class _Probe(nn.Module):
    """Backbone + linear classifier over its pooled per-frame features; the last class means "nothing"."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.stages[-1].dim, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def _frames_and_targets(clips: list, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten clips into per-second inputs and multi-hot targets of one modality, with a final "nothing" column
    set for seconds where nothing is seen (or heard)."""
    x = torch.cat([c.frames if modality == "visual" else c.audio for c in clips])
    y = torch.cat([torch.as_tensor(c.labels["avvp"][modality]).float() for c in clips])
    return x, torch.cat([y, (y.sum(-1, keepdim=True) == 0).float()], dim=-1)


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the target spread evenly over the classes present in each second."""
    return -(target / target.sum(-1, keepdim=True) * logits.log_softmax(-1)).sum(-1).mean()


@torch.no_grad()
def _score(model: _Probe, loader: DataLoader, modality: str) -> dict[str, float]:
    """Per-second top-1 accuracy: the top class is one of those present (the "nothing" class when none is)."""
    model.eval()
    hits = seconds = 0
    for clips in loader:
        x, y = _frames_and_targets(clips, modality)
        top = model(x).argmax(-1)
        hits += int(y[torch.arange(len(y)), top].sum())
        seconds += len(y)
    return {"top1": 100.0 * hits / max(1, seconds)}


def pretrain(modality: str, world: str, out: Path, preset: str = "tiny-ave", sizes: tuple[int, int] = (3000, 200),
             epochs: int = 8, batch_size: int = 16, lr: float = 2e-3, seed: int = 0, workers: int = 1,
             segments: int = 4, scenes: str = "clean", init: Path | None = None) -> dict[str, Any]:
    """Train and save `<out>/<modality>.safetensors` plus a JSON card; returns the card.

    `scenes` names the scene mix (see SCENES); `init` is a backbone file of the same architecture to start from.
    """
    if scenes not in SCENES:
        raise ValueError(f"unknown scenes {scenes!r}; choose one of {', '.join(SCENES)}")
    seed_everything(seed)
    cfg = get_preset(preset, **{f"{modality}.weights": str(init) if init else None})
    bcfg = cfg.visual if modality == "visual" else cfg.audio
    w = get_world(world)
    sets = {split: SceneDataset(w, "s4", split, n, cfg.frame_size, cfg.sample_rate, segments, config=SCENES[scenes])
            for split, n in zip(("train", "val"), sizes)}
    model = _Probe(build_backbone(bcfg), len(w.classes))
    order = EpochOrder(len(sets["train"]), seed)
    loader = DataLoader(sets["train"], batch_size=batch_size, sampler=order, collate_fn=list,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    val_loader = DataLoader(sets["val"], batch_size=batch_size, collate_fn=list, num_workers=workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    total, step, started = epochs * len(loader), 0, time.time()
    history = []
    for epoch in range(epochs):
        order.set_epoch(epoch)
        model.train()
        for clips in loader:
            x, y = _frames_and_targets(clips, modality)
            loss = _soft_cross_entropy(model(x), y)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, lr, 0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % 50 == 0:
                log.info("pretrain %s step %d/%d loss %.4f (%.0f s)", modality, step, total, float(loss.detach()),
                         time.time() - started)
        val = _score(model, val_loader, modality)
        history.append({"epoch": epoch + 1, "loss": float(loss.detach()), **val})
        log.info("pretrain %s epoch %d loss %.4f val top1 %.1f", modality, epoch + 1, float(loss.detach()),
                 val["top1"])
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.backbone.weights_module().state_dict().items()}
    save_file(state, str(out / f"{modality}.safetensors"), metadata={"backbone": bcfg.name, "world": world})
    card = {"command": "python -m avmoe " + " ".join(sys.argv[1:]), "backbone": bcfg.name,
            "kwargs": bcfg.kwargs, "world": world, "scenes": scenes, "init": _init_record(init),
            "sizes": list(sizes), "segments": segments, "epochs": epochs,
            "seed": seed, "classes": w.classes, "validation": history[-1], "history": history,
            "train_seconds": round(time.time() - started, 1), "attribution": w.attribution}
    (out / f"{modality}.json").write_text(json.dumps(card, indent=2))
    return card


def _init_record(init: Path | None) -> dict[str, Any] | None:
    """Where a continued run started: the file, and the card stored beside it (so the whole chain of commands that
    made a backbone stays in its card)."""
    if init is None:
        return None
    card = Path(init).with_suffix(".json")
    return {"weights": str(init), "card": json.loads(card.read_text()) if card.is_file() else None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modality", required=True, choices=("visual", "audio"))
    parser.add_argument("--world", required=True, help="scene world (shapes, stamps)")
    parser.add_argument("--out", default="assets/backbones")
    parser.add_argument("--preset", default="tiny-ave", choices=list_presets(),
                        help="the preset whose backbone architecture is trained")
    parser.add_argument("--sizes", type=int, nargs=2, default=(3000, 200), metavar=("TRAIN", "VAL"))
    parser.add_argument("--segments", type=int, default=4, help="seconds per rendered clip")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenes", default="clean", choices=tuple(SCENES),
                        help="clean: one large object per clip; cluttered: one to three objects, all labelled")
    parser.add_argument("--init", type=Path, default=None, help="a backbone .safetensors to continue from")


def run(args: argparse.Namespace) -> int:
    card = pretrain(args.modality, args.world, Path(args.out), args.preset, tuple(args.sizes), args.epochs,
                    args.batch_size, args.lr, args.seed, args.workers, args.segments, args.scenes, args.init)
    print(json.dumps({k: card[k] for k in ("backbone", "validation", "train_seconds")}, indent=2))
    return 0
