"""Visual backbones wrapping timm's own Swin-V2 and ViT blocks (no timm code copied)."""
from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from avmoe.backbones.base import Backbone, Stage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ImageInput(Backbone):
    """Shared input handling: bicubic resize of the whole frame to the model size (no crop, aspect not kept, as the
    official loader does), then ImageNet normalisation."""

    modality = "visual"

    def __init__(self, img_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)  # (height, width)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode="bicubic", align_corners=False)
        return (x - self.mean) / self.std


class TimmSwinV2(_ImageInput):
    """timm SwinTransformerV2; its blocks are residual post-norm: x + dp(norm1(attn(x))), x + dp(norm2(mlp(x)))."""

    def __init__(self, model_name: str, img_size: int | tuple[int, int], **kwargs: Any) -> None:
        super().__init__(img_size)
        self.net = timm.create_model(model_name, pretrained=False, num_classes=0, img_size=img_size, **kwargs)
        self.stages = tuple(
            Stage(dim=layer.blocks[0].dim, grid=tuple(layer.output_resolution),
                  tokens=layer.output_resolution[0] * layer.output_resolution[1], depth=len(layer.blocks))
            for layer in self.net.layers)

    def weights_module(self) -> nn.Module:
        return self.net

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.patch_embed(x).flatten(1, 2)  # patch_embed gives [B, H, W, C]

    def enter_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        prev = self.stages[stage - 1].grid if stage else self.net.patch_embed.grid_size
        x = self.net.layers[stage].downsample(x.unflatten(1, tuple(prev)))
        return x.flatten(1, 2)

    def attn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.net.layers[stage].blocks[block]
        y = blk._attn(x.unflatten(1, self.stages[stage].grid))  # window attention on [B, H, W, C]
        return blk.drop_path1(blk.norm1(y)).flatten(1, 2)

    def ffn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.net.layers[stage].blocks[block]
        return blk.drop_path2(blk.norm2(blk.mlp(x)))

    def stage_output(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        # the official model applies swin.norm to the last stage before pooling and before the AVS decoder
        return self.net.norm(x) if stage == len(self.stages) - 1 else x


class TimmViT(_ImageInput):
    """timm VisionTransformer as one stage of pre-norm blocks: x + ls1(attn(norm1(x))), x + ls2(mlp(norm2(x)))."""

    def __init__(self, model_name: str, img_size: int | tuple[int, int], in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__(img_size)
        self.net = timm.create_model(model_name, pretrained=False, num_classes=0, img_size=img_size,
                                     in_chans=in_chans, **kwargs)
        grid = tuple(self.net.patch_embed.grid_size)
        self.stages = (Stage(dim=self.net.embed_dim, grid=grid,
                             tokens=grid[0] * grid[1] + self.net.num_prefix_tokens, depth=len(self.net.blocks)),)

    def weights_module(self) -> nn.Module:
        return self.net

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.norm_pre(self.net._pos_embed(self.net.patch_embed(x)))

    def enter_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        return x

    def attn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.net.blocks[block]
        return blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))

    def ffn_branch(self, stage: int, block: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.net.blocks[block]
        return blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))

    def stage_output(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        return self.net.norm(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.net.num_prefix_tokens:].mean(dim=1)
