"""One figure style for the paper and the app: sizes for a two-column paper, 7-8 pt fonts, the Okabe-Ito palette.

Figures are built with the object API (`matplotlib.figure.Figure`, never pyplot), inside `apply_style()`, and
written by `save` as PNG (200 dpi) and PDF with embedded TrueType fonts.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib
from matplotlib.figure import Figure

COLUMN = 3.5  # inches: one column of a two-column paper
PAGE = 7.16  # inches: both columns
DPI = 200

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
GREY = "#9A9A9A"

VARIANT_COLOURS = {"avmoe": OKABE_ITO["green"], "cma-only": OKABE_ITO["blue"], "ua-only": OKABE_ITO["vermillion"],
                   "frozen": "#555555"}
"""Cross-modal things are blue and unimodal ones vermillion/orange in every figure; AVMoE, which mixes them, green."""
CONDITION_COLOURS = {"av": OKABE_ITO["black"], "visual-only": OKABE_ITO["purple"], "audio-only": OKABE_ITO["sky"],
                     "mismatched": OKABE_ITO["orange"]}
EXPERT_COLOURS = {"cma": (OKABE_ITO["blue"], OKABE_ITO["sky"]),
                  "ua": (OKABE_ITO["vermillion"], OKABE_ITO["orange"], OKABE_ITO["yellow"])}
GT_COLOUR = OKABE_ITO["yellow"]
CATEGORICAL = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "yellow", "black")]
MARKERS = ("o", "s", "^", "D", "v", "P", "X")

RC = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6, "xtick.major.width": 0.6,
    "ytick.major.width": 0.6, "xtick.major.size": 2.5, "ytick.major.size": 2.5, "lines.linewidth": 1.2,
    "lines.markersize": 3.5, "grid.linewidth": 0.4, "grid.alpha": 0.5, "axes.axisbelow": True,
    "axes.prop_cycle": matplotlib.cycler(color=CATEGORICAL), "image.interpolation": "nearest",
    "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": DPI, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}


@contextlib.contextmanager
def apply_style() -> Iterator[None]:
    """Within the block, new figures (and saves) use the shared style; the caller's rcParams are restored after."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of the given size in inches, laid out with constrained layout (call inside `apply_style`)."""
    return Figure(figsize=(width, height), layout="constrained")


def expert_colour(name: str) -> str:
    """cma0 blue, cma1 sky blue; ua0 vermillion, ua1 orange, ua2 yellow; more cycle."""
    family = "cma" if name.startswith("cma") else "ua"
    shades = EXPERT_COLOURS[family]
    return shades[int(name[len(family):]) % len(shades)]


def class_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per class name, distinct for up to 49 classes; "background" is grey dots."""
    styles, k = {}, 0
    for name in names:
        if name == "background":
            styles[name] = (GREY, ".")
        else:
            styles[name] = (CATEGORICAL[k % 7], MARKERS[(k // 7) % len(MARKERS)])
            k += 1
    return styles


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write NAME.png (200 dpi) and NAME.pdf into out_dir; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    with apply_style():
        for path in paths:
            fig.savefig(path)
    return paths
