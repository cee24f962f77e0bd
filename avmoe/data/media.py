"""Decode any video PyAV reads into one-second segments, probe files, and write mp4s that browsers play.

PyAV only (no system ffmpeg, no torchaudio I/O). Decoding streams packets from the segment window and keeps only the
frames it needs, so long files are never read whole into memory.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from avmoe.data.sample import Clip

__all__ = ["MediaError", "MediaLimits", "decode_clip", "probe", "write_video"]

log = logging.getLogger(__name__)

# Leading bytes of common containers: a file that starts like one of these but will not open is damaged, not foreign.
_SIGNATURES = (
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MP4/MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"),
    (4, b"free", "MP4/MOV"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI/WAV"),
    (0, b"OggS", "Ogg"),
    (0, b"FLV", "FLV"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
)
_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
_OVERLAY_RGB = np.array([255.0, 48.0, 48.0], dtype=np.float32)
_TRUNCATION_SLACK_S = 1.0  # decoded video may end this much before the stream's stated end without an error
_NEAR_CENTRE_S = 0.1  # frames within this of a segment centre are always decoded
_AUDIO_PREROLL_S = 0.5  # seek this far before the window so the AAC/MP3 decoder has settled when the window starts
_DAMAGED = "re-upload the complete file or re-encode it (e.g. to H.264 + AAC in mp4)"  # what to do with a bad file


class MediaError(ValueError):
    """A media file that cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class MediaLimits:
    """Bounds that keep decoding cheap and reject absurd inputs (uploads in the app, stray files in datasets)."""

    max_duration_s: float = 600.0  # longest file accepted, seconds
    max_width: int = 3840  # frame size limit, width x height in pixels; a frame that fits turned sideways passes
    max_height: int = 2160
    max_file_bytes: int = 500_000_000  # largest file accepted, bytes


def probe(path: str | os.PathLike) -> dict:
    """Describe a media file without decoding it: duration (s), width, height, fps, has_audio, audio_rate, channels.

    Also has_video and video_duration (s of the video stream). Durations are None where the file does not say, as
    in browser recordings. Raises MediaError for files that are empty or not readable media.
    """
    with _open(Path(path)) as container:
        return _describe(container)


def decode_clip(
    path: str | os.PathLike,
    segments: int = 10,
    start: float = 0.0,
    frame_size: int | tuple[int, int] = 224,
    sample_rate: int = 32000,
    limits: MediaLimits | None = None,
) -> Clip:
    """Decode `segments` one-second segments from `start`: the frame nearest each centre, and each second's audio.

    Args:
        path: any video PyAV can read.
        segments: T, the number of one-second segments.
        start: time of the first segment's start, seconds.
        frame_size: output frame size, an int for square frames or (height, width); bicubic, aspect not kept.
        sample_rate: output audio rate; audio is downmixed to mono (mean of channels).
        limits: bounds on file size, duration and resolution (MediaLimits() when None).

    Returns a Clip with frames [T,3,H,W] float in [0,1] and audio [T, sample_rate]. Segments past the end of the
    video repeat its last frame and hold silence; meta has "source", "start", "duration" (s of video; None when the
    file does not say and decoding stopped before its end) and "padded_segments" (segments whose centre lies past the
    end, except the first, which always holds the clip's start however short it is). A file with no audio stream
    gives silence with audio_missing=True.
    """
    if segments < 1:
        raise ValueError(f"segments={segments} must be at least 1")
    if start < 0:
        raise ValueError(f"start={start} must be >= 0 seconds")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate={sample_rate} must be positive")
    height, width = _frame_hw(frame_size)
    path = Path(path)
    limits = limits or MediaLimits()
    with _open(path, limits) as container:
        info = _describe(container)
        _check_limits(path, info, limits)
        duration = info["video_duration"]
        _check_start(path, start, duration)
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        centres = [origin + start + i + 0.5 for i in range(segments)]
        stated_end = origin + duration if duration is not None else math.inf
        frames, seen_end = _read_frames(container, _video_stream(container), centres, width, height, stated_end)
        if duration is None:  # the file did not say: measure it where decoding reached the end
            duration = seen_end - origin if math.isfinite(seen_end) else None
            _check_start(path, start, duration)
        audio_stream = container.streams.audio[0] if container.streams.audio else None
        if audio_stream is None:
            audio = np.zeros(segments * sample_rate, dtype=np.float32)
        else:
            audio = _read_audio(container, audio_stream, origin + start, segments, sample_rate)
    real = segments if duration is None else min(segments, max(1, math.ceil(duration - start - 0.5)))
    audio[real * sample_rate:] = 0.0  # padded segments are silent, even where an audio stream runs on (AAC padding)
    return Clip(
        frames=torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0),
        audio=torch.from_numpy(audio).view(segments, sample_rate),
        sample_rate=sample_rate,
        audio_missing=audio_stream is None,
        meta={"source": str(path), "start": float(start), "duration": duration, "padded_segments": segments - real},
    )


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | torch.Tensor,
    fps: float,
    audio: np.ndarray | torch.Tensor | None = None,
    sample_rate: int = 32000,
    masks: np.ndarray | torch.Tensor | None = None,
    mask_alpha: float = 0.45,
) -> Path:
    """Write frames (and audio, and optional mask overlays) as an H.264/AAC mp4 that browsers play.

    Args:
        path: output file (.mp4).
        frames: uint8 [N, H, W, 3] RGB. Odd sizes are padded by one edge pixel (yuv420p needs even sizes).
        fps: frame rate.
        audio: float in [-1, 1], [samples] or [channels, samples] with 1, 2 or 6 channels.
        sample_rate: audio rate.
        masks: optional [N, H, W] bool or float in [0, 1], drawn as a translucent red overlay with an opaque outline.
        mask_alpha: overlay opacity where the mask is 1.
    """
    frames = _as_numpy(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {tuple(frames.shape)}; "
                         f"convert float images with (x * 255).round().astype(uint8)")
    if fps <= 0:
        raise ValueError(f"fps={fps} must be positive")
    if masks is not None:
        frames = _overlay(frames, _as_numpy(masks), mask_alpha)
    frames = _pad_even(frames)
    if audio is not None:
        audio = _as_numpy(audio).astype(np.float32)
        audio = np.clip(audio[None] if audio.ndim == 1 else audio, -1.0, 1.0)
        if audio.ndim != 2 or audio.shape[0] not in _CHANNEL_LAYOUTS:
            raise ValueError(f"audio must be [samples] or [channels, samples] with channels in "
                             f"{sorted(_CHANNEL_LAYOUTS)}, got shape {tuple(audio.shape)}")
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4", container_options={"movflags": "+faststart"}) as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height = frames.shape[2], frames.shape[1]
        vstream.pix_fmt = "yuv420p"
        vstream.thread_type = "FRAME"  # one slice per frame, as cameras write (PyAV's default would slice)
        vstream.options = {"preset": "veryfast", "crf": "20"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate, layout=_CHANNEL_LAYOUTS[audio.shape[0]])
            # Interleave: after each frame the audio up to its end time, after the last frame the rest.
            cuts = np.round(np.arange(1, len(frames) + 1) / float(rate) * sample_rate).astype(int)
            cuts = np.minimum(cuts, audio.shape[1])
            cuts[-1] = audio.shape[1]
        done = 0  # audio samples written
        for i, image in enumerate(frames):
            container.mux(vstream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            if astream is not None and cuts[i] > done:  # PyAV re-chunks the audio into AAC-sized frames
                container.mux(astream.encode(_audio_frame(audio[:, done:cuts[i]], astream, done)))
                done = cuts[i]
        container.mux(vstream.encode(None))
        if astream is not None:
            container.mux(astream.encode(None))
    return path


def _open(path: Path, limits: MediaLimits | None = None) -> av.container.InputContainer:
    if not path.is_file():
        raise FileNotFoundError(f"no such media file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{path} is empty (0 bytes); upload or pick a real video file")
    if limits is not None and size > limits.max_file_bytes:
        raise MediaError(f"{path} is {size / 1e6:.0f} MB, over the {limits.max_file_bytes / 1e6:.0f} MB limit; "
                         f"trim or re-encode it")
    # max_pixels makes the stream probe in av.open refuse to decode a frame over the limit (8K would take 100+ MB).
    options = {"max_pixels": str(limits.max_width * limits.max_height)} if limits is not None else None
    try:
        container = av.open(str(path), options=options)
    except av.FFmpegError as err:
        raise MediaError(_unreadable(path, str(err))) from err
    if not container.streams:
        container.close()
        raise MediaError(_unreadable(path, "no streams found"))
    return container


def _unreadable(path: Path, reason: str) -> str:
    """Why a file will not open: damaged if it starts like a known container, otherwise not media at all."""
    with path.open("rb") as f:
        head = f.read(16)
    kind = next((name for at, magic, name in _SIGNATURES if head[at:at + len(magic)] == magic), None)
    if kind is None:
        return (f"{path} is not a media file PyAV can read ({reason}); "
                f"expected a video such as mp4, mkv, webm, mov or avi")
    return (f"{path} looks like {kind} but cannot be read ({reason}); the file is probably truncated or corrupt: "
            f"{_DAMAGED}")


def _describe(container: av.container.InputContainer) -> dict:
    duration = container.duration / av.time_base if container.duration else None
    video = _video_stream(container)
    audio = container.streams.audio[0] if container.streams.audio else None
    info = {"duration": duration, "has_video": video is not None, "video_duration": None, "width": 0, "height": 0,
            "fps": 0.0, "has_audio": audio is not None, "audio_rate": 0, "channels": 0}
    if video is not None:
        rate = video.average_rate or video.guessed_rate or video.base_rate
        info.update(video_duration=float(video.duration * video.time_base) if video.duration else duration,
                    width=video.codec_context.width, height=video.codec_context.height,
                    fps=float(rate) if rate else 0.0)
    if audio is not None:
        info.update(audio_rate=audio.codec_context.sample_rate, channels=audio.codec_context.channels)
    return info


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    # Cover art in audio files shows up as a one-picture video stream: it is not video.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    return streams[0] if streams else None


def _check_limits(path: Path, info: dict, limits: MediaLimits) -> None:
    if not info["has_video"]:
        raise MediaError(f"{path} has no video stream (an audio-only file?); a video is needed")
    if info["duration"] is not None and info["duration"] > limits.max_duration_s:
        raise MediaError(f"{path} lasts {info['duration']:.0f} s, over the {limits.max_duration_s:.0f} s limit; "
                         f"trim it first")
    # Compare long side with long side so portrait phone videos pass the same limit as landscape ones.
    long_side, short_side = max(info["width"], info["height"]), min(info["width"], info["height"])
    if long_side > max(limits.max_width, limits.max_height) or short_side > min(limits.max_width, limits.max_height):
        raise MediaError(f"{path} is {info['width']}x{info['height']}, over the {limits.max_width}x"
                         f"{limits.max_height} limit; downscale it first")


def _check_start(path: Path, start: float, duration: float | None) -> None:
    if duration is not None and start >= duration:
        raise MediaError(f"start={start:.2f} s is beyond the end of {path} ({duration:.2f} s of video); "
                         f"use a start below {duration:.2f}")


def _frame_hw(frame_size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
    if height < 1 or width < 1:
        raise ValueError(f"frame_size={frame_size} must be positive (an int or (height, width))")
    return height, width


def _read_frames(container, video, centres: list[float], width: int, height: int,
                 end: float) -> tuple[np.ndarray, float]:
    """The frame nearest each centre time (ties go to the earlier frame), RGB uint8 [T, H, W, 3], and the time the
    last frame ends if decoding reached it (else inf). `end` is where the file says the video ends.

    Decodes only what it must: it jumps to a keyframe when one lies between the last decoded frame and the next
    centre, and it skips non-reference frames that are not near any centre.
    """
    video.thread_type = "AUTO"
    fps = float(video.guessed_rate or video.average_rate or 25)
    margin = max(_NEAR_CENTRE_S, 1.5 / fps)  # frames this close to a centre are always decoded
    # The index holds decode times, which run ahead of display times by the B-frame reordering delay.
    delay = video.codec_context.reorder_depth / fps
    decoded = None
    prev = cur = None  # (frame, time): last frame before the centre, first frame at or after it
    exhausted = False
    chosen: list[np.ndarray] = []
    try:
        for centre in centres:
            newest = cur[1] if cur else prev[1] if prev else -math.inf
            key = _keyframe_before(video, centre - margin - delay)
            if decoded is None or (not exhausted and key is not None and key * video.time_base > newest + margin):
                container.seek(max(0, int((centre - margin) / video.time_base)), stream=video)
                decoded = _decode(container, video, centres, margin, 1.0 / fps)
                prev = cur = None
            while not exhausted and (cur is None or cur[1] < centre):
                following = next(decoded, None)
                exhausted = following is None
                if not exhausted:
                    prev, cur = cur or prev, following
            if cur is not None and cur[1] >= centre:
                nearest = prev if prev is not None and centre - prev[1] <= cur[1] - centre else cur
            else:  # past the last frame: repeat it
                nearest = cur or prev
            if nearest is None:
                raise MediaError(f"{container.name}: no video frame could be decoded from {centre - 0.5:.2f} s; the "
                                 f"start is beyond the end, or the file is truncated or corrupt: {_DAMAGED}")
            chosen.append(_to_rgb(nearest[0], width, height))
    except av.FFmpegError as err:
        raise MediaError(f"{container.name}: video data is corrupt or truncated ({err}); {_DAMAGED}") from err
    last = (cur or prev)[1]
    if exhausted and math.isfinite(end) and last < min(centres[-1], end) - 2.0 / fps:
        if last < min(centres[-1], end) - _TRUNCATION_SLACK_S:
            raise MediaError(f"{container.name} appears truncated: its video stream says it lasts until {end:.2f} s "
                             f"but the data ends at {last:.2f} s; {_DAMAGED}")
        log.warning("%s: video data ends at %.2f s, before the stated %.2f s", container.name, last, end)
    return np.stack(chosen), last + 1.0 / fps if exhausted else math.inf


def _decode(container, video, centres: list[float], margin: float, step: float):
    """Yield (frame, time) from the current position, skipping non-reference frames far from every centre."""
    codec, time_base = video.codec_context, float(video.time_base)
    t = -step
    for packet in container.demux(video):
        if packet.pts is not None:
            at = packet.pts * time_base
            i = bisect.bisect_left(centres, at)
            near = min(abs(at - c) for c in centres[max(0, i - 1):i + 1])
            codec.skip_frame = "DEFAULT" if near <= margin else "NONREF"
        for frame in packet.decode():
            t = frame.time if frame.pts is not None else t + step
            yield frame, t


def _keyframe_before(video, t: float) -> int | None:
    """Decode time (stream time base) of the last indexed keyframe whose decode time is at most t s; None without
    an index."""
    entries = video.index_entries
    i = entries.search_timestamp(int(t / video.time_base), backward=True) if len(entries) else -1
    return entries[i].timestamp if i >= 0 else None


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Resize (bicubic, aspect not kept, as the official code does) and convert to RGB; apply display rotation."""
    quarter_turns = round(frame.rotation / 90) % 4  # counter-clockwise, from the display matrix
    w, h = (height, width) if quarter_turns % 2 else (width, height)
    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="BICUBIC").to_ndarray()
    return np.rot90(rgb, quarter_turns) if quarter_turns else rgb


def _read_audio(container, stream, start: float, segments: int, sample_rate: int) -> np.ndarray:
    """Mono float32 audio of [start, start + segments) at sample_rate; silence where the stream has none."""
    total = segments * sample_rate
    container.seek(max(0, int((start - _AUDIO_PREROLL_S) / stream.time_base)), stream=stream)
    chunks: list[np.ndarray] = []
    first = None  # index, relative to the window start, of the first resampled sample
    have = 0
    try:
        for out in _resampled(container, stream, sample_rate):
            if first is None:
                first = round((out.time - start) * sample_rate) if out.pts is not None else 0
            chunks.append(out.to_ndarray().mean(axis=0))  # [channels, samples] -> mono
            have += out.samples
            if first + have >= total:
                break
    except av.FFmpegError as err:
        raise MediaError(f"{container.name}: audio data is corrupt or truncated ({err}); {_DAMAGED}") from err
    window = np.zeros(total, dtype=np.float32)
    if chunks:
        samples = np.concatenate(chunks)[max(0, -first):]
        begin = max(first, 0)
        samples = samples[:max(0, total - begin)]
        window[begin:begin + samples.shape[0]] = samples
    return window


def _resampled(container, stream, sample_rate: int):
    """Yield the stream's audio from the current position as planar float frames at sample_rate, layout kept."""
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)
    for packet in container.demux(stream):
        for frame in packet.decode():
            yield from resampler.resample(frame)
    yield from resampler.resample(None)


def _audio_frame(samples: np.ndarray, stream, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=stream.layout.name)
    frame.sample_rate, frame.pts = stream.rate, pts
    return frame


def _overlay(frames: np.ndarray, masks: np.ndarray, alpha: float) -> np.ndarray:
    """Blend a translucent colour over the masked pixels and draw the mask outline opaque."""
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be [N, H, W] = {tuple(frames.shape[:3])}, got {tuple(masks.shape)}")
    weight = np.clip(masks.astype(np.float32), 0.0, 1.0)
    inside = weight > 0.5
    interior = inside.copy()  # pixels whose 4 neighbours are all inside; the rest of `inside` is the outline
    interior[:, 1:] &= inside[:, :-1]
    interior[:, :-1] &= inside[:, 1:]
    interior[:, :, 1:] &= inside[:, :, :-1]
    interior[:, :, :-1] &= inside[:, :, 1:]
    weight = weight * alpha
    weight[inside & ~interior] = 1.0
    blended = frames * (1.0 - weight[..., None]) + _OVERLAY_RGB * weight[..., None]
    return blended.round().astype(np.uint8)


def _pad_even(frames: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
