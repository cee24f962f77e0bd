"""MUSIC-AVQA reader and QuestionTokenizer on real questions and the released vocabularies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avmoe.data.datasets import AVQADataset, DatasetLayoutError, QuestionTokenizer, open_dataset
from avmoe.data.datasets.avqa import fill_template, load_vocab, parse_questions, tokenize

from dataset_media import FIXTURES, amp, copy_fixture, grey, level, make_frames, make_npy, make_video

QUESTIONS = FIXTURES / "MUSIC-AVQA" / "avqa-val.json"


@pytest.fixture
def avqa_root(tmp_path: Path) -> Path:
    root = tmp_path / "MUSIC-AVQA"
    copy_fixture("MUSIC-AVQA", root / "json_update")
    (root / "MUSIC-AVQA-videos-Real").mkdir()
    return root


def test_questions_are_filled_and_typed() -> None:
    questions = parse_questions(QUESTIONS.read_text())
    assert [q.question for q in questions] == [
        "Is the ukulele in the video always playing?",
        "Is the guzheng louder than the piano?",
        "What is the instrument on the left of electric_bass?",
        "How many sounding banjo in the video？",  # full-width mark, as in the release
        "What is the first instrument that comes in?",
        "Are there violin and pipa sound?",  # the release has a trailing space here
    ]
    q = questions[2]
    assert (q.video_id, q.question_id, q.answer, q.type, q.values) == (
        "00000288", 11, "saxophone", ("Visual", "Location"), ("left", "electric_bass"))
    assert q.as_label() == {"question": q.question, "answer": "saxophone", "type": ["Visual", "Location"],
                            "values": ["left", "electric_bass"]}


def test_fill_template_checks_the_slot_count() -> None:
    assert fill_template("Is the <Object> louder than the <Object>?", ["a", "b"]) == "Is the a louder than the b?"
    with pytest.raises(ValueError, match="has 2 slot\\(s\\) but templ_values gives 1"):
        fill_template("Is the <Object> louder than the <Object>?", ["a"])


def test_released_vocab_is_deduplicated() -> None:
    path = FIXTURES / "MUSIC-AVQA" / "ques_vocab.txt"
    assert len(path.read_text().splitlines()) == 186  # the release lists its 93 words twice
    vocab = load_vocab(path)
    assert len(vocab) == 93 and vocab[:3] == ["<pad>", "How", "many"] and vocab[-1] == "throughout"


def test_encode_with_the_released_vocab() -> None:
    tok = QuestionTokenizer(load_vocab(FIXTURES / "MUSIC-AVQA" / "ques_vocab.txt"))
    ids = tok.encode("Is the ukulele in the video always playing?")
    # Is=24 the=7 ukulele=59 in=6 video=8 always=33 playing=34 in ques_vocab.txt, then <pad>=0 up to 14.
    assert ids.dtype == torch.long and ids.tolist() == [24, 7, 59, 6, 7, 8, 33, 34] + [0] * 6
    assert tok.encode("How many sounding banjo in the video？").tolist() == [1, 2, 5, 60, 6, 7, 8] + [0] * 7
    with pytest.raises(ValueError, match=r"\['ukelele'\] in 'Is the ukelele playing\?' are not in the question"):
        tok.encode("Is the ukelele playing?")


def test_from_questions_is_first_appearance_order() -> None:
    tok = QuestionTokenizer.from_questions(["Is the cello playing?", "Is the piano louder than the cello？"], 4)
    assert tok.vocab == ["<pad>", "Is", "the", "cello", "playing", "piano", "louder", "than"]
    assert tok.encode("Is the cello playing?").tolist() == [1, 2, 3, 4]
    assert tok.encode("Is the piano louder than the cello?").tolist() == [1, 2, 5, 6]  # cut to max_len
    assert tokenize("Is there a voiceover? ") == ["Is", "there", "a", "voiceover"]


def test_tokenizer_rejects_bad_vocabularies() -> None:
    with pytest.raises(ValueError, match="must start with '<pad>'"):
        QuestionTokenizer(["How", "many"])
    with pytest.raises(ValueError, match=r"repeats \['How'\]"):
        QuestionTokenizer(["<pad>", "How", "How"])


def test_dataset_is_one_item_per_question(avqa_root: Path) -> None:
    make_video(avqa_root / "MUSIC-AVQA-videos-Real" / "00000108.mp4", seconds=20, size=16, fps=1)
    ds = AVQADataset(avqa_root, "val", frame_size=16, sample_rate=16000)
    assert len(ds) == 6 and len(ds.tokenizer) == 93 and len(ds.answers) == 42
    assert ds.question_vocab[:3] == ["<pad>", "How", "many"]
    clip = ds[1]
    assert clip.labels["qa"] == [{"question": "Is the guzheng louder than the piano?", "answer": "yes",
                                  "type": ["Audio", "Comparative"], "values": ["guzheng", "piano"]}]
    assert clip.meta["video_id"] == "00000108" and clip.meta["question_id"] == 10
    assert clip.meta["classes"] == list(ds.answers) and ds.answers[7] == "yes"
    # 10 of the 20 seconds, as the official linspace(1, 20, 10): seconds 0 2 4 6 8 10 12 14 16 19.
    chosen = [0, 2, 4, 6, 8, 10, 12, 14, 16, 19]
    assert clip.frames.shape == (10, 3, 16, 16) and clip.audio.shape == (10, 16000)
    assert grey(clip.frames) == pytest.approx([level(k) for k in chosen], abs=3)
    rms = clip.audio.pow(2).mean(dim=1).sqrt()
    assert rms.tolist() == pytest.approx([amp(k) / 2**0.5 for k in chosen], rel=0.15)


def test_extracted_60s_frames_and_audio(avqa_root: Path) -> None:
    make_frames(avqa_root / "video_frames" / "00000028", 60, pattern="{:04d}.jpg")
    make_npy(avqa_root / "wave" / "00000028.npy", seconds=60)
    clip = open_dataset("avqa", avqa_root, "val", frame_size=8, media="frames")[0]
    picked = [1, 7, 14, 20, 27, 33, 40, 46, 53, 60]  # linspace(1, 60, 10) over 1-fps frames
    assert grey(clip.frames) == pytest.approx([level(j) for j in picked], abs=1)
    assert clip.audio[:, 0].tolist() == pytest.approx([amp(j - 1) for j in picked])


def test_vocabularies_built_from_train_when_files_are_absent(avqa_root: Path) -> None:
    folder = avqa_root / "json_update"
    (folder / "ques_vocab.txt").unlink()
    (folder / "ans_vocab.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"vocabularies not found: .*ques_vocab\.txt .*avqa-train\.json"):
        AVQADataset(avqa_root, "val")
    (folder / "avqa-train.json").write_text(QUESTIONS.read_text())
    ds = AVQADataset(avqa_root, "val")
    assert ds.answers == ("yes", "saxophone", "one", "acoustic_guitar", "no")
    assert ds.tokenizer.vocab[:6] == ["<pad>", "Is", "the", "ukulele", "in", "video"]


def test_missing_and_malformed_json(avqa_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"MUSIC-AVQA test questions not found: avqa-test\.json in"):
        AVQADataset(avqa_root, "test")
    broken = json.loads(QUESTIONS.read_text())[:1]
    broken[0]["answer"] = broken[0].pop("anser")
    with pytest.raises(ValueError, match="question #0 .* is malformed: KeyError\\('anser'\\)"):
        parse_questions(json.dumps(broken))


def test_tokenizer_forgives_the_case_of_typed_words() -> None:
    from avmoe.data.datasets.avqa import QuestionTokenizer

    tok = QuestionTokenizer(["<pad>", "How", "many", "dogs"], max_len=4)
    assert tok.encode("how Many dogs?").tolist() == tok.encode("How many dogs?").tolist() == [1, 2, 3, 0]
