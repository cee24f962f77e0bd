"""Backbone registry: `build_backbone(BackboneConfig)` by name; `list_backbones()` names what exists.

Each entry is a small function that fixes the architecture arguments of one named backbone; `BackboneConfig.kwargs`
overrides them. Weights come only from local files (`BackboneConfig.weights`), never from a hub.
"""
from __future__ import annotations

from typing import Any, Callable

from avmoe.backbones.base import Backbone, Stage
from avmoe.config import BackboneConfig

_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    def add(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = fn
        return fn
    return add


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def build_backbone(cfg: BackboneConfig) -> Backbone:
    if cfg.name not in _REGISTRY:
        raise ValueError(f"unknown backbone {cfg.name!r}; known backbones: {', '.join(list_backbones())}")
    backbone = _REGISTRY[cfg.name](**cfg.kwargs)
    if cfg.weights:
        from avmoe.checkpoint import load_backbone_weights
        load_backbone_weights(backbone, cfg.weights)
    return backbone


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **overrides}


@register_backbone("swinv2-large-192")
def swinv2_large_192(**kw: Any) -> Backbone:
    """The paper's visual encoder: Swin-V2-L, window 12, 192 px (timm `swinv2_large_window12_192`)."""
    from avmoe.backbones.timm_visual import TimmSwinV2
    return TimmSwinV2(**_merge(dict(model_name="swinv2_large_window12_192", img_size=192), kw))


@register_backbone("swinv2-base-192")
def swinv2_base_192(**kw: Any) -> Backbone:
    """The official AVE `model_size=base` option: Swin-V2-B, window 12, 192 px."""
    from avmoe.backbones.timm_visual import TimmSwinV2
    return TimmSwinV2(**_merge(dict(model_name="swinv2_base_window12_192", img_size=192), kw))


@register_backbone("swinv2-tiny")
def swinv2_tiny(**kw: Any) -> Backbone:
    """The shipped default's visual encoder: a small Swin-V2 on 96 px frames (24, 12, 6, 3 token grids)."""
    from avmoe.backbones.timm_visual import TimmSwinV2
    return TimmSwinV2(**_merge(dict(model_name="swinv2_tiny_window8_256", img_size=96, embed_dim=32,
                                    depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=6), kw))


@register_backbone("vit")
def vit(**kw: Any) -> Backbone:
    """Any timm ViT by `model_name` (default ViT-B/16, 224 px), as one stage of blocks."""
    from avmoe.backbones.timm_visual import TimmViT
    return TimmViT(**_merge(dict(model_name="vit_base_patch16_224", img_size=224), kw))


@register_backbone("vit-tiny")
def vit_tiny(**kw: Any) -> Backbone:
    """A small ViT on 96 px frames (patch 8, 4 blocks)."""
    from avmoe.backbones.timm_visual import TimmViT
    return TimmViT(**_merge(dict(model_name="vit_tiny_patch16_224", img_size=96, patch_size=8, embed_dim=64,
                                 depth=4, num_heads=2), kw))


@register_backbone("htsat")
def htsat(**kw: Any) -> Backbone:
    """The paper's audio encoder: HTS-AT with the official AudioSet configuration; 1-s segments tiled to 10 s."""
    from avmoe.backbones.htsat import HTSAT
    return HTSAT(**kw)


@register_backbone("htsat-tiny")
def htsat_tiny(**kw: Any) -> Backbone:
    """The shipped default's audio encoder: a small HTS-AT on a 64x64 log-mel image (16, 8, 4, 2 token grids)."""
    from avmoe.backbones.htsat import HTSAT
    return HTSAT(**_merge(dict(spec_size=64, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                               window_size=4, tile_seconds=0.0, num_classes=1), kw))


@register_backbone("ast")
def ast(**kw: Any) -> Backbone:
    """AST-style audio ViT over a Kaldi fbank (the LAVisH recipe)."""
    from avmoe.backbones.ast import AudioViT
    return AudioViT(**kw)


@register_backbone("ast-tiny")
def ast_tiny(**kw: Any) -> Backbone:
    """A small AST-style audio ViT."""
    from avmoe.backbones.ast import AudioViT, TINY
    return AudioViT(**_merge(TINY, kw))


__all__ = ["Backbone", "Stage", "register_backbone", "build_backbone", "list_backbones"]
