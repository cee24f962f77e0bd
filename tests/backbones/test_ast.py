"""AudioViT: the LAVisH fbank input, token shapes and the block interface over timm's ViT."""
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from avmoe.backbones.ast import TINY, AudioViT


@pytest.fixture(scope="module")
def tiny() -> AudioViT:
    torch.manual_seed(0)
    return AudioViT(**TINY).eval()


def test_fbank_image_follows_the_lavish_recipe(tiny):
    wave = torch.randn(2, 32000) * 0.1
    image = tiny.prepare(wave)
    assert image.shape == (2, 1, 64, 96)
    # 1 s with a 10 ms shift and a 25 ms window gives 98 frames: cropped to 96, frequency down the image
    fbank = kaldi.fbank((wave[1] - wave[1].mean())[None], htk_compat=True, sample_frequency=32000, use_energy=False,
                        window_type="hanning", num_mel_bins=64, dither=0.0, frame_shift=10.0)
    assert fbank.shape == (98, 64)
    torch.testing.assert_close(image[1, 0], ((fbank[:96] + 4.98) / 7.42).T)


def test_short_fbank_is_zero_padded_before_normalising():
    model = AudioViT(**{**TINY, "target_frames": 104})
    image = model.prepare(torch.randn(1, 32000))
    torch.testing.assert_close(image[0, 0, :, 98:], torch.full((64, 6), 4.98 / 7.42))


def test_official_size_is_192_by_192():
    with torch.device("meta"):
        model = AudioViT()
    stage = model.stages[0]
    assert (stage.dim, stage.grid, stage.tokens, stage.depth) == (768, (12, 12), 145, 12)
    assert model.net.patch_embed.proj.weight.shape == (768, 1, 16, 16)
    assert model.modality == "audio"
    assert not hasattr(model, "mean")


@torch.no_grad()
def test_tiny_shapes_and_block_interface(tiny):
    wave = torch.randn(3, 32000) * 0.1
    stage = tiny.stages[0]
    assert (stage.dim, stage.grid, stage.tokens, stage.depth) == (64, (8, 12), 97, 4)
    x = tiny.enter_stage(0, tiny.embed(tiny.prepare(wave)))
    assert x.shape == (3, 97, 64)
    plain = x
    for b in range(stage.depth):
        assert tiny.attn_branch(0, b, x).shape == x.shape
        x = tiny.run_block(0, b, x)
        plain = tiny.net.blocks[b](plain)
    torch.testing.assert_close(x, plain)
    out = tiny(wave)
    assert out.shape == (3, 64)
    torch.testing.assert_close(out, tiny.net.norm(plain)[:, 1:].mean(dim=1))


def test_bad_input_raises(tiny):
    with pytest.raises(ValueError, match="waveforms"):
        tiny.prepare(torch.zeros(32000))
