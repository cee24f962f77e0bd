"""Where the package finds its shipped assets and keeps generated data."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"


def cache_dir(*parts: str) -> Path:
    """A folder under the git-ignored cache (``$AVMOE_CACHE``, default ``<repo>/.cache``), created on demand."""
    root = Path(os.environ.get("AVMOE_CACHE", REPO / ".cache"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
