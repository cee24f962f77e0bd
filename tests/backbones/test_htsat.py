"""HTS-AT: official checkpoint layout, block interface against an independent Swin-v1 reference, front end, shapes."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from avmoe.backbones.htsat import HTSAT, OFFICIAL_SKIPPED_KEYS, tile

TINY = dict(spec_size=64, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4, tile_seconds=0.0)


@pytest.fixture(scope="module")
def tiny() -> HTSAT:
    torch.manual_seed(0)
    return HTSAT(**TINY).eval()


def test_state_dict_equals_official_layout(fixtures):
    official = json.loads((fixtures / "htsat_audioset_keys.json").read_text())["keys"]
    with torch.device("meta"):
        model = HTSAT()
    ours = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    expected = {k: (shape, dtype) for k, shape, dtype in official if k not in OFFICIAL_SKIPPED_KEYS}
    assert len(expected) == len(official) - 3
    assert ours == expected
    assert model.weights_module() is model


def test_convert_official_keys_loads_strictly(tiny):
    official = {"sed_model." + k: v.clone() for k, v in tiny.state_dict().items()}
    official.update({"sed_model." + k: torch.zeros(1) for k in OFFICIAL_SKIPPED_KEYS})
    other = HTSAT(**TINY)
    other.load_state_dict(HTSAT.convert_official_keys(official), strict=True)
    for k, v in tiny.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_saved_state_dict_loads_strictly_and_reproduces_output(tiny, tmp_path):
    save_file(tiny.state_dict(), tmp_path / "htsat.safetensors")
    torch.manual_seed(1)
    other = HTSAT(**TINY).eval()
    wave = torch.randn(2, 32000) * 0.1
    assert not torch.allclose(other(wave), tiny(wave))
    other.load_state_dict(load_file(tmp_path / "htsat.safetensors"), strict=True)
    torch.testing.assert_close(other(wave), tiny(wave), rtol=0, atol=0)


def test_stages_of_both_configs(tiny):
    with torch.device("meta"):
        official = HTSAT()
    assert [(s.dim, s.grid, s.tokens, s.depth) for s in official.stages] == [
        (96, (64, 64), 4096, 2), (192, (32, 32), 1024, 2), (384, (16, 16), 256, 6), (768, (8, 8), 64, 2)]
    assert [(s.dim, s.grid, s.depth) for s in tiny.stages] == [
        (32, (16, 16), 2), (64, (8, 8), 2), (128, (4, 4), 2), (256, (2, 2), 2)]


def _official_window_mask(H: int, W: int, ws: int, shift: int) -> torch.Tensor:
    """The official Swin-v1 mask: -100 between tokens of a shifted window that come from different regions."""
    img = torch.zeros(H, W)
    cnt = 0
    for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[h, w] = cnt
            cnt += 1
    win = img.view(H // ws, ws, W // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def _official_block(blk: torch.nn.Module, x: torch.Tensor, H: int, W: int, ws: int, shift: int) -> torch.Tensor:
    """HTS-AT's SwinTransformerBlock.forward written out: pre-norm shifted-window attention with relative position
    bias, then pre-norm MLP, both residual."""
    B, L, C = x.shape
    heads, N = blk.attn.num_heads, ws * ws
    h = blk.norm1(x).view(B, H, W, C)
    if shift:
        h = torch.roll(h, (-shift, -shift), (1, 2))
    win = h.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, N, C)
    q, k, v = blk.attn.qkv(win).view(-1, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    index = rel[..., 0] * (2 * ws - 1) + rel[..., 1]
    attn = (q * (C // heads) ** -0.5) @ k.transpose(-2, -1)
    attn = attn + blk.attn.relative_position_bias_table[index.view(-1)].view(N, N, heads).permute(2, 0, 1)
    if shift:
        nw = (H // ws) * (W // ws)
        attn = (attn.view(B, nw, heads, N, N) + _official_window_mask(H, W, ws, shift)[None, :, None]).flatten(0, 1)
    out = blk.attn.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, N, C))
    out = out.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    x = x + out.reshape(B, L, C)
    return x + blk.mlp.fc2(torch.nn.functional.gelu(blk.mlp.fc1(blk.norm2(x))))


def _official_merge(x: torch.Tensor, H: int, W: int, merge: torch.nn.Module) -> torch.Tensor:
    """HTS-AT's PatchMerging.forward: concatenate the 2x2 neighbours (x0, x1, x2, x3), norm, reduce."""
    x = x.view(x.shape[0], H, W, -1)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return merge.reduction(merge.norm(x.flatten(1, 2)))


@torch.no_grad()
def test_blocks_and_merging_equal_official_forward(tiny):
    # window 4: stages 0-1 shift, stage 2 (4x4 grid) and stage 3 (2x2) fall back to one unshifted window
    expected = {0: (4, 2), 1: (4, 2), 2: (4, 0), 3: (2, 0)}
    assert [blk.attn_mask is not None for layer in tiny.layers for blk in layer.blocks] == [
        False, True, False, True, False, False, False, False]
    for s, stage in enumerate(tiny.stages):
        H, W = stage.grid
        x = torch.randn(3, stage.tokens, stage.dim)
        for b in range(stage.depth):
            ws, shift = expected[s]
            want = _official_block(tiny.layers[s].blocks[b], x, H, W, ws, shift if b % 2 else 0)
            torch.testing.assert_close(tiny.run_block(s, b, x), want, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(tiny.layers[s].blocks[b](x.view(3, H, W, -1)).flatten(1, 2), want,
                                       rtol=1e-4, atol=1e-5)
        if s + 1 < len(tiny.stages):
            torch.testing.assert_close(tiny.enter_stage(s + 1, x), _official_merge(x, H, W, tiny.layers[s].downsample))
    shifted = tiny.layers[0].blocks[1]
    torch.testing.assert_close(shifted.attn_mask, _official_window_mask(16, 16, 4, 2))


@torch.no_grad()
def test_forward_equals_plain_sequential_forward(tiny):
    wave = torch.randn(2, 32000) * 0.1
    x = tiny.patch_embed(tiny.prepare(wave))
    for s, (stage, layer) in enumerate(zip(tiny.stages, tiny.layers)):
        for blk in layer.blocks:
            x = blk(x.unflatten(1, stage.grid)).flatten(1, 2)
        if layer.downsample is not None:
            x = layer.downsample(x.unflatten(1, stage.grid)).flatten(1, 2)
    torch.testing.assert_close(tiny(wave), x.mean(dim=1), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_tiny_shapes_on_one_second_segments(tiny):
    wave = torch.randn(3, 32000) * 0.1
    image = tiny.prepare(wave)
    assert image.shape == (3, 1, 64, 64)
    tokens = tiny.embed(image)
    assert tokens.shape == (3, 256, 32)
    for s, stage in enumerate(tiny.stages):
        tokens = tiny.enter_stage(s, tokens)
        assert tokens.shape == (3, stage.tokens, stage.dim)
        for b in range(stage.depth):
            assert tiny.attn_branch(s, b, tokens).shape == tokens.shape
            assert tiny.ffn_branch(s, b, tokens).shape == tokens.shape
            tokens = tiny.run_block(s, b, tokens)
    assert tiny.pool(tiny.stage_output(3, tokens)).shape == (3, 256)
    assert torch.isfinite(tokens).all()


def test_official_config_forward_on_meta_device():
    with torch.device("meta"):
        model = HTSAT().eval()
        wave = torch.zeros(2, 32000)  # one-second segments, tiled to 10 s = 1001 log-mel frames
        image = model.prepare(wave)
        x = model.embed(image)
        assert (image.shape, x.shape) == ((2, 1, 256, 256), (2, 4096, 96))
        for s, stage in enumerate(model.stages):
            x = model.enter_stage(s, x)
            assert x.shape == (2, stage.tokens, stage.dim)
            for b in range(stage.depth):
                x = model.run_block(s, b, x)
        out = model(wave)
    assert out.is_meta and out.shape == (2, 768)
    assert sum(p.numel() for p in model.parameters()) == 30_241_687


def test_reshape_wav2img_equals_official():
    model = HTSAT(spec_size=16, mel_bins=4, embed_dim=8, depths=(2,), num_heads=(1,), window_size=2,
                  tile_seconds=0.0)
    assert model.freq_ratio == 4
    x = torch.randn(2, 1, 64, 4)  # already at the target size: no interpolation
    want = x.permute(0, 1, 3, 2).reshape(2, 1, 4, 4, 16).permute(0, 1, 3, 2, 4).reshape(2, 1, 16, 16)
    torch.testing.assert_close(model.reshape_wav2img(x), want, rtol=0, atol=0)
    # a shorter time axis is stretched by bicubic interpolation with aligned corners: the ends are kept exactly
    short = torch.randn(2, 1, 50, 4)
    image = model.reshape_wav2img(short)
    torch.testing.assert_close(image[:, :, 0:4, 0], short[:, :, 0, :])
    torch.testing.assert_close(image[:, :, 12:16, -1], short[:, :, -1, :])


def test_tiling_repeats_the_segment_like_the_official_loop():
    wave = torch.arange(10.0).view(2, 5)
    official = wave.clone()
    while official.shape[1] < 12:
        official = torch.cat([official, official], dim=1)
    torch.testing.assert_close(tile(wave, 12), official[:, :12], rtol=0, atol=0)
    assert tile(torch.zeros(1, 32000), 320000).shape == (1, 320000)


@torch.no_grad()
def test_tiled_segment_gives_1001_frames_per_ten_seconds():
    model = HTSAT(spec_size=64, embed_dim=8, depths=(2,), num_heads=(1,), window_size=4, tile_seconds=10.0)
    wave = torch.randn(1, 32000) * 0.1
    assert model.logmel(tile(wave, 320000)).shape[-2:] == (1001, 64)
    assert model.prepare(wave).shape == (1, 1, 64, 64)


def test_frozen_model_keeps_bn_statistics():
    model = HTSAT(**TINY).freeze()
    before = model.bn0.running_mean.clone()
    model.train()
    assert not model.training
    model(torch.randn(2, 32000))
    assert torch.equal(model.bn0.running_mean, before)
    assert not any(p.requires_grad for p in model.parameters())


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="waveforms"):
        HTSAT(**TINY).prepare(torch.zeros(2, 1, 32000))
    with pytest.raises(ValueError, match="mel_bins=128"):
        HTSAT(**{**TINY, "mel_bins": 128})
    with pytest.raises(ValueError, match="not divisible"):
        HTSAT(**{**TINY, "spec_size": 72})
    with pytest.raises(ValueError, match="tile_seconds"):
        HTSAT(**{**TINY, "tile_seconds": -1.0})
