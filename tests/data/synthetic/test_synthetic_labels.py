"""Shapes-world clips: every label agrees with the scene it was rendered from."""
from __future__ import annotations

import numpy as np
import pytest
from synthetic_helpers import both, centre, sounding, visible

from avmoe.data.sample import BACKGROUND, CARRIERS
from avmoe.data.synthetic import TASKS, SamplerConfig, Scene, SceneDataset, SceneObject, get_world
from avmoe.data.synthetic.shapes import SHAPE_CLASSES

SIZE, SEGMENTS, RATE, PER_TASK = 40, 6, 8000, 6


@pytest.fixture(scope="module")
def clips() -> dict:
    return {task: [SceneDataset("shapes", task, "train", PER_TASK, SIZE, RATE, SEGMENTS)[i] for i in range(PER_TASK)]
            for task in TASKS}


def _objects(clip) -> list[dict]:
    return clip.meta["scene"]["objects"]


@pytest.mark.parametrize("task", TASKS)
def test_ave_background_second_has_no_visible_sounding_object(clips, task):
    for clip in clips[task]:
        for second, label in enumerate(clip.labels["ave"].tolist()):
            classes = {o["cls"] for o in _objects(clip) if both(o, second)}
            assert (label == BACKGROUND) == (not classes)
            assert label == BACKGROUND or label in classes


def test_ave_scene_has_one_event_class_over_one_contiguous_span(clips):
    for clip in clips["ave"]:
        labels = clip.labels["ave"].tolist()
        event = [i for i, label in enumerate(labels) if label != BACKGROUND]
        assert event == list(range(event[0], event[-1] + 1))
        assert len({labels[i] for i in event}) == 1


@pytest.mark.parametrize("task", TASKS)
def test_masks_are_empty_exactly_where_nothing_visible_sounds(clips, task):
    for clip in clips[task]:
        assert clip.labels["masks"].shape == (SEGMENTS, SIZE, SIZE)
        assert clip.labels["mask_valid"].all()
        for second in range(SEGMENTS):
            assert bool(clip.labels["masks"][second].any()) == any(both(o, second) for o in _objects(clip))


def test_s4_mask_is_the_one_sounding_object_inside_its_box(clips):
    for clip in clips["s4"]:
        objects = _objects(clip)
        for second in range(SEGMENTS):
            (source,) = [o for o in objects if both(o, second)]
            x, y = centre(source, second + 0.5)
            side = round(source["size"] * SIZE)
            left = min(max(round(x * SIZE - side / 2), 0), SIZE - side)
            top = min(max(round(y * SIZE - side / 2), 0), SIZE - side)
            rows, cols = np.nonzero(clip.labels["masks"][second].numpy())
            assert rows.min() >= top and rows.max() < top + side
            assert cols.min() >= left and cols.max() < left + side


def test_ms3_has_two_or_three_sources_and_they_overlap(clips):
    for clip in clips["ms3"]:
        sources = [o for o in _objects(clip) if o["role"] == "event"]
        assert 2 <= len(sources) <= 3
        assert max(sum(sounding(o, s) for o in sources) for s in range(SEGMENTS)) >= 2


def test_avqa_has_two_to_four_objects(clips):
    for clip in clips["avqa"]:
        assert 2 <= len(_objects(clip)) <= 4


@pytest.mark.parametrize("task", TASKS)
def test_avvp_labels_follow_spans(clips, task):
    for clip in clips[task]:
        avvp = clip.labels["avvp"]
        for second in range(SEGMENTS):
            for name, test in (("audio", sounding), ("visual", visible)):
                expected = {o["cls"] for o in _objects(clip) if test(o, second)}
                assert set(np.flatnonzero(avvp[name][second].numpy())) == expected
        expected_weak = {o["cls"] for o in _objects(clip) if o["visible"] or o["sounding"]}
        assert set(np.flatnonzero(avvp["weak"].numpy())) == expected_weak


@pytest.mark.parametrize("task", TASKS)
def test_carrier_says_which_modality_carries_the_event(clips, task):
    for clip in clips[task]:
        events = [o for o in _objects(clip) if o["role"] == "event"]
        for second, carrier in enumerate(clip.meta["carrier"]):
            assert carrier in CARRIERS
            if any(both(o, second) for o in events):
                assert carrier == "av"
            elif any(sounding(o, second) for o in events):
                assert carrier == "audio"
            elif any(visible(o, second) for o in events):
                assert carrier == "visual"
            else:
                assert carrier == "none"
        if task == "ave":  # an AVE event second is one the event object carries in both modalities
            for label, carrier in zip(clip.labels["ave"].tolist(), clip.meta["carrier"]):
                assert (label != BACKGROUND) == (carrier == "av")


def _hard_fraction(task: str, config: SamplerConfig | None = None, n: int = 80) -> float:
    """Seconds with an off-screen sound, a silent visible object or a noise burst, over n scenes."""
    data = SceneDataset("shapes", task, "val", n, segments=8, config=config)
    hard = total = 0
    for i in range(n):
        scene = data.scene(i).to_dict()
        bursts = scene["noise"]["bursts"]
        for second in range(8):
            total += 1
            hard += any(visible(o, second) != sounding(o, second) for o in scene["objects"]) or \
                any(s <= second < e for s, e, _ in bursts)
    return hard / total


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_hard_seconds_but_not_only(task):
    assert 0.15 < _hard_fraction(task) < 0.95


def test_hard_cases_are_controlled_by_the_config():
    easy = SamplerConfig(p_offscreen=0, p_silent=0, p_distractor_sound=0, p_distractor_visual=0, p_noise_burst=0)
    assert _hard_fraction("ave", easy) == 0.0
    assert _hard_fraction("s4", easy) == 0.0


def test_audio_is_loud_exactly_where_something_sounds():
    quiet = SamplerConfig(noise_floor_db=(-70.0, -70.0), p_noise_burst=0)
    data = SceneDataset("shapes", "avvp", "train", 8, SIZE, RATE, SEGMENTS, config=quiet)
    for i in range(8):
        clip = data[i]
        rms = clip.audio.pow(2).mean(dim=1).sqrt().numpy()
        heard = [any(sounding(o, s) for o in _objects(clip)) for s in range(SEGMENTS)]
        if any(heard) and not all(heard):
            assert rms[heard].min() > 20 * rms[np.logical_not(heard)].max()


def _solo(cls: int, sample_rate: int = 16000) -> np.ndarray:
    """One second of audio of a lone, silent-background object of class cls."""
    world = get_world("shapes")
    obj = SceneObject(cls=cls, name=world.classes[cls], role="event", visible=[], sounding=[[0, 1]],
                      style={"pitch": 1.0, "phase": 0.0, "angle": 0.0, "flip": False, "brightness": 1.0, "seed": 1})
    background = world.sample_scene("ave", np.random.default_rng(0), segments=2).background
    scene = Scene(world="shapes", task="ave", segments=1, seed=0, objects=[obj], background=background,
                  noise={"floor_db": -120.0, "bursts": []})
    return world.render(scene, 16, sample_rate).audio[0].numpy()


def test_every_shape_class_looks_and_sounds_different():
    assert len(SHAPE_CLASSES) >= 10
    assert len({(c.name, c.colour, c.texture) for c in SHAPE_CLASSES}) == len(SHAPE_CLASSES)
    spectra = []
    for cls in range(len(SHAPE_CLASSES)):
        spectrum = np.abs(np.fft.rfft(_solo(cls)))
        bands = np.log1p(spectrum[:7900].reshape(79, 100).sum(axis=1))  # 79 bands of 100 Hz
        spectra.append((bands - bands.mean()) / bands.std())
    similarity = np.corrcoef(spectra) - np.eye(len(spectra))
    assert similarity.max() < 0.95
