"""Task-dependent scene layouts: which classes appear, for which seconds they are seen and heard, where, how loud.

Every sampler mixes in what makes the choice of expert matter, each with its own probability in SamplerConfig:
event sounds whose object is off screen (audio-only seconds), event objects seen while silent (visual-only seconds),
off-screen sounds of another class, silent visible objects of another class, and noise bursts.

- ave:  one event class. It is seen and heard together for one contiguous span of at least `ave_min_fraction` of
        the clip; on one side of that span it may go on being heard off screen, on the other go on being seen silent.
        Distractors: an off-screen sound of another class, up to two silent visible objects of other classes.
- avvp: 1 to `avvp_max_events` event classes; each is audio-visual (seen and heard over overlapping but different
        spans), audio-only (heard, never seen) or visual-only (seen, never heard). Every object is an event.
- s4:   one event object seen and heard all clip long; silent visible distractors and an off-screen sound.
- ms3:  2 or 3 event objects, all visible, heard over spans that overlap in at least one second; one of them may
        leave the screen for a while; a silent visible distractor and an off-screen sound.
- avqa: 2 to 4 objects (two of them may share a class), most seen all clip long and heard from staggered onsets,
        some only heard (off screen) or only seen; loudness on a 3 dB grid, all different, so comparisons have
        answers. Every object is an event.

Visible objects get one vertical lane each (random order, equal widths), so they never overlap and their left-to-right
order is fixed for the clip; within its lane an object wanders by up to `max_speed` of the frame per second.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avmoe.data.synthetic.scene import SceneObject

TASKS = ("ave", "avvp", "s4", "ms3", "avqa")
MIN_CLASSES = 5  # AVQA draws up to 4 classes and asks about one more that is absent


@dataclass(frozen=True)
class SamplerConfig:
    """Probabilities and ranges of the scene samplers; the defaults give roughly a third of "hard" seconds."""

    p_offscreen: float = 0.4  # an event is also heard off screen for a while (AVVP, AVQA: half this is only heard)
    p_silent: float = 0.4  # an event is also seen silent for a while (AVVP, AVQA: half this is only seen)
    p_distractor_sound: float = 0.4  # an off-screen sound of another class
    p_distractor_visual: float = 0.4  # a silent visible object of another class (AVE and S4 may draw two)
    p_noise_burst: float = 0.25  # one or two loud noise bursts, 1-2 s each
    p_duplicate: float = 0.3  # AVQA: two objects of the same class
    noise_floor_db: tuple[float, float] = (-40.0, -20.0)  # steady noise, dB relative to the reference level
    burst_db: tuple[float, float] = (-6.0, 0.0)  # noise bursts, dB relative to the reference level
    loudness_db: tuple[float, float] = (-12.0, 0.0)  # level of each sound, dB relative to the reference level
    size: tuple[float, float] = (0.3, 0.55)  # box side, fraction of the frame side (scaled down to fit lanes)
    max_speed: float = 0.12  # fraction of the frame an object may move per second
    ave_min_fraction: float = 0.3  # shortest AVE event span, fraction of the clip
    avvp_max_events: int = 3

    def __post_init__(self) -> None:
        for name in ("p_offscreen", "p_silent", "p_distractor_sound", "p_distractor_visual", "p_noise_burst",
                     "p_duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} must be a probability in [0, 1]")


def sample_layout(task: str, rng: np.random.Generator, classes: list[str], segments: int,
                  config: SamplerConfig | None = None) -> tuple[list[SceneObject], dict]:
    """Objects (spans, roles, loudness, lanes and tracks; no style) and noise for one scene of `task`."""
    if task not in _SAMPLERS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if len(classes) < MIN_CLASSES:
        raise ValueError(f"a world needs at least {MIN_CLASSES} classes to sample scenes, got {len(classes)}")
    if segments < 2:
        raise ValueError(f"segments={segments} must be at least 2")
    cfg = config or SamplerConfig()
    drafts = _SAMPLERS[task](rng, len(classes), segments, cfg)
    objects = [SceneObject(cls=int(c), name=classes[c], role=role, visible=vis, sounding=snd,
                           loudness_db=float(db)) for c, role, vis, snd, db in drafts]
    _place(objects, rng, segments, cfg)
    return objects, _noise(rng, segments, cfg)


def _ave(rng, num_classes: int, T: int, cfg: SamplerConfig) -> list:
    event, other_sound, *other_visual = (int(c) for c in rng.choice(num_classes, 4, replace=False))
    length = int(rng.integers(max(1, int(np.ceil(cfg.ave_min_fraction * T))), T + 1))
    start = int(rng.integers(0, T - length + 1))
    vis, snd = [start, start + length], [start, start + length]
    sides = [side for side, room in ((0, start), (1, T - start - length)) if room > 0]
    rng.shuffle(sides)
    for p, span in ((cfg.p_offscreen, snd), (cfg.p_silent, vis)):
        if sides and rng.random() < p:
            side = sides.pop()
            room = start if side == 0 else T - start - length
            grow = int(rng.integers(1, room + 1))
            span[side] += -grow if side == 0 else grow
    drafts = [(event, "event", [vis], [snd], _level(rng, cfg))]
    return drafts + _distractors(rng, T, cfg, other_sound, other_visual[:int(rng.binomial(2, cfg.p_distractor_visual))])


def _avvp(rng, num_classes: int, T: int, cfg: SamplerConfig) -> list:
    count = int(rng.integers(1, cfg.avvp_max_events + 1))
    drafts = []
    for c in rng.choice(num_classes, count, replace=False):
        kind = rng.choice(3, p=_kind_probs(cfg.p_offscreen / 2, cfg.p_silent / 2))
        if kind == 2:
            vis, snd = _span(rng, T), None
        else:
            snd = _span(rng, T)
            vis = _span_through(rng, T, int(rng.integers(snd[0], snd[1]))) if kind == 0 else None
        drafts.append((int(c), "event", [vis] if vis else [], [snd] if snd else [], _level(rng, cfg)))
    return drafts


def _s4(rng, num_classes: int, T: int, cfg: SamplerConfig) -> list:
    event, other_sound, *other_visual = (int(c) for c in rng.choice(num_classes, 4, replace=False))
    drafts = [(event, "event", [[0, T]], [[0, T]], _level(rng, cfg))]
    return drafts + _distractors(rng, T, cfg, other_sound, other_visual[:int(rng.binomial(2, cfg.p_distractor_visual))])


def _ms3(rng, num_classes: int, T: int, cfg: SamplerConfig) -> list:
    count = int(rng.integers(2, 4))
    picked = [int(c) for c in rng.choice(num_classes, count + 2, replace=False)]
    together = int(rng.integers(0, T))  # a second in which the first two sources sound together
    drafts = []
    for i, c in enumerate(picked[:count]):
        snd = _span_through(rng, T, together) if i < 2 else _span(rng, T, min_len=min(2, T))
        drafts.append([c, "event", [[0, T]], [snd], _level(rng, cfg)])
    if rng.random() < cfg.p_offscreen:  # one source leaves the screen for part of the clip, still heard
        leaving = drafts[int(rng.integers(0, count))]
        away = _span(rng, T, max_len=max(1, T // 2))
        leaving[2] = [s for s in ([0, away[0]], [away[1], T]) if s[1] > s[0]]
    extra = picked[count + 1:count + 1 + int(rng.random() < cfg.p_distractor_visual)]
    return [tuple(d) for d in drafts] + _distractors(rng, T, cfg, picked[count], extra)


def _avqa(rng, num_classes: int, T: int, cfg: SamplerConfig) -> list:
    count = int(rng.integers(2, 5))
    picked = [int(c) for c in rng.choice(num_classes, count, replace=False)]
    if count >= 3 and rng.random() < cfg.p_duplicate:
        picked[-1] = picked[0]
    kinds = [int(rng.choice(3, p=_kind_probs(cfg.p_offscreen / 2, cfg.p_silent / 2))) for _ in picked]
    kinds[0] = 0  # at least one object is seen and heard ...
    if sum(k != 1 for k in kinds) < 2:  # ... and at least two are seen, so location questions exist
        kinds[1] = 0
    onsets = rng.permutation(T - 1)[:count] if T - 1 >= count else rng.integers(0, T - 1, count)
    grid = np.arange(cfg.loudness_db[1], cfg.loudness_db[0] - 1e-9, -3.0)
    levels = rng.choice(grid, count, replace=False) if len(grid) >= count else rng.choice(grid, count)
    drafts = []
    for c, kind, onset, db in zip(picked, kinds, onsets, levels):
        snd = [[int(onset), int(rng.integers(onset + 2, T + 1))]] if kind != 2 else []
        drafts.append((c, "event", [[0, T]] if kind != 1 else [], snd, float(db)))
    return drafts


_SAMPLERS = {"ave": _ave, "avvp": _avvp, "s4": _s4, "ms3": _ms3, "avqa": _avqa}


def _distractors(rng, T: int, cfg: SamplerConfig, sound_cls: int, visual_cls: list[int]) -> list:
    drafts = []
    if rng.random() < cfg.p_distractor_sound:
        drafts.append((sound_cls, "distractor", [], [_span(rng, T)], _level(rng, cfg)))
    for c in visual_cls:
        vis = [0, T] if rng.random() < 0.5 else _span(rng, T)
        drafts.append((c, "distractor", [vis], [], _level(rng, cfg)))
    return drafts


def _kind_probs(p_audio: float, p_visual: float) -> list[float]:
    """Probabilities of (audio-visual, audio-only, visual-only), scaled down if the two single ones exceed 1."""
    total = p_audio + p_visual
    scale = 1.0 / total if total > 1.0 else 1.0
    return [1.0 - total * scale, p_audio * scale, p_visual * scale]


def _level(rng, cfg: SamplerConfig) -> float:
    return float(rng.uniform(*cfg.loudness_db))


def _span(rng, T: int, min_len: int = 1, max_len: int | None = None) -> list[int]:
    length = int(rng.integers(min_len, (max_len or T) + 1))
    start = int(rng.integers(0, T - length + 1))
    return [start, start + length]


def _span_through(rng, T: int, second: int) -> list[int]:
    """A random span that contains `second`."""
    return [int(rng.integers(0, second + 1)), int(rng.integers(second + 1, T + 1))]


def _place(objects: list[SceneObject], rng, T: int, cfg: SamplerConfig) -> None:
    """Give every object that is ever visible a lane, a size and a track."""
    shown = [o for o in objects if o.visible]
    lanes = rng.permutation(len(shown))
    width = 1.0 / max(1, len(shown))
    shrink = min(1.0, 0.9 * width / cfg.size[1])
    for obj, lane in zip(shown, lanes):
        obj.size = float(rng.uniform(*cfg.size) * shrink)
        half = obj.size / 2
        x_lo, x_hi = lane * width + half, (lane + 1) * width - half
        x, y = rng.uniform(x_lo, x_hi), rng.uniform(half, 1 - half)
        track = [[0.0, float(x), float(y)]]
        for t in range(1, T + 1):
            x = _reflect(x + rng.uniform(-cfg.max_speed, cfg.max_speed), x_lo, x_hi)
            y = _reflect(y + rng.uniform(-cfg.max_speed, cfg.max_speed), half, 1 - half)
            track.append([float(t), float(x), float(y)])
        obj.track = track


def _reflect(v: float, lo: float, hi: float) -> float:
    if v < lo:
        v = 2 * lo - v
    if v > hi:
        v = 2 * hi - v
    return float(min(max(v, lo), hi))


def _noise(rng, T: int, cfg: SamplerConfig) -> dict:
    bursts = []
    if rng.random() < cfg.p_noise_burst:
        for _ in range(int(rng.integers(1, 3))):
            start, end = _span(rng, T, max_len=min(2, T))
            bursts.append([start, end, float(rng.uniform(*cfg.burst_db))])
    return {"floor_db": float(rng.uniform(*cfg.noise_floor_db)), "bursts": bursts}
