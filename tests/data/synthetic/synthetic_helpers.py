"""Small readers of a scene's JSON description, written apart from the package so tests check it independently."""
from __future__ import annotations

import numpy as np


def visible(obj: dict, second: int) -> bool:
    return any(start <= second < end for start, end in obj["visible"])


def sounding(obj: dict, second: int) -> bool:
    return any(start <= second < end for start, end in obj["sounding"])


def both(obj: dict, second: int) -> bool:
    return visible(obj, second) and sounding(obj, second)


def centre_x(obj: dict, second: int) -> float:
    track = np.asarray(obj["track"])
    return float(np.interp(second + 0.5, track[:, 0], track[:, 1]))


def centre(obj: dict, t: float) -> tuple[float, float]:
    track = np.asarray(obj["track"])
    return float(np.interp(t, track[:, 0], track[:, 1])), float(np.interp(t, track[:, 0], track[:, 2]))
