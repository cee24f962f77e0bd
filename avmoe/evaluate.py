"""Evaluate a task model on a dataset under an input condition, with the official metrics."""
from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from avmoe import metrics
from avmoe.data.corrupt import apply_condition, parse_condition
from avmoe.data.sample import Clip
from avmoe.data.tasks import Collate
from avmoe.layers import reuse_folds

PRIMARY = {"ave": "accuracy", "avvp": "seg_type", "s4": "miou", "ms3": "miou", "avqa": "Avg"}
"""The metric that selects checkpoints on the validation split, per task."""


class ConditionedClips(Dataset):
    """A dataset's clips under a condition; "mismatched" takes the audio of the next clip. Seeded per index."""

    def __init__(self, clips: Dataset, condition: str, seed: int = 0) -> None:
        self.clips, self.condition, self.seed = clips, parse_condition(condition), seed
        self.needs_other = self.condition.needs_other

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> Clip:
        other = self.clips[(i + 1) % len(self.clips)] if self.needs_other else None
        return apply_condition(self.clips[i], self.condition, seed=self.seed + i, other=other)


class TaskMetric:
    """Accumulates one task's official metric from model outputs and batches."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.impl = {"ave": metrics.AVEMetric, "avvp": metrics.AVVPMetric, "avqa": metrics.AVQAMetric}.get(task)
        self.impl = self.impl() if self.impl else metrics.AVSMetric(from_logits=True)
        self.router: dict[str, list[torch.Tensor]] = {}

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        if self.task == "ave":
            self.impl.update(outputs["event_scores"], outputs["is_event"], batch["ave"])
        elif self.task == "avvp":
            self.impl.update(outputs["global_prob"], outputs["a_frame_prob"], outputs["v_frame_prob"],
                             batch["avvp_audio"], batch["avvp_visual"])
        elif self.task == "avqa":
            self.impl.update(outputs["answer_logits"].argmax(-1), batch["answer"], batch["qtype"])
        else:
            valid = batch["mask_valid"]
            for logits, masks, ok in zip(outputs["mask_logits"], batch["masks"], valid):
                self.impl.update(logits[ok], masks[ok])

    def compute(self) -> dict[str, float]:
        return self.impl.compute()


@torch.no_grad()
@reuse_folds()  # the weights are fixed during an evaluation: each mixture folds its stacked experts once
def evaluate(model: torch.nn.Module, clips: Dataset, classes: list[str], condition: str = "av",
             batch_size: int = 8, seed: int = 0, workers: int = 0, question_words: Optional[list[str]] = None,
             progress: bool = False) -> dict[str, Any]:
    """Official metrics of `model` on `clips` under `condition`, plus the mean routing weights per stream and
    expert family (the share of weight on cross-modal experts) over all frames."""
    cfg = model.cfg
    collate = Collate(cfg.task, classes, question_words or cfg.question_words, cfg.head.question_len)
    loader = DataLoader(ConditionedClips(clips, condition, seed), batch_size=batch_size, collate_fn=collate,
                        num_workers=workers)
    model.eval()
    metric = TaskMetric(cfg.task)
    cma_share: dict[str, list[torch.Tensor]] = {"audio": [], "visual": []}
    for batch in _progress(loader, progress, f"eval {condition}"):
        out = model(batch)
        metric.update(out.outputs, batch)
        trace = out.features.trace
        for key, w in trace.weights.items():
            names = trace.experts[key]
            cma = [i for i, n in enumerate(names) if n.startswith("cma")]
            cma_share[key[0]].append(w[..., cma].sum(-1).flatten())
    result: dict[str, Any] = {"condition": condition, "n": len(clips), **metric.compute()}
    for stream, shares in cma_share.items():
        if shares:
            result[f"router_cma_share_{stream}"] = float(torch.cat(shares).mean())
    return result


def _progress(loader: Iterable, show: bool, desc: str) -> Iterable:
    if not show:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False)


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="a model directory (config.json + model.safetensors)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--condition", action="append",
                        help="av, visual-only, audio-only, mismatched, audio-noise:SNR, visual-noise:SNR, "
                             "occlusion:FRACTION, or several joined by + (repeatable; default av)")
    parser.add_argument("--data", metavar="PATH", help="dataset root, if not the one in the model card")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top-k", type=int, default=0,
                        help="inference top-k: every router keeps its K largest weights and renormalises, and the "
                             "other experts are not run (default 0: the dense mixture the model was trained with)")
    parser.add_argument("--out", help="JSON file for the results (default MODEL/eval-SPLIT.json, "
                                      "MODEL/eval-SPLIT-topK.json with --top-k)")


def run(args) -> int:
    import json
    from pathlib import Path

    import avmoe
    from avmoe.data.tasks import DataSpec, open_task_data

    model_dir = Path(args.model)
    model = avmoe.load(model_dir, **({"router.top_k": args.top_k} if args.top_k else {}))
    cfg = model.cfg
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    if args.data:
        spec = DataSpec(cfg.task, root=args.data)
    elif card.get("data"):
        d = card["data"]
        spec = DataSpec(cfg.task, d.get("world"), d.get("root"), tuple(d.get("sizes", (0, 0, 0))))
    else:
        raise SystemExit(f"{model_dir} has no card.json naming its data: pass --data PATH")
    data = open_task_data(spec, cfg.frame_size, cfg.sample_rate, cfg.segments, splits=(args.split,))
    results = {c: evaluate(model, data.splits[args.split], cfg.classes, c, args.batch_size, args.seed,
                           question_words=cfg.question_words, progress=True)
               for c in (args.condition or ["av"])}
    for condition, res in results.items():
        print(condition, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))
    suffix = f"-top{args.top_k}" if args.top_k else ""
    out = Path(args.out) if args.out else model_dir / f"eval-{args.split}{suffix}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0
