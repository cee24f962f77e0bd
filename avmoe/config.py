"""Dataclass configs for the model, JSON round-trip, and the named presets.

A preset is a function returning a `ModelConfig`; `get_preset(name, **overrides)` applies dotted overrides such as
``{"adapter.num_cma": 2, "variant": "cma-only"}``. Unknown keys raise, naming the key and the valid ones.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

TASKS = ("ave", "avvp", "s4", "ms3", "avqa")
VARIANTS = ("avmoe", "cma-only", "ua-only", "frozen")


@dataclass
class BackboneConfig:
    name: str  # registry name, see avmoe.backbones.list_backbones()
    kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the builder's architecture arguments
    weights: Optional[str] = None  # local checkpoint file (HTS-AT .ckpt, timm .pth/.safetensors), loaded at build


@dataclass
class RouterConfig:
    hidden: tuple[int, ...] = (128, 32)  # MLP widths; official: Linear(2C,128)-ReLU-Linear(128,32)-ReLU-Linear(32,E)
    temperature: float = 1.0  # softmax temperature (official: 1)
    noise_std: float = 0.0  # std of Gaussian noise on the logits while training (official AVS: 0.01)
    top_k: int = 0  # at inference keep only the k largest weights, renormalised; 0 = dense (official)


@dataclass
class AdapterConfig:
    num_cma: int = 1  # cross-modal experts per mixture
    num_ua: int = 1  # unimodal experts per mixture
    num_latent_tokens: int = 32  # latent tokens of the cross-modal exchange
    reduction: int = 8  # bottleneck width = C / reduction
    groups: int = 2  # channel groups of the bottleneck's 1x1 maps
    batch_norm: bool = True  # BN after the down and up maps (official AVE: on)
    attn_scale: bool = True  # 1/sqrt(C) in the exchange softmaxes (official: False, bug 5)
    ua_activation: bool = True  # ReLU inside the unimodal bottleneck (official: False, bug 6)
    ua_self_attention: str = "none"  # "none" | "mha" (batch-first, fixes bug 4) | "latent" (official AVS v2) | "plain"
    latent_init: str = "uniform"  # "uniform" U[0,1) (official) | "normal" (std 0.02)
    audio_gate: bool = True  # zero-initialised output gate on audio experts (official AVS/AVQA: False, bug 10)
    token_map: str = "linear"  # "linear": learned N_o->N_s map (paper) | "interp": parameter-free resampling
    skip: int = 1  # stages s with (s+1) % skip == 0 get no adapters when skip > 1 (official AVE/MS3: 2)
    positions: tuple[str, ...] = ("p1", "p2")  # p1 parallel to attention, p2 parallel to the FFN
    audio_placement: str = "branch"  # "branch": audio adapters beside attention/FFN | "block": official, at block output
    balance_loss: str = "kl"  # "kl": KL(uniform || mean routing) | "official": -sum log mean routing (bug 3) | "none"
    balance_weight: float = 0.0  # weight of the summed balance loss (official AVVP 1.0, MS3 0.01)
    experts_impl: str = "batched"  # "batched": eval-mode mixtures run experts stacked where faster | "loop"


@dataclass
class HeadConfig:
    dim: int = 256  # working width of the head
    num_classes: int = 28  # event classes (AVE 28, AVVP 25) or answer vocabulary (AVQA)
    dropout: float = 0.2
    question_vocab: int = 93  # AVQA: question vocabulary size (with <pad>, <unk>)
    question_len: int = 14  # AVQA: padded question length
    mask_size: int = 0  # AVS: output mask side; 0 = the input frame size
    dice_weight: float = 0.0  # AVS: weight of a soft Dice loss added to the BCE (official: 0, BCE only)


@dataclass
class ModelConfig:
    task: str = "ave"
    variant: str = "avmoe"
    visual: BackboneConfig = field(default_factory=lambda: BackboneConfig("swinv2-tiny"))
    audio: BackboneConfig = field(default_factory=lambda: BackboneConfig("htsat-tiny"))
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    segments: int = 10  # one-second segments per clip
    sample_rate: int = 32000
    frame_size: int = 96  # frames are resized to this side before the visual backbone
    classes: list[str] = field(default_factory=list)  # label names (events or answers), stored for inference
    question_words: list[str] = field(default_factory=list)  # AVQA question vocabulary, stored for inference

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("adapter.ua_self_attention", self.adapter.ua_self_attention, ("none", "mha", "latent", "plain"))
        _check_choice("adapter.token_map", self.adapter.token_map, ("linear", "interp"))
        _check_choice("adapter.audio_placement", self.adapter.audio_placement, ("branch", "block"))
        _check_choice("adapter.balance_loss", self.adapter.balance_loss, ("kl", "official", "none"))
        _check_choice("adapter.latent_init", self.adapter.latent_init, ("uniform", "normal"))
        for p in self.adapter.positions:
            _check_choice("adapter.positions", p, ("p1", "p2"))
        if self.router.top_k < 0:
            raise ValueError(f"router.top_k={self.router.top_k} must be >= 0 (0 = dense)")

    @property
    def experts(self) -> tuple[int, int]:
        """(cross-modal, unimodal) experts per mixture for this variant; variants differ only here."""
        return {
            "avmoe": (self.adapter.num_cma, self.adapter.num_ua),
            "cma-only": (1, 0),
            "ua-only": (0, 1),
            "frozen": (0, 0),
        }[self.variant]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; valid: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        sub = _SUBCONFIGS.get(ftype)
        if sub is not None and isinstance(value, dict):
            value = _from_dict(sub, value, f"{prefix}{name}.")
        elif isinstance(value, list) and ftype.startswith("tuple"):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


_SUBCONFIGS = {"BackboneConfig": BackboneConfig, "RouterConfig": RouterConfig, "AdapterConfig": AdapterConfig,
               "HeadConfig": HeadConfig}


def apply_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """A new config with dotted-key overrides applied, e.g. {"adapter.num_cma": 2}; the result is re-validated."""
    data = cfg.to_dict()
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.replace("-", "_").split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"unknown config key {key!r}: {p!r} is not a config section")
            node = node[p]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r}; valid at that level: {', '.join(node)}")
        node[leaf] = value
    return ModelConfig.from_dict(data)


# ----------------------------------------------------------------------------------------------------------- presets

_PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register_preset(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    _PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(list_presets())}")
    cfg = _PRESETS[name]()
    return apply_overrides(cfg, overrides) if overrides else cfg


def _paper(task: str, segments: int, adapter: AdapterConfig, router: RouterConfig, head: HeadConfig) -> ModelConfig:
    # Swin-V2-L (window 12, 192 px) + HTS-AT (AudioSet), as the official code builds them (reference section 3.1).
    return ModelConfig(
        task=task, visual=BackboneConfig("swinv2-large-192"), audio=BackboneConfig("htsat"),
        adapter=adapter, router=router, head=head, segments=segments, sample_rate=32000, frame_size=192,
    )


# Expert counts and switches of the released training scripts (reference section 1 table); the bug-fix flags keep
# their fixed defaults (see AdapterConfig) and are documented options.
@register_preset
def paper_ave() -> ModelConfig:
    return _paper("ave", 10, AdapterConfig(num_cma=1, num_ua=1, skip=2, batch_norm=True, audio_placement="block"),
                  RouterConfig(), HeadConfig(num_classes=28))


@register_preset
def paper_avvp() -> ModelConfig:
    return _paper("avvp", 10, AdapterConfig(num_cma=1, num_ua=1, skip=1, batch_norm=False, ua_self_attention="plain",
                                            audio_placement="block", balance_loss="kl", balance_weight=1.0),
                  RouterConfig(), HeadConfig(num_classes=25, dim=128))


@register_preset
def paper_s4() -> ModelConfig:
    return _paper("s4", 5, AdapterConfig(num_cma=1, num_ua=1, skip=1, batch_norm=False, ua_self_attention="mha",
                                         audio_gate=True, audio_placement="block"),
                  RouterConfig(noise_std=0.01), HeadConfig(num_classes=1, mask_size=224))


@register_preset
def paper_ms3() -> ModelConfig:
    return _paper("ms3", 5, AdapterConfig(num_cma=2, num_ua=2, skip=2, reduction=2, batch_norm=False,
                                          ua_self_attention="latent", audio_placement="block",
                                          balance_loss="kl", balance_weight=0.01),
                  RouterConfig(noise_std=0.01), HeadConfig(num_classes=1, mask_size=224))


@register_preset
def paper_avqa() -> ModelConfig:
    return _paper("avqa", 10, AdapterConfig(num_cma=1, num_ua=2, skip=1, num_latent_tokens=2, groups=4,
                                            batch_norm=False, audio_placement="block"),
                  RouterConfig(), HeadConfig(num_classes=42, dim=512, question_vocab=93, question_len=14))


def _tiny(task: str, segments: int, head: HeadConfig, **adapter: Any) -> ModelConfig:
    # Small Swin-V2 + HTS-AT for the shipped defaults: CPU-fast, same structure as the paper presets, stages 2 and 4
    # skipped as the official AVE script does. The token map resamples instead of learning N_o x N_s weights, which
    # would be over half of each tiny model (a documented design choice; "linear" remains an option).
    base = dict(num_cma=1, num_ua=1, num_latent_tokens=8, reduction=4, groups=1, batch_norm=False, skip=2,
                token_map="interp")
    base.update(adapter)
    return ModelConfig(task=task, visual=BackboneConfig("swinv2-tiny"), audio=BackboneConfig("htsat-tiny"),
                       adapter=AdapterConfig(**base), router=RouterConfig(hidden=(64, 32)), head=head,
                       segments=segments, sample_rate=32000, frame_size=96)


@register_preset
def tiny_ave() -> ModelConfig:
    return _tiny("ave", 10, HeadConfig(dim=64, num_classes=28))


@register_preset
def tiny_avvp() -> ModelConfig:
    return _tiny("avvp", 10, HeadConfig(dim=64, num_classes=25), balance_weight=0.01)


@register_preset
def tiny_s4() -> ModelConfig:
    return _tiny("s4", 5, HeadConfig(dim=32, num_classes=1))


@register_preset
def tiny_ms3() -> ModelConfig:
    return _tiny("ms3", 5, HeadConfig(dim=32, num_classes=1), balance_weight=0.01)


@register_preset
def tiny_avqa() -> ModelConfig:
    # question_len 16 (official 14): the scene worlds' longest question has 15 words
    return _tiny("avqa", 10, HeadConfig(dim=64, num_classes=42, question_vocab=93, question_len=16))
