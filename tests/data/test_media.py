"""decode_clip, probe and write_video on generated files: good ones, each bad kind, timing of frames and audio."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from avmoe.data.media import MediaError, MediaLimits, decode_clip, probe, write_video
from tests.data.conftest import FPS, SIZE, TONES, clicks, coded_frames, grey_of


def frame_index(frame: torch.Tensor) -> int:
    """Index encoded by a time-coded frame's grey level."""
    return round((float(frame.mean()) * 255 - grey_of(0)) / (grey_of(1) - grey_of(0)))


def dominant_hz(wave: torch.Tensor, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.fft.rfftfreq(wave.shape[-1], 1 / sample_rate)[spectrum.argmax()])


def test_good_clip_shapes_flags_and_meta(coded_clip):
    clip = decode_clip(coded_clip, segments=4, frame_size=32, sample_rate=16000)
    assert clip.frames.shape == (4, 3, 32, 32) and clip.frames.dtype == torch.float32
    assert clip.audio.shape == (4, 16000) and clip.sample_rate == 16000
    assert 0.0 <= float(clip.frames.min()) and float(clip.frames.max()) <= 1.0
    assert not clip.audio_missing and not clip.visual_missing
    assert clip.meta["source"] == str(coded_clip)
    assert clip.meta["duration"] == pytest.approx(4.0) and clip.meta["padded_segments"] == 0


def test_frame_nearest_each_segment_centre(coded_clip):
    clip = decode_clip(coded_clip, segments=4, frame_size=(24, 40))
    assert clip.frames.shape == (4, 3, 24, 40)
    # Frame k shows at k/10 s, so segment i's centre i + 0.5 s is frame 10 i + 5.
    assert [frame_index(f) for f in clip.frames] == [FPS * i + FPS // 2 for i in range(4)]


def test_start_seeks_to_later_segments(coded_clip):
    clip = decode_clip(coded_clip, segments=2, start=1.5, frame_size=16, sample_rate=16000)
    assert [frame_index(f) for f in clip.frames] == [20, 30]
    halves = clip.audio.reshape(4, 8000)  # [1.5, 2), [2, 2.5), [2.5, 3), [3, 3.5)
    assert [dominant_hz(h, 16000) for h in halves] == pytest.approx([TONES[1], TONES[2], TONES[2], TONES[3]], abs=2)


def test_variable_frame_rate_picks_nearest_timestamp(vfr_clip):
    path, times = vfr_clip
    clip = decode_clip(path, segments=5, frame_size=16)
    expected = [int(np.argmin(np.abs(times - (i + 0.5)))) for i in range(5)]
    assert [frame_index(f) for f in clip.frames] == expected


def test_keyframe_jumps_and_skipped_frames_match_a_full_decode(keyframe_clip):
    clip = decode_clip(keyframe_clip, segments=6, frame_size=SIZE)
    with av.open(str(keyframe_clip)) as container:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    for i, frame in enumerate(clip.frames):
        _, nearest = min(decoded, key=lambda item: abs(item[0] - (i + 0.5)))
        assert torch.equal((frame.permute(1, 2, 0) * 255).round().byte(), torch.from_numpy(nearest))
    assert [frame_index(f) for f in clip.frames] == [FPS * i + FPS // 2 for i in range(6)]


def test_audio_segments_align_with_seconds(coded_clip):
    clip = decode_clip(coded_clip, segments=4, frame_size=16, sample_rate=32000)
    for second, wave in enumerate(clip.audio):
        assert dominant_hz(wave, 32000) == pytest.approx(TONES[second], abs=2)
        spectrum = np.abs(np.fft.rfft(wave.numpy())) ** 2
        freqs = np.fft.rfftfreq(32000, 1 / 32000)
        own = spectrum[np.abs(freqs - TONES[second]) < 20].sum()
        assert own / spectrum.sum() > 0.97  # a misaligned second would carry its neighbour's tone


@pytest.mark.parametrize("rate", [8000, 11025, 96000])
def test_odd_sample_rates_resample_with_sample_accurate_timing(media_dir, rate):
    times = (0.25, 1.1, 2.5)
    path = write_video(media_dir / f"clicks_{rate}.mp4", coded_frames(3 * FPS), FPS,
                       audio=clicks(rate, 3, times), sample_rate=rate)
    wave = decode_clip(path, segments=3, frame_size=16, sample_rate=32000).audio.reshape(-1).numpy()
    for t in times:
        around = slice(int((t - 0.1) * 32000), int((t + 0.1) * 32000))
        onset = around.start + int(np.argmax(np.abs(wave[around]) > 0.3))
        assert onset / 32000 == pytest.approx(t, abs=0.001)


def test_surround_audio_is_the_mean_of_its_channels(surround_clip):
    path, channels = surround_clip
    assert probe(path)["channels"] == 6
    audio = decode_clip(path, segments=2, frame_size=16, sample_rate=32000).audio
    expected_rms = channels.mean(axis=0).std()
    assert float(audio[:, 1000:-1000].std()) == pytest.approx(expected_rms, rel=0.05)
    assert dominant_hz(audio[1], 32000) == pytest.approx(500, abs=2)


def test_no_audio_stream_decodes_to_silence(silent_video):
    clip = decode_clip(silent_video, segments=2, frame_size=16)
    assert clip.audio_missing and clip.audio.shape == (2, 32000)
    assert torch.count_nonzero(clip.audio) == 0
    assert [frame_index(f) for f in clip.frames] == [5, 15]


def test_short_clip_is_padded(short_clip):
    clip = decode_clip(short_clip, segments=10, frame_size=16)
    assert clip.frames.shape == (10, 3, 16, 16) and clip.audio.shape == (10, 32000)
    assert clip.meta["padded_segments"] == 8 and clip.meta["duration"] == pytest.approx(2.0)
    assert [frame_index(f) for f in clip.frames[:2]] == [5, 15]
    last = 2 * FPS - 1
    assert all(frame_index(f) == last for f in clip.frames[2:])
    assert float(clip.audio[1].abs().max()) > 0.3
    assert torch.count_nonzero(clip.audio[2:]) == 0


def test_recording_without_a_stated_duration(live_recording):
    assert probe(live_recording)["duration"] is None
    clip = decode_clip(live_recording, segments=5, frame_size=16, sample_rate=16000)
    assert clip.meta["duration"] == pytest.approx(3.0) and clip.meta["padded_segments"] == 2
    assert [frame_index(f) for f in clip.frames] == [5, 15, 25, 29, 29]
    assert [dominant_hz(a, 16000) for a in clip.audio[:3]] == pytest.approx(TONES[:3], abs=2)
    assert decode_clip(live_recording, segments=2, frame_size=16).meta["duration"] is None  # end not reached
    with pytest.raises(MediaError, match="beyond the end"):
        decode_clip(live_recording, start=7.0)


def test_rotation_metadata_is_applied(rotated_clip):
    # Displayed 90 degrees counter-clockwise: the coded top-left block ends up bottom-left, the frame turns portrait.
    red = decode_clip(rotated_clip, segments=1, frame_size=(64, 48)).frames[0, 0]
    assert float(red[-12:, :12].mean()) > 0.9
    assert float(red[:12, :12].mean()) < 0.1 and float(red[-12:, -12:].mean()) < 0.1


def test_round_trip_write_then_decode(media_dir):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (20, 6, 8, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)  # 48x64 blocks
    wave = 0.4 * np.sin(2 * np.pi * 440 * np.arange(2 * 32000) / 32000)
    path = write_video(media_dir / "round_trip.mp4", torch.from_numpy(smooth), FPS, audio=torch.from_numpy(wave))
    assert path.read_bytes()[4:8] == b"ftyp" and path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat")
    clip = decode_clip(path, segments=2, frame_size=SIZE)
    for i, frame in enumerate(clip.frames):
        original = torch.from_numpy(smooth[FPS * i + FPS // 2]).permute(2, 0, 1).float() / 255
        assert float((frame - original).abs().mean()) < 0.03
    decoded = clip.audio.reshape(-1).numpy()
    assert np.corrcoef(decoded[1000:-1000], wave[1000:-1000])[0, 1] > 0.99


def test_write_video_pads_odd_sizes_and_draws_masks(media_dir):
    frames = np.zeros((FPS, 33, 47, 3), dtype=np.uint8)
    masks = np.zeros((FPS, 33, 47), dtype=bool)
    masks[:, 8:26, 12:36] = True
    path = write_video(media_dir / "masks.mp4", frames, FPS, masks=masks, mask_alpha=0.5)
    info = probe(path)
    assert (info["width"], info["height"]) == (48, 34)
    frame = decode_clip(path, segments=1, frame_size=(34, 48)).frames[0]
    inside = frame[:, 12:22, 18:30].mean(dim=(1, 2))
    assert inside.tolist() == pytest.approx([0.5, 0.5 * 48 / 255, 0.5 * 48 / 255], abs=0.04)
    assert float(frame[:, 8, 18:30].mean()) > float(inside.mean()) + 0.05  # outline brighter than the tint
    assert float(frame[:, :4, :8].max()) < 0.05  # outside untouched


def test_write_video_rejects_bad_inputs(tmp_path):
    frames = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", frames.astype(np.float32), FPS)
    with pytest.raises(ValueError, match="channels"):
        write_video(tmp_path / "a.mp4", frames, FPS, audio=np.zeros((3, 100)))
    with pytest.raises(ValueError, match="masks"):
        write_video(tmp_path / "a.mp4", frames, FPS, masks=np.zeros((2, 8, 8)))


def test_probe_reports_streams(coded_clip, silent_video):
    info = probe(coded_clip)
    assert info["duration"] == pytest.approx(4.0, abs=0.05)
    assert (info["width"], info["height"], info["fps"]) == (64, 48, FPS)
    assert info["has_audio"] and info["audio_rate"] == 16000 and info["channels"] == 1
    assert not probe(silent_video)["has_audio"]


# Bad inputs: each gets a MediaError (a ValueError) whose message says what is wrong.

def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(MediaError, match="empty"):
        decode_clip(path)


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are notes, not a video\n" * 20)
    with pytest.raises(MediaError, match="not a media file"):
        decode_clip(path)


@pytest.mark.parametrize("keep", [0.4, 0.01])
def test_truncated_file(tmp_path, coded_clip, keep):
    data = coded_clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(MediaError, match="truncated"):
        decode_clip(path, segments=4)


def test_audio_only_file(audio_only):
    with pytest.raises(MediaError, match="no video stream"):
        decode_clip(audio_only)


def test_limits(coded_clip):
    with pytest.raises(MediaError, match="over the 2 s limit"):
        decode_clip(coded_clip, limits=MediaLimits(max_duration_s=2))
    with pytest.raises(MediaError, match="64x48, over the 32x32 limit"):
        decode_clip(coded_clip, limits=MediaLimits(max_width=32, max_height=32))
    with pytest.raises(MediaError, match="MB limit"):
        decode_clip(coded_clip, limits=MediaLimits(max_file_bytes=1000))


def test_resolution_limit_holds_in_either_orientation(coded_clip):
    clip = decode_clip(coded_clip, segments=1, frame_size=16, limits=MediaLimits(max_width=48, max_height=64))
    assert clip.frames.shape == (1, 3, 16, 16)
    with pytest.raises(MediaError, match="over the 40x64 limit"):
        decode_clip(coded_clip, limits=MediaLimits(max_width=40, max_height=64))


def test_start_beyond_end(short_clip):
    with pytest.raises(MediaError, match="beyond the end"):
        decode_clip(short_clip, start=5.0)


def test_missing_file_and_bad_arguments(tmp_path, short_clip):
    with pytest.raises(FileNotFoundError):
        decode_clip(tmp_path / "nowhere.mp4")
    with pytest.raises(ValueError, match="segments"):
        decode_clip(short_clip, segments=0)
    with pytest.raises(ValueError, match="frame_size"):
        decode_clip(short_clip, frame_size=0)

