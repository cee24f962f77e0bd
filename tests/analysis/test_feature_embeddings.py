"""Pooled features are the Predictor's features per clip or per second; projections are 2-D, seeded and cached."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import Subset

from analysis.embeddings import pooled_features, project
from avmoe.predict import Predictor


def test_features_per_clip_and_per_second_are_the_predictors(ctx):
    model = ctx.model("ave", "avmoe")
    clips = Subset(ctx.clips_for("ave", model.cfg), [0, 2])
    X, meta = pooled_features(model, clips, "audio", layer=1, level="second", condition="visual-only")
    assert X.shape == (6, 32) and X.dtype == np.float32  # 2 clips x 3 seconds; 32 channels after paired layer 1
    pred = Predictor({"ave": model}).predict(clips[1], "visual-only", tasks=["ave"], seed=1).tasks["ave"]
    np.testing.assert_array_equal(X[3:], pred.features["audio/1"].numpy())
    assert [(m["clip"], m["second"]) for m in meta] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [m["carrier"] for m in meta[3:]] == clips[1].meta["carrier"]
    assert {m["dominant"] for m in meta} <= {"cma0", "ua0"} and {m["condition"] for m in meta} == {"visual-only"}
    per_clip, clip_meta = pooled_features(Predictor({"ave": model}), clips, "visual")
    assert per_clip.shape == (2, 256) and [m["second"] for m in clip_meta] == [None, None]
    for m, i in zip(clip_meta, (0, 1)):
        labels = [c for c in clips[i].labels["ave"].tolist() if c >= 0]
        assert m["class"] == (clips[i].meta["classes"][max(set(labels), key=labels.count)] if labels else "background")
    with pytest.raises(ValueError, match=r"no features at layer 9 of the visual stream; layers are \[0, 1"):
        pooled_features(model, clips, "visual", layer=9)


def test_projections_are_two_dimensional_seeded_and_cached(tmp_path):
    X = np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32)
    Y = project(X, "tsne", seed=0, cache=tmp_path)
    assert Y.shape == (12, 2) and np.isfinite(Y).all()
    np.testing.assert_array_equal(project(X, "tsne", seed=0), Y)
    (cached,) = tmp_path.glob("tsne-*.npy")
    np.save(cached, np.zeros((12, 2), np.float32))
    assert not project(X, "tsne", seed=0, cache=tmp_path).any()  # a cache hit returns the stored array
    U = project(X, "umap", seed=0, cache=tmp_path)
    assert U.shape == (12, 2) and len(list(tmp_path.glob("umap-*.npy"))) == 1
    with pytest.raises(ValueError, match="method='pca'"):
        project(X, "pca")
    with pytest.raises(ValueError, match="N >= 4"):
        project(X[:3], "tsne")
