"""Worlds by name: `get_world("shapes")`. Worlds are built once per process (they cache decoded assets)."""
from __future__ import annotations

import functools
import importlib

from avmoe.data.synthetic.world import World

WORLDS = {
    "shapes": ("avmoe.data.synthetic.shapes", "ShapesWorld"),
    "stamps": ("avmoe.data.synthetic.stamps", "StampsWorld"),
}


@functools.cache
def get_world(name: str) -> World:
    """The world called `name` (one of WORLDS), built on first use."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; known worlds: {sorted(WORLDS)}")
    module, cls = WORLDS[name]
    return getattr(importlib.import_module(module), cls)()
