"""Model directories (safetensors weights + the JSON config they were built from) and official-weight loaders.

Nothing here unpickles arbitrary objects: weights come from safetensors files, or from `.ckpt`/`.pth` files read with
`torch.load(weights_only=True)`, which refuses any pickled object that is not a tensor container.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from avmoe.config import ModelConfig, apply_overrides

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "card.json"


class CheckpointError(ValueError):
    """A model directory or weights file that cannot be loaded; the message says which file and why."""


@dataclass
class LoadReport:
    """What a non-strict load matched: keys the model wanted but the file lacked, and the reverse."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        return (f"loaded {self.loaded} tensors; missing {len(self.missing)}: {few(self.missing) or '-'}; "
                f"unexpected {len(self.unexpected)}: {few(self.unexpected) or '-'}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or from a torch checkpoint read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError (or others) for anything but plain tensor containers
        raise CheckpointError(f"refusing to load {path}: not a plain tensor checkpoint "
                              f"(weights_only=True rejected it: {str(err).splitlines()[0]})") from err
    for key in ("state_dict", "model", "module"):  # Lightning (.ckpt), timm and DDP containers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as err:  # a cut or damaged file: the library's own error names no file
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); it is probably truncated or "
                              f"damaged: download or save it again") from err


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> LoadReport:
    """Load official or converted backbone weights (HTS-AT .ckpt, timm Swin-V2/ViT files, our safetensors).

    The backbone's `convert_official_keys` (if it has one) maps official names (HTS-AT strips `sed_model.`);
    shapes must match exactly. Missing and unexpected keys are logged and returned; a file that matches nothing
    raises, since it is surely the wrong file.
    """
    state = read_state_dict(path)
    convert = getattr(backbone, "convert_official_keys", None)
    if convert is not None:
        state = convert(state)
    target = backbone.weights_module() if hasattr(backbone, "weights_module") else backbone
    own = target.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {'; '.join(wrong[:3])}")
    result = target.load_state_dict(state, strict=False)
    report = LoadReport(len(state) - len(result.unexpected_keys), list(result.missing_keys),
                        list(result.unexpected_keys))
    if report.loaded == 0:
        raise CheckpointError(f"{path} matches none of the backbone's keys: {report}")
    log.info("backbone weights %s: %s", path, report)
    return report


def _backbone_keys(cfg: ModelConfig) -> tuple[str, ...]:
    """Prefixes of backbone tensors that live in their own shared weights files rather than in the model file."""
    return tuple(f"encoder.{s}." for s in ("visual", "audio") if getattr(cfg, s).weights)


def save(model: nn.Module, directory: str | Path, card: Optional[dict[str, Any]] = None,
         half: bool = False) -> Path:
    """Write `config.json` and `model.safetensors` (and `card.json` if given) into `directory`.

    Backbones whose config names a weights file are not copied (they are shared by all task models); relative
    weights paths in the config are relative to the directory. `half=True` stores float tensors as fp16.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = model.cfg
    skip = _backbone_keys(cfg)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith(skip)}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(directory / WEIGHTS), metadata={"format": "avmoe", "task": cfg.task})
    cfg.save(directory / CONFIG)
    if card is not None:
        (directory / CARD).write_text(json.dumps(card, indent=2))
    return directory


def load(directory: str | Path, device: str | torch.device = "cpu", **overrides: Any) -> nn.Module:
    """Build the model a directory's config describes and load its weights strictly.

    `overrides` (dotted keys, e.g. `**{"router.top_k": 1}` for inference top-k) change the config before the
    build; one that changes the weights' shapes fails the strict load.
    """
    from avmoe.model import TaskModel

    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} is not a model directory: {name} is missing")
    cfg = ModelConfig.load(directory / CONFIG)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    for stream in ("visual", "audio"):
        bcfg = getattr(cfg, stream)
        if bcfg.weights and not Path(bcfg.weights).is_absolute():
            bcfg.weights = str((directory / bcfg.weights).resolve())
    model = TaskModel(cfg)
    state = _load_safetensors(directory / WEIGHTS)
    own = model.state_dict()
    skip = _backbone_keys(cfg)
    expected = {k for k in own if not k.startswith(skip)}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in expected & set(state) if state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{directory / WEIGHTS} does not fit its config: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, wrong shape {wrong[:3]}; restore the config.json "
                              f"saved with these weights, or save the model again with avmoe.save")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
    return model.to(device).eval()


def convert_official_moe_adapter(state: dict[str, torch.Tensor], num_cma: int) -> dict[str, torch.Tensor]:
    """Official `MoEAdapter` keys (conv_adapter, fc, router, multimodal_experts, singlemodal_experts) -> ours."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        new = re.sub(r"^conv_adapter\.", "token_map.tokens.", new)
        new = re.sub(r"^fc\.", "token_map.channels.", new)
        new = re.sub(r"^router\.", "router.mlp.", new)
        new = re.sub(r"^singlemodal_experts\.(\d+)\.", lambda m: f"experts.{num_cma + int(m.group(1))}.", new)
        new = re.sub(r"^multimodal_experts\.", "experts.", new)
        new = re.sub(r"\.my_tokens$", ".exchange.tokens", new)
        new = re.sub(r"\.(gate|ln_before|ln_post|bn1|bn2)(\.|$)", r".bottleneck.\1\2", new)
        new = re.sub(r"\.gate_av$", ".exchange.gate", new)
        new = re.sub(r"\.down_sampler\.", ".bottleneck.down.", new)
        new = re.sub(r"\.up_sampler\.", ".bottleneck.up.", new)
        if new.endswith("gate"):
            value = value.reshape(())
        elif value.ndim == 4 and value.shape[-2:] == (1, 1):  # 1x1 Conv2d -> (grouped) linear
            value = value[..., 0, 0]
        out[new] = value
    return out
