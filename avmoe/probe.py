"""Head warm-up: train the task head alone on cached encoder features, before training the whole model.

The features the encoder gives before training (frozen backbones, adapters at initialisation, their gates at zero)
are the ones the head meets at the first full step. Training the head first on those cached features and then the
whole model is the probe-then-fine-tune recipe (LP-FT, Kumar et al., ICLR 2022).
It is what makes weakly supervised AVVP learn at CPU budgets: trained end to end from scratch, its MIL head sits at
the class prior for hundreds of steps. Every head can be warmed up this way. The AVS decoders read every visual stage
grid: for the tiny presets that is about 140 kB per frame in float32, 1.4 GB for 2000 five-frame clips, and their
steps cost far more (4000 S4 head steps took 17-28 min here, against about 5 min for AVE's 3000).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from avmoe.layers.trace import RouterTrace
from avmoe.model import AVMoEFeatures, TaskModel

log = logging.getLogger(__name__)

READS = {"ave": ("visual", "audio"), "avvp": ("visual", "audio"), "avqa": ("visual", "audio", "visual_map"),
         "s4": ("audio", "visual_stages"), "ms3": ("audio", "visual_stages")}
"""The encoder outputs each head reads; "visual_map" is the last visual stage grid [B, T, C, h, w], "visual_stages"
all of them (cached as "visual_stage0", "visual_stage1", ...)."""
_INPUT_KEYS = ("frames", "audio")


@torch.no_grad()
def encode_for_head(model: TaskModel, dataset: Dataset, collate: Callable[[list], dict[str, Any]], batch_size: int,
                    device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The encoder outputs the head reads (`READS`) for every item, [N, T, ...], and the items' other batch
    tensors (labels, question tokens) [N, ...]."""
    model.eval()
    feats: dict[str, list[torch.Tensor]] = {}
    labels: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        out = model.encoder(batch["frames"].to(device), batch["audio"].to(device))
        for name in READS[model.cfg.task]:
            if name == "visual_stages":
                for i, stage in enumerate(out.visual_stages):
                    feats.setdefault(f"visual_stage{i}", []).append(stage)
            else:
                feats.setdefault(name, []).append(out.visual_stages[-1] if name == "visual_map" else getattr(out, name))
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and key not in _INPUT_KEYS:
                labels.setdefault(key, []).append(value.to(device))
    return {k: torch.cat(v) for k, v in feats.items()}, {k: torch.cat(v) for k, v in labels.items()}


def cached_features(feats: dict[str, torch.Tensor]) -> AVMoEFeatures:
    """`AVMoEFeatures` holding the cached outputs (`READS`) and nothing else a head reads (the pooled visual
    feature is empty for the AVS heads, which do not read it)."""
    audio = feats["audio"]
    B, T = audio.shape[:2]
    stages = ([feats["visual_map"]] if "visual_map" in feats else
              [feats[f"visual_stage{i}"] for i in range(sum(k.startswith("visual_stage") for k in feats))])
    return AVMoEFeatures(visual=feats.get("visual", audio.new_zeros(B, T, 0)), audio=audio, audio_stages=[],
                         layers={}, trace=RouterTrace(B, T), visual_stages=stages, balance_loss=audio.new_zeros(()))


def warm_up_head(model: TaskModel, dataset: Dataset, collate: Callable[[list], dict[str, Any]], steps: int,
                 batch_size: int, lr: float, weight_decay: float, grad_clip: float, seed: int,
                 device: torch.device) -> list[float]:
    """Train `model.head` for `steps` AdamW steps (cosine decay from `lr`) on the encoder's cached features of
    `dataset`; returns the mean training loss of each tenth of the steps. The encoder and adapters are untouched."""
    feats, labels = encode_for_head(model, dataset, collate, batch_size, device)
    n = len(feats["audio"])
    head = model.head
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    chunk = max(1, steps // 10)
    running, count = 0.0, 0
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator).to(device)
        batch = {key: value[idx] for key, value in labels.items()}
        inputs = cached_features({name: value[idx] for name, value in feats.items()})
        loss = head.loss(head(inputs, batch), batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        running, count = running + float(loss.detach()), count + 1
        if step % chunk == 0 or step == steps:
            losses.append(round(running / count, 5))
            running, count = 0.0, 0
            log.info("head warm-up step %d/%d loss %.4f", step, steps, losses[-1])
    return losses
