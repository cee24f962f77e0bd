"""build_head: every preset gets its task's head, sized from the config and the backbones' stages."""
from __future__ import annotations

import pytest
import torch

from avmoe.config import get_preset, list_presets
from avmoe.heads import AVEHead, AVQAHead, AVSHead, AVVPHead, build_head
from tests.heads.head_fixtures import PAPER_AUDIO, PAPER_VISUAL, TINY_AUDIO, TINY_VISUAL

HEADS = {"ave": AVEHead, "avvp": AVVPHead, "s4": AVSHead, "ms3": AVSHead, "avqa": AVQAHead}


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_builds(preset: str) -> None:
    cfg = get_preset(preset)
    stages = (PAPER_VISUAL, PAPER_AUDIO) if preset.startswith("paper") else (TINY_VISUAL, TINY_AUDIO)
    with torch.device("meta"):  # sizes only, no memory
        head = build_head(cfg, *stages)
    assert type(head) is HEADS[cfg.task] and head.task == cfg.task


def test_widths_come_from_the_config() -> None:
    cfg = get_preset("tiny-ave", **{"head.dim": 32, "head.num_classes": 5})
    head = build_head(cfg, TINY_VISUAL, TINY_AUDIO)
    assert head.a_fc.in_features == TINY_AUDIO[-1].dim and head.a_fc.out_features == 16
    assert head.temporal.encoder.v_fc[0].in_features == TINY_VISUAL[-1].dim
    assert head.event_classifier.out_features == 5
    avqa = build_head(get_preset("tiny-avqa", **{"head.dim": 30}), TINY_VISUAL, TINY_AUDIO)
    assert avqa.attend_visual.attn.num_heads == 2  # 4 heads do not divide 30
    assert avqa.question.embed.num_embeddings == 93 and avqa.fc_ans.out_features == 42
