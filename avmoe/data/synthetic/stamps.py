"""The `stamps` world: real recorded sounds with photo cut-outs from Tux Paint's stamps, over real photos.

A Tux Paint stamp is a PNG with alpha (an exact mask) and, for some, an .ogg sound effect of the same base name.
CLASS_STAMPS lists the stamps used; a class is named after its first stamp, and further stamps of the same kind of
thing (drake for duck, doe for deer, ...) are extra exemplars of it. Augmentation: per object exemplar, size, track,
horizontal flip, brightness and saturation, where the recording starts and the pause between repeats (a sound is
looped over its span, restarting at each span); per scene background photo, crop size and pan, flip, brightness,
contrast, saturation and colour cast, and a multi-tap echo reverb. Gains come from the scene's loudness levels.
Sounds are trimmed of leading and trailing silence and normalised to unit RMS, so a level means the same for all.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from avmoe.data.synthetic.assets import (AssetError, Photo, STAMPS_ATTRIBUTION, background_photos,
                                         stamps_copyright, stamps_root)
from avmoe.data.synthetic.render import unit_rms
from avmoe.data.synthetic.scene import Scene, SceneObject
from avmoe.data.synthetic.world import World

log = logging.getLogger(__name__)

# How these were chosen: every stamp of tuxpaint-stamps-default 2022.06.04 with a PNG and a non-spoken .ogg was
# looked at (picture) and measured (duration, level, spectrum, duplicates). Kept: photo cut-outs whose sound is
# the thing's own (animal calls, instruments played, tools and machines in use, thunder, fireworks). Left out:
# spoken descriptions (*_desc*, *_name*) and symbols (maths and alphabet); silent files (giraffe, iguana, nandou,
# wombat); sounds that are not the thing's own (apollo_lander: a voice, final-roll-call: a bugle, apple_red: a
# bite, checkered flag, road signs, dreidels, Halloween and Christmas clip-art); badger and beaver (one recording
# shared by both); xanthia (a moth); kettle and glass (a faint steady hiss, indistinguishable from noise); the
# cartoon bathyscape; stamps with an SVG picture only (washing machine, bottle, vacuum cleaner).
CLASS_STAMPS: dict[str, tuple[str, ...]] = {
    # birds
    "blackbird": ("blackbird",), "crow": ("crow",), "cuckoo": ("cuckoo",), "duck": ("duck", "drake"),
    "gander": ("gander",), "hen": ("hen",), "heron_greatblue_flying": ("heron_greatblue_flying",),
    "lark": ("lark",), "owl": ("owl",), "penguin": ("penguin",), "quetzal": ("quetzal",), "rooster": ("rooster",),
    "seagull": ("seagull",), "tucan": ("tucan",), "turkey": ("turkey",), "vulture": ("vulture",),
    # amphibians and insects
    "frog": ("frog",), "bee": ("bee",), "grasshopper": ("grasshopper",), "hornet": ("hornet",),
    # mammals
    "chimp": ("chimp",), "gorilla": ("gorilla",), "dolphin": ("dolphin",), "orca": ("orca",),
    "sea_lion": ("sea_lion",), "whale": ("whale",), "bear": ("bear",), "bison": ("bison",), "bull": ("bull",),
    "cow": ("cow", "cow_white"), "goat": ("goat", "mountaingoat", "ram"), "sheep": ("sheep", "sheep_lamb"),
    "camel": ("camel", "dromedary"), "lion": ("lion",), "tiger": ("tiger",), "caribou": ("caribou",),
    "deer": ("deer", "doe"), "dog": ("dog",), "fox": ("fox",), "elephant": ("elephant",), "donkey": ("donkey",),
    "horse": ("horse",), "zebra": ("zebra",), "ferret": ("ferret",), "hippopotamus": ("hippopotamus",),
    "pig": ("pig", "pig_golden", "pig_golden2"), "mouse": ("mouse",), "rabbit": ("rabbit",),
    "squirrel": ("squirrel",), "koala": ("koala",),
    # instruments
    "cello": ("cello",), "violin": ("violin",), "bassoon": ("bassoon",), "cymbal_crash": ("cymbal_crash",),
    "drum_tomtom_floor": ("drum_tomtom_floor",), "drumkit": ("drumkit",),
    # tools, machines, vehicles, nature
    "scissors_small_open": ("scissors_small_open", "scissors_small_closed"), "rubberduck": ("rubberduck",),
    "toilet": ("toilet",), "hammer": ("hammer",), "mallet_metal": ("mallet_metal",), "saw": ("saw",),
    "camera_35mm": ("camera_35mm",), "firetruck": ("firetruck",), "fireworks": ("fireworks",),
    "lightningbolt": ("lightningbolt",),
}
_SPOKEN = ("_desc", "_name")  # spoken descriptions and names, in many languages
_MAX_SIDE = 256  # stamps and photos are downscaled to this once, which bounds the per-clip resizing cost
_TRIM = 0.02  # leading and trailing samples below this fraction of the peak are silence


@dataclass(frozen=True)
class Stamp:
    name: str  # base name, shared by the picture and the sound
    image: Path
    sound: Path


def discover_stamps(root: Path) -> dict[str, Stamp]:
    """Every stamp in the tree with a PNG picture and a sound effect of the same base name.

    Spoken descriptions and names (*_desc*, *_name*) and everything under symbols/ (maths and alphabet) are
    skipped; when a base name occurs twice, the first path in sorted order wins.
    """
    found: dict[str, Stamp] = {}
    for sound in sorted(root.rglob("*.ogg")):
        rel = sound.relative_to(root)
        if rel.parts[0] == "symbols" or any(tag in sound.stem for tag in _SPOKEN):
            continue
        image = sound.with_suffix(".png")
        if image.is_file() and sound.stem not in found:
            found[sound.stem] = Stamp(sound.stem, image, sound)
    return found


def class_exemplars(found: dict[str, Stamp], table: dict[str, tuple[str, ...]]) -> dict[str, list[Stamp]]:
    """The stamps of each class in `table`; raises AssetError naming every stamp the tree lacks."""
    missing = sorted(name for names in table.values() for name in names if name not in found)
    if missing:
        raise AssetError(f"the stamps tree lacks {missing}; re-extract tuxpaint-stamps-default (delete the cache "
                         f"folder avmoe.paths.cache_dir('stamps')) or pass a table without them")
    return {cls: [found[name] for name in names] for cls, names in table.items()}


class StampsWorld(World):
    """Tux Paint stamps (picture + own sound) over background photos.

    Args:
        root: the stamps tree (default: assets.stamps_root(), fetched once).
        table: class -> stamp base names (default CLASS_STAMPS).
        photos: background photos (default: assets.background_photos(), fetched once).
    """

    name = "stamps"

    def __init__(self, root: Path | None = None, table: dict[str, tuple[str, ...]] | None = None,
                 photos: list[Photo] | None = None) -> None:
        root = root or stamps_root()
        self.exemplars = class_exemplars(discover_stamps(root), table or CLASS_STAMPS)
        self.photos = {p.name: p for p in (background_photos() if photos is None else photos)}
        if not self.photos:
            raise ValueError("the stamps world needs at least one background photo")
        credits = "\n".join(f"  {p.name}: {p.credit}" for p in self.photos.values())
        attribution = f"{STAMPS_ATTRIBUTION}\nBackground photos:\n{credits}"
        copyright_text = stamps_copyright(root)
        if copyright_text:
            attribution += f"\n\nDebian copyright file of tuxpaint-stamps-default:\n{copyright_text}"
        super().__init__(list(self.exemplars), attribution)
        self.root = root
        self._images: dict[Path, Image.Image] = {}
        self._sounds: dict[tuple[Path, int], np.ndarray] = {}
        self._backdrops: dict[str, Image.Image] = {}

    def clip_attribution(self, scene: Scene) -> str:
        used = sorted({self._stamp(o).image.relative_to(self.root).with_suffix("").as_posix()
                       for o in scene.objects})
        photo = self.photos[scene.background["photo"]]
        return (f"{STAMPS_ATTRIBUTION} Stamps used (picture .png and sound .ogg): {', '.join(used)}. "
                f"Background: {photo.credit}.")

    def _stamp(self, obj: SceneObject) -> Stamp:
        return self.exemplars[obj.name][obj.style["exemplar"]]

    def _object_style(self, obj: SceneObject, rng: np.random.Generator) -> dict[str, Any]:
        return {"exemplar": int(rng.integers(len(self.exemplars[obj.name]))), "flip": bool(rng.random() < 0.5),
                "brightness": float(rng.uniform(0.85, 1.15)), "saturation": float(rng.uniform(0.75, 1.25)),
                "offset": float(rng.uniform(0, 0.5)), "gap": float(rng.uniform(0.05, 0.4))}

    def _scene_style(self, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
        names = sorted(self.photos)
        background = {"photo": names[int(rng.integers(len(names)))], "flip": bool(rng.random() < 0.5),
                      "zoom": float(rng.uniform(0.45, 0.9)), "x": float(rng.random()), "y": float(rng.random()),
                      "vx": float(rng.uniform(-0.05, 0.05)), "vy": float(rng.uniform(-0.05, 0.05)),
                      "brightness": float(rng.uniform(0.8, 1.15)), "contrast": float(rng.uniform(0.7, 1.1)),
                      "saturation": float(rng.uniform(0.6, 1.2)), "tint": rng.uniform(0.75, 1.1, 3).round(3).tolist()}
        wet = 0.0 if rng.random() < 0.4 else float(rng.uniform(0.1, 0.4))
        acoustics = {"reverb_wet": wet, "reverb_decay": float(rng.uniform(0.1, 0.5)),
                     "reverb_seed": int(rng.integers(2**31))}
        return background, acoustics

    def _sprite(self, obj: SceneObject, side: int) -> np.ndarray:
        image = self._image(self._stamp(obj).image)
        scale = side / max(image.size)
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        # Resize premultiplied ("RGBa"), so transparent pixels' colours do not bleed into the edges.
        small = np.asarray(image.convert("RGBa").resize((w, h), Image.LANCZOS).convert("RGBA"), np.float32) / 255
        sprite = np.zeros((side, side, 4), dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        sprite[top:top + h, left:left + w] = small
        if obj.style["flip"]:
            sprite = sprite[:, ::-1]
        sprite[..., :3] = _jitter(sprite[..., :3], obj.style["brightness"], 1.0, obj.style["saturation"])
        return np.ascontiguousarray(sprite)

    def _source(self, obj: SceneObject, sample_rate: int, start: int, stop: int) -> np.ndarray:
        recording = self._sound(self._stamp(obj).sound, sample_rate)
        n = stop - start
        skip = int(obj.style["offset"] * recording.size) if recording.size > 2 * sample_rate else 0
        pause = np.zeros(int(obj.style["gap"] * sample_rate), dtype=np.float32)
        pieces, total = [recording[skip:]], recording.size - skip
        while total < n:
            pieces += [pause, recording]
            total += pause.size + recording.size
        return np.concatenate(pieces)[:n]

    def _acoustics(self, scene: Scene, sound: np.ndarray, sample_rate: int) -> np.ndarray:
        """A dozen decaying echoes (a cheap reverb); a wet level of 0 leaves the sound dry."""
        wet = scene.acoustics.get("reverb_wet", 0.0)
        if wet <= 0:
            return sound
        decay = scene.acoustics["reverb_decay"]
        rng = np.random.default_rng(scene.acoustics["reverb_seed"])
        delays = np.sort(rng.uniform(0.01, 3 * decay, 12))
        gains = np.exp(-delays / decay) * rng.choice([-1.0, 1.0], delays.size)
        gains *= wet / np.sqrt(np.sum(gains**2))
        out = sound.copy()
        for delay, gain in zip(delays, gains):
            k = int(delay * sample_rate)
            if k < sound.size:
                out[k:] += gain * sound[:sound.size - k]
        return out

    def _backgrounds(self, scene: Scene, size: int, times: np.ndarray) -> np.ndarray:
        bg = scene.background
        photo = self._backdrop(bg["photo"])
        side = bg["zoom"] * min(photo.size)
        free_x, free_y = photo.width - side, photo.height - side
        out = np.empty((len(times), size, size, 3), dtype=np.float32)
        for k, t in enumerate(times):
            left, top = _bounce(bg["x"] + bg["vx"] * t) * free_x, _bounce(bg["y"] + bg["vy"] * t) * free_y
            crop = photo.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
            out[k] = np.asarray(crop, dtype=np.float32) / 255
        if bg["flip"]:
            out = out[:, :, ::-1]
        out = _jitter(out * np.asarray(bg["tint"], np.float32), bg["brightness"], bg["contrast"], bg["saturation"])
        return np.ascontiguousarray(out)

    def _image(self, path: Path) -> Image.Image:
        """The stamp cropped to its opaque pixels and downscaled to at most _MAX_SIDE, cached."""
        if path not in self._images:
            image = Image.open(path).convert("RGBA")
            image = image.crop(image.getchannel("A").getbbox() or (0, 0, *image.size))
            image.thumbnail((_MAX_SIDE, _MAX_SIDE), Image.LANCZOS)
            self._images[path] = image
        return self._images[path]

    def _sound(self, path: Path, sample_rate: int) -> np.ndarray:
        """The recording, mono at sample_rate, trimmed of leading and trailing silence, at unit RMS; cached."""
        key = (path, sample_rate)
        if key not in self._sounds:
            x = decode_audio(path, sample_rate)
            loud = np.flatnonzero(np.abs(x) > _TRIM * np.abs(x).max(initial=0.0))
            if loud.size == 0:
                raise AssetError(f"{path} is silent; leave its stamp out of the class table")
            self._sounds[key] = unit_rms(x[loud[0]:loud[-1] + 1])
        return self._sounds[key]

    def _backdrop(self, name: str) -> Image.Image:
        if name not in self._backdrops:
            image = Image.open(self.photos[name].path).convert("RGB")
            image.thumbnail((2 * _MAX_SIDE, 2 * _MAX_SIDE), Image.LANCZOS)
            self._backdrops[name] = image
        return self._backdrops[name]


def decode_audio(path: Path, sample_rate: int) -> np.ndarray:
    """A whole audio file as mono float32 at sample_rate (PyAV)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)


def _bounce(v: float) -> float:
    """Fold v into [0, 1] back and forth, so a pan reverses at the edges of the photo."""
    v = abs(v) % 2.0
    return 2.0 - v if v > 1.0 else v


def _jitter(rgb: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    grey = rgb.mean(axis=-1, keepdims=True)
    rgb = grey + (rgb - grey) * saturation
    mean = grey.mean(axis=(-3, -2), keepdims=True)
    rgb = mean + (rgb - mean) * contrast
    return np.clip(rgb * brightness, 0.0, 1.0)
