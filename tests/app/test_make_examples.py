"""The example clips: which scenes fit each example, and the shipped clips with their sidecars and licences."""
import json

import pytest

from app.make_examples import EXAMPLES, STAMPS_EXAMPLES
from avmoe.data.media import probe
from avmoe.data.synthetic.scene import Scene, SceneObject

WANTED = {e.name: e.wanted for e in STAMPS_EXAMPLES}


def _scene(*objects, bursts=()):
    return Scene("stamps", "ave", 10, 0, [SceneObject(i, f"c{i}", role, visible, sounding)
                                          for i, (role, visible, sounding) in enumerate(objects)],
                 noise={"bursts": list(bursts)})


def test_each_example_picks_the_scene_it_is_about():
    clean = _scene(("event", [[0, 10]], [[1, 10]]), ("distractor", [[0, 10]], []))
    offscreen = _scene(("event", [[0, 10]], [[0, 10]]), ("distractor", [], [[2, 7]]))
    three = _scene(("event", [[0, 10]], [[0, 5]]), ("event", [[0, 10]], [[2, 6]]), ("event", [[0, 10]], [[3, 9]]))
    assert WANTED["stamps-event"](clean) and not WANTED["stamps-event"](offscreen)
    assert not WANTED["stamps-event"](_scene(("event", [[0, 10]], [[1, 10]]), bursts=[[2, 3, 0.0]]))
    assert WANTED["stamps-off-screen"](offscreen) and not WANTED["stamps-off-screen"](clean)
    assert WANTED["stamps-multi-source"](three) and not WANTED["stamps-multi-source"](clean)
    assert WANTED["stamps-question"](three) and not WANTED["stamps-question"](offscreen)


@pytest.mark.skipif(not (EXAMPLES / "LICENSES.md").is_file(), reason="run python -m app.make_examples first")
def test_shipped_examples_are_small_playable_and_licensed():
    clips = sorted(EXAMPLES.glob("*.mp4"))
    assert {p.stem for p in clips} == {*WANTED, "big-buck-bunny"}
    assert sum(p.stat().st_size for p in EXAMPLES.iterdir()) < 5_000_000
    licences = (EXAMPLES / "LICENSES.md").read_text()
    assert "GPL-2" in licences and "CC BY 3.0" in licences and "Blender Foundation" in licences
    for clip in clips:
        side = json.loads(clip.with_suffix(".json").read_text())
        assert side["title"] and side["licence"] and side["attribution"], clip.name
        assert f"`{clip.name}`" in licences
        info = probe(clip)
        assert info["has_video"] and info["has_audio"] and 5.0 <= info["duration"] <= 10.5, (clip.name, info)
