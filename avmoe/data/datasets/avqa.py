"""MUSIC-AVQA (Li et al., CVPR 2022): questions about 60-s music videos, and the question tokenizer AVQA heads use.

The release's json is a list of questions: `video_id`, `question_id`, `type` (a JSON string such as
'["Audio-Visual", "Existential"]'), `question_content` with slots (`<Object>`, `<LR>`, `<TH>`) filled in order from
`templ_values` (also a JSON string), `question_deleted`, and the answer under the misspelt key `anser`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avmoe.data.datasets.base import DatasetLayoutError, MediaLayout, VideoOrFramesDataset, read_text

log = logging.getLogger(__name__)

PAD = "<pad>"
MAX_LEN = 14  # the official loader pads every question to 14 tokens
SEGMENTS = 10
_QUESTION_MARKS = "?？"  # 31 of the first 300 val questions end in a full-width mark
JSON_DIRS = ("json_update", "json", ".")
MEDIA = MediaLayout(video_dirs=("MUSIC-AVQA-videos-Real", "MUSIC-AVQA-videos-Synthetic", "videos"))
LAYOUT = f"""  <root>/json_update/avqa-<split>.json   (or <root>/json/ or <root>/; split = train, val, test)
  beside it, optional: ans_vocab.txt, ques_vocab.txt   (else both are built from avqa-train.json, as officially)
{MEDIA.describe()}
  where <key> is the video_id (e.g. 00000028); 10 of the video's seconds are taken, spread as the official loader"""


class QuestionTokenizer:
    """Maps a question to `max_len` word ids, padded with `<pad>` (id 0), as the official MUSIC-AVQA loader.

    Tokens are the words split on single spaces after removing the final question mark; slot values are single
    words (`acoustic_guitar`), so a filled question tokenizes exactly as the official loader's.
    """

    def __init__(self, vocab: list[str], max_len: int = MAX_LEN) -> None:
        if not vocab or vocab[0] != PAD:
            raise ValueError(f"the vocabulary must start with {PAD!r} (id 0), got {vocab[:3]}")
        repeated = sorted({w for w in vocab if vocab.count(w) > 1})
        if repeated:
            raise ValueError(f"the vocabulary repeats {repeated[:5]}; remove the repeats (load_vocab does)")
        if max_len < 1:
            raise ValueError(f"max_len={max_len} must be at least 1")
        self.vocab = list(vocab)
        self.max_len = max_len
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_questions(cls, questions: Iterable[str], max_len: int = MAX_LEN) -> QuestionTokenizer:
        """The official vocabulary: `<pad>` then every word in order of first appearance (train questions)."""
        vocab = [PAD]
        seen = {PAD}
        for question in questions:
            for word in tokenize(question):
                if word not in seen:
                    seen.add(word)
                    vocab.append(word)
        return cls(vocab, max_len)

    def __len__(self) -> int:
        return len(self.vocab)

    def _known(self, word: str) -> str:
        """The word, or its lower-case or capitalised form when only that is in the vocabulary (typed questions)."""
        return next((w for w in (word, word.lower(), word.capitalize()) if w in self.index), word)

    def encode(self, question: str) -> torch.Tensor:
        """LongTensor [max_len] of word ids. Unknown words raise ValueError; longer questions are cut (logged)."""
        words = [self._known(w) for w in tokenize(question)]
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ValueError(f"{unknown} in {question!r} are not in the question vocabulary ({len(self)} words); "
                             f"rephrase with known words")
        if len(words) > self.max_len:
            log.warning("question %r has %d words; keeping the first %d", question, len(words), self.max_len)
        ids = [self.index[w] for w in words[: self.max_len]]
        return torch.tensor(ids + [0] * (self.max_len - len(ids)), dtype=torch.long)


def tokenize(question: str) -> list[str]:
    """Words of a question: trailing spaces and one final question mark removed, then split on single spaces."""
    text = question.rstrip()
    if text and text[-1] in _QUESTION_MARKS:
        text = text[:-1]
    return text.split(" ")


def fill_template(content: str, values: list[str]) -> str:
    """The question with each slot word (one containing `<`, e.g. `<Object>`) replaced, in order, by `values`.

    Slots are found as the official loader does, word by word after removing the final question mark, which is
    kept; trailing spaces are dropped.
    """
    text = content.rstrip()
    mark = text[-1] if text and text[-1] in _QUESTION_MARKS else ""
    words = tokenize(text)
    slots = [i for i, w in enumerate(words) if "<" in w]
    if len(slots) != len(values):
        raise ValueError(f"{content!r} has {len(slots)} slot(s) but templ_values gives {len(values)}: {values}")
    for i, value in zip(slots, values, strict=True):
        words[i] = value
    return " ".join(words) + mark


@dataclass(frozen=True)
class AVQAQuestion:
    """One question of the json, with its slots filled."""

    video_id: str
    question_id: int
    question: str
    answer: str
    type: tuple[str, str]  # (modality, kind), e.g. ("Audio-Visual", "Existential")
    values: tuple[str, ...]

    def as_label(self) -> dict[str, Any]:
        """The Clip "qa" entry of this question."""
        return {"question": self.question, "answer": self.answer, "type": list(self.type),
                "values": list(self.values)}


def parse_questions(text: str, source: str = "<text>") -> list[AVQAQuestion]:
    """Questions of a MUSIC-AVQA json file, in file order."""
    questions = []
    for number, q in enumerate(json.loads(text)):
        try:
            values = json.loads(q["templ_values"])
            kind = json.loads(q["type"])
            questions.append(AVQAQuestion(str(q["video_id"]), int(q["question_id"]),
                                          fill_template(q["question_content"], values), q["anser"],
                                          (kind[0], kind[1]), tuple(values)))
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{source} question #{number} ({q!r:.120}) is malformed: {err!r}; expected keys "
                             f"video_id, question_id, type, question_content, templ_values, anser") from err
    return questions


def load_vocab(path: Path) -> list[str]:
    """Words of a vocabulary file, one a line, keeping first occurrences: the released ques_vocab.txt lists its
    93 words twice, and reading it plainly would give ids 93-185 that the official Embedding(93) cannot take."""
    words = [w for w in path.read_text(encoding="utf-8").splitlines() if w]
    unique = list(dict.fromkeys(words))
    if len(unique) != len(words):
        log.info("%s repeats entries: %d lines, %d distinct words (first occurrences kept)", path, len(words),
                 len(unique))
    return unique


class AVQADataset(VideoOrFramesDataset):
    """MUSIC-AVQA questions, one item per question, as Clips of 10 segments with labels {"qa": [one dict]}.

    Attributes: `tokenizer` (QuestionTokenizer over the question vocabulary, also `question_vocab`) and `answers`
    (the answer vocabulary, also meta "classes"; an answer's class index is its position).

    Args:
        root: the MUSIC-AVQA folder (see LAYOUT).
        split: "train", "val" or "test".
        frame_size: side of the square output frames.
        sample_rate: output audio rate.
        media: "auto", "video" or "frames" (see VideoOrFramesDataset).
        max_len: question length in tokens.
    """

    name = "avqa"
    segments = SEGMENTS
    layout = LAYOUT
    media_layout = MEDIA
    spread = True  # 10 seconds spread over the 60-s videos, as the official linspace frame choice

    def __init__(self, root: str | Path, split: str = "train", frame_size: int = 224, sample_rate: int = 32000,
                 media: str = "auto", max_len: int = MAX_LEN) -> None:
        self.max_len = max_len
        super().__init__(root, split, frame_size, sample_rate, media)

    @property
    def question_vocab(self) -> list[str]:
        """The question words in id order, `<pad>` first."""
        return self.tokenizer.vocab

    def _json(self, split: str) -> Path | None:
        return next((p for d in JSON_DIRS if (p := self.root / d / f"avqa-{split}.json").is_file()), None)

    def _read_items(self) -> list[AVQAQuestion]:
        path = self._json(self.split)
        if path is None:
            raise DatasetLayoutError(f"MUSIC-AVQA {self.split} questions not found: avqa-{self.split}.json in "
                                     f"{', '.join(str(self.root / d) for d in JSON_DIRS)}\nExpected layout:\n{LAYOUT}")
        questions = parse_questions(read_text(path, "MUSIC-AVQA questions", LAYOUT), str(path))
        self.tokenizer, self.answers = self._vocabularies(path, questions)
        self.classes = self.answers
        unknown = sorted({q.answer for q in questions} - set(self.answers))
        if unknown:
            log.warning("%s has answers outside the %d-answer vocabulary: %s", path, len(self.answers), unknown)
        return questions

    def _vocabularies(self, path: Path, questions: list[AVQAQuestion]) -> tuple[QuestionTokenizer, tuple[str, ...]]:
        """The question tokenizer and answer list from ques_vocab.txt / ans_vocab.txt beside the json; one that is
        missing is built from the train questions as the official loader builds both (order of first appearance)."""
        ques_file, ans_file = path.parent / "ques_vocab.txt", path.parent / "ans_vocab.txt"
        train: list[AVQAQuestion] = []
        if not (ques_file.is_file() and ans_file.is_file()):
            train_path = self._json("train")
            if train_path is None:
                raise DatasetLayoutError(f"MUSIC-AVQA vocabularies not found: {ques_file} and {ans_file}, "
                                         f"or avqa-train.json to build them from\nExpected layout:\n{LAYOUT}")
            train = questions if train_path == path else parse_questions(
                read_text(train_path, "MUSIC-AVQA questions", LAYOUT), str(train_path))
        if ques_file.is_file():
            tokenizer = QuestionTokenizer(load_vocab(ques_file), self.max_len)
        else:
            tokenizer = QuestionTokenizer.from_questions((q.question for q in train), self.max_len)
        answers = tuple(load_vocab(ans_file)) if ans_file.is_file() else tuple(dict.fromkeys(q.answer for q in train))
        return tokenizer, answers

    def _labels(self, item: AVQAQuestion) -> dict[str, Any]:
        return {"qa": [item.as_label()]}

    def _meta(self, item: AVQAQuestion) -> dict[str, Any]:
        return {"video_id": item.video_id, "question_id": item.question_id}
