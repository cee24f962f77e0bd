"""The stacked ("batched") experts equal the per-expert loop; zero-weight experts are skipped; training still works."""
import dataclasses

import pytest
import torch

from avmoe.config import AdapterConfig, RouterConfig, get_preset
from avmoe.layers import MoEAdapter, RouterOverride, moe, reuse_folds
from avmoe.model import build_model

TINY = dict(num_latent_tokens=4, reduction=4, groups=1, batch_norm=False, token_map="interp")
PAPER = dataclasses.asdict(get_preset("paper-ave").adapter)  # groups 2, BN on, reduction 8
OFFICIAL = {**PAPER, "attn_scale": False, "ua_activation": False, "num_latent_tokens": 4}  # mixed ReLU, no scaling
CONFIGS = {
    "tiny": TINY,
    "tiny-bn-groups": {**TINY, "batch_norm": True, "groups": 2},
    "paper": {**PAPER, "num_latent_tokens": 4},
    "official": OFFICIAL,
    "groups4-latent-ua": {**TINY, "reduction": 8, "groups": 4, "ua_self_attention": "latent"},
    "mha-ua": {**TINY, "batch_norm": True, "ua_self_attention": "mha"},
    "plain-ua": {**TINY, "ua_self_attention": "plain"},
}


@pytest.fixture(autouse=True)
def stack_any_size(monkeypatch):
    """These tests' token tensors are small; let the stacked path take them (the size rule has its own test)."""
    monkeypatch.setattr(moe, "MIN_STACKED_ELEMENTS", 0)


def _pair(adapter: dict, num_cma: int = 2, num_ua: int = 2, top_k: int = 0) -> tuple[MoEAdapter, MoEAdapter]:
    """A loop mixture and a batched mixture with the same random (non-trivial) weights, in eval mode."""
    built = []
    for impl in ("loop", "batched"):
        cfg = AdapterConfig(**{**adapter, "num_cma": num_cma, "num_ua": num_ua, "experts_impl": impl})
        built.append(MoEAdapter(("visual", 2, "p1"), dim=32, other_dim=24, tokens=12, other_tokens=20,
                                num_cma=num_cma, num_ua=num_ua, adapter=cfg,
                                router=RouterConfig(hidden=(16,), top_k=top_k), grid=(3, 4), other_grid=(4, 5)))
    loop, batched = built
    with torch.no_grad():
        for name, p in loop.named_parameters():
            p.uniform_(0.3, 0.8) if name.endswith("gate") else p.uniform_(-0.5, 0.5)
        for m in loop.modules():
            if isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                m.weight.add_(1.0)
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    batched.load_state_dict(loop.state_dict())
    return loop.eval(), batched.eval()


def _inputs(frames: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(frames, 12, 32), torch.randn(frames, 20, 24)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_equals_loop(name):
    loop, batched = _pair(CONFIGS[name])
    assert batched.stacked and not loop.stacked
    x, other = _inputs()
    with torch.no_grad():
        a, b = loop(x, other), batched(x, other)
    torch.testing.assert_close(b.probs, a.probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.out, a.out, atol=1e-5, rtol=0)
    assert a.out.abs().max() > 0.1  # the experts contribute: the comparison is not of zeros


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_is_the_same_function_in_float64(name):
    """The folding is exact algebra: in float64 the two paths agree to rounding."""
    loop, batched = _pair(CONFIGS[name])
    x, other = (v.double() for v in _inputs())
    with torch.no_grad():
        torch.testing.assert_close(batched.double()(x, other).out, loop.double()(x, other).out, atol=1e-10, rtol=0)


@pytest.mark.parametrize("num_cma,num_ua", [(1, 0), (0, 1), (1, 1), (3, 1)])
def test_batched_equals_loop_for_any_expert_counts(num_cma, num_ua):
    loop, batched = _pair(CONFIGS["paper"], num_cma, num_ua)
    x, other = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(batched(x, other).out, loop(x, other).out, atol=1e-5, rtol=0)


def test_batched_is_differentiable_in_eval_mode():
    loop, batched = _pair(CONFIGS["paper"])
    x, other = _inputs()
    for moe in (loop, batched):
        moe(x, other).out.square().sum().backward()
    for (name, p), q in zip(loop.named_parameters(), batched.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_wide_bottlenecks_keep_the_loop():
    """A bottleneck wider than C/4 (reduction 2, as paper-ms3) is faster in the loop, so it stays there."""
    _, batched = _pair({**TINY, "reduction": 2})
    assert not batched.stacked


def test_small_token_tensors_take_the_loop(monkeypatch):
    """The stacked path runs from `MIN_STACKED_ELEMENTS` token elements up; below, the loop; the result is the same."""
    loop, batched = _pair(TINY)
    stacked_calls = []
    real = moe.stacked_mixture

    def spy(experts, x, *args):
        stacked_calls.append(x.numel())
        return real(experts, x, *args)

    monkeypatch.setattr(moe, "stacked_mixture", spy)
    monkeypatch.setattr(moe, "MIN_STACKED_ELEMENTS", 6 * 12 * 32)
    with torch.no_grad():
        for frames in (6, 5):  # 2304 elements: stacked; 1920: the loop
            x, other = _inputs(frames)
            torch.testing.assert_close(batched(x, other).out, loop(x, other).out, atol=1e-5, rtol=0)
    assert stacked_calls == [6 * 12 * 32]


def test_nonzero_experts():
    probs = torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.2, 0.0, 0.0, 0.8]])
    assert moe.nonzero_experts(probs) == [0, 2, 3]
    assert moe.nonzero_experts(probs[:0]) == [0, 1, 2, 3]  # an empty batch runs every expert (on nothing)


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="experts_impl='vmap'"):
        MoEAdapter(("audio", 0, "p1"), 32, 24, 12, 20, 1, 1, AdapterConfig(**{**TINY, "experts_impl": "vmap"}),
                   RouterConfig())


@pytest.mark.parametrize("impl", ["loop", "batched"])
def test_top_k_skips_zero_weight_experts(impl):
    loop, batched = _pair(CONFIGS["paper"], top_k=2)
    moe = batched if impl == "batched" else loop
    with torch.no_grad():  # the router picks experts 0 and 2 for every frame
        moe.router.mlp[-1].weight.zero_()
        moe.router.mlp[-1].bias.copy_(torch.tensor([5.0, -5.0, 4.0, -5.0]))
    x, other = _inputs()
    with torch.no_grad():
        out = moe(x, other)
        t = moe.token_map(other)
        dense = sum(out.probs[:, e, None, None] * expert(x, t) for e, expert in enumerate(moe.experts))
        assert (out.probs[:, [1, 3]] == 0).all() and (out.probs[:, [0, 2]] > 0).all()
        torch.testing.assert_close(out.out, dense, atol=1e-5, rtol=0)
        for e in (1, 3):  # a skipped expert that ran would turn the output into NaN (0 * NaN)
            for p in moe.experts[e].parameters():
                p.fill_(float("nan"))
        torch.testing.assert_close(moe(x, other).out, out.out)


def test_pinned_zero_weights_skip_experts_in_the_loop():
    loop, _ = _pair(CONFIGS["tiny"])
    calls = []
    for e, expert in enumerate(loop.experts):
        expert.register_forward_hook(lambda *_, e=e: calls.append(e))
    loop.override = RouterOverride("pin", weights=(0.0, 1.0, 0.0, 3.0))
    loop(*_inputs())
    assert calls == [1, 3]


def test_training_works_with_batched_on():
    _, moe = _pair(CONFIGS["paper"])
    moe.train()
    opt = torch.optim.SGD(moe.parameters(), lr=0.1)
    x, other = _inputs()
    before = moe.experts[0].bottleneck.down.weight.detach().clone()
    out = moe(x, other)
    (out.out.square().mean() + out.balance_loss).backward()
    grads = [p.grad for p in moe.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    assert not torch.equal(moe.experts[0].bottleneck.down.weight, before)
    assert moe.experts[0].bottleneck.bn1.num_batches_tracked == 1  # BN ran with batch statistics (the loop)
    moe.eval()
    with torch.no_grad():  # after the step the batched path sees the new weights
        loop = MoEAdapter(moe.key, 32, 24, 12, 20, 2, 2,
                          AdapterConfig(**{**CONFIGS["paper"], "num_cma": 2, "num_ua": 2, "experts_impl": "loop"}),
                          RouterConfig(hidden=(16,)), grid=(3, 4), other_grid=(4, 5))
        loop.load_state_dict(moe.state_dict())
        torch.testing.assert_close(moe(x, other).out, loop.eval()(x, other).out, atol=1e-5, rtol=0)


def test_tiny_model_batched_equals_loop():
    models = [build_model("tiny-ave", **{"adapter.experts_impl": impl}) for impl in ("loop", "batched")]
    with torch.no_grad():
        for name, p in models[0].named_parameters():
            if name.endswith("gate"):
                p.fill_(0.5)
    models[1].load_state_dict(models[0].state_dict())
    batch = {"frames": torch.rand(1, 10, 3, 96, 96), "audio": 0.1 * torch.randn(1, 10, 32000)}
    with torch.inference_mode():
        loop, batched = (m.eval()(batch) for m in models)
    assert all(m.stacked for m in models[1].encoder.adapters.values())
    for key, value in loop.outputs.items():
        torch.testing.assert_close(batched.outputs[key], value, atol=1e-5, rtol=0)
    for key, w in loop.features.trace.weights.items():
        torch.testing.assert_close(batched.features.trace.weights[key], w, atol=1e-5, rtol=0)


def test_folds_are_reused_only_inside_reuse_folds():
    loop, batched = _pair(TINY)
    x, other = _inputs()
    with torch.inference_mode():
        first = batched(x, other).out
        with reuse_folds():
            torch.testing.assert_close(batched(x, other).out, first, atol=0, rtol=0)
            with torch.no_grad():
                batched.experts[1].bottleneck.gate.mul_(-2.0)
            stale = batched(x, other).out  # inside the block the first fold is kept: a weight change is not seen
        fresh = batched(x, other).out  # outside, every call folds afresh
    torch.testing.assert_close(stale, first, atol=0, rtol=0)
    with torch.no_grad():
        loop.experts[1].bottleneck.gate.mul_(-2.0)
        torch.testing.assert_close(fresh, loop(x, other).out, atol=1e-5, rtol=0)
    assert (fresh - first).abs().max() > 0.1
