"""AVQA head: the AVST spatio-temporal grounding network (official `AVQA_Fusion_Net`, reference section 5.4).

Shapes: B batch, T segments, P = h*w positions of the last visual stage, D the head width (official 1536 = the
Swin-V2-L width; here the visual tokens are first mapped to D), L question length, A answers.

The match head learns whether a clip's audio and frames belong together. Official negatives are the frames of other
videos, run through the frozen backbone without adapters and without gradient; here they are the last-stage maps of
the previous clip in the batch (`roll(1)`), detached, so the one cross-sample interaction is this documented
in-batch negative, and it needs B >= 2.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from avmoe.heads.base import Head, check_classes, label
from avmoe.model import AVMoEFeatures

MATCH_WEIGHT = 0.5  # official: CE(qa) + 0.5 CE(match)
TOP_K = 5


class QuestionEncoder(nn.Module):
    """Embedding -> tanh -> 1-layer LSTM -> tanh([h; c]) -> linear (official `QstEncoder`).

    Token 0 is <pad>. The LSTM stops at each question's last non-pad token (the official runs over the trailing pads).

    Args:
        vocab: question vocabulary size, <pad> included.
        dim: D (word embedding, hidden and output width, as the official).
    """

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.fc = nn.Linear(2 * dim, dim)

    def forward(self, question: torch.Tensor) -> torch.Tensor:
        """question [B, L] token ids -> [B, D]."""
        check_classes(question, self.vocab, "question token")
        positions = torch.arange(1, question.shape[1] + 1, device=question.device)
        lengths = ((question != 0) * positions).amax(dim=1).clamp(min=1)  # up to the last non-pad token
        words = torch.tanh(self.embed(question))  # [B, L, D]
        packed = pack_padded_sequence(words, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, cell) = self.lstm(packed)  # [1, B, D] each
        return self.fc(torch.tanh(torch.cat([hidden[-1], cell[-1]], dim=-1)))


class QuestionAttention(nn.Module):
    """The question attends over a sequence, then a residual FFN and LayerNorm (official attn_v / attn_a blocks).

    As the official, the residual starts from the attention output, not from the question.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, D], seq [B, T, D] -> attended [B, D] and the head-averaged weights [B, T]."""
        out, weights = self.attn(query[:, None], seq, seq)  # [B, 1, D], [B, 1, T]
        out = out[:, 0]
        return self.norm(out + self.drop(self.ffn(out))), weights[:, 0]


class AVQAHead(Head):
    """Audio-guided spatial grounding, question-guided temporal attention, fusion with the question, answer logits.

    Outputs: "answer_logits" [B, A]; "match_pos" [B, T, 2] match logits of each segment's audio with its own frame
    (class 1 = match) and, when B > 1, "match_neg" [B, T, 2] with the previous clip's frame; "grounding" [B, T, h, w]
    the audio's spatial attention; "visual_attention", "audio_attention" [B, T] the question's temporal attention.

    Args:
        visual_in: channels of the last visual stage.
        audio_in: channels of `feats.audio`.
        num_answers: A (MUSIC-AVQA 42).
        question_vocab: question vocabulary size.
        dim: D.
    """

    task = "avqa"

    def __init__(self, visual_in: int, audio_in: int, num_answers: int, question_vocab: int, dim: int = 512) -> None:
        super().__init__()
        heads = next(h for h in (4, 2, 1) if dim % h == 0)  # official: 4
        self.question = QuestionEncoder(question_vocab, dim)
        self.fc_v = nn.Linear(visual_in, dim)  # the official works at the visual width and has no such map
        self.fc_a = nn.Sequential(nn.Linear(audio_in, dim), nn.ReLU(), nn.Linear(dim, dim))  # official fc_a1, fc_a2
        self.fc_gl = nn.Linear(2 * dim, dim)
        self.match = nn.Sequential(  # official fc1..fc4: 3072 -> 512 -> 256 -> 128 -> 2
            nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim // 2), nn.ReLU(),
            nn.Linear(dim // 2, dim // 4), nn.ReLU(), nn.Linear(dim // 4, 2))
        self.attend_visual = QuestionAttention(dim, heads)
        self.attend_audio = QuestionAttention(dim, heads)
        self.fc_fusion = nn.Linear(2 * dim, dim)
        self.fc_ans = nn.Linear(dim, num_answers)

    def forward(self, feats: AVMoEFeatures, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "question" not in batch:
            raise ValueError("the AVQA head needs batch['question'] (token ids [B, L]) at inference too")
        question = self.question(batch["question"].to(feats.audio.device))  # [B, D]
        audio = self.fc_a(feats.audio)  # [B, T, D]
        visual_map = feats.visual_stages[-1]  # [B, T, Cv, h, w]
        visual, grounding = self._ground(visual_map, audio)  # [B, T, D], [B, T, P]
        out = {"match_pos": self.match(torch.cat([audio, visual], dim=-1))}
        if visual_map.shape[0] > 1:
            negative, _ = self._ground(visual_map.roll(1, dims=0).detach(), audio)
            out["match_neg"] = self.match(torch.cat([audio, negative], dim=-1))
        v_att, v_weights = self.attend_visual(question, visual)
        a_att, a_weights = self.attend_audio(question, audio)
        fused = torch.tanh(torch.cat([a_att + audio.mean(dim=1), v_att + visual.mean(dim=1)], dim=-1))
        combined = torch.tanh(self.fc_fusion(fused) * question)
        out.update(answer_logits=self.fc_ans(combined), grounding=grounding.unflatten(-1, visual_map.shape[-2:]),
                   visual_attention=v_weights, audio_attention=a_weights)
        return out

    def _ground(self, visual_map: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine attention of each segment's audio over its frame's positions; the attended (unit-norm) visual
        feature joined with the frame's mean feature -> [B, T, D], and the attention [B, T, P]."""
        tokens = self.fc_v(visual_map.flatten(-2).transpose(-1, -2))  # [B, T, P, D]
        unit = F.normalize(tokens, dim=-1)
        attention = torch.softmax((unit @ F.normalize(audio, dim=-1)[..., None]).squeeze(-1), dim=-1)  # [B, T, P]
        grounded = (attention[..., None] * unit).sum(dim=2)  # [B, T, D]
        return self.fc_gl(torch.tanh(torch.cat([tokens.mean(dim=2), grounded], dim=-1))), attention

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """CE(answer) + 0.5 CE(match) over all segments, own frames = class 1 and the in-batch negatives = class 0.

        With B == 1 there is no negative: the match term is skipped (no "match" key) and the loss is CE(answer).
        """
        logits = outputs["answer_logits"].float()
        answer = label(batch, "answer", self.task).to(logits.device)
        check_classes(answer, logits.shape[-1], "answer")
        losses = {"answer": F.cross_entropy(logits, answer)}
        total = losses["answer"]
        if "match_neg" in outputs:
            pos, neg = outputs["match_pos"].float().flatten(0, 1), outputs["match_neg"].float().flatten(0, 1)
            target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long().to(logits.device)
            losses["match"] = F.cross_entropy(torch.cat([pos, neg]), target)
            total = total + MATCH_WEIGHT * losses["match"]
        return {"loss": total, **losses}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """"answer" [B] the top-1 answer id; "top5" [B, k] answer ids and "top5_probs" [B, k] their softmax
        probabilities, best first (k = min(5, A))."""
        probs = torch.softmax(outputs["answer_logits"].float(), dim=-1)
        top = probs.topk(min(TOP_K, probs.shape[-1]), dim=-1)
        return {"answer": top.indices[:, 0], "top5": top.indices, "top5_probs": top.values}
