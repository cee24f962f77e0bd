"""Fake backbone stages and random encoder features of the right shapes for the head tests."""
from __future__ import annotations

import torch

from avmoe.backbones.base import Stage
from avmoe.layers import RouterTrace
from avmoe.model import AVMoEFeatures

# The tiny presets' backbones (swinv2-tiny at 96 px, htsat-tiny on a 64x64 log-mel image).
TINY_VISUAL = tuple(Stage(32 * 2 ** i, (24 >> i, 24 >> i), (24 >> i) ** 2, 2) for i in range(4))
TINY_AUDIO = tuple(Stage(32 * 2 ** i, (16 >> i, 16 >> i), (16 >> i) ** 2, 2) for i in range(4))
# The paper's backbones (reference table): Swin-V2-L at 192 px and HTS-AT.
PAPER_VISUAL = tuple(Stage(192 * 2 ** i, (48 >> i, 48 >> i), (48 >> i) ** 2, d) for i, d in enumerate((2, 2, 18, 2)))
PAPER_AUDIO = tuple(Stage(96 * 2 ** i, (64 >> i, 64 >> i), (64 >> i) ** 2, d) for i, d in enumerate((2, 2, 6, 2)))


def random_features(B: int, T: int, visual: tuple[Stage, ...] = TINY_VISUAL,
                    audio: tuple[Stage, ...] = TINY_AUDIO) -> AVMoEFeatures:
    """Per-stage maps [B, T, C, h, w] and their spatial means as the pooled features."""
    visual_stages = [torch.randn(B, T, s.dim, *s.grid) for s in visual]
    audio_stages = [torch.randn(B, T, s.dim, *s.grid) for s in audio]
    return AVMoEFeatures(
        visual=visual_stages[-1].mean(dim=(-2, -1)), audio=audio_stages[-1].mean(dim=(-2, -1)),
        visual_stages=visual_stages, audio_stages=audio_stages, layers={"visual": [], "audio": []},
        trace=RouterTrace(B, T), balance_loss=torch.zeros(()),
    )


def perturb_sample(feats: AVMoEFeatures, index: int) -> AVMoEFeatures:
    """A copy with every feature of one sample replaced by new random values."""
    def change(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[index] = torch.randn_like(x[index])
        return x

    return AVMoEFeatures(
        visual=change(feats.visual), audio=change(feats.audio),
        visual_stages=[change(x) for x in feats.visual_stages], audio_stages=[change(x) for x in feats.audio_stages],
        layers=feats.layers, trace=feats.trace, balance_loss=feats.balance_loss,
    )


def assert_trains(head: torch.nn.Module, losses: dict[str, torch.Tensor]) -> None:
    """The total is finite and every head parameter receives a gradient (none is unused: DDP needs that)."""
    assert "loss" in losses
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value), name
    losses["loss"].backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    total = sum(float(p.grad.abs().sum()) for p in head.parameters())
    assert total > 0 and torch.isfinite(torch.tensor(total))


def assert_no_leakage(head: torch.nn.Module, B: int = 2, T: int = 10, atol: float = 1e-6) -> None:
    """In eval mode, perturbing sample 0 changes every output of sample 0 and none of sample 1."""
    head.eval()
    feats = random_features(B, T)
    with torch.no_grad():
        a, b = head(feats, {}), head(perturb_sample(feats, 0), {})
    for key in a:
        torch.testing.assert_close(a[key][1], b[key][1], rtol=0, atol=atol)
        assert not torch.allclose(a[key][0], b[key][0]), key
