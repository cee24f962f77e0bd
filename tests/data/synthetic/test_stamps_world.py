"""The stamps world on a tiny stamps tree built here (the real 161 MB package only in the slow test)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from synthetic_helpers import both, sounding

from avmoe.data.synthetic import SamplerConfig, SceneDataset, assets
from avmoe.data.synthetic.assets import AssetError, Photo
from avmoe.data.synthetic.stamps import CLASS_STAMPS, StampsWorld, class_exemplars, discover_stamps

RATE = 16000
# stamp -> (folder, colour, tone frequency)
STAMPS = {
    "dog": ("animals/dogs", (0, 0, 255), 300.0),
    "duck": ("animals/birds", (255, 0, 0), 500.0),
    "drake": ("animals/birds", (255, 0, 0), 500.0),
    "violin": ("hobbies/music", (0, 255, 0), 700.0),
    "cello": ("hobbies/music", (255, 0, 255), 900.0),
    "firetruck": ("vehicles", (0, 255, 255), 1100.0),
}
TABLE = {"dog": ("dog",), "duck": ("duck", "drake"), "violin": ("violin",), "cello": ("cello",),
         "firetruck": ("firetruck",)}
CLASS_FREQ = {"dog": 300.0, "duck": 500.0, "violin": 700.0, "cello": 900.0, "firetruck": 1100.0}
QUIET = dict(noise_floor_db=(-70.0, -70.0), p_noise_burst=0.0, p_distractor_sound=0.0)


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[6:34, 8:52] = (*colour, 255)  # an opaque rectangle inside a transparent border
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def _ogg(path: Path, freq: float, seconds: float = 0.6) -> None:
    """An Ogg/Opus tone after 0.1 s of silence."""
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    x = np.concatenate([np.zeros(rate // 10), 0.3 * np.sin(2 * np.pi * freq * t)]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 960
        for i in range(0, x.size, size):
            frame = av.AudioFrame.from_ndarray(x[None, i:i + size], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stamps")
    for name, (folder, colour, freq) in STAMPS.items():
        _png(root / folder / f"{name}.png", colour)
        _ogg(root / folder / f"{name}.ogg", freq)
    _ogg(root / "animals/dogs/dog_desc.ogg", 200.0)  # spoken descriptions
    _ogg(root / "animals/dogs/dog_desc_fr.ogg", 200.0)
    (root / "animals/dogs/dog.txt").write_text("Dog.")
    _ogg(root / "household/kettle.ogg", 200.0)  # a sound without a picture
    _png(root / "symbols/math/1.png", (9, 9, 9))  # a maths blip
    _ogg(root / "symbols/math/1.ogg", 200.0)
    return root


@pytest.fixture(scope="module")
def world(tree, tmp_path_factory) -> StampsWorld:
    photo = tmp_path_factory.mktemp("photos") / "photo.png"
    grey = np.random.default_rng(0).integers(90, 160, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(grey).save(photo)
    return StampsWorld(root=tree, table=TABLE, photos=[Photo("test_photo", photo, "a test photo (CC0)")])


def test_discovery_pairs_pictures_with_their_own_sounds(tree):
    found = discover_stamps(tree)
    assert set(found) == set(STAMPS)
    assert found["dog"].image == tree / "animals/dogs/dog.png" and found["dog"].sound == tree / "animals/dogs/dog.ogg"


def test_missing_stamps_are_named(tree):
    with pytest.raises(AssetError, match="lion"):
        class_exemplars(discover_stamps(tree), {**TABLE, "lion": ("lion",)})
    assert [s.name for s in class_exemplars(discover_stamps(tree), TABLE)["duck"]] == ["duck", "drake"]


def test_masks_cover_the_sounding_stamp(world):
    data = SceneDataset(world, "s4", "train", 4, frame_size=48, sample_rate=RATE, segments=3)
    for i in range(4):
        clip = data[i]
        objects = clip.meta["scene"]["objects"]
        (event,) = [o for o in objects if o["role"] == "event"]
        colours = {o["name"]: np.array(STAMPS[TABLE[o["name"]][0]][1]) / 255 for o in objects}
        for second in range(3):
            mask = clip.labels["masks"][second].numpy() > 0.5
            assert mask.any()
            mean = clip.frames[second].permute(1, 2, 0).numpy()[mask].mean(axis=0)
            nearest = min(colours, key=lambda name: np.linalg.norm(colours[name] - mean))
            assert nearest == event["name"]


def test_each_object_plays_its_own_sound(world):
    data = SceneDataset(world, "s4", "val", 3, frame_size=32, sample_rate=RATE, segments=2,
                        config=SamplerConfig(**QUIET))
    for i in range(3):
        clip = data[i]
        (event,) = [o for o in clip.meta["scene"]["objects"] if o["role"] == "event"]
        spectrum = np.abs(np.fft.rfft(clip.audio.flatten().numpy()))
        peak = np.fft.rfftfreq(2 * RATE, 1 / RATE)[spectrum.argmax()]
        assert abs(peak - CLASS_FREQ[event["name"]]) < 10


def test_sound_plays_only_in_sounding_seconds(world):
    data = SceneDataset(world, "ave", "test", 6, frame_size=32, sample_rate=RATE, segments=6,
                        config=SamplerConfig(**QUIET))
    for i in range(6):
        clip = data[i]
        rms = clip.audio.pow(2).mean(dim=1).sqrt().numpy()
        heard = np.array([any(sounding(o, s) for o in clip.meta["scene"]["objects"]) for s in range(6)])
        assert rms[heard].min() > 20 * rms[~heard].max(initial=0.0) > 0 or heard.all()
        assert [bool(clip.labels["masks"][s].any()) for s in range(6)] == \
            [any(both(o, s) for o in clip.meta["scene"]["objects"]) for s in range(6)]


def test_attribution_names_the_licence_and_the_media_used(world):
    clip = SceneDataset(world, "ave", "train", 1, frame_size=32, sample_rate=RATE, segments=2)[0]
    text = clip.meta["attribution"]
    assert "GPL-2" in text and "a test photo (CC0)" in text
    for obj in clip.meta["scene"]["objects"]:
        assert TABLE[obj["name"]][obj["style"]["exemplar"]] in text
    assert "GPL-2" in world.attribution and "test_photo" in world.attribution


def test_stamps_root_prefers_an_extracted_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "SYSTEM_STAMPS", tmp_path / "no-system-install")
    extracted = tmp_path / "cache" / "root" / assets.STAMPS_SUBDIR
    extracted.mkdir(parents=True)
    assert assets.stamps_root(tmp_path / "cache") == extracted


def test_stamps_root_says_what_to_install_without_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "SYSTEM_STAMPS", tmp_path / "no-system-install")
    monkeypatch.setattr(assets.shutil, "which", lambda tool: None)
    with pytest.raises(AssetError, match="apt-get install tuxpaint-stamps-default"):
        assets.stamps_root(tmp_path)


@pytest.mark.slow
def test_real_package_gives_every_class():
    try:
        root = assets.stamps_root()
    except AssetError as err:
        pytest.skip(f"tuxpaint-stamps-default cannot be fetched here: {err}")
    found = discover_stamps(root)
    missing = [s for names in CLASS_STAMPS.values() for s in names if s not in found]
    assert not missing and len(CLASS_STAMPS) >= 40
    clip = SceneDataset("stamps", "ms3", "val", 1, frame_size=64, sample_rate=RATE, segments=3)[0]
    assert clip.frames.shape == (3, 3, 64, 64) and len(clip.meta["classes"]) == len(CLASS_STAMPS)
