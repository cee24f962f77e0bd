"""Input corruptions: the one implementation that training, evaluation, analysis and the app all call.

Every function returns a new Clip (or new tensors) and never modifies its input. Conditions are written as strings
on command lines and in the app, e.g. "visual-only" or "audio-noise:0+occlusion:0.3", and parsed by parse_condition.

Choices:
- A dropped or occluded picture is filled with NEUTRAL_RGB, the ImageNet mean colour the visual backbones subtract,
  so it reaches the model as zeros, just as dropped audio is a zero waveform (the official `--visual_only` switch).
- Noise power follows each clip's own mean-square power (audio over all samples, frames over all pixels) at the
  requested SNR in dB. A silent clip (all-zero audio) gets noise as if its power were SILENT_AUDIO_POWER (-20 dBFS);
  an all-black clip, as if it were SILENT_VISUAL_POWER (mid-grey). Audio noise is not clipped; frames are clamped.
- Occlusion draws one rectangle per clip, at a random place, with the frame's aspect ratio, covering `fraction` of
  the frame; it stays put over the clip's segments, like an object in front of the camera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avmoe.data.sample import Clip

__all__ = [
    "CONDITIONS", "NEUTRAL_RGB", "SILENT_AUDIO_POWER", "SILENT_VISUAL_POWER", "Condition", "apply_condition",
    "apply_to_batch", "audio_noise", "drop_audio", "drop_visual", "mismatch_audio", "occlude", "parse_condition",
    "visual_noise",
]

NEUTRAL_RGB = (0.485, 0.456, 0.406)
SILENT_AUDIO_POWER = 0.01  # mean square of a -20 dBFS signal
SILENT_VISUAL_POWER = 0.25  # mean square of mid-grey frames
_SILENT = 1e-10  # mean-square power below which a signal counts as silent

# kind -> (takes a value, what the value is)
_KINDS = {
    "av": (False, ""),
    "visual-only": (False, ""),
    "audio-only": (False, ""),
    "mismatched": (False, ""),
    "audio-noise": (True, "SNR in dB"),
    "visual-noise": (True, "SNR in dB"),
    "occlusion": (True, "fraction of the frame in [0, 1]"),
}
CONDITIONS = ("av", "visual-only", "audio-only", "mismatched", "audio-noise:0", "visual-noise:0", "occlusion:0.5")
"""The standard conditions, for menus and robustness sweeps."""


@dataclass(frozen=True)
class Condition:
    """A parsed condition: corruption steps (kind, value or None) applied in order; "av" is no step at all."""

    steps: tuple[tuple[str, float | None], ...] = ()

    @property
    def needs_other(self) -> bool:
        """Whether applying it to a Clip needs another clip's audio ("mismatched")."""
        return any(kind == "mismatched" for kind, _ in self.steps)

    def __str__(self) -> str:
        return "+".join(kind if value is None else f"{kind}:{value:g}" for kind, value in self.steps) or "av"


def parse_condition(text: str) -> Condition:
    """Parse "av", "visual-only", "audio-only", "mismatched", "audio-noise:SNR", "visual-noise:SNR",
    "occlusion:FRACTION" or a "+"-joined composition of them."""
    steps = []
    for part in text.strip().lower().split("+"):
        kind, _, raw = part.strip().partition(":")
        if kind not in _KINDS:
            raise ValueError(f"unknown condition {part.strip()!r} in {text!r}; valid parts: {_valid_parts()}")
        takes_value, meaning = _KINDS[kind]
        if takes_value != bool(raw):
            need = f"needs a value ({meaning}), e.g. {kind}:10" if takes_value else "takes no value"
            raise ValueError(f"condition part {part.strip()!r} in {text!r}: {kind} {need}")
        value = _parse_value(kind, raw, text) if takes_value else None
        if kind != "av":
            steps.append((kind, value))
    return Condition(tuple(steps))


def apply_condition(clip: Clip, condition: Condition | str, seed: int = 0, other: Clip | None = None) -> Clip:
    """Apply a condition to a clip, deterministically for a given seed; "mismatched" takes its audio from `other`.

    The result's meta["condition"] is the condition's canonical string.
    """
    condition = parse_condition(condition) if isinstance(condition, str) else condition
    if condition.needs_other and other is None:
        raise ValueError(f"condition {str(condition)!r} needs another clip's audio: pass other=<Clip>")
    generator = torch.Generator(device=clip.frames.device).manual_seed(seed)
    result = _apply_to_clip(clip, condition.steps, generator, other)
    result.meta["condition"] = str(condition)
    return result


def apply_to_batch(
    frames: torch.Tensor, audio: torch.Tensor, condition: Condition | str, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply a condition to every sample of a batch (training-time modality dropout, batched evaluation).

    Args:
        frames: [B, T, 3, H, W] in [0, 1].
        audio: [B, T, S].
        condition: a Condition or its string; "mismatched" gives each sample the audio of the previous one (a roll
            by one along the batch), so it needs B >= 2.
        seed: seeds a generator on the tensors' device (CPU and CUDA draw different numbers for the same seed).

    Returns (frames, audio, audio_missing [B] bool, visual_missing [B] bool); the flags say what the condition dropped.
    """
    condition = parse_condition(condition) if isinstance(condition, str) else condition
    if frames.ndim != 5 or audio.ndim != 3 or frames.shape[:2] != audio.shape[:2]:
        raise ValueError(f"expected frames [B, T, 3, H, W] and audio [B, T, S] with the same B and T, got "
                         f"{tuple(frames.shape)} and {tuple(audio.shape)}")
    if condition.needs_other and frames.shape[0] < 2:
        raise ValueError("condition 'mismatched' rolls audio across the batch and needs a batch of at least 2")
    generator = torch.Generator(device=frames.device).manual_seed(seed)
    present = _flags(False, frames.shape[0], frames.device)
    other_audio = audio.roll(1, dims=0) if condition.needs_other else None
    return _apply_steps(frames, audio, present, present, condition.steps, generator, other_audio, present)


def drop_audio(clip: Clip) -> Clip:
    """Silence (zeros) in place of the audio, with audio_missing set."""
    return _apply_to_clip(clip, (("visual-only", None),))


def drop_visual(clip: Clip) -> Clip:
    """Frames filled with NEUTRAL_RGB in place of the picture, with visual_missing set."""
    return _apply_to_clip(clip, (("audio-only", None),))


def audio_noise(clip: Clip, snr_db: float, generator: torch.Generator | None = None) -> Clip:
    """White Gaussian noise added to the audio at snr_db relative to the clip's own power."""
    return _apply_to_clip(clip, (("audio-noise", snr_db),), generator)


def visual_noise(clip: Clip, snr_db: float, generator: torch.Generator | None = None) -> Clip:
    """Gaussian pixel noise added to the frames at snr_db relative to their own power, clamped to [0, 1]."""
    return _apply_to_clip(clip, (("visual-noise", snr_db),), generator)


def mismatch_audio(clip: Clip, other: Clip) -> Clip:
    """This clip's frames with `other`'s audio (and its audio_missing flag)."""
    return _apply_to_clip(clip, (("mismatched", None),), other=other)


def occlude(clip: Clip, fraction: float, generator: torch.Generator | None = None) -> Clip:
    """A NEUTRAL_RGB rectangle covering `fraction` of every frame, at one random place for the whole clip."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in [0, 1]")
    return _apply_to_clip(clip, (("occlusion", fraction),), generator)


def _apply_to_clip(clip: Clip, steps, generator: torch.Generator | None = None, other: Clip | None = None) -> Clip:
    """Run steps on a clip as a batch of one."""
    device = clip.frames.device
    other_audio = other_missing = None
    if other is not None:
        if other.audio.shape != clip.audio.shape or other.sample_rate != clip.sample_rate:
            raise ValueError(f"the other clip's audio {tuple(other.audio.shape)} at {other.sample_rate} Hz must match "
                             f"this clip's {tuple(clip.audio.shape)} at {clip.sample_rate} Hz; decode both alike")
        other_audio, other_missing = other.audio[None], _flags(other.audio_missing, 1, device)
    frames, audio, audio_missing, visual_missing = _apply_steps(
        clip.frames[None], clip.audio[None], _flags(clip.audio_missing, 1, device),
        _flags(clip.visual_missing, 1, device), steps, generator, other_audio, other_missing)
    result = clip.replace(frames=frames[0], audio=audio[0], audio_missing=bool(audio_missing[0]),
                          visual_missing=bool(visual_missing[0]))
    if other is not None:
        result.meta["audio_from"] = other.meta.get("source")
    return result


def _apply_steps(frames, audio, audio_missing, visual_missing, steps, generator, other_audio, other_missing):
    """The one place corruptions happen: batched frames [B,T,3,H,W], audio [B,T,S] and flags [B] through each step.

    Never writes into its inputs; "mismatched" swaps in other_audio [B,T,S] and its flags other_missing [B].
    """
    for kind, value in steps:
        if kind == "visual-only":
            audio, audio_missing = torch.zeros_like(audio), torch.ones_like(audio_missing)
        elif kind == "audio-only":
            frames, visual_missing = _neutral_like(frames), torch.ones_like(visual_missing)
        elif kind == "mismatched":
            audio, audio_missing = other_audio, other_missing
        elif kind == "audio-noise":
            audio = _add_noise(audio, value, SILENT_AUDIO_POWER, generator)
        elif kind == "visual-noise":
            frames = _add_noise(frames, value, SILENT_VISUAL_POWER, generator).clamp(0.0, 1.0)
        elif kind == "occlusion":
            frames = _occlude(frames, value, generator)
        else:
            raise ValueError(f"unknown corruption step {kind!r}; valid parts: {_valid_parts()}")
    return frames, audio, audio_missing, visual_missing


def _parse_value(kind: str, raw: str, text: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{kind}:{raw} in {text!r}: {raw!r} is not a number ({_KINDS[kind][1]})") from None
    if not math.isfinite(value):
        raise ValueError(f"{kind}:{raw} in {text!r}: the value must be finite")
    if kind == "occlusion" and not 0.0 <= value <= 1.0:
        raise ValueError(f"{kind}:{raw} in {text!r}: the fraction must be in [0, 1]")
    return value


def _valid_parts() -> str:
    return ", ".join(kind if not takes else f"{kind}:<{meaning}>" for kind, (takes, meaning) in _KINDS.items())


def _flags(value: bool, size: int, device: torch.device) -> torch.Tensor:
    return torch.full((size,), value, dtype=torch.bool, device=device)


def _neutral_like(frames: torch.Tensor) -> torch.Tensor:
    colour = torch.tensor(NEUTRAL_RGB, dtype=frames.dtype, device=frames.device)
    return colour.view(3, 1, 1).expand(frames.shape).clone()


def _add_noise(x: torch.Tensor, snr_db: float, silent_power: float, generator: torch.Generator | None) -> torch.Tensor:
    """x [B, ...] plus Gaussian noise at snr_db below each sample's mean-square power."""
    power = x.pow(2).flatten(1).mean(1)
    power = torch.where(power > _SILENT, power, torch.full_like(power, silent_power))
    scale = (power / 10.0 ** (snr_db / 10.0)).sqrt().view(-1, *[1] * (x.ndim - 1))
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + noise * scale


def _occlude(frames: torch.Tensor, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """frames [B, T, 3, H, W] with one NEUTRAL_RGB rectangle of `fraction` of the area per sample."""
    height, width = frames.shape[-2:]
    side = fraction ** 0.5
    box_h, box_w = round(height * side), round(width * side)
    tops = torch.randint(0, height - box_h + 1, (frames.shape[0],), generator=generator, device=frames.device)
    lefts = torch.randint(0, width - box_w + 1, (frames.shape[0],), generator=generator, device=frames.device)
    rows = torch.arange(height, device=frames.device)
    cols = torch.arange(width, device=frames.device)
    inside_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + box_h)  # [B, H]
    inside_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + box_w)  # [B, W]
    inside = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None, None]  # [B, 1, 1, H, W]
    return torch.where(inside, _neutral_like(frames), frames)
