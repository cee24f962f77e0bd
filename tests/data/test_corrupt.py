"""Corruptions: SNRs as requested, seeded, inputs untouched, flags set, condition strings parsed strictly."""
from __future__ import annotations

import math

import pytest
import torch

from avmoe.data.corrupt import (
    CONDITIONS, NEUTRAL_RGB, SILENT_AUDIO_POWER, Condition, apply_condition, apply_to_batch, audio_noise, drop_audio,
    drop_visual, mismatch_audio, occlude, parse_condition, visual_noise,
)
from avmoe.data.sample import Clip

SEGMENTS, RATE, SIDE = 10, 32000, 16


def make_clip(seed: int = 0, silent: bool = False) -> Clip:
    gen = torch.Generator().manual_seed(seed)
    frames = 0.25 + 0.5 * torch.rand(SEGMENTS, 3, SIDE, SIDE, generator=gen)
    tone = 0.3 * torch.sin(2 * math.pi * (220 + 50 * seed) * torch.arange(SEGMENTS * RATE) / RATE)
    audio = torch.zeros(SEGMENTS, RATE) if silent else tone.view(SEGMENTS, RATE)
    return Clip(frames=frames, audio=audio, sample_rate=RATE, meta={"source": f"clip{seed}.mp4"})


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    return 10 * math.log10(float(clean.pow(2).mean() / (noisy - clean).pow(2).mean()))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_audio_noise_has_the_requested_snr(snr):
    clip = make_clip()
    noisy = audio_noise(clip, snr, torch.Generator().manual_seed(1))
    assert snr_db(clip.audio, noisy.audio) == pytest.approx(snr, abs=0.2)


def test_visual_noise_has_the_requested_snr_and_stays_in_range():
    clip = make_clip()
    noisy = visual_noise(clip, 20.0, torch.Generator().manual_seed(1))
    assert snr_db(clip.frames, noisy.frames) == pytest.approx(20.0, abs=0.2)
    heavy = visual_noise(clip, -10.0, torch.Generator().manual_seed(1)).frames
    assert float(heavy.min()) == 0.0 and float(heavy.max()) == 1.0


def test_silent_clip_gets_noise_at_the_reference_level():
    noisy = audio_noise(make_clip(silent=True), 10.0, torch.Generator().manual_seed(0))
    assert float(noisy.audio.pow(2).mean()) == pytest.approx(SILENT_AUDIO_POWER / 10, rel=0.02)


def test_drops_set_flags_and_fill():
    clip = make_clip()
    silent = drop_audio(clip)
    assert silent.audio_missing and not silent.visual_missing
    assert torch.count_nonzero(silent.audio) == 0 and torch.equal(silent.frames, clip.frames)
    blind = drop_visual(clip)
    assert blind.visual_missing and not blind.audio_missing
    assert torch.equal(blind.frames, torch.tensor(NEUTRAL_RGB).view(1, 3, 1, 1).expand_as(clip.frames))
    assert torch.equal(blind.audio, clip.audio)


def test_mismatch_takes_the_other_clips_audio():
    clip, other = make_clip(0), drop_audio(make_clip(1))
    mixed = mismatch_audio(clip, other)
    assert torch.equal(mixed.audio, other.audio) and torch.equal(mixed.frames, clip.frames)
    assert mixed.audio_missing and mixed.meta["audio_from"] == "clip1.mp4"
    short = Clip(frames=clip.frames[:2], audio=clip.audio[:2], sample_rate=RATE)
    with pytest.raises(ValueError, match="must match"):
        mismatch_audio(clip, short)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_occlusion_covers_the_fraction_at_one_place(fraction):
    clip = make_clip()
    covered = occlude(clip, fraction, torch.Generator().manual_seed(2)).frames
    neutral = torch.tensor(NEUTRAL_RGB).view(3, 1, 1)
    grey = (covered == neutral).all(dim=1)  # [T, H, W]
    assert float(grey[0].float().mean()) == pytest.approx(fraction, abs=2 * SIDE / SIDE ** 2)
    assert torch.equal(grey, grey[:1].expand_as(grey))  # the same rectangle in every segment
    assert torch.equal(covered[~grey[:, None].expand_as(covered)], clip.frames[~grey[:, None].expand_as(covered)])
    with pytest.raises(ValueError, match="fraction"):
        occlude(clip, 1.5)


@pytest.mark.parametrize("text", [*CONDITIONS, "audio-noise:0+occlusion:0.3", "visual-only+visual-noise:5"])
def test_conditions_leave_inputs_unchanged_and_are_deterministic(text):
    clip, other = make_clip(0), make_clip(1)
    before = (clip.frames.clone(), clip.audio.clone(), other.frames.clone(), other.audio.clone())
    first = apply_condition(clip, text, seed=3, other=other)
    second = apply_condition(clip, text, seed=3, other=other)
    assert all(torch.equal(a, b) for a, b in zip(before, (clip.frames, clip.audio, other.frames, other.audio)))
    assert not clip.audio_missing and not clip.visual_missing and "condition" not in clip.meta
    assert torch.equal(first.frames, second.frames) and torch.equal(first.audio, second.audio)
    assert first.meta["condition"] == str(parse_condition(text))


def test_different_seeds_give_different_noise():
    clip = make_clip()
    one = apply_condition(clip, "audio-noise:0+occlusion:0.3", seed=0)
    two = apply_condition(clip, "audio-noise:0+occlusion:0.3", seed=1)
    assert not torch.equal(one.audio, two.audio) and not torch.equal(one.frames, two.frames)


def test_condition_flags():
    clip, other = make_clip(0), make_clip(1)
    assert apply_condition(clip, "visual-only").audio_missing
    assert apply_condition(clip, "audio-only").visual_missing
    both = apply_condition(clip, "audio-only+visual-only")
    assert both.audio_missing and both.visual_missing
    plain = apply_condition(clip, "av")
    assert torch.equal(plain.frames, clip.frames) and not plain.audio_missing and not plain.visual_missing
    assert torch.equal(apply_condition(clip, "mismatched", other=other).audio, other.audio)


def test_composition_applies_each_step():
    clip = make_clip()
    result = apply_condition(clip, "audio-noise:0+occlusion:0.3", seed=0)
    assert snr_db(clip.audio, result.audio) == pytest.approx(0.0, abs=0.2)
    grey = (result.frames == torch.tensor(NEUTRAL_RGB).view(3, 1, 1)).all(dim=1)
    assert float(grey.float().mean()) == pytest.approx(0.3, abs=0.05)


def test_mismatched_without_other_is_a_clear_error():
    with pytest.raises(ValueError, match="other=<Clip>"):
        apply_condition(make_clip(), "mismatched")


def test_parse_round_trips_and_normalises():
    for text in CONDITIONS:
        assert str(parse_condition(text)) == text
    condition = parse_condition(" Audio-Noise:10.0 + occlusion:0.25 ")
    assert condition == Condition((("audio-noise", 10.0), ("occlusion", 0.25)))
    assert str(condition) == "audio-noise:10+occlusion:0.25"
    assert parse_condition("av").steps == () and not parse_condition("av").needs_other
    assert parse_condition("mismatched+audio-noise:3").needs_other


@pytest.mark.parametrize("text, message", [
    ("audio-noize:3", "unknown condition 'audio-noize:3'"),
    ("av+blur", "unknown condition 'blur'"),
    ("audio-noise", "needs a value"),
    ("visual-only:3", "takes no value"),
    ("occlusion:half", "not a number"),
    ("occlusion:1.5", r"in \[0, 1\]"),
    ("audio-noise:inf", "finite"),
])
def test_parse_errors_name_the_part(text, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_condition(text)
    if "unknown" in message:
        assert "valid parts: av, visual-only, audio-only, mismatched, audio-noise:<SNR in dB>" in str(error.value)


def test_batch_matches_clip_path_and_sets_flags():
    clip = make_clip()
    for text in ("audio-noise:5+visual-noise:10+occlusion:0.4", "visual-only", "audio-only"):
        frames, audio, audio_missing, visual_missing = apply_to_batch(clip.frames[None], clip.audio[None], text, seed=7)
        single = apply_condition(clip, text, seed=7)
        assert torch.equal(frames[0], single.frames) and torch.equal(audio[0], single.audio)
        assert audio_missing.tolist() == [single.audio_missing] and visual_missing.tolist() == [single.visual_missing]


def test_batch_noise_follows_each_samples_power_and_mismatch_rolls():
    clips = [make_clip(0), make_clip(1), make_clip(2, silent=True)]
    frames = torch.stack([c.frames for c in clips])
    audio = torch.stack([c.audio for c in clips])
    audio[1] *= 0.1
    before = audio.clone()
    _, noisy, _, _ = apply_to_batch(frames, audio, "audio-noise:10", seed=0)
    assert snr_db(audio[0], noisy[0]) == pytest.approx(10, abs=0.2)
    assert snr_db(audio[1], noisy[1]) == pytest.approx(10, abs=0.2)
    assert float(noisy[2].pow(2).mean()) == pytest.approx(SILENT_AUDIO_POWER / 10, rel=0.02)
    _, rolled, audio_missing, visual_missing = apply_to_batch(frames, audio, "mismatched", seed=0)
    assert all(torch.equal(rolled[b], audio[b - 1]) for b in range(3))
    assert not audio_missing.any() and not visual_missing.any()
    assert torch.equal(audio, before)
    with pytest.raises(ValueError, match="at least 2"):
        apply_to_batch(frames[:1], audio[:1], "mismatched")
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        apply_to_batch(frames[0], audio[0], "av")
