"""AST-style audio backbone: a timm ViT over the Kaldi fbank of each one-second segment, as LAVisH feeds audio to a
vision transformer (a 192-bin, 5.2 ms-shift fbank of 1 s gives a 192x192 "image")."""
from __future__ import annotations

from typing import Any

import torch

from avmoe.backbones.timm_visual import TimmViT
from avmoe.data.audio import AST_FBANK_MEAN, AST_FBANK_STD, kaldi_fbank

TINY: dict[str, Any] = dict(model_name="vit_tiny_patch16_224", num_mel_bins=64, target_frames=96, frame_shift_ms=10.0,
                            patch_size=8, embed_dim=64, depth=4, num_heads=2)
"""`ast-tiny`: 64 mel bins x 96 frames of 10 ms (1 s gives 98, cropped), patch 8 -> 8x12 tokens, width 64, 4 blocks."""


class AudioViT(TimmViT):
    """timm ViT on a one-channel spectrogram image [B, 1, mel bins, frames] (AST layout: frequency down, time across).

    Args:
        model_name: timm ViT architecture; `kwargs` override its arguments (patch_size, embed_dim, depth, ...).
        sample_rate: waveform rate in Hz.
        num_mel_bins: fbank mel bins, the image height.
        target_frames: fbank frames, the image width; shorter fbanks are zero-padded, longer ones cropped (LAVisH).
        frame_shift_ms: fbank hop in milliseconds (window 25 ms).
        norm_mean, norm_std: fbank statistics; the input is (fbank - norm_mean) / (2 * norm_std) as in AST/LAVisH.
    """

    modality = "audio"

    def __init__(
        self,
        *,
        model_name: str = "vit_base_patch16_224",
        sample_rate: int = 32000,
        num_mel_bins: int = 192,
        target_frames: int = 192,
        frame_shift_ms: float = 5.2,
        norm_mean: float = AST_FBANK_MEAN,
        norm_std: float = AST_FBANK_STD,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_name, img_size=(num_mel_bins, target_frames), in_chans=1, **kwargs)
        del self.mean, self.std  # the ImageNet statistics of the image input do not apply to spectrograms
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.target_frames = target_frames
        self.frame_shift_ms = frame_shift_ms
        self.norm_mean = norm_mean
        self.norm_std = norm_std

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, S] -> normalised fbank images [B, 1, num_mel_bins, target_frames]."""
        if x.ndim != 2:
            raise ValueError(f"AudioViT expects waveforms [B, samples], got shape {tuple(x.shape)}")
        fbank = kaldi_fbank(x, self.sample_rate, self.num_mel_bins, self.frame_shift_ms, self.target_frames)
        return ((fbank - self.norm_mean) / (2 * self.norm_std)).transpose(1, 2).unsqueeze(1)
