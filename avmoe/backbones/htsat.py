"""HTS-AT (Chen et al., ICASSP 2022), the paper's audio encoder: a Swin-v1 over a log-mel spectrogram folded into a
square "image". Built from timm's Swin-v1 blocks, laid out and named as the official model so that the official
AudioSet checkpoint loads strictly (after `convert_official_keys`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock
from torch import nn

from avmoe.backbones.base import Backbone, Stage
from avmoe.data.audio import LogMel

OFFICIAL_PREFIX = "sed_model."
# torchlibrosa's conv-STFT kernels and mel filter bank in the official checkpoint: fixed tensors, never trained.
# LogMel computes the same log-mel with torchaudio, so they are not part of this module's state dict.
OFFICIAL_SKIPPED_KEYS = (
    "spectrogram_extractor.stft.conv_real.weight",
    "spectrogram_extractor.stft.conv_imag.weight",
    "logmel_extractor.melW",
)


class _PatchEmbed(nn.Module):
    """Conv patches of the spectrogram image plus LayerNorm: [B, 1, H, W] -> [B, N, C] (official keys proj, norm)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, patch_stride: tuple[int, int]) -> None:
        super().__init__()
        # official: patches overlap when the stride is smaller than the patch, centred by this padding
        padding = ((patch_size - patch_stride[0]) // 2, (patch_size - patch_stride[1]) // 2)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class _Layer(nn.Module):
    """One stage as the official code names it: `blocks`, then `downsample` (patch merging; none in the last)."""

    def __init__(self, blocks: list[SwinTransformerBlock], downsample: Optional[PatchMerging]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


class HTSAT(Backbone):
    """HTS-AT as AVMoE uses it: waveform -> tiled segment -> log-mel -> bn0 -> 256x256 image -> 4 Swin-v1 stages.

    The official forward pools the last stage's tokens by their mean without the final norm (this class's `pool`);
    the final `norm` and the token-semantic (tscam) head exist only so the official checkpoint loads strictly.
    SpecAugment and mixup, used when HTS-AT was pretrained, are not part of this forward.

    Args:
        spec_size: side of the square spectrogram image.
        patch_size: side of a patch of the image.
        patch_stride: stride of the patches (official: equal to the patch size).
        embed_dim: channels of stage 0; each stage doubles them.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window side (smaller where a stage's grid is smaller).
        mlp_ratio: feed-forward width / channels.
        qkv_bias: bias on the query/key/value map.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 (active in train mode only).
        mel_bins: mel bands of the log-mel front end.
        num_classes: classes of the (unused) tscam head; AudioSet has 527.
        sample_rate: waveform rate in Hz.
        tile_seconds: repeat each segment to this duration before the front end; 0 = no tiling.
        n_fft, hop_length, f_min, f_max: the log-mel recipe HTS-AT was trained with.
    """

    modality = "audio"

    def __init__(
        self,
        *,
        spec_size: int = 256,
        patch_size: int = 4,
        patch_stride: tuple[int, int] = (4, 4),
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (4, 8, 16, 32),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        mel_bins: int = 64,
        num_classes: int = 527,
        sample_rate: int = 32000,
        tile_seconds: float = 10.0,
        n_fft: int = 1024,
        hop_length: int = 320,
        f_min: float = 50.0,
        f_max: float = 14000.0,
    ) -> None:
        super().__init__()
        patch_stride = tuple(patch_stride)
        _check(spec_size, mel_bins, patch_stride, depths, num_heads, tile_seconds)
        self.spec_size = spec_size
        self.freq_ratio = spec_size // mel_bins  # official: time chunks stacked along frequency
        self.sample_rate = sample_rate
        self.tile_seconds = tile_seconds
        device = torch.empty(0).device  # the device being built on (meta when counting parameters)
        with torch.device("cpu"):  # the Slaney filter bank needs real values, which the meta device lacks
            logmel = LogMel(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=mel_bins,
                            f_min=f_min, f_max=f_max)
        self.logmel = _outside_state_dict(logmel).to(device)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.patch_embed = _PatchEmbed(1, embed_dim, patch_size, patch_stride)

        grid = (spec_size // patch_stride[0], spec_size // patch_stride[1])
        stages = []
        total = sum(depths)
        # official: torch.linspace(0, drop_path_rate, total), written in Python so it also runs on the meta device
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim, res = embed_dim * 2 ** i, (grid[0] // 2 ** i, grid[1] // 2 ** i)
            blocks = [SwinTransformerBlock(dim, res, num_heads=heads, window_size=window_size,
                                           shift_size=0 if b % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                                           qkv_bias=qkv_bias, drop_path=rates[sum(depths[:i]) + b])
                      for b in range(depth)]
            for blk in blocks:
                _keep_buffers(blk)
            self.layers.append(_Layer(blocks, PatchMerging(dim) if i < len(depths) - 1 else None))
            stages.append(Stage(dim=dim, grid=res, tokens=res[0] * res[1], depth=depth))
        self.stages = tuple(stages)

        num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(num_features)
        # official tscam head: a conv over the frequency rows of the last grid (SF of them) and 3 time steps
        sf = max(spec_size // 2 ** (len(depths) - 1) // patch_stride[0] // self.freq_ratio, 1)
        self.tscam_conv = nn.Conv2d(num_features, num_classes, kernel_size=(sf, 3), padding=(0, 1))
        self.head = nn.Linear(num_classes, num_classes)
        self.apply(_init_weights)

    # --- official checkpoint ---
    def weights_module(self) -> nn.Module:
        return self

    @staticmethod
    def convert_official_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official `state_dict` -> this module's keys: strip `sed_model.` (official: `k[10:]`), drop the front end."""
        out = {}
        for key, value in state.items():
            key = key[len(OFFICIAL_PREFIX):] if key.startswith(OFFICIAL_PREFIX) else key
            if key not in OFFICIAL_SKIPPED_KEYS:
                out[key] = value
        return out

    # --- front end ---
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, S] -> spectrogram images [B, 1, spec_size, spec_size]."""
        if x.ndim != 2:
            raise ValueError(f"HTSAT expects waveforms [B, samples], got shape {tuple(x.shape)}")
        if self.tile_seconds > 0:
            x = tile(x, round(self.tile_seconds * self.sample_rate))
        x = self.logmel(x).unsqueeze(1)  # [B, 1, T, F]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # official: BatchNorm2d over the mel bins as channels
        return self.reshape_wav2img(x)

    def reshape_wav2img(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, 1, T, F] -> [B, 1, spec_size, spec_size]: resample to (spec_size * r, spec_size / r), cut time
        into r chunks and stack them along frequency (official `reshape_wav2img`, r = freq_ratio)."""
        r = self.freq_ratio
        size = (self.spec_size * r, self.spec_size // r)
        if tuple(x.shape[2:]) != size:
            # official: bicubic with align_corners=True for shorter inputs; longer ones get a random crop there, here
            # they are resampled too (deterministic; the tiny config's 101 frames per second become 64)
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=True)
        x = x.transpose(2, 3).unflatten(3, (r, size[0] // r))  # [B, 1, F, r, T/r]
        return x.transpose(2, 3).flatten(2, 3)  # [B, 1, r*F, T/r]: chunk k in rows k*F..(k+1)*F-1

    # --- block interface ---
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)

    def enter_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        if stage == 0:
            return x
        # official: patch merging ends the previous stage
        merge = self.layers[stage - 1].downsample
        return merge(x.unflatten(1, self.stages[stage - 1].grid)).flatten(1, 2)

    def attn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.layers[stage].blocks[block]
        y = blk._attn(blk.norm1(x).unflatten(1, self.stages[stage].grid))  # shifted-window attention on [B, H, W, C]
        return blk.drop_path1(y.flatten(1, 2))

    def ffn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.layers[stage].blocks[block]
        return blk.drop_path2(blk.mlp(blk.norm2(x)))


def tile(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Repeat each row of [B, S] end to end and crop to `samples`; the same result as the official loop that
    concatenates a segment with itself until it is long enough, then crops."""
    return wave.repeat(1, math.ceil(samples / wave.shape[1]))[:, :samples]


def _outside_state_dict(front_end: nn.Module) -> nn.Module:
    """Register the front end's fixed tensors (STFT window, mel filter bank) as non-persistent: they follow from the
    recipe, and the official checkpoint's own copies are skipped (OFFICIAL_SKIPPED_KEYS)."""
    for module in front_end.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            module.register_buffer(name, buf, persistent=False)
    return front_end


def _keep_buffers(blk: SwinTransformerBlock) -> None:
    """timm registers the relative position index and the shift mask as non-persistent; the official checkpoint stores
    them, so register them as persistent (a mask that is None stays out of the state dict)."""
    blk.attn.register_buffer("relative_position_index", blk.attn.relative_position_index)
    blk.register_buffer("attn_mask", blk.attn_mask)


def _init_weights(m: nn.Module) -> None:
    """Official HTS-AT init: truncated normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _check(spec_size: int, mel_bins: int, patch_stride: tuple[int, int], depths: tuple[int, ...],
           num_heads: tuple[int, ...], tile_seconds: float) -> None:
    if mel_bins > spec_size:
        raise ValueError(f"mel_bins={mel_bins} exceeds spec_size={spec_size}; use spec_size >= mel_bins")
    if len(depths) != len(num_heads):
        raise ValueError(f"depths={tuple(depths)} and num_heads={tuple(num_heads)} must have one entry per stage")
    cells = 2 ** (len(depths) - 1)
    for side, stride in zip((spec_size, spec_size), patch_stride):
        if (side // stride) % cells:
            raise ValueError(f"spec_size={spec_size} / patch_stride={stride} = {side // stride} patches per side, "
                             f"not divisible by {cells} for {len(depths)} stages; pick spec_size accordingly")
    if tile_seconds < 0:
        raise ValueError(f"tile_seconds={tile_seconds} must be >= 0 (0 = no tiling)")
