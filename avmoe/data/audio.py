"""Audio features from torchaudio: HTS-AT's log-mel front end and the LAVisH/AST Kaldi fbank."""
from __future__ import annotations

import torch
import torchaudio
from torch import nn
from torchaudio.compliance import kaldi

__all__ = ["AST_FBANK_MEAN", "AST_FBANK_STD", "LogMel", "kaldi_fbank"]

# The fbank normalisation of the AST recipe as LAVisH applies it: (x - mean) / (2 * std).
AST_FBANK_MEAN = -4.98
AST_FBANK_STD = 3.71


class LogMel(nn.Module):
    """HTS-AT's log-mel front end: [..., samples] -> [..., frames, mels].

    Power STFT, mel filter bank, then 10*log10(max(x, amin)). Defaults are HTS-AT's (torchlibrosa, as in the official
    code): 32 kHz, n_fft 1024, hop 320, periodic Hann window, centred with reflect padding, 64 mel bins, 50-14000 Hz,
    ref 1.0, no top_db. HTS-AT builds its filter bank with librosa, whose default is the Slaney mel scale with Slaney
    area normalisation. One second of audio gives 101 frames.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float = 14000.0,
        amin: float = 1e-10,
    ) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            window_fn=torch.hann_window,
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )
        self.amin = amin

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        s = self.mel.spectrogram
        stft = torchaudio.functional.spectrogram(wave, s.pad, s.window, s.n_fft, s.hop_length, s.win_length, None,
                                                 s.normalized, s.center, s.pad_mode, s.onesided)
        # |z|^2 as re^2 + im^2: the same power as MelSpectrogram's, but torch's complex abs (a hypot per bin) would
        # cost about as much as the STFT itself.
        mel = self.mel.mel_scale(torch.view_as_real(stft).square().sum(-1))  # [..., mels, frames]
        return (10.0 * torch.log10(mel.clamp(min=self.amin))).transpose(-1, -2)


def kaldi_fbank(
    wave: torch.Tensor,
    sample_rate: int,
    num_mel_bins: int = 128,
    frame_shift_ms: float = 10.0,
    target_frames: int | None = None,
    normalize: bool = False,
) -> torch.Tensor:
    """Kaldi log-mel fbank as the AST/LAVisH dataloaders compute it: [samples] -> [frames, bins], [N, ...] -> [N, ...].

    Args:
        wave: mono waveform, or N waveforms (e.g. a clip's T one-second segments), float.
        sample_rate: rate of wave, Hz.
        num_mel_bins: mel bins (AST: 128; LAVisH: 192).
        frame_shift_ms: hop in milliseconds (AST: 10; LAVisH: 5.2).
        target_frames: zero-pad or crop the time axis to this many frames (AST: 1024; LAVisH: 192).
        normalize: apply (x - AST_FBANK_MEAN) / (2 * AST_FBANK_STD) after padding, as the recipe does.
    """
    if wave.ndim == 2:
        return torch.stack([
            kaldi_fbank(w, sample_rate, num_mel_bins, frame_shift_ms, target_frames, normalize) for w in wave
        ])
    if wave.ndim != 1:
        raise ValueError(f"wave must be [samples] or [N, samples], got {tuple(wave.shape)}")
    wave = wave.float()
    fbank = kaldi.fbank(
        (wave - wave.mean())[None],  # the recipe removes the waveform's mean first
        sample_frequency=sample_rate,
        num_mel_bins=num_mel_bins,
        frame_shift=frame_shift_ms,
        htk_compat=True,
        use_energy=False,
        window_type="hanning",
        dither=0.0,
    )
    if target_frames is not None:
        missing = target_frames - fbank.shape[0]
        fbank = nn.functional.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:target_frames]
    if normalize:
        fbank = (fbank - AST_FBANK_MEAN) / (2 * AST_FBANK_STD)
    return fbank
