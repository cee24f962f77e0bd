"""Every generated question tokenizes with the AVQA tokenizer over the world's own question vocabulary."""
from avmoe.config import get_preset
from avmoe.data.datasets.avqa import QuestionTokenizer
from avmoe.data.synthetic import SceneDataset, get_world


def test_generated_questions_use_only_vocabulary_words():
    world = get_world("shapes")
    tokenizer = QuestionTokenizer(list(world.question_vocab), max_len=get_preset("tiny-avqa").head.question_len)
    clips = SceneDataset(world, "avqa", "train", 6, frame_size=32, segments=4)
    questions = [q["question"] for i in range(len(clips)) for q in clips[i].labels["qa"]]
    assert questions and any(q[0].isupper() for q in questions)
    for q in questions:
        assert int(tokenizer.encode(q).count_nonzero()) == len(q.rstrip("?").split(" "))
