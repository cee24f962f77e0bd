"""With the options that reproduce the official code, our MoEAdapter gives the official adapter's numbers."""
import json

import torch
from safetensors.torch import load_file

from avmoe.checkpoint import convert_official_moe_adapter
from avmoe.config import AdapterConfig, RouterConfig
from avmoe.layers import MoEAdapter

OFFICIAL_AVE = AdapterConfig(num_cma=1, num_ua=1, num_latent_tokens=4, reduction=8, groups=2, batch_norm=True,
                             attn_scale=False, ua_activation=False, latent_init="uniform", token_map="linear")


def _tokens(t: torch.Tensor) -> torch.Tensor:
    return t[..., 0].transpose(1, 2)  # official [B, C, N, 1] -> ours [B, N, C]


def test_matches_official_moe_adapter(fixtures):
    data = load_file(str(fixtures / "golden" / "moe_adapter_official_ave.safetensors"))
    meta = json.loads((fixtures / "golden" / "moe_adapter_official_ave.json").read_text())
    assert "1e-5" in meta["tolerance"]
    params = {k[len("param."):]: v for k, v in data.items() if k.startswith("param.")}
    moe = MoEAdapter(("visual", 0, "p1"), dim=32, other_dim=24, tokens=16, other_tokens=20, num_cma=1, num_ua=1,
                     adapter=OFFICIAL_AVE, router=RouterConfig())
    result = moe.load_state_dict(convert_official_moe_adapter(params, num_cma=1), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    moe.eval()
    x, other = _tokens(data["input.x"]), _tokens(data["input.other"])
    with torch.no_grad():
        out = moe(x, other)
        projected = moe.token_map(other)
        experts = [e(x, projected) for e in moe.experts]
    torch.testing.assert_close(out.probs, data["output.router_probs"], atol=1e-5, rtol=0)
    torch.testing.assert_close(experts[0], _tokens(data["output.expert0_cma"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(experts[1], _tokens(data["output.expert1_ua"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.out, _tokens(data["output.y"]), atol=1e-5, rtol=0)


def test_fixed_options_change_the_result(fixtures):
    """The bug fixes are real options: turning them on moves the output away from the official numbers."""
    data = load_file(str(fixtures / "golden" / "moe_adapter_official_ave.safetensors"))
    params = {k[len("param."):]: v for k, v in data.items() if k.startswith("param.")}
    fixed = AdapterConfig(**{**OFFICIAL_AVE.__dict__, "attn_scale": True, "ua_activation": True})
    moe = MoEAdapter(("visual", 0, "p1"), 32, 24, 16, 20, 1, 1, fixed, RouterConfig())
    moe.load_state_dict(convert_official_moe_adapter(params, num_cma=1))
    moe.eval()
    with torch.no_grad():
        y = moe(_tokens(data["input.x"]), _tokens(data["input.other"])).out
    assert (y - _tokens(data["output.y"])).abs().max() > 1e-3
