"""Per-second labels derived from a scene: AVE event class, AVVP audio/visual events, and the modality carrier.

Definitions (second i covers [i, i+1)):
- AVE: the class of the first object (in scene order) that is visible and sounding in second i, else BACKGROUND.
  The AVE sampler makes only one class ever visible and sounding, so a second is that class or background.
- AVVP: audio[i, c] = 1 when an object of class c sounds in second i; visual[i, c] = 1 when one is visible;
  weak[c] = 1 when either happens in some second (as in LLP, where visual means seen, sounding or not).
- carrier, over the scene's "event" objects (distractors never carry the event):
  "av" when one of them is visible and sounding in second i; else "audio" when one is sounding (off screen);
  else "visual" when one is visible (silent); else "none".
Masks (pixels of the visible sounding objects) come from rendering, questions from `qa`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from avmoe.data.sample import BACKGROUND
from avmoe.data.synthetic.qa import generate_questions
from avmoe.data.synthetic.scene import Scene


def scene_labels(scene: Scene, classes: list[str]) -> dict[str, Any]:
    """Clip labels "ave", "avvp" and "qa" of a scene (masks come from rendering)."""
    avvp = avvp_labels(scene, len(classes))
    return {"ave": torch.tensor(ave_labels(scene), dtype=torch.long),
            "avvp": {k: torch.from_numpy(v) for k, v in avvp.items()},
            "qa": generate_questions(scene, classes)}


def av_objects(scene: Scene, second: int) -> list[int]:
    """Indices of the objects visible and sounding in `second`."""
    return [i for i, o in enumerate(scene.objects) if o.visible_at(second) and o.sounding_at(second)]


def ave_labels(scene: Scene) -> list[int]:
    labels = []
    for second in range(scene.segments):
        both = av_objects(scene, second)
        labels.append(scene.objects[both[0]].cls if both else BACKGROUND)
    return labels


def avvp_labels(scene: Scene, num_classes: int) -> dict[str, np.ndarray]:
    audio = np.zeros((scene.segments, num_classes), dtype=np.float32)
    visual = np.zeros_like(audio)
    for obj in scene.objects:
        for second in range(scene.segments):
            audio[second, obj.cls] = max(audio[second, obj.cls], float(obj.sounding_at(second)))
            visual[second, obj.cls] = max(visual[second, obj.cls], float(obj.visible_at(second)))
    weak = np.maximum(audio.max(axis=0), visual.max(axis=0))
    return {"audio": audio, "visual": visual, "weak": weak}


def carrier(scene: Scene) -> list[str]:
    events = [o for o in scene.objects if o.role == "event"]
    out = []
    for second in range(scene.segments):
        seen = [o.visible_at(second) for o in events]
        heard = [o.sounding_at(second) for o in events]
        if any(v and h for v, h in zip(seen, heard)):
            out.append("av")
        elif any(heard):
            out.append("audio")
        elif any(seen):
            out.append("visual")
        else:
            out.append("none")
    return out
