import math

import pytest
import torch

from avmoe.config import AdapterConfig, RouterConfig
from avmoe.layers import CrossModalAdapter, MoEAdapter, Router, RouterOverride, RouterTrace, TokenMap, UnimodalAdapter
from avmoe.layers.adapters import GroupedLinear, attend
from avmoe.layers.router import keep_top_k


def _moe(num_cma=2, num_ua=2, top_k=0, **adapter) -> MoEAdapter:
    cfg = AdapterConfig(num_cma=num_cma, num_ua=num_ua, num_latent_tokens=4, reduction=4, groups=1, **adapter)
    return MoEAdapter(("audio", 3, "p2"), dim=16, other_dim=8, tokens=12, other_tokens=6, num_cma=num_cma,
                      num_ua=num_ua, adapter=cfg, router=RouterConfig(hidden=(32,), top_k=top_k))


def _gates_on(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        if name.endswith("gate"):
            p.data.fill_(0.7)


def test_new_mixture_outputs_zero():
    moe = _moe()
    out = moe(torch.randn(5, 12, 16), torch.randn(5, 6, 8)).out
    assert out.shape == (5, 12, 16) and torch.count_nonzero(out) == 0


def test_router_weights_sum_to_one_and_trace_shape():
    moe = _moe(num_cma=1, num_ua=2).eval()
    trace = RouterTrace(batch=2, segments=3)
    out = moe(torch.randn(6, 12, 16), torch.randn(6, 6, 8), trace)
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(6))
    assert trace.weights[("audio", 3, "p2")].shape == (2, 3, 3)
    assert trace.experts[("audio", 3, "p2")] == ("cma0", "ua0", "ua1")
    assert list(trace.to_dict()) == ["audio/3/p2"]


def test_mixture_is_the_weighted_sum_of_experts():
    moe = _moe().eval()
    _gates_on(moe)
    x, other = torch.randn(4, 12, 16), torch.randn(4, 6, 8)
    with torch.no_grad():
        out = moe(x, other)
        t = moe.token_map(other)
        expected = sum(out.probs[:, e, None, None] * ex(x, t) for e, ex in enumerate(moe.experts))
    torch.testing.assert_close(out.out, expected)


def test_top_k_equal_to_all_experts_is_the_dense_mixture():
    dense, topk = _moe().eval(), _moe(top_k=4).eval()
    topk.load_state_dict(dense.state_dict())
    _gates_on(dense), _gates_on(topk)
    x, other = torch.randn(3, 12, 16), torch.randn(3, 6, 8)
    torch.testing.assert_close(dense(x, other).out, topk(x, other).out)


def test_top_k_keeps_k_renormalised_weights():
    p = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    torch.testing.assert_close(keep_top_k(p, 2), torch.tensor([[0.0, 0.625, 0.375, 0.0]]))
    with pytest.raises(ValueError, match="top_k=5 exceeds num_experts=4"):
        Router(8, 4, top_k=5)


def test_router_temperature_and_noise():
    r = Router(8, 3, hidden=(16,), temperature=100.0)
    own, other = torch.randn(4, 5, 8), torch.randn(4, 5, 8)
    probs = r.eval()(own, other)
    assert (probs - 1 / 3).abs().max() < 0.02  # a hot softmax is near uniform
    noisy = Router(8, 3, hidden=(16,), noise_std=1.0)
    noisy.train()
    assert not torch.equal(noisy(own, other), noisy(own, other))
    noisy.eval()
    torch.testing.assert_close(noisy(own, other), noisy(own, other))


def test_balance_losses():
    moe = _moe(num_cma=1, num_ua=1)
    uniform = torch.full((4, 2), 0.5)
    assert moe._balance_loss(uniform).item() == pytest.approx(0.0, abs=1e-7)
    skewed = torch.tensor([[0.9, 0.1], [0.7, 0.3]])  # mean (0.8, 0.2)
    kl = 0.5 * (math.log(0.5 / 0.8) + math.log(0.5 / 0.2))
    assert moe._balance_loss(skewed).item() == pytest.approx(kl, rel=1e-5)
    official = _moe(num_cma=1, num_ua=1, balance_loss="official")
    # official target 1 instead of 1/E: -sum log p = E*KL + E*log E, floor 2*log 2 = 1.386 for E = 2
    assert official._balance_loss(uniform).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    assert official._balance_loss(skewed).item() == pytest.approx(2 * kl + 2 * math.log(2), rel=1e-5)


def test_unimodal_expert_ignores_the_other_modality():
    ua = UnimodalAdapter(16, reduction=4, groups=2, self_attention="mha")
    _gates_on(ua)
    ua.eval()
    x = torch.randn(2, 12, 16)
    torch.testing.assert_close(ua(x, torch.randn(2, 12, 16)), ua(x, torch.randn(2, 12, 16)))


@pytest.mark.parametrize("attention", ["none", "mha", "latent", "plain"])
def test_unimodal_attention_stays_within_each_frame(attention):
    """The official MHA attended across the batch (bug 4); ours must not leak between samples."""
    ua = UnimodalAdapter(16, reduction=4, groups=1, self_attention=attention, num_tokens=4)
    _gates_on(ua)
    ua.eval()
    x = torch.randn(3, 12, 16)
    y = ua(x)
    x2 = x.clone()
    x2[0] += 5
    torch.testing.assert_close(ua(x2)[1:], y[1:])


def test_cross_modal_expert_reads_the_other_modality():
    cma = CrossModalAdapter(16, num_tokens=4, reduction=4, groups=1)
    _gates_on(cma)
    x = torch.randn(2, 12, 16)
    assert not torch.allclose(cma(x, torch.randn(2, 12, 16)), cma(x, torch.randn(2, 12, 16)))


@pytest.mark.parametrize("queries, keys", [(40, 4), (4, 40), (9, 9)])
def test_attend_is_scaled_dot_product_attention_in_either_layout(queries, keys):
    """Few keys take the transposed layout, many keys the plain one; values and gradients are SDPA's."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, requires_grad=True) for n in (queries, keys, keys))
    out = attend(q, k, v, scale=0.3)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    for g, r in zip(grads, torch.autograd.grad(ref.square().sum(), (q, k, v))):
        torch.testing.assert_close(g, r)


def test_token_map_interp_is_parameter_free_resampling():
    tm = TokenMap(16, 4, 8, 8, mode="interp", other_grid=(4, 4), grid=(2, 2))
    assert sum(p.numel() for p in tm.parameters()) == 8 * 8 + 8  # only the channel linear
    tm.channels.weight.data = torch.eye(8)
    tm.channels.bias.data.zero_()
    const = torch.ones(1, 16, 8) * 3
    torch.testing.assert_close(tm(const), torch.ones(1, 4, 8) * 3)


@pytest.mark.parametrize("other_grid, grid", [((2, 3), (4, 6)), ((4, 6), (2, 3)), ((3, 3), (3, 5))])
def test_token_map_interp_resamples_then_maps_channels(other_grid, grid):
    """Upsampling maps the channels first (cheaper); either order gives the resampled-then-mapped tokens."""
    torch.manual_seed(0)
    n_o, n_s = math.prod(other_grid), math.prod(grid)
    tm = TokenMap(n_o, n_s, 6, 10, mode="interp", other_grid=other_grid, grid=grid)
    other = torch.randn(2, n_o, 6)
    img = torch.nn.functional.interpolate(other.transpose(1, 2).unflatten(-1, other_grid), size=grid,
                                          mode="bilinear", align_corners=False)
    torch.testing.assert_close(tm(other), tm.channels(img.flatten(-2).transpose(1, 2)))


def test_override_modes():
    p = torch.tensor([[0.4, 0.1, 0.3, 0.2]])
    names = ("cma0", "cma1", "ua0", "ua1")
    torch.testing.assert_close(RouterOverride("cma")(p, names), torch.tensor([[0.8, 0.2, 0.0, 0.0]]))
    torch.testing.assert_close(RouterOverride("ua")(p, names), torch.tensor([[0.0, 0.0, 0.6, 0.4]]))
    torch.testing.assert_close(RouterOverride("knockout", expert="cma0")(p, names),
                               torch.tensor([[0.0, 1 / 6, 0.5, 1 / 3]]))
    torch.testing.assert_close(RouterOverride("pin", weights=(1, 1, 0, 2))(p, names),
                               torch.tensor([[0.25, 0.25, 0.0, 0.5]]))
    with pytest.raises(ValueError, match="pinned 2 weights"):
        RouterOverride("pin", weights=(1, 1))(p, names)
    with pytest.raises(ValueError, match="not one of"):
        RouterOverride("shuffle")


def test_override_applies_inside_the_mixture_only_where_it_matches():
    moe = _moe(num_cma=1, num_ua=1).eval()
    x, other = torch.randn(2, 12, 16), torch.randn(2, 6, 8)
    moe.override = RouterOverride("ua")
    torch.testing.assert_close(moe(x, other).probs, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    moe.override = RouterOverride("ua", layers=(0,))  # this mixture is layer 3
    assert moe(x, other).probs[0, 0] > 0


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_linear_dense_weight_is_the_same_map(groups):
    layer = GroupedLinear(16, 8, groups)
    x = torch.randn(5, 16)
    dense = layer.dense_weight()
    assert dense.shape == (8, 16) and int((dense != 0).sum()) == 8 * 16 // groups  # zero off the diagonal blocks
    torch.testing.assert_close(x @ dense.T, layer(x), atol=1e-6, rtol=0)
