"""Expert-count ablation: train tiny AVE models with different numbers of cross-modal and unimodal experts.

`python -m analysis ablation --out assets/ablation_ave.json` trains each configuration with `avmoe.train.train` on a
scene world and writes one JSON that the ablation figure reads:

    {"settings": {"preset", "world", "sizes", "epochs", "batch_size", "lr", "seed", "backbones",
                  "modality_dropout", "head_warmup", "head_lr_scale", "gate_lr_scale", "max_steps", "conditions"},
     "runs": [{"cma": 1, "ua": 1, "trainable_params": 512345, "best_val": 61.2, "train_seconds": 830.1,
               "test": {"av": {...}, "visual-only": {...}, ...}}, ...]}

where each run's "test" is the training run's final test evaluation per condition (`avmoe.evaluate.evaluate`
results: "accuracy" and the router's cross-modal shares). Runs already in the file with the same settings are kept,
so an interrupted ablation continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import avmoe
from avmoe.paths import ASSETS, cache_dir
from avmoe.train import TrainConfig, train

log = logging.getLogger(__name__)

CONFIGS = ((1, 1), (2, 2), (1, 2), (2, 1))
"""(cross-modal, unimodal) experts per mixture."""
OUT = ASSETS / "ablation_ave.json"


@dataclass
class AblationSettings:
    preset: str = "tiny-ave"
    world: str = "stamps"
    sizes: tuple[int, int, int] = (600, 100, 200)  # train, val, test clips
    epochs: int = 6
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    backbones: Optional[str] = None  # pretrained frozen backbones (`python -m avmoe pretrain`); None = random
    modality_dropout: float = 0.0  # as `avmoe train --modality-dropout`; match the shipped models' training
    head_warmup: int = 0  # as `avmoe train --head-warmup` (the shipped AVE models: 3000)
    head_lr_scale: float = 1.0  # as `avmoe train --head-lr-scale` (shipped AVE: 0.1)
    gate_lr_scale: float = 1.0  # as `avmoe train --gate-lr-scale` (shipped AVE: 20)
    max_steps: int = 0  # stop each run after this many optimizer steps (0 = all epochs)
    conditions: tuple[str, ...] = ("av", "visual-only", "audio-only")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def run_ablation(out: str | Path = OUT, configs: Sequence[tuple[int, int]] = CONFIGS,
                 settings: Optional[AblationSettings] = None, work: Optional[Path] = None,
                 workers: int = 2) -> dict[str, Any]:
    """Train every (cma, ua) configuration not yet in `out` under `settings`, writing `out` after each run.

    `work` holds the training runs (default: the cache folder); returns the JSON document.
    """
    settings = settings or AblationSettings()
    out = Path(out)
    work = Path(work) if work is not None else cache_dir("analysis", "ablation")
    doc = {"settings": settings.to_dict(), "runs": []}
    if out.is_file():
        old = json.loads(out.read_text())
        if old.get("settings") == doc["settings"]:
            doc["runs"] = [r for r in old["runs"] if (r["cma"], r["ua"]) in set(map(tuple, configs))]
        else:
            log.warning("%s was made with other settings; its runs are replaced", out)
    done = {(r["cma"], r["ua"]) for r in doc["runs"]}
    for cma, ua in configs:
        if (cma, ua) in done:
            log.info("ablation %d+%d is already in %s", cma, ua, out)
            continue
        if cma < 1 or ua < 0:
            raise ValueError(f"expert counts cma={cma}, ua={ua}: need at least one cross-modal expert and ua >= 0")
        run_dir = work / f"cma{cma}-ua{ua}"
        overrides: dict[str, Any] = {"adapter.num_cma": cma, "adapter.num_ua": ua}
        log.info("ablation: training %d cross-modal + %d unimodal experts in %s", cma, ua, run_dir)
        result = train(TrainConfig(
            preset=settings.preset, out=str(run_dir), world=settings.world, sizes=tuple(settings.sizes),
            variant="avmoe", overrides=overrides, backbones=settings.backbones,
            modality_dropout=settings.modality_dropout, head_warmup=settings.head_warmup,
            head_lr_scale=settings.head_lr_scale, gate_lr_scale=settings.gate_lr_scale, epochs=settings.epochs,
            batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed, workers=workers,
            max_steps=settings.max_steps, conditions=tuple(settings.conditions)))
        model = avmoe.load(run_dir / "best")
        doc["runs"].append({"cma": cma, "ua": ua, "trainable_params": sum(p.numel()
                                                                          for p in model.trainable_parameters()),
                            "best_val": result["best_val"], "train_seconds": result["train_seconds"],
                            "test": result["test"]})
        doc["runs"].sort(key=lambda r: [tuple(c) for c in configs].index((r["cma"], r["ua"])))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2))
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = AblationSettings()
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write (default assets/ablation_ave.json)")
    parser.add_argument("--config", action="append", metavar="CMA+UA",
                        help="an expert configuration such as 2+1 (repeatable; default 1+1 2+2 1+2 2+1)")
    parser.add_argument("--world", default=d.world)
    parser.add_argument("--sizes", type=int, nargs=3, default=d.sizes, metavar=("TRAIN", "VAL", "TEST"))
    for name in ("epochs", "batch_size", "seed", "max_steps", "head_warmup"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "modality_dropout", "head_lr_scale", "gate_lr_scale"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    parser.add_argument("--backbones", default=d.backbones,
                        help="folder of pretrained backbones (visual/audio.safetensors), as for `avmoe train`")
    parser.add_argument("--condition", action="append", help="test conditions (repeatable; default av, "
                                                              "visual-only, audio-only)")
    parser.add_argument("--work", type=Path, help="folder for the training runs (default .cache/analysis/ablation)")
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes per run")


def run(args: argparse.Namespace) -> int:
    configs = [_parse_config(c) for c in (args.config or [])] or list(CONFIGS)
    if args.backbones is None:
        log.warning("no --backbones: the frozen encoders are random, so the ablation says little")
    backbones = str(Path(args.backbones).resolve()) if args.backbones else None
    settings = AblationSettings(world=args.world, sizes=tuple(args.sizes), epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, seed=args.seed, backbones=backbones,
                                modality_dropout=args.modality_dropout, max_steps=args.max_steps,
                                head_warmup=args.head_warmup, head_lr_scale=args.head_lr_scale,
                                gate_lr_scale=args.gate_lr_scale,
                                conditions=tuple(args.condition or AblationSettings.conditions))
    doc = run_ablation(args.out, configs, settings, args.work, args.workers)
    for r in doc["runs"]:
        print(f"{r['cma']}+{r['ua']}: " + ", ".join(f"{c} {m['accuracy']:.1f}" for c, m in r["test"].items()))
    print(f"wrote {args.out}")
    return 0


def _parse_config(text: str) -> tuple[int, int]:
    cma, sep, ua = text.partition("+")
    if not sep or not cma.isdigit() or not ua.isdigit():
        raise SystemExit(f"--config {text!r}: expected CMA+UA expert counts such as 2+1")
    return int(cma), int(ua)
