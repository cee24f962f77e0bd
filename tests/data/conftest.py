"""Small media files generated with PyAV into a temporary directory, once per test session."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avmoe.data.media import write_video

FPS = 10
SIZE = (48, 64)  # height, width of the generated videos
TONES = (400.0, 700.0, 1000.0, 1300.0)  # Hz, one per second of the time-coded clip


def grey_of(index: int) -> int:
    """Grey level that encodes a frame's index in the time-coded videos (steps of 4 survive H.264 at CRF 20)."""
    return 10 + 4 * index


def coded_frames(count: int) -> np.ndarray:
    """uint8 [count, H, W, 3] flat grey frames whose level encodes their index."""
    levels = np.array([grey_of(i) for i in range(count)], dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, *SIZE, 3)).copy()


def stepped_tone(sample_rate: int, tones=TONES) -> np.ndarray:
    """A sine whose frequency changes every second (phase kept continuous), amplitude 0.5."""
    freq = np.repeat(np.asarray(tones), sample_rate)
    return (0.5 * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)).astype(np.float32)


def clicks(sample_rate: int, seconds: int, times) -> np.ndarray:
    """Silence with a 2-ms pulse of 0.9 at each time."""
    wave = np.zeros(seconds * sample_rate, dtype=np.float32)
    for t in times:
        wave[int(t * sample_rate):int(t * sample_rate) + max(1, sample_rate // 500)] = 0.9
    return wave


def encode(path: Path, frames: np.ndarray, times=None, fps: int = FPS, options=None, rotation: float = 0.0,
           audio: np.ndarray | None = None, sample_rate: int = 48000, layout: str = "mono") -> Path:
    """Write H.264 (+ AAC) with PyAV directly, for what write_video does not make: VFR, short GOPs, rotation, 5.1."""
    with av.open(str(path), "w") as container:
        video = None
        if frames is not None:
            video = container.add_stream("libx264", rate=fps, options=options or {})
            video.height, video.width = frames.shape[1:3]
            video.pix_fmt = "yuv420p"
            video.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                video.set_display_rotation(rotation)
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout=layout)
            chunk = np.ascontiguousarray(audio if audio.ndim == 2 else audio[None], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sample_rate, 0
            container.mux(sound.encode(frame) + sound.encode(None))
        for i, image in enumerate(frames if frames is not None else ()):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(1000 * (times[i] if times is not None else i / fps))
            frame.time_base = Fraction(1, 1000)
            container.mux(video.encode(frame))
        if video is not None:
            container.mux(video.encode(None))
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def coded_clip(media_dir) -> Path:
    """4 s, 10 fps, 64x48 H.264 + 16 kHz AAC from write_video: grey level = frame index, tone steps each second."""
    return write_video(media_dir / "coded.mp4", coded_frames(4 * FPS), FPS, audio=stepped_tone(16000),
                       sample_rate=16000)


@pytest.fixture(scope="session")
def silent_video(media_dir) -> Path:
    """2 s of time-coded video with no audio stream."""
    return write_video(media_dir / "no_audio.mp4", coded_frames(2 * FPS), FPS)


@pytest.fixture(scope="session")
def short_clip(media_dir) -> Path:
    """2 s of time-coded video with 32 kHz audio."""
    return write_video(media_dir / "short.mp4", coded_frames(2 * FPS), FPS, audio=stepped_tone(32000, TONES[:2]))


@pytest.fixture(scope="session")
def vfr_clip(media_dir) -> tuple[Path, np.ndarray]:
    """Variable frame rate video (gaps of 20-160 ms) and its frame times."""
    gaps = np.random.default_rng(1).integers(20, 160, 44) / 1000.0
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    return encode(media_dir / "vfr.mp4", coded_frames(len(times)), times=times), times


@pytest.fixture(scope="session")
def keyframe_clip(media_dir) -> Path:
    """6 s with a keyframe every second and B-frames, so decoding jumps between keyframes and skips frames."""
    return encode(media_dir / "gop.mp4", coded_frames(6 * FPS), options={"g": str(FPS), "bf": "3"})


@pytest.fixture(scope="session")
def rotated_clip(media_dir) -> Path:
    """64x48 coded frames with a red top-left block, tagged to display rotated 90 degrees counter-clockwise."""
    frames = np.zeros((FPS, *SIZE, 3), dtype=np.uint8)
    frames[:, :12, :12] = (255, 0, 0)
    return encode(media_dir / "rotated.mp4", frames, rotation=90)


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return encode(media_dir / "audio_only.m4a", None, audio=stepped_tone(16000, TONES[:2]), sample_rate=16000)


@pytest.fixture(scope="session")
def surround_clip(media_dir) -> tuple[Path, np.ndarray]:
    """2 s of video with 5.1 AAC at 48 kHz: a different tone level on each channel; returns the channels too."""
    t = np.arange(2 * 48000) / 48000
    channels = np.stack([level * np.sin(2 * np.pi * 500 * t) for level in (0.4, 0.2, 0.3, 0.0, 0.1, 0.1)])
    path = encode(media_dir / "surround.mp4", coded_frames(2 * FPS), audio=channels.astype(np.float32),
                  sample_rate=48000, layout="5.1")
    return path, channels


class _Unseekable(io.RawIOBase):
    """A write-only file the muxer cannot seek back in, so it cannot fill in the duration (as in live recording)."""

    def __init__(self, file) -> None:
        self.file = file

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self.file.write(data)


@pytest.fixture(scope="session")
def live_recording(media_dir) -> Path:
    """3 s of time-coded VP9 + Opus WebM with no duration in it, like a browser's MediaRecorder output."""
    path = media_dir / "live.webm"
    with path.open("wb") as raw, av.open(_Unseekable(raw), "w", format="webm") as container:
        video = container.add_stream("libvpx-vp9", rate=FPS)
        video.height, video.width = SIZE
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("libopus", rate=48000, layout="mono")
        for image in coded_frames(3 * FPS):
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        frame = av.AudioFrame.from_ndarray(stepped_tone(48000, TONES[:3])[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(sound.encode(frame) + sound.encode(None))
    return path
