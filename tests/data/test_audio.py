"""LogMel and kaldi_fbank against direct torchaudio calls and an independent Slaney filter bank."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from torchaudio.compliance import kaldi

from avmoe.data.audio import AST_FBANK_MEAN, AST_FBANK_STD, LogMel, kaldi_fbank


def sine(freq: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * torch.pi * freq * torch.arange(int(seconds * sample_rate)) / sample_rate)


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """librosa.filters.mel's default (Slaney scale, Slaney norm), written out: [n_mels, n_fft // 2 + 1]."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-9) / min_log_hz) / log_step, hz / f_sp)

    def to_hz(mel):
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(log_step * (mel - min_log_mel)), f_sp * mel)

    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = to_hz(np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2))
    ramps = mel_hz[:, None] - fft_hz[None, :]
    widths = np.diff(mel_hz)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]


def test_logmel_matches_torchaudio_with_the_htsat_recipe():
    wave = torch.randn(2, 3, 32000, generator=torch.Generator().manual_seed(0)) * 0.1
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=32000, n_fft=1024, hop_length=320, f_min=50, f_max=14000, n_mels=64, window_fn=torch.hann_window,
        power=2.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney")
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)
    expected = to_db(reference(wave)).transpose(-1, -2)
    features = LogMel()(wave)
    assert features.shape == (2, 3, 101, 64)
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-5)


def test_logmel_filter_bank_is_librosas_slaney_bank():
    bank = LogMel().mel.mel_scale.fb.numpy()  # [freqs, mels]
    expected = slaney_mel_filters(32000, 1024, 64, 50.0, 14000.0)
    np.testing.assert_allclose(bank.T, expected, atol=1e-6)


def test_logmel_peaks_at_the_tone_and_floors_silence():
    model = LogMel()
    tone = model(sine(1000.0, 32000))
    filters = slaney_mel_filters(32000, 1024, 64, 50.0, 14000.0)
    assert int(tone[50].argmax()) == int(filters[:, 32].argmax())  # 1000 Hz is FFT bin 32 (31.25 Hz per bin)
    silence = model(torch.zeros(32000))
    assert torch.all(silence == -100.0)  # 10 * log10(amin = 1e-10), ref 1.0, no top_db


def test_kaldi_fbank_matches_torchaudio_recipe():
    wave = sine(440.0, 16000) + 0.05
    expected = kaldi.fbank((wave - wave.mean())[None], htk_compat=True, sample_frequency=16000, use_energy=False,
                           window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    features = kaldi_fbank(wave, 16000)
    assert features.shape == (98, 128)  # 1 + (16000 - 400) // 160 frames
    torch.testing.assert_close(features, expected)


def test_kaldi_fbank_pads_crops_normalises_and_batches():
    wave = sine(440.0, 16000)
    raw = kaldi_fbank(wave, 16000)
    padded = kaldi_fbank(wave, 16000, target_frames=100)
    assert padded.shape == (100, 128)
    torch.testing.assert_close(padded[:98], raw)
    assert torch.count_nonzero(padded[98:]) == 0
    assert torch.equal(kaldi_fbank(wave, 16000, target_frames=50), raw[:50])
    normalised = kaldi_fbank(wave, 16000, target_frames=100, normalize=True)
    torch.testing.assert_close(normalised, (padded + 4.98) / (2 * 3.71))
    assert (AST_FBANK_MEAN, AST_FBANK_STD) == (-4.98, 3.71)
    segments = torch.stack([wave, sine(880.0, 16000)])
    batched = kaldi_fbank(segments, 16000)
    assert batched.shape == (2, 98, 128)
    torch.testing.assert_close(batched[0], raw)


def test_kaldi_fbank_lavish_settings():
    features = kaldi_fbank(sine(440.0, 32000), 32000, num_mel_bins=192, frame_shift_ms=5.2, target_frames=192)
    assert features.shape == (192, 192)


def test_kaldi_fbank_rejects_other_shapes():
    with pytest.raises(ValueError, match="wave must be"):
        kaldi_fbank(torch.zeros(2, 2, 100), 16000)
