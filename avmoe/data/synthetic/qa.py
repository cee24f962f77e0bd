"""Templated questions with answers, in MUSIC-AVQA's question types, over a fixed vocabulary.

Words used below: an object is *seen* when it is visible in some second, *heard* when it sounds in some second, and
*sounding* (audio-visual) when it is visible and sounding in the same second. Its x at second i is its box centre
at the frame time i + 0.5; its third is "left" (x < 1/3), "right" (x > 2/3) or "middle". "The <X>" needs exactly
one object of class X among those the question is about; otherwise that question is not asked.

| type                          | template (answer)                                                              |
|-------------------------------|--------------------------------------------------------------------------------|
| Audio, Counting               | How many kinds of sound are there? (number of classes heard)                    |
| Audio, Comparative            | Is the <A> louder than the <B>? (both heard, levels >= 3 dB apart)               |
| Visual, Counting              | How many <X> are in the video? (seen objects of class X; X may be absent)       |
| Visual, Location              | Where is the <X>? (its third, the same in every visible frame)                   |
|                               | What is the object on the <LR> of the <X>? (the one class seen on that side, all  |
|                               |   objects seen alongside X staying on one side of it)                           |
| Audio-Visual, Existential     | Is there a sounding <X> in the video? (X may be absent or only heard off screen) |
|                               | Is the <X> in the video always sounding? (the seen X sounds every second)       |
| Audio-Visual, Counting        | How many sounding objects are in the video?                                     |
| Audio-Visual, Location        | Where is the sounding <X>? (its third in every second it is sounding)            |
|                               | Where is the loudest sounding object? (>= 3 dB above the other sounding ones)    |
| Audio-Visual, Comparative     | Is the sounding object on the left louder than the sounding object on the right? |
|                               |   (left/right: smallest/largest mean x over sounding seconds; >= 3 dB apart)    |
| Audio-Visual, Temporal        | What is the <TH> object that starts sounding? (TH first/last: among objects     |
|                               |   visible when they start sounding, the one class with the earliest/latest onset)|

One question per type that has at least one valid instance: an answer is drawn uniformly among the distinct answers
of the valid instances, then an instance with that answer, which keeps yes/no and counts from being lopsided. The
questions come in a random order drawn from the scene's seed, so that a dataset taking the first k of each clip (as
`avmoe.data.tasks` does) asks every type, not only the first k types of the table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from avmoe.data.synthetic.scene import Scene, SceneObject
from avmoe.data.datasets.avqa import tokenize

QUESTION_TYPES = (
    ("Audio", "Counting"), ("Audio", "Comparative"), ("Visual", "Counting"), ("Visual", "Location"),
    ("Audio-Visual", "Existential"), ("Audio-Visual", "Counting"), ("Audio-Visual", "Location"),
    ("Audio-Visual", "Comparative"), ("Audio-Visual", "Temporal"),
)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
LOCATIONS = ("left", "middle", "right")
MARGIN_DB = 3.0  # smallest level difference a loudness question is asked about

KINDS_OF_SOUND = "How many kinds of sound are there?"
LOUDER = "Is the <Object> louder than the <Object>?"
HOW_MANY = "How many <Object> are in the video?"
WHERE = "Where is the <Object>?"
BESIDE = "What is the object on the <LR> of the <Object>?"
SOUNDING_EXISTS = "Is there a sounding <Object> in the video?"
ALWAYS = "Is the <Object> in the video always sounding?"
HOW_MANY_SOUNDING = "How many sounding objects are in the video?"
WHERE_SOUNDING = "Where is the sounding <Object>?"
WHERE_LOUDEST = "Where is the loudest sounding object?"
LEFT_LOUDER = "Is the sounding object on the left louder than the sounding object on the right?"
ONSET = "What is the <TH> object that starts sounding?"
TEMPLATES = (KINDS_OF_SOUND, LOUDER, HOW_MANY, WHERE, BESIDE, SOUNDING_EXISTS, ALWAYS, HOW_MANY_SOUNDING,
             WHERE_SOUNDING, WHERE_LOUDEST, LEFT_LOUDER, ONSET)
_SLOT = re.compile(r"<[A-Za-z]+>")


def answer_vocab(classes: list[str]) -> list[str]:
    return ["yes", "no", *NUMBERS, *LOCATIONS, *classes]


def question_vocab(classes: list[str]) -> list[str]:
    """"<pad>", "<unk>", then every word a question can contain, sorted; words are split exactly as the official
    loader splits them (case kept, final question mark dropped), so the AVQA tokenizer reads every question."""
    words = {w for t in TEMPLATES for w in tokenize(t) if not _SLOT.fullmatch(w)}
    words |= {"left", "right", "first", "last", *classes}
    return ["<pad>", "<unk>", *sorted(words)]


def fill(template: str, values: list[str]) -> str:
    """Replace the template's slots, in order, with `values`."""
    parts = iter(values)
    return _SLOT.sub(lambda _: next(parts), template)


@dataclass
class _Obj:
    """What the questions need to know about one object."""

    cls: str
    level: float
    seen: set[int]
    heard: set[int]
    x: dict[int, float]  # second -> box centre x at the frame time, for the seconds it is visible

    @property
    def both(self) -> set[int]:
        return self.seen & self.heard


def generate_questions(scene: Scene, classes: list[str]) -> list[dict]:
    """At most one question per QUESTION_TYPES entry, each {"question", "answer", "type", "values", "template"}.

    The random choices and the order come from the scene's seed, so a scene always gets the same questions.
    """
    rng = np.random.default_rng([scene.seed, 2])
    objs = [_describe(o, scene.segments) for o in scene.objects]
    present = sorted({o.cls for o in objs})
    absent = [c for c in classes if c not in present]
    asked = present + ([absent[int(rng.integers(len(absent)))]] if absent else [])
    candidates = {
        ("Audio", "Counting"): [(KINDS_OF_SOUND, [], _number(len({o.cls for o in objs if o.heard})))],
        ("Audio", "Comparative"): _louder(objs),
        ("Visual", "Counting"): [(HOW_MANY, [c], _number(sum(o.cls == c and bool(o.seen) for o in objs)))
                                 for c in asked],
        ("Visual", "Location"): _where(objs) + _beside(objs),
        ("Audio-Visual", "Existential"): [(SOUNDING_EXISTS, [c], _yes(any(o.cls == c and o.both for o in objs)))
                                          for c in asked] + _always(objs, scene.segments),
        ("Audio-Visual", "Counting"): [(HOW_MANY_SOUNDING, [], _number(sum(bool(o.both) for o in objs)))],
        ("Audio-Visual", "Location"): _where(objs, WHERE_SOUNDING, sounding=True) + _where_loudest(objs),
        ("Audio-Visual", "Comparative"): _left_louder(objs),
        ("Audio-Visual", "Temporal"): _onset(objs),
    }
    questions = []
    for qtype in QUESTION_TYPES:
        found = candidates[qtype]
        if not found:
            continue
        answers = sorted({a for _, _, a in found})
        answer = answers[int(rng.integers(len(answers)))]
        matching = [c for c in found if c[2] == answer]
        template, values, _ = matching[int(rng.integers(len(matching)))]
        questions.append({"question": fill(template, values), "answer": answer, "type": list(qtype),
                          "values": list(values), "template": template})
    return [questions[i] for i in rng.permutation(len(questions))]


def _describe(obj: SceneObject, segments: int) -> _Obj:
    seen = {i for i in range(segments) if obj.visible_at(i)}
    heard = {i for i in range(segments) if obj.sounding_at(i)}
    return _Obj(obj.name, obj.loudness_db, seen, heard, {i: obj.position(i + 0.5)[0] for i in seen})


def _third(x: float) -> str:
    return "left" if x < 1 / 3 else "right" if x > 2 / 3 else "middle"


def _same_third(obj: _Obj, seconds: set[int]) -> str | None:
    thirds = {_third(obj.x[i]) for i in seconds}
    return thirds.pop() if len(thirds) == 1 else None


def _number(n: int) -> str:
    return NUMBERS[n]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _only(objs: list[_Obj], cls: str) -> _Obj | None:
    found = [o for o in objs if o.cls == cls]
    return found[0] if len(found) == 1 else None


def _louder(objs: list[_Obj]) -> list:
    heard = [o for o in objs if o.heard]
    out = []
    for a in {o.cls for o in heard}:
        for b in {o.cls for o in heard} - {a}:
            oa, ob = _only(heard, a), _only(heard, b)
            if oa and ob and abs(oa.level - ob.level) >= MARGIN_DB:
                out.append((LOUDER, [a, b], _yes(oa.level > ob.level)))
    return sorted(out)


def _where(objs: list[_Obj], template: str = WHERE, sounding: bool = False) -> list:
    """Location questions about each class with one instance that stays in one third of the frame while it is seen
    (or, with `sounding`, while it is seen and heard)."""
    def span(o: _Obj) -> set[int]:
        return o.both if sounding else o.seen

    candidates = [o for o in objs if span(o)]
    out = []
    for c in sorted({o.cls for o in candidates}):
        o = _only(candidates, c)
        third = _same_third(o, span(o)) if o else None
        if third:
            out.append((template, [c], third))
    return out


def _beside(objs: list[_Obj]) -> list:
    seen = [o for o in objs if o.seen]
    out = []
    for c in sorted({o.cls for o in seen}):
        o = _only(seen, c)
        if o is None:
            continue
        sides: dict[str, set[str]] = {"left": set(), "right": set()}
        consistent = True
        for other in seen:
            shared = other.seen & o.seen if other is not o else set()
            if not shared:
                continue
            left = {other.x[i] < o.x[i] for i in shared}
            consistent &= len(left) == 1
            sides["left" if left == {True} else "right"].add(other.cls)
        if consistent:
            out += [(BESIDE, [side, c], names.pop()) for side, names in sides.items() if len(names) == 1]
    return out


def _always(objs: list[_Obj], segments: int) -> list:
    seen = [o for o in objs if o.seen]
    out = []
    for c in sorted({o.cls for o in seen}):
        o = _only(seen, c)
        if o:
            out.append((ALWAYS, [c], _yes(len(o.heard) == segments)))
    return out


def _where_loudest(objs: list[_Obj]) -> list:
    sounding = sorted((o for o in objs if o.both), key=lambda o: -o.level)
    if len(sounding) < 2 or sounding[0].level - sounding[1].level < MARGIN_DB:
        return []
    third = _same_third(sounding[0], sounding[0].both)
    return [(WHERE_LOUDEST, [], third)] if third else []


def _left_louder(objs: list[_Obj]) -> list:
    sounding = sorted((o for o in objs if o.both), key=lambda o: np.mean([o.x[i] for i in o.both]))
    if len(sounding) < 2:
        return []
    left, right = sounding[0], sounding[-1]
    if abs(left.level - right.level) < MARGIN_DB:
        return []
    return [(LEFT_LOUDER, [], _yes(left.level > right.level))]


def _onset(objs: list[_Obj]) -> list:
    onsets = [(min(o.heard), o.cls) for o in objs if o.heard and min(o.heard) in o.seen]
    out = []
    for which, pick in (("first", min), ("last", max)):
        if onsets:
            when = pick(t for t, _ in onsets)
            names = {c for t, c in onsets if t == when}
            if len(names) == 1:
                out.append((ONSET, [which], names.pop()))
    return out
