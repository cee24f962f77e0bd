"""AVMoEModel: two frozen streams run block by block, with mixtures of adapters beside their paired blocks.

Data flow: frames [B,T,3,H,W] and audio [B,T,S] -> each backbone sees B*T frames -> paired blocks exchange
information only through the adapters -> pooled and per-stage features of both streams, plus the router trace.
`TaskModel` puts a task head on top and is what `build_model` returns.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import torch
from torch import nn

from avmoe.backbones import Backbone, Stage, build_backbone
from avmoe.config import ModelConfig, apply_overrides, get_preset
from avmoe.layers import MoEAdapter, RouterOverride, RouterTrace

STREAMS = ("visual", "audio")


@dataclass(frozen=True)
class Pair:
    """A visual block and an audio block that run together; `adapted` pairs get mixtures beside them."""

    layer: int
    visual: tuple[int, int]  # (stage, block)
    audio: tuple[int, int]
    adapted: bool


def pair_blocks(visual: tuple[Stage, ...], audio: tuple[Stage, ...], skip: int = 1) -> list[Pair]:
    """Pair blocks stage by stage; where depths differ, the deeper side's blocks are picked evenly, ending on the
    stage's last block (the paper pairs Swin-V2-L's 18 stage-3 blocks j = 2, 5, ..., 17 with HTS-AT's 6).
    Backbones with different stage counts are paired over their whole depth instead.
    With skip > 1, stages s where (s + 1) % skip == 0 get no adapters (official `num_skip`)."""
    def flat(stages: tuple[Stage, ...]) -> list[tuple[int, int]]:
        return [(s, b) for s, st in enumerate(stages) for b in range(st.depth)]

    if len(visual) == len(audio):
        groups = [([(s, b) for b in range(v.depth)], [(s, b) for b in range(a.depth)])
                  for s, (v, a) in enumerate(zip(visual, audio))]
    else:
        groups = [(flat(visual), flat(audio))]
    pairs: list[Pair] = []
    for vis, aud in groups:
        n = min(len(vis), len(aud))
        for i in range(n):
            v, a = vis[(i + 1) * len(vis) // n - 1], aud[(i + 1) * len(aud) // n - 1]
            adapted = skip <= 1 or (v[0] + 1) % skip != 0
            pairs.append(Pair(len(pairs), v, a, adapted))
    return pairs


@dataclass
class AVMoEFeatures:
    """What the encoder returns: features of both streams and the routing of every mixture."""

    visual: torch.Tensor  # [B, T, Cv] pooled output of the visual stream
    audio: torch.Tensor  # [B, T, Ca]
    visual_stages: list[torch.Tensor]  # per stage [B, T, C, h, w] (the last visual stage after the final norm)
    audio_stages: list[torch.Tensor]
    layers: dict[str, list[torch.Tensor]]  # per stream, pooled tokens after each paired block [B, T, C]
    trace: RouterTrace
    balance_loss: torch.Tensor  # sum over mixtures of the load-balance loss (unweighted)


class _Cursor:
    """Walks one backbone through its stages and blocks, collecting each stage's output."""

    def __init__(self, backbone: Backbone, tokens: torch.Tensor) -> None:
        self.bb = backbone
        self.stage, self.block = 0, 0
        self.x = backbone.enter_stage(0, tokens)
        self.outputs: list[torch.Tensor] = []

    def done_block(self) -> None:
        self.block += 1
        if self.block == self.bb.stages[self.stage].depth:
            self.outputs.append(self.bb.stage_output(self.stage, self.x))
            self.stage, self.block = self.stage + 1, 0
            if self.stage < len(self.bb.stages):
                self.x = self.bb.enter_stage(self.stage, self.x)

    def advance_to(self, position: Optional[tuple[int, int]] = None) -> None:
        """Run plain blocks up to (not including) `position`, or to the end."""
        while self.stage < len(self.bb.stages) and (self.stage, self.block) != position:
            self.x = self.bb.run_block(self.stage, self.block, self.x)
            self.done_block()


class AVMoEModel(nn.Module):
    """Frozen visual and audio backbones with MoE adapters at the paired blocks.

    At p1 each stream's mixture reads both streams' block inputs and is added beside the attention branch; at p2
    it reads the post-attention tokens and is added beside the feed-forward branch. With
    `adapter.audio_placement="block"` (official code) the audio mixtures are added at the block output instead.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = build_backbone(cfg.visual).freeze()
        self.audio = build_backbone(cfg.audio).freeze()
        self.pairs = pair_blocks(self.visual.stages, self.audio.stages, cfg.adapter.skip)
        num_cma, num_ua = cfg.experts
        self.adapters = nn.ModuleDict()
        if num_cma + num_ua:
            for pair in (p for p in self.pairs if p.adapted):
                for pos in cfg.adapter.positions:
                    for stream in STREAMS:
                        self.adapters[_name(stream, pair.layer, pos)] = self._mixture(stream, pair, pos, num_cma,
                                                                                      num_ua)

    def _mixture(self, stream: str, pair: Pair, pos: str, num_cma: int, num_ua: int) -> MoEAdapter:
        own, other = (self.visual, self.audio) if stream == "visual" else (self.audio, self.visual)
        own_stage = own.stages[getattr(pair, stream)[0]]
        other_stage = other.stages[getattr(pair, "audio" if stream == "visual" else "visual")[0]]
        gate = stream == "visual" or self.cfg.adapter.audio_gate  # official: visual experts are always gated
        return MoEAdapter((stream, pair.layer, pos), own_stage.dim, other_stage.dim, own_stage.tokens,
                          other_stage.tokens, num_cma, num_ua, self.cfg.adapter, self.cfg.router, gate,
                          own_stage.grid, other_stage.grid)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> AVMoEFeatures:
        """frames [B, T, 3, H, W] in [0, 1]; audio [B, T, S] mono waveform at `cfg.sample_rate`."""
        if frames.ndim != 5 or audio.ndim != 3 or frames.shape[:2] != audio.shape[:2]:
            raise ValueError(f"expected frames [B,T,3,H,W] and audio [B,T,S] with equal B, T; got "
                             f"{tuple(frames.shape)} and {tuple(audio.shape)}")
        B, T = frames.shape[:2]
        cv = _Cursor(self.visual, embed(self.visual, frames.flatten(0, 1)))
        ca = _Cursor(self.audio, embed(self.audio, audio.flatten(0, 1)))
        trace = RouterTrace(B, T)
        balance: list[torch.Tensor] = []
        layers: dict[str, list[torch.Tensor]] = {s: [] for s in STREAMS}
        for pair in self.pairs:
            cv.advance_to(pair.visual)
            ca.advance_to(pair.audio)
            cv.x, ca.x = self._paired_block(pair, cv.x, ca.x, trace, balance)
            for stream, cursor in (("visual", cv), ("audio", ca)):
                layers[stream].append(cursor.x.mean(dim=1).unflatten(0, (B, T)))
                cursor.done_block()
        cv.advance_to()
        ca.advance_to()
        return AVMoEFeatures(
            visual=self.visual.pool(cv.outputs[-1]).unflatten(0, (B, T)),
            audio=self.audio.pool(ca.outputs[-1]).unflatten(0, (B, T)),
            visual_stages=[_grid(x, st, B, T) for x, st in zip(cv.outputs, self.visual.stages)],
            audio_stages=[_grid(x, st, B, T) for x, st in zip(ca.outputs, self.audio.stages)],
            layers=layers, trace=trace,
            balance_loss=torch.stack(balance).sum() if balance else frames.new_zeros(()),
        )

    def _paired_block(self, pair: Pair, v: torch.Tensor, a: torch.Tensor, trace: RouterTrace,
                      balance: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        (sv, bv), (sa, ba) = pair.visual, pair.audio
        at_output = self.cfg.adapter.audio_placement == "block"

        def mix(stream: str, pos: str, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor | float:
            name = _name(stream, pair.layer, pos)
            if name not in self.adapters:
                return 0.0
            result = self.adapters[name](own, other, trace)
            balance.append(result.balance_loss)
            return result.out

        rv, ra = mix("visual", "p1", v, a), mix("audio", "p1", a, v)  # both read the block inputs
        v = v + self.visual.attn_branch(sv, bv, v) + rv
        a = (self.audio.run_block(sa, ba, a) if at_output else a + self.audio.attn_branch(sa, ba, a)) + ra
        rv, ra = mix("visual", "p2", v, a), mix("audio", "p2", a, v)
        v = v + self.visual.ffn_branch(sv, bv, v) + rv
        a = (a if at_output else a + self.audio.ffn_branch(sa, ba, a)) + ra
        return v, a

    @contextlib.contextmanager
    def override_router(self, override: Optional[RouterOverride]) -> Iterator[None]:
        """Within the block, every matching mixture uses the overridden weights (an intervention)."""
        previous = {name: m.override for name, m in self.adapters.items()}
        try:
            for m in self.adapters.values():
                m.override = override
            yield
        finally:
            for name, m in self.adapters.items():
                m.override = previous[name]


# Inputs embedded inside `reuse_embeddings`, per thread or task: the app predicts from several threads at once.
_EMBEDDED: contextvars.ContextVar[Optional[list[tuple[Backbone, torch.Tensor, torch.Tensor]]]] = \
    contextvars.ContextVar("avmoe_embedded", default=None)


@contextlib.contextmanager
def reuse_embeddings() -> Iterator[None]:
    """Inside the block a frozen backbone embeds equal inputs once: for task models that share their backbones
    (`share_backbones`) run on one clip, which then prepare its audio features and patch tokens only once."""
    token = _EMBEDDED.set([])
    try:
        yield
    finally:
        _EMBEDDED.reset(token)


def embed(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    """`backbone.embed(backbone.prepare(x))`: raw input for B frames -> first-stage tokens, reused inside
    `reuse_embeddings` for an input equal to one this very module embedded before (frozen, without autograd)."""
    memo = _EMBEDDED.get()
    if memo is None or torch.is_grad_enabled() or not backbone.frozen:
        return backbone.embed(backbone.prepare(x))
    for seen_by, seen, tokens in memo:
        if seen_by is backbone and seen.shape == x.shape and seen.dtype == x.dtype and torch.equal(seen, x):
            return tokens
    tokens = backbone.embed(backbone.prepare(x))
    memo.append((backbone, x, tokens))
    return tokens


def share_backbones(models: Iterable["TaskModel"]) -> int:
    """Let task models whose frozen backbones are equal (same config and weights) use one module per stream, as
    the shipped models do: one copy in memory, and `reuse_embeddings` can see that their inputs meet the same
    module. Returns how many backbone modules were replaced."""
    kept: list[tuple[Any, Backbone]] = []
    replaced = 0
    for model in models:
        for stream in STREAMS:
            own = getattr(model.encoder, stream)
            cfg = getattr(model.cfg, stream), model.cfg.frame_size, model.cfg.sample_rate
            same = next((bb for c, bb in kept if c == cfg and _equal_weights(bb, own)), None)
            if same is None:
                kept.append((cfg, own))
            elif same is not own:
                setattr(model.encoder, stream, same)
                replaced += 1
    return replaced


def _equal_weights(a: Backbone, b: Backbone) -> bool:
    if type(a) is not type(b) or not (a.frozen and b.frozen):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype and sa[k].device == sb[k].device
        and torch.equal(sa[k], sb[k]) for k in sa)


def _name(stream: str, layer: int, pos: str) -> str:
    return f"{stream}_{layer}_{pos}"


def _grid(x: torch.Tensor, stage: Stage, B: int, T: int) -> torch.Tensor:
    """Stage tokens [B*T, N, C] -> [B, T, C, h, w], dropping prefix (class) tokens."""
    x = x[:, x.shape[1] - math.prod(stage.grid):]
    return x.transpose(1, 2).unflatten(-1, stage.grid).unflatten(0, (B, T))


@dataclass
class TaskOutput:
    """A task model's forward: the head's outputs (logits by name) and the encoder features they came from."""

    outputs: dict[str, torch.Tensor]
    features: AVMoEFeatures
    extra: dict[str, Any] = field(default_factory=dict)


class TaskModel(nn.Module):
    """The encoder plus the task head named by `cfg.task`; the loss adds the weighted load-balance loss."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from avmoe.heads import build_head

        self.cfg = cfg
        self.encoder = AVMoEModel(cfg)
        self.head = build_head(cfg, self.encoder.visual.stages, self.encoder.audio.stages)

    def forward(self, batch: dict[str, Any]) -> TaskOutput:
        feats = self.encoder(batch["frames"], batch["audio"])
        return TaskOutput(self.head(feats, batch), feats)

    def loss(self, out: TaskOutput, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses = self.head.loss(out.outputs, batch)
        if self.cfg.adapter.balance_weight and self.cfg.adapter.balance_loss != "none":
            losses["balance"] = self.cfg.adapter.balance_weight * out.features.balance_loss
            losses["loss"] = losses["loss"] + losses["balance"]
        return losses

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def override_router(self, override: Optional[RouterOverride]) -> contextlib.AbstractContextManager:
        return self.encoder.override_router(override)


def build_model(preset: str | ModelConfig, **overrides: Any) -> TaskModel:
    """A task model from a preset name (with dotted overrides) or a config."""
    if isinstance(preset, str):
        return TaskModel(get_preset(preset, **overrides))
    return TaskModel(apply_overrides(preset, overrides) if overrides else preset)
