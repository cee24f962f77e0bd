"""Head warm-up: train the task head alone on cached encoder features, before training the whole model.

The pooled features the encoder gives before training (frozen backbones, adapters at initialisation, the visual ones
gated by zeros) are the ones the head meets at the first full step. Training the head first on those cached features (thousands of steps cost seconds)
and then the whole model is the probe-then-fine-tune recipe (LP-FT, Kumar et al., ICLR 2022). It is what makes
weakly supervised AVVP learn at CPU budgets: trained end to end from scratch, its MIL head sits at the class prior
for hundreds of steps. Only heads that read just the pooled features (AVE, AVVP) can be warmed up this way.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from avmoe.layers.trace import RouterTrace
from avmoe.model import AVMoEFeatures, TaskModel

log = logging.getLogger(__name__)

POOLED_TASKS = ("ave", "avvp")
_INPUT_KEYS = ("frames", "audio")


@torch.no_grad()
def encode_pooled(model: TaskModel, dataset: Dataset, collate: Callable[[list], dict[str, Any]], batch_size: int,
                  device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pooled encoder features {"visual", "audio"} [N, T, C] of every clip, and their label tensors [N, ...]."""
    model.eval()
    feats: dict[str, list[torch.Tensor]] = {"visual": [], "audio": []}
    labels: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        out = model.encoder(batch["frames"].to(device), batch["audio"].to(device))
        feats["visual"].append(out.visual)
        feats["audio"].append(out.audio)
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and key not in _INPUT_KEYS:
                labels.setdefault(key, []).append(value.to(device))
    return {k: torch.cat(v) for k, v in feats.items()}, {k: torch.cat(v) for k, v in labels.items()}


def pooled_features(visual: torch.Tensor, audio: torch.Tensor) -> AVMoEFeatures:
    """`AVMoEFeatures` carrying only the pooled features, which is all a pooled-feature head reads."""
    B, T = visual.shape[:2]
    return AVMoEFeatures(visual=visual, audio=audio, visual_stages=[], audio_stages=[], layers={},
                         trace=RouterTrace(B, T), balance_loss=visual.new_zeros(()))


def warm_up_head(model: TaskModel, dataset: Dataset, collate: Callable[[list], dict[str, Any]], steps: int,
                 batch_size: int, lr: float, weight_decay: float, grad_clip: float, seed: int,
                 device: torch.device) -> list[float]:
    """Train `model.head` for `steps` AdamW steps (cosine decay from `lr`) on the encoder's cached features of
    `dataset`; returns the mean training loss of each tenth of the steps. The encoder and adapters are untouched."""
    if model.cfg.task not in POOLED_TASKS:
        raise ValueError(f"head warm-up needs a head that reads only the pooled features ({', '.join(POOLED_TASKS)});"
                         f" the {model.cfg.task} head reads the stage grids")
    feats, labels = encode_pooled(model, dataset, collate, batch_size, device)
    n = len(feats["visual"])
    head = model.head
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    chunk = max(1, steps // 10)
    running = 0.0
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator).to(device)
        batch = {key: value[idx] for key, value in labels.items()}
        loss = head.loss(head(pooled_features(feats["visual"][idx], feats["audio"][idx]), batch), batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        running += float(loss.detach())
        if step % chunk == 0 or step == steps:
            losses.append(round(running / (step - chunk * (len(losses))), 5))
            running = 0.0
            log.info("head warm-up step %d/%d loss %.4f", step, steps, losses[-1])
    return losses
