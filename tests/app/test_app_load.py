"""`python -m app.stress load --small`: app/app.py served in a subprocess answers concurrent gradio_client users
without failures, in bounded time and memory, and deletes their uploads when it stops."""
import pytest

from app import stress

pytestmark = pytest.mark.slow


def test_two_users_two_requests_each(app_root, tmp_path):
    clip = stress.good_clip(tmp_path)
    report = stress.run_load(2, 2, clip, tmp_path / "load", models=str(app_root / "models"), timeout_s=120)
    assert report.failures == [] and report.ok == 4
    assert 0 < report.p50_s <= report.p95_s <= report.max_s < 30
    assert report.wall_s >= report.max_s and report.startup_s < 180
    assert report.server_peak_rss_mb is not None and 200 < report.server_peak_rss_mb < 4000
    left = [p.name for p in stress.files_under(tmp_path / "load" / "gradio")]
    assert clip.name not in left  # the uploads went when the server stopped (only example copies may stay)
    assert len(left) == report.upload_files_left_after_stop <= len(stress.find_examples())


def test_load_arguments_are_bounded(tmp_path):
    with pytest.raises(ValueError, match="users=0 and requests=2 must be within 1..64 and 1..100"):
        stress.run_load(0, 2, tmp_path / "clip.mp4", tmp_path)
