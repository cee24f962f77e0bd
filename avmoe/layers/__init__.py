"""Adapters, router and the mixture of experts that AVMoE inserts beside frozen backbone blocks."""
from avmoe.layers.adapters import Bottleneck, CrossModalAdapter, LatentExchange, UnimodalAdapter
from avmoe.layers.moe import MoEAdapter, MoEOutput, TokenMap
from avmoe.layers.router import Router
from avmoe.layers.stacked import reuse_folds
from avmoe.layers.trace import RouterOverride, RouterTrace

__all__ = ["Bottleneck", "CrossModalAdapter", "LatentExchange", "UnimodalAdapter", "MoEAdapter", "MoEOutput",
           "TokenMap", "Router", "RouterTrace", "RouterOverride", "reuse_folds"]
