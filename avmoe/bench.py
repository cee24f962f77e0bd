"""`python -m avmoe bench`: time the inference path stage by stage on one 10-s clip, and the stacked experts.

Rows, each a median with its spread over --repeats runs after warm-up (compared rows run interleaved, so load drift
hits them alike): decode, audio features, the frozen backbones alone (the preset's `frozen` variant with the same
backbone weights), the AVMoE encoder forward, the same with inference top-1 routing (each router keeps its largest
weight and the other experts are skipped), the routers inside the dense forward (module hooks), the head, the
Predictor end to end on the shipped models (decode, every task model, router trace), and a training step.
Ratios, each beside its target: the Predictor's median (<= 0.5 s), AVMoE over backbones (<= 1.3), the routers'
share of the forward (<= 2 %), and on paper-ave with random weights the stacked experts against the loop (>= 1.5x)
with the largest output difference; top-1 over dense is reported beside them. Targets are reported, never
enforced: --quick (for CI) checks nothing about speed.
Model weights are random where the preset gives none; timings do not depend on weight values.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from avmoe.config import ModelConfig, apply_overrides, get_preset, list_presets
from avmoe.data.media import decode_clip, probe
from avmoe.layers import MoEAdapter, Router, reuse_folds
from avmoe.model import TaskModel
from avmoe.paths import ASSETS

log = logging.getLogger(__name__)

TARGETS = {"predictor_s": 0.5, "avmoe_over_backbones": 1.3, "router_share": 0.02, "paper_experts_speedup": 1.5}
"""Targets of issue #8: at most for the first three, at least for the speed-up."""
ROWS = ("decode", "audio_features", "backbones", "avmoe_forward", "avmoe_top1", "router", "heads", "predictor",
        "train_step")
QUESTION = "How many kinds of sound are there?"  # AVQA runs only with a question (words of the scene worlds)


def summarise(samples: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max (seconds) of timing samples."""
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else (samples[0],) * 3
    return {"median_s": statistics.median(samples), "q1_s": q1, "q3_s": q3, "min_s": min(samples),
            "max_s": max(samples), "n": len(samples)}


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, run round-robin: `warmup` untimed rounds, then `repeats` timed ones."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MiB (it never goes down; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if platform.system() == "Darwin" else 2**10)


def example_clip(workdir: Path) -> Path:
    """A real 10-s file: the first shipped example that long, else a rendered shapes scene written to `workdir`."""
    for path in sorted((ASSETS / "examples").glob("*.mp4")):
        if (probe(path).get("duration") or 0.0) >= 10.0:
            return path
    from avmoe.data.synthetic.make_data import generate

    log.info("no 10-s example under %s; rendering one", ASSETS / "examples")
    return generate("shapes", "ave", "test", 1, workdir, progress=False)[0]


class RouterClock:
    """Total seconds spent inside a model's Router modules, through forward hooks."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._start = 0.0
        self._handles = []
        for m in model.modules():
            if isinstance(m, Router):
                self._handles.append(m.register_forward_pre_hook(self._enter))
                self._handles.append(m.register_forward_hook(self._leave))

    def _enter(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def bench_stages(cfg: ModelConfig, clip_path: Path, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Decode, audio features, backbones, AVMoE forward, routers and head of one preset on one clip."""
    model = TaskModel(cfg).eval()
    frozen = TaskModel(apply_overrides(cfg, {"variant": "frozen"})).eval()
    for stream in ("visual", "audio"):  # the very same backbones, without any mixture
        getattr(frozen.encoder, stream).load_state_dict(getattr(model.encoder, stream).state_dict())
    top1 = TaskModel(apply_overrides(cfg, {"router.top_k": 1})).eval()
    top1.load_state_dict(model.state_dict())
    clip = decode_clip(clip_path, segments=cfg.segments, frame_size=cfg.frame_size, sample_rate=cfg.sample_rate)
    batch: dict[str, Any] = {"frames": clip.frames[None], "audio": clip.audio[None]}
    if cfg.task == "avqa":
        batch["question"] = torch.zeros(1, cfg.head.question_len, dtype=torch.long)
    clock = RouterClock(model)
    router: list[float] = []

    def forward() -> None:
        before = clock.seconds
        model.encoder(batch["frames"], batch["audio"])
        router.append(clock.seconds - before)

    with torch.inference_mode(), reuse_folds():  # as the Predictor runs it
        feats = model.encoder(batch["frames"], batch["audio"])
        samples = time_interleaved({
            "decode": lambda: decode_clip(clip_path, segments=cfg.segments, frame_size=cfg.frame_size,
                                          sample_rate=cfg.sample_rate),
            "audio_features": lambda: model.encoder.audio.prepare(clip.audio),
            "backbones": lambda: frozen.encoder(batch["frames"], batch["audio"]),
            "avmoe_forward": forward,
            "avmoe_top1": lambda: top1.encoder(batch["frames"], batch["audio"]),
            "heads": lambda: model.head(feats, batch),
        }, repeats, warmup)
    clock.close()
    samples["router"] = router[warmup:]
    samples["router_share"] = [r / f for r, f in zip(samples["router"], samples["avmoe_forward"])]
    return samples


def bench_predictor(clip_path: Path, repeats: int, warmup: int) -> Optional[list[float]]:
    """End to end on the shipped models: decode, every task model, router trace; None without shipped models."""
    from avmoe.predict import Predictor

    try:
        predictor = Predictor.from_assets()
    except FileNotFoundError as err:
        log.warning("predictor row skipped: %s", err)
        return None
    question = QUESTION if "avqa" in predictor.models else None
    return time_interleaved({"predictor": lambda: predictor.predict(clip_path, question=question)},
                            repeats, warmup)["predictor"]


def bench_training(preset: str, repeats: int, warmup: int, batch_size: int = 2) -> list[float]:
    """Seconds per optimiser step (forward, loss, backward, AdamW) on `batch_size` rendered shapes clips."""
    from avmoe.data.tasks import Collate, DataSpec, open_task_data
    from avmoe.train import TrainConfig, build_for_data

    cfg = get_preset(preset)
    data = open_task_data(DataSpec(cfg.task, world="shapes", sizes=(batch_size, 1, 1)), cfg.frame_size,
                          cfg.sample_rate, cfg.segments, splits=("train",))
    model = build_for_data(TrainConfig(preset=preset), data).train()
    batch = Collate(cfg.task, data.classes, data.question_words, model.cfg.head.question_len)(
        [data.splits["train"][i] for i in range(batch_size)])
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def step() -> None:
        model.loss(model(batch), batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return time_interleaved({"train_step": step}, repeats, warmup)["train_step"]


def compare_experts(cfg: ModelConfig, repeats: int, warmup: int, forward_repeats: int = 1) -> dict[str, Any]:
    """The stacked experts against the loop on one model with random weights (gates set to 0.5 so experts count).

    `experts_speedup` times every mixture's experts (`MoEAdapter.mix`) on the inputs it saw in a forward, summed,
    the stacked path folding its weights on every call; `experts_speedup_reused` the same inside `reuse_folds`, which
    folds once per mixture as the Predictor and evaluation run;
    `forward_speedup` times whole encoder forwards; `max_abs_diff` compares the encoder's pooled features and the
    head's outputs of the two paths.
    """
    model = TaskModel(apply_overrides(cfg, {"adapter.experts_impl": "batched"})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gate"):
                p.fill_(0.5)
    mixtures = [m for m in model.modules() if isinstance(m, MoEAdapter)]
    stacked = [m.stacked for m in mixtures]

    def use(impl: str) -> None:
        for m, s in zip(mixtures, stacked):
            m.stacked = s and impl == "batched"

    generator = torch.Generator().manual_seed(0)
    batch: dict[str, Any] = {
        "frames": torch.rand(1, cfg.segments, 3, cfg.frame_size, cfg.frame_size, generator=generator),
        "audio": 0.1 * torch.randn(1, cfg.segments, cfg.sample_rate, generator=generator)}
    if cfg.task == "avqa":
        batch["question"] = torch.zeros(1, cfg.head.question_len, dtype=torch.long)
    recorded = _record_mixture_inputs(mixtures)
    with torch.inference_mode():
        use("loop")
        loop = model(batch)
        seen = recorded()  # (mixture, x, t, probs) of every mixture call in that forward
        use("batched")
        batched = model(batch)
        pairs = [(loop.features.visual, batched.features.visual), (loop.features.audio, batched.features.audio)]
        pairs += [(v, batched.outputs[k]) for k, v in loop.outputs.items()]
        diff = max(float((a - b).abs().max()) for a, b in pairs)

        def experts(impl: str) -> Callable[[], None]:
            def run() -> None:
                use(impl)
                for m, x, t, probs in seen:
                    m.mix(x, t, probs)
            return run

        def encoder(impl: str) -> Callable[[], None]:
            return lambda: (use(impl), model.encoder(batch["frames"], batch["audio"]))

        mix = time_interleaved({"loop": experts("loop"), "batched": experts("batched")}, repeats, warmup)
        with reuse_folds():  # the warm-up runs fold, the timed runs reuse
            mix.update(time_interleaved({"reused": experts("batched")}, repeats, max(warmup, 1)))
        fwd = time_interleaved({"loop": encoder("loop"), "batched": encoder("batched")}, forward_repeats, 0)
    return {
        "experts_loop": summarise(mix["loop"]), "experts_batched": summarise(mix["batched"]),
        "experts_speedup": statistics.median(mix["loop"]) / statistics.median(mix["batched"]),
        "experts_batched_reused": summarise(mix["reused"]),
        "experts_speedup_reused": statistics.median(mix["loop"]) / statistics.median(mix["reused"]),
        "forward_loop": summarise(fwd["loop"]), "forward_batched": summarise(fwd["batched"]),
        "forward_speedup": statistics.median(fwd["loop"]) / statistics.median(fwd["batched"]),
        "max_abs_diff": diff, "mixtures": len(mixtures), "stacked_mixtures": sum(stacked),
        "peak_rss_mb": peak_rss_mb(),
    }


def _record_mixture_inputs(mixtures: list[MoEAdapter]) -> Callable[[], list[tuple]]:
    """Hooks that record each mixture's (module, x, t, probs) in the next forward; the returned call removes them
    and gives the records. t is the token map's output, captured from its own hook (not recomputed)."""
    mapped: dict[int, torch.Tensor] = {}
    records: list[tuple] = []
    hooks = []
    for m in mixtures:
        if m.token_map is not None:
            hooks.append(m.token_map.register_forward_hook(
                lambda _, __, out, key=id(m): mapped.__setitem__(key, out)))
        hooks.append(m.register_forward_hook(
            lambda m, args, out: records.append((m, args[0], mapped.get(id(m), args[0]), out.probs))))

    def done() -> list[tuple]:
        for h in hooks:
            h.remove()
        return records

    return done


def run_bench(preset: str = "tiny-ave", repeats: int = 10, warmup: int = 2, quick: bool = False) -> dict[str, Any]:
    """Every row and ratio as a JSON-able dict (see the module docstring)."""
    if quick:
        repeats, warmup = 2, 1
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    cfg = get_preset(preset)
    with tempfile.TemporaryDirectory() as tmp:
        clip_path = example_clip(Path(tmp))
        log.info("stages of %s on %s", preset, clip_path.name)
        samples = bench_stages(cfg, clip_path, repeats, warmup)
        log.info("predictor on the shipped models")
        predictor = bench_predictor(clip_path, repeats, warmup)
    peak = {"inference": peak_rss_mb()}
    log.info("training steps of %s", preset)
    samples["train_step"] = bench_training(preset, repeats, warmup)
    peak["training"] = peak_rss_mb()
    rows: dict[str, dict[str, Any]] = {name: summarise(samples[name]) for name in ROWS if name != "predictor"}
    rows["predictor"] = summarise(predictor) if predictor else {"skipped": "no shipped models under assets/models"}
    rows = {name: rows[name] for name in ROWS}
    median = {name: row.get("median_s") for name, row in rows.items()}
    ratios: dict[str, Any] = {
        "predictor_s": median["predictor"],
        "avmoe_over_backbones": median["avmoe_forward"] / median["backbones"],
        "router_share": statistics.median(samples["router_share"]),
        "top1_over_dense": median["avmoe_top1"] / median["avmoe_forward"],
        "train_steps_per_s": 1.0 / median["train_step"],
    }
    if quick:
        ratios["paper_ave"] = {"skipped": "--quick"}
    else:
        log.info("paper-ave: stacked experts against the loop (random weights; slow)")
        ratios["paper_ave"] = compare_experts(get_preset("paper-ave"), repeats, warmup,
                                              forward_repeats=min(repeats, 3))
    return {"preset": preset, "clip": clip_path.name, "repeats": repeats, "warmup": warmup, "quick": quick,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
            "rows": rows, "ratios": ratios, "targets": TARGETS, "peak_rss_mb": peak}


def format_report(result: dict[str, Any]) -> str:
    """The rows as a table (milliseconds) and the ratios beside their targets."""
    lines = [f"avmoe bench: {result['preset']} on {result['clip']}, {result['repeats']} repeats after "
             f"{result['warmup']} warm-up, {result['threads']} threads, torch {result['torch']}",
             f"  {'row':<16}{'median ms':>11}{'q1-q3 ms':>19}{'min-max ms':>19}"]
    for name, row in result["rows"].items():
        if "skipped" in row:
            lines.append(f"  {name:<16}{'skipped: ' + row['skipped']:>49}")
            continue
        ms = {k: 1e3 * v for k, v in row.items() if k.endswith("_s")}
        lines.append(f"  {name:<16}{ms['median_s']:>11.1f}{ms['q1_s']:>9.1f} - {ms['q3_s']:<7.1f}"
                     f"{ms['min_s']:>9.1f} - {ms['max_s']:<7.1f}")
    r, t = result["ratios"], result["targets"]
    predictor = "skipped" if r["predictor_s"] is None else f"{r['predictor_s']:.3f} s"
    lines += ["ratios (targets are reported, not enforced)",
              f"  predictor end to end     {predictor:>10}   target <= {t['predictor_s']} s",
              f"  avmoe / backbones        {r['avmoe_over_backbones']:>10.2f}   target <= {t['avmoe_over_backbones']}",
              f"  router share             {r['router_share']:>10.1%}   target <= {t['router_share']:.0%}",
              f"  top-1 / dense forward    {r['top1_over_dense']:>10.2f}   (inference top-1 routing)",
              f"  train steps / s          {r['train_steps_per_s']:>10.2f}   (batch 2)"]
    paper = r["paper_ave"]
    if "skipped" in paper:
        lines.append(f"  paper-ave experts        skipped ({paper['skipped']})")
    else:
        lines += [f"  paper-ave experts        {paper['experts_speedup']:>10.2f}x  target >= "
                  f"{t['paper_experts_speedup']}x (loop {1e3 * paper['experts_loop']['median_s']:.0f} ms, "
                  f"batched {1e3 * paper['experts_batched']['median_s']:.0f} ms)",
                  f"  paper-ave reused folds   {paper['experts_speedup_reused']:>10.2f}x  (batched "
                  f"{1e3 * paper['experts_batched_reused']['median_s']:.0f} ms, folding once as the Predictor does)",
                  f"  paper-ave forward        {paper['forward_speedup']:>10.2f}x  "
                  f"max |diff| {paper['max_abs_diff']:.1e}",
                  f"  paper-ave peak RSS       {paper['peak_rss_mb']:>10.0f} MB"]
    lines.append(f"  peak RSS                 {result['peak_rss_mb']['inference']:>10.0f} MB after the inference rows, "
                 f"{result['peak_rss_mb']['training']:.0f} MB after training")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny-ave", choices=list_presets(),
                        help="the model of the stage rows and the training step (default tiny-ave)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--quick", action="store_true",
                        help="for CI: 1 warm-up, 2 repeats, no paper-ave comparison; checks nothing about speed")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_bench(args.preset, args.repeats, args.warmup, args.quick)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
