"""A contact sheet of generated clips: each frame with its mask overlaid, and the second's AVE label and carrier."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avmoe.data.sample import BACKGROUND, Clip

_MASK_RGB = np.array([255, 40, 40], dtype=np.float32)
_CARRIER_RGB = {"av": (60, 200, 90), "audio": (80, 150, 255), "visual": (250, 190, 40), "none": (150, 150, 150)}


def contact_sheet(clips: list[Clip], cell: int = 128) -> Image.Image:
    """One row per clip: its frames (masks in translucent red with an outline), under each the AVE label and carrier.

    The row title names the clip (world, task, split, index) and its objects: role, class, and whether each is
    ever seen (V) and heard (A).
    """
    if not clips:
        raise ValueError("contact_sheet needs at least one clip")
    font = ImageFont.load_default()
    segments = max(c.num_segments for c in clips)
    title_h, label_h, pad = 16, 28, 4
    row_h = title_h + cell + label_h + pad
    sheet = Image.new("RGB", (segments * (cell + pad) + pad, len(clips) * row_h + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, clip in enumerate(clips):
        top = pad + r * row_h
        draw.text((pad, top), _title(clip), fill=(230, 230, 230), font=font)
        classes = clip.meta.get("classes", [])
        for i in range(clip.num_segments):
            left = pad + i * (cell + pad)
            image = Image.fromarray(_overlay(clip, i)).resize((cell, cell), Image.NEAREST)
            sheet.paste(image, (left, top + title_h))
            ave = int(clip.labels["ave"][i]) if "ave" in clip.labels else BACKGROUND
            name = "bg" if ave == BACKGROUND else classes[ave] if ave < len(classes) else str(ave)
            carrier = clip.meta.get("carrier", ["?"] * clip.num_segments)[i]
            draw.text((left, top + title_h + cell + 1), f"{i}: {name}"[:cell // 6], fill=(240, 240, 240), font=font)
            draw.text((left, top + title_h + cell + 14), carrier, fill=_CARRIER_RGB.get(carrier, (200, 200, 200)),
                      font=font)
    return sheet


def _title(clip: Clip) -> str:
    meta = clip.meta
    objects = meta.get("scene", {}).get("objects", [])
    parts = [f"{o['name']}({'V' if o['visible'] else ''}{'A' if o['sounding'] else ''}"
             f"{', distractor' if o['role'] == 'distractor' else ''})" for o in objects]
    return f"{meta.get('world')}/{meta.get('task')}/{meta.get('split')}#{meta.get('index')}: " + "  ".join(parts)


def _overlay(clip: Clip, i: int) -> np.ndarray:
    frame = clip.frames[i].permute(1, 2, 0).numpy() * 255.0
    if "masks" not in clip.labels:
        return frame.round().astype(np.uint8)
    mask = clip.labels["masks"][i].numpy() > 0.5
    inner = mask.copy()  # pixels whose four neighbours are in the mask; the rest of the mask is its outline
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    weight = np.where(mask & ~inner, 1.0, np.where(mask, 0.4, 0.0))[..., None]
    return (frame * (1 - weight) + _MASK_RGB * weight).round().astype(np.uint8)
