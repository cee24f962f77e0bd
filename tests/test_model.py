import pytest
import torch

from avmoe.config import get_preset
from avmoe.layers import RouterOverride
from avmoe.model import STREAMS, AVMoEModel, TaskModel, pair_blocks, reuse_embeddings, share_backbones
from avmoe.backbones import Stage

B, T = 2, 3


def _inputs(cfg):
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(B, T, 3, cfg.frame_size, cfg.frame_size, generator=g)
    audio = 0.1 * torch.randn(B, T, cfg.sample_rate, generator=g)
    return frames, audio


def _open_gates(model):
    for name, p in model.named_parameters():
        if name.endswith("gate"):
            p.data.fill_(0.5)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return AVMoEModel(get_preset("tiny-ave", segments=T)).eval()


def test_new_model_equals_its_frozen_backbones(encoder):
    frames, audio = _inputs(encoder.cfg)
    with torch.no_grad():
        feats = encoder(frames, audio)
        plain_v = encoder.visual(frames.flatten(0, 1)).unflatten(0, (B, T))
        plain_a = encoder.audio(audio.flatten(0, 1)).unflatten(0, (B, T))
    torch.testing.assert_close(feats.visual, plain_v, atol=1e-6, rtol=0)
    torch.testing.assert_close(feats.audio, plain_a, atol=1e-6, rtol=0)


def test_features_and_trace_shapes(encoder):
    frames, audio = _inputs(encoder.cfg)
    with torch.no_grad():
        feats = encoder(frames, audio)
    assert feats.visual.shape == (B, T, encoder.visual.stages[-1].dim)
    assert feats.audio.shape == (B, T, encoder.audio.stages[-1].dim)
    for maps, stages in ((feats.visual_stages, encoder.visual.stages), (feats.audio_stages, encoder.audio.stages)):
        assert [tuple(m.shape) for m in maps] == [(B, T, s.dim, *s.grid) for s in stages]
    adapted = [p.layer for p in encoder.pairs if p.adapted]
    expected = {(s, layer, pos) for s in ("audio", "visual") for layer in adapted for pos in ("p1", "p2")}
    assert set(feats.trace.weights) == expected
    for key, w in feats.trace.weights.items():
        assert w.shape == (B, T, 2) and feats.trace.experts[key] == ("cma0", "ua0")
        torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
    assert len(feats.layers["visual"]) == len(encoder.pairs)


def test_adapters_change_features_once_gates_open():
    torch.manual_seed(0)
    model = AVMoEModel(get_preset("tiny-ave", segments=T)).eval()
    frames, audio = _inputs(model.cfg)
    with torch.no_grad():
        before = model(frames, audio).visual
        _open_gates(model)
        after = model(frames, audio).visual
    assert (before - after).abs().max() > 1e-3


def test_router_override_context_manager():
    torch.manual_seed(0)
    model = AVMoEModel(get_preset("tiny-ave", segments=T)).eval()
    _open_gates(model)
    frames, audio = _inputs(model.cfg)
    with torch.no_grad():
        base = model(frames, audio)
        with model.override_router(RouterOverride("ua")):
            forced = model(frames, audio)
        again = model(frames, audio)
    for w in forced.trace.weights.values():
        torch.testing.assert_close(w, torch.tensor([0.0, 1.0]).expand_as(w))
    assert (forced.visual - base.visual).abs().max() > 1e-4
    torch.testing.assert_close(again.visual, base.visual)


def test_variants_differ_only_in_their_experts():
    names = {}
    for variant in ("avmoe", "cma-only", "ua-only", "frozen"):
        model = AVMoEModel(get_preset("tiny-ave", variant=variant))
        names[variant] = {k for k in model.state_dict() if not k.startswith("adapters.")}
        mixtures = {k.split(".")[1] for k in model.state_dict() if k.startswith("adapters.")}
        kinds = {type(e).__name__ for m in model.adapters.values() for e in m.experts}
        expected = {"avmoe": {"CrossModalAdapter", "UnimodalAdapter"}, "cma-only": {"CrossModalAdapter"},
                    "ua-only": {"UnimodalAdapter"}, "frozen": set()}[variant]
        assert kinds == expected
        if variant != "frozen":
            assert len(mixtures) == 4 * sum(p.adapted for p in model.pairs)
    assert names["avmoe"] == names["cma-only"] == names["ua-only"] == names["frozen"]


def test_backbones_stay_frozen_in_train_mode():
    model = AVMoEModel(get_preset("tiny-ave", segments=T))
    model.train()
    assert model.training and not model.visual.training and not model.audio.training
    assert not any(p.requires_grad for p in model.visual.parameters())
    assert all(p.requires_grad for p in model.adapters.parameters())


def test_pairing_follows_the_paper():
    swin = tuple(Stage(1, (1, 1), 1, d) for d in (2, 2, 18, 2))
    htsat = tuple(Stage(1, (1, 1), 1, d) for d in (2, 2, 6, 2))
    pairs = pair_blocks(swin, htsat, skip=1)
    assert len(pairs) == 12
    stage3 = [(p.visual[1], p.audio[1]) for p in pairs if p.visual[0] == 2]
    assert stage3 == [(2, 0), (5, 1), (8, 2), (11, 3), (14, 4), (17, 5)]  # official j in {2,5,..,17} <-> (j-2)/3
    skipped = pair_blocks(swin, htsat, skip=2)
    assert [p.adapted for p in skipped].count(True) == 8  # stages 2 and 4 skipped: 8 paired blocks adapted


def test_token_map_option_decides_the_token_parameters():
    interp = AVMoEModel(get_preset("tiny-ave", **{"adapter.token_map": "interp"}))
    assert not any(".token_map.tokens." in k for k in interp.state_dict())
    linear = AVMoEModel(get_preset("tiny-ave", **{"adapter.token_map": "linear"}))
    assert linear.adapters["visual_0_p1"].token_map.tokens.weight.shape == (24 * 24, 16 * 16)  # N_a -> N_v


def test_a_training_step_changes_no_backbone_weight_or_statistic():
    from avmoe.model import build_model

    model = build_model("tiny-ave", segments=T)
    frames, audio = _inputs(model.cfg)
    batch = {"frames": frames, "audio": audio, "ave": torch.tensor([[0, 0, -1], [2, -1, 2]])}
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("encoder.visual", "encoder.audio"))}
    assert any("running_mean" in k for k in frozen)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        loss = model.loss(model(batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    for k, v in frozen.items():
        assert torch.equal(after[k], v), k
    assert any(float(p.abs().sum()) > 0 for n, p in model.named_parameters() if n.endswith(".gate"))


def test_share_backbones_keeps_one_copy_of_equal_backbones():
    torch.manual_seed(0)
    ave = TaskModel(get_preset("tiny-ave", segments=T)).eval()
    s4 = TaskModel(get_preset("tiny-s4", segments=T)).eval()
    other = TaskModel(get_preset("tiny-ave", segments=T)).eval()  # its own random backbones
    for stream in STREAMS:
        getattr(s4.encoder, stream).load_state_dict(getattr(ave.encoder, stream).state_dict())
    frames, audio = _inputs(ave.cfg)
    with torch.no_grad():
        before = s4.encoder(frames, audio)
    assert share_backbones([ave, s4, other]) == 2
    assert s4.encoder.visual is ave.encoder.visual and s4.encoder.audio is ave.encoder.audio
    assert other.encoder.visual is not ave.encoder.visual and other.encoder.audio is not ave.encoder.audio
    with torch.no_grad():
        after = s4.encoder(frames, audio)
    torch.testing.assert_close(after.visual, before.visual, rtol=0, atol=0)
    torch.testing.assert_close(after.audio, before.audio, rtol=0, atol=0)
    assert share_backbones([ave, s4, other]) == 0


def test_reuse_embeddings_prepares_an_equal_input_once(encoder):
    frames, audio = _inputs(encoder.cfg)
    calls = []
    prepare = encoder.audio.prepare
    encoder.audio.prepare = lambda x: calls.append(1) or prepare(x)
    try:
        with torch.no_grad():
            plain = encoder(frames, audio).audio
            with reuse_embeddings():
                first = encoder(frames, audio).audio
                again = encoder(frames.clone(), audio.clone()).audio  # new tensors, equal values: reused
                louder = encoder(frames, 2 * audio).audio
            assert len(calls) == 3
            torch.testing.assert_close(first, plain, rtol=0, atol=0)
            torch.testing.assert_close(again, plain, rtol=0, atol=0)
            assert not torch.equal(louder, plain)
        with reuse_embeddings():  # with autograd nothing is reused
            encoder(frames, audio)
            encoder(frames, audio)
        assert len(calls) == 5
    finally:
        del encoder.audio.prepare
