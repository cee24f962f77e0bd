"""Train a task model: `python -m avmoe train --preset tiny-ave --world stamps --out runs/ave`.

One loop for one CPU process, one GPU, or several GPUs under `torchrun` (DDP with a DistributedSampler). Model
selection uses the validation split only; the test split is evaluated once, at the end, on the selected model.
After a head warm-up the encoder's adapters are still untouched, so that model (epoch 0) is validated and logged but
is a candidate only for the `frozen` variant: an `avmoe`, `cma-only` or `ua-only` model has trained experts.
A run directory holds `last.pt` (everything needed to resume exactly), `best/` (a model directory), `log.csv`,
TensorBoard events, and `card.json` (the command, data, seeds and metrics).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler

import avmoe
from avmoe.config import apply_overrides, get_preset, list_presets
from avmoe.data.corrupt import CONDITIONS, apply_to_batch
from avmoe.data.tasks import Collate, DataSpec, TaskData, open_task_data
from avmoe.evaluate import PRIMARY, evaluate
from avmoe.model import TaskModel
from avmoe.probe import warm_up_head

log = logging.getLogger(__name__)

@dataclass
class TrainConfig:
    preset: str = "tiny-ave"
    out: str = "runs/ave"
    world: Optional[str] = None  # scene world to render clips from
    data: Optional[str] = None  # real dataset root (the task comes from the preset)
    sizes: tuple[int, int, int] = (2000, 300, 300)  # clips per split of a world
    variant: str = "avmoe"
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted model-config overrides
    backbones: Optional[str] = None  # folder with visual.safetensors / audio.safetensors from `pretrain`
    modality_dropout: float = 0.0  # per clip, drop the audio or the visual input with this probability
    epochs: int = 10
    batch_size: int = 8
    accum: int = 1  # gradient accumulation steps; the loss is divided by it
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the optimizer steps spent warming up, then cosine decay to 0
    grad_clip: float = 1.0
    seed: int = 0
    bf16: bool = False  # autocast to bfloat16 (useful on GPUs; slower on most CPUs)
    workers: int = 2
    max_steps: int = 0  # stop after this many optimizer steps (0 = all epochs); for smoke tests
    save_every: int = 0  # also write last.pt every N optimizer steps (0 = once per epoch)
    pause_after: int = 0  # stop after this many optimizer steps as if interrupted (resume later with --resume)
    eval_test: bool = True
    gate_lr_scale: float = 1.0  # learning-rate multiplier of the zero-initialised adapter gates (official: 1)
    head_lr_scale: float = 1.0  # learning-rate multiplier of the head (below 1 after a head warm-up keeps it)
    head_warmup: int = 0  # first train the head alone for this many steps on cached features (see avmoe.probe)
    cache_clips: bool = True  # keep rendered scene-world train clips in memory (~4 MB per 10-s clip) across epochs
    conditions: tuple[str, ...] = CONDITIONS  # the test split is evaluated under each


def lr_at(step: int, total: int, base: float, warmup: float) -> float:
    """Linear warm-up over the first `warmup` fraction of steps, then cosine decay to zero."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpochOrder(Sampler[int]):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def modality_dropout(frames: torch.Tensor, audio: torch.Tensor, p: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip, with probability p drop one modality (audio or visual, equally likely), via data.corrupt."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(frames.shape[0], generator=g)
    frames, audio = frames.clone(), audio.clone()
    for picked, condition in ((r < p / 2, "visual-only"), ((r >= p / 2) & (r < p), "audio-only")):
        if picked.any():
            idx = picked.nonzero().flatten().to(frames.device)
            frames[idx], audio[idx], _, _ = apply_to_batch(frames[idx], audio[idx], condition, seed)
    return frames, audio


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def build_for_data(cfg: TrainConfig, data: TaskData) -> TaskModel:
    overrides = dict(cfg.overrides)
    overrides.update({"variant": cfg.variant, "classes": data.classes, "question_words": data.question_words,
                      "head.num_classes": len(data.classes) if data.spec.task in ("ave", "avvp", "avqa") else 1})
    if data.question_words:
        overrides["head.question_vocab"] = len(data.question_words)
    if cfg.backbones:
        for stream in ("visual", "audio"):
            overrides[f"{stream}.weights"] = str(Path(cfg.backbones).resolve() / f"{stream}.safetensors")
    return TaskModel(apply_overrides(get_preset(cfg.preset), overrides))


def param_groups(model: TaskModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only, `gate_lr_scale` on the adapter gates and `head_lr_scale` on the
    head (each group's `lr_scale` multiplies the scheduled learning rate)."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        gate = name.startswith("encoder.") and name.endswith("gate")
        scale = cfg.gate_lr_scale if gate else cfg.head_lr_scale if name.startswith("head.") else 1.0
        decay = cfg.weight_decay if p.ndim >= 2 else 0.0
        groups.setdefault((scale, decay), []).append(p)
    return [{"params": ps, "lr_scale": scale, "weight_decay": decay} for (scale, decay), ps in groups.items()]


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable tensors and buffers of adapters and head (the frozen backbones never change)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(("encoder.visual.", "encoder.audio."))}


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    rank, world, device = _distributed()
    out = Path(cfg.out)
    main_process = rank == 0
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + rank)
    preset = apply_overrides(get_preset(cfg.preset), cfg.overrides)  # the clips follow overridden segments etc.
    spec = DataSpec(preset.task, cfg.world, cfg.data, tuple(cfg.sizes))
    data = open_task_data(spec, preset.frame_size, preset.sample_rate, preset.segments,
                          cache_train=cfg.cache_clips)
    model = build_for_data(cfg, data).to(device)
    collate = Collate(preset.task, data.classes, data.question_words, model.cfg.head.question_len)
    train_set = data.splits["train"]
    sampler = DistributedSampler(train_set, world, rank, seed=cfg.seed) if world > 1 else EpochOrder(
        len(train_set), cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=cfg.workers, drop_last=True, persistent_workers=cfg.workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG for the model
    params = model.trainable_parameters()
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr)
    steps_per_epoch = max(1, len(loader) // cfg.accum)
    total = cfg.epochs * steps_per_epoch if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * steps_per_epoch)

    state = {"epoch": 0, "batch": 0, "step": 0, "best": -math.inf, "history": []}
    if resume and (out / "last.pt").is_file():
        ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"], strict=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        torch.set_rng_state(ckpt["rng"])
        log.info("resumed from %s at epoch %d batch %d step %d", out / "last.pt", state["epoch"], state["batch"],
                 state["step"])
    elif cfg.head_warmup:  # every rank warms up; DDP then broadcasts rank 0's head
        warmup_started = time.time()
        state["head_warmup_loss"] = warm_up_head(model, train_set, collate, cfg.head_warmup, cfg.batch_size, cfg.lr,
                                                 cfg.weight_decay, cfg.grad_clip, cfg.seed, device)
        state["head_warmup_seconds"] = round(time.time() - warmup_started, 1)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    def save_last() -> None:
        if main_process:
            tmp = out / "last.pt.tmp"
            torch.save({"model": _state(model), "optimizer": optimizer.state_dict(), "state": state,
                        "rng": torch.get_rng_state(), "config": asdict(cfg)}, tmp)
            os.replace(tmp, out / "last.pt")  # atomic: a crash never leaves a half-written checkpoint

    writer = _tensorboard(out) if main_process else None
    log_file = open(out / "log.csv", "a", newline="", buffering=1) if main_process else None  # line-buffered: tail -f works
    log_csv = csv.writer(log_file) if log_file else None
    if log_csv and log_file.tell() == 0:
        log_csv.writerow(["time", "epoch", "step", "loss", "lr", "split", "metric", "value"])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    started = time.time()

    def validate(epoch: int, candidate: bool = True) -> None:
        """Score the model on the validation split, log it, and keep it as best/ if it is a candidate and the best
        so far."""
        val = evaluate(model, data.splits["val"], data.classes, "av", cfg.batch_size, seed=cfg.seed,
                       workers=cfg.workers, question_words=data.question_words)
        score = val[PRIMARY[preset.task]]
        state["history"].append({"epoch": epoch, "step": state["step"], "val": val})
        log.info("epoch %d val %s = %.2f", epoch, PRIMARY[preset.task], score)
        for name, value in val.items():
            if isinstance(value, float):
                if writer is not None:
                    writer.add_scalar(f"val/{name}", value, state["step"])
                log_csv.writerow([round(time.time() - started, 1), epoch, state["step"], "", "", "val", name,
                                  round(value, 4)])
        if candidate and score > state["best"]:
            state["best"] = score
            avmoe.save(model, out / "best")

    if main_process and "head_warmup_loss" in state and not state["history"]:
        validate(0, candidate=cfg.variant == "frozen")  # the warmed-up head on the untouched encoder
    done = state["step"] >= total
    while state["epoch"] < cfg.epochs and not done:
        epoch = state["epoch"]
        sampler.set_epoch(epoch)
        model.train()
        bar = _bar(len(loader), f"epoch {epoch + 1}/{cfg.epochs}", main_process, initial=state["batch"])
        for i, batch in enumerate(loader):
            if i < state["batch"]:
                continue  # resuming mid-epoch: these batches were already trained on
            batch = _to(batch, device)
            if cfg.modality_dropout > 0:
                batch["frames"], batch["audio"] = modality_dropout(
                    batch["frames"], batch["audio"], cfg.modality_dropout, seed=cfg.seed * 7919 + epoch * 100003 + i)
            with autocast:
                result = net(batch)
                losses = model.loss(result, batch)
            (losses["loss"] / cfg.accum).backward()
            state["batch"] = i + 1
            if (i + 1) % cfg.accum:
                continue
            lr = lr_at(state["step"], total, cfg.lr, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            loss = float(losses["loss"].detach())
            if bar is not None:
                bar.update(cfg.accum)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            if writer is not None:
                for name, value in losses.items():
                    writer.add_scalar(f"train/{name}", float(value.detach()), state["step"])
                writer.add_scalar("train/lr", lr, state["step"])
            if log_csv and state["step"] % 10 == 0:
                log_csv.writerow([round(time.time() - started, 1), epoch, state["step"], round(loss, 5), lr,
                                  "train", "loss", round(loss, 5)])
            if cfg.save_every and state["step"] % cfg.save_every == 0:
                save_last()
            if cfg.pause_after and state["step"] >= cfg.pause_after:
                save_last()
                if bar is not None:
                    bar.close()
                return {"paused_at_step": state["step"]}
            if state["step"] >= total:
                done = True
                break
        if bar is not None:
            bar.close()
        state["epoch"], state["batch"] = epoch + 1, 0
        if main_process:
            validate(epoch + 1)
        save_last()
    if world > 1:
        dist.barrier()
    result = {"train_seconds": round(time.time() - started + state.get("head_warmup_seconds", 0.0), 1),
              "steps": state["step"], "best_val": state["best"]}  # train_seconds includes the head warm-up
    if "head_warmup_seconds" in state:
        result["head_warmup_seconds"] = state["head_warmup_seconds"]
    if main_process:
        if log_file:
            log_file.close()
        if writer:
            writer.close()
        result.update(_finish(cfg, data, out, state, result))
    if world > 1:
        dist.destroy_process_group()
    return result


def _finish(cfg: TrainConfig, data: TaskData, out: Path, state: dict[str, Any],
            result: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the selected model once on the test split under every condition and write the model card."""
    best = avmoe.load(out / "best")
    card: dict[str, Any] = {
        "command": "python -m avmoe " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else None,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "data": data.spec.to_dict(), "attribution": data.attribution, "seed": cfg.seed,
        "validation": state["history"][-1]["val"] if state["history"] else {},
        "best_validation": state["best"], "history": state["history"], **result,
    }
    if cfg.eval_test:
        card["test"] = {c: evaluate(best, data.splits["test"], data.classes, c, cfg.batch_size, seed=cfg.seed + 1,
                                    workers=cfg.workers, question_words=data.question_words)
                        for c in cfg.conditions}
    (out / "card.json").write_text(json.dumps(card, indent=2))
    (out / "best" / "card.json").write_text(json.dumps(card, indent=2))
    return {"test": card.get("test", {})}


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: no event files")
        return None
    return SummaryWriter(str(out / "tb"))


def _bar(total: int, desc: str, show: bool, initial: int = 0):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, leave=False, file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--preset", default=d.preset, choices=list_presets())
    parser.add_argument("--out", default=d.out)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--world", help="scene world to render clips from (shapes, stamps)")
    src.add_argument("--data", metavar="TASK:PATH", help="a real dataset, e.g. ave:/data/AVE")
    parser.add_argument("--sizes", type=int, nargs=3, default=d.sizes, metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--variant", default=d.variant, choices=("avmoe", "cma-only", "ua-only", "frozen"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="model-config override, e.g. adapter.num_cma=2 or router.temperature=2.0")
    parser.add_argument("--backbones", help="folder of pretrained frozen backbones (visual/audio.safetensors)")
    parser.add_argument("--modality-dropout", type=float, default=d.modality_dropout)
    for name in ("epochs", "batch_size", "accum", "seed", "workers", "max_steps", "save_every", "pause_after"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "weight_decay", "warmup", "grad_clip"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--no-test", action="store_true", help="skip the final test evaluation")
    parser.add_argument("--gate-lr-scale", type=float, default=d.gate_lr_scale,
                        help="learning-rate multiplier of the zero-initialised adapter gates (1 = official)")
    parser.add_argument("--head-lr-scale", type=float, default=d.head_lr_scale,
                        help="learning-rate multiplier of the task head (e.g. 0.1 after --head-warmup)")
    parser.add_argument("--head-warmup", type=int, default=d.head_warmup, metavar="STEPS",
                        help="first train the head alone for STEPS steps on cached encoder features (AVE, AVVP, AVQA)")
    parser.add_argument("--no-clip-cache", action="store_true",
                        help="render scene clips every epoch instead of keeping them in memory")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS),
                        help="conditions of the final test evaluation (default: the standard set)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    data = args.data
    if data is not None:
        task, sep, root = data.partition(":")
        if not sep or task != get_preset(args.preset).task:
            raise SystemExit(f"--data {data!r}: expected {get_preset(args.preset).task}:PATH for preset {args.preset}")
        data = root
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return TrainConfig(preset=args.preset, out=args.out, world=args.world, data=data, sizes=tuple(args.sizes),
                       variant=args.variant, overrides=overrides, backbones=args.backbones,
                       modality_dropout=args.modality_dropout, epochs=args.epochs, batch_size=args.batch_size,
                       accum=args.accum, lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup,
                       grad_clip=args.grad_clip, seed=args.seed, bf16=args.bf16, workers=args.workers,
                       max_steps=args.max_steps, save_every=args.save_every, pause_after=args.pause_after,
                       eval_test=not args.no_test, cache_clips=not args.no_clip_cache, gate_lr_scale=args.gate_lr_scale,
                       head_warmup=args.head_warmup, head_lr_scale=args.head_lr_scale,
                       conditions=tuple(args.conditions))


def run(args: argparse.Namespace) -> int:
    result = train(config_from_args(args), resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    print(json.dumps({k: v for k, v in result.items() if k != "test"}, indent=2))
    for condition, metrics_ in result.get("test", {}).items():
        print(condition, {k: round(v, 2) if isinstance(v, float) else v for k, v in metrics_.items()})
    return 0
