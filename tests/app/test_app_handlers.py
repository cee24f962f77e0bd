"""The tabs' handler functions called directly, on an example clip and an uploaded file, with good and bad input."""
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from analysis.figures import Context
from app.inputs import load_clip
from app.tabs import features, figures, intervene, predictions, robustness, router
from avmoe.data.synthetic.registry import get_world

QUESTION = "how many sounding objects are in the video?"  # words of the shapes world's question vocabulary


@pytest.fixture(scope="module")
def ran(studio):
    """The Run button on the first example, audio + visual, with a question."""
    return predictions.run(studio, str(studio.examples[0].path), "audio + visual", 0, None, QUESTION, None)


def test_run_shows_every_task_of_an_example(studio, ran):
    session, info, ave, avvp, gallery, heatmap, usage, answer, summary = ran
    assert "**Scene 0**" in info and "4 one-second segments" in info and "Condition: `av`" in info
    pred = session.prediction
    assert set(pred.tasks) == {"ave", "avvp", "s4", "ms3", "avqa"} and session.question == QUESTION
    bars, truth = ave.data
    np.testing.assert_allclose(bars.y, pred.tasks["ave"].outputs["confidence"].numpy(), rtol=1e-6)
    assert list(truth.text) == [t or "-" for t in studio.examples[0].ave[:4]]
    assert avvp.layout.title.text.startswith("Audio and visual events (AVVP)")
    assert len(gallery) == 4 and [caption for _, caption in gallery] == ["0 s", "1 s", "2 s", "3 s"]
    assert heatmap.layout.title.text == "Router weights · ave · visual stream · p1"  # the explorer's defaults
    assert len([t for t in heatmap.data if t.type == "heatmap"]) == 2 and usage.data  # one per expert
    overlay = predictions.overlay_video(session)  # the Run's follow-up event
    assert Path(overlay).is_file() and Path(overlay).suffix == ".mp4"
    assert len(answer) == 5 and set(answer) <= set(get_world("shapes").answer_vocab)
    assert list(answer.values()) == sorted(answer.values(), reverse=True)
    assert summary == pred.to_dict() and len(summary["tasks"]["ave"]["predictions"]) == 4


def test_run_on_an_upload_under_noise_without_a_question(studio, upload):
    session, info, *_, answer, summary = predictions.run(studio, str(upload), "audio noise", 10, None, "  ", None)
    assert "**my upload.mp4**: 12.0 s" in info and "audio-noise:10" in info
    assert answer is None and "avqa" not in summary["tasks"] and summary["condition"] == "audio-noise:10"
    assert session.clip.num_segments == 4
    with pytest.raises(gr.Error, match="the avqa model did not run on this clip; type a question in the Predictions"):
        router.render("avqa", "visual", "p1", session)
    heatmap = predictions.run(studio, str(upload), "audio noise", 10, None, "", session, "avqa")[5]
    assert "the avqa model did not run on this clip" in heatmap.layout.annotations[0].text  # a message, no error


def test_run_rejects_bad_input(studio, bad_files):
    for name, text in (("not_media", "notes.mp4 is not a media file"), ("audio_only", "has no video stream"),
                       ("too_long", "over the 20 s limit"), ("too_large", "over the 3 MB limit")):
        with pytest.raises(gr.Error, match=text) as refused:
            predictions.run(studio, str(bad_files[name]), "audio + visual", 0, None, "", None)
        assert refused.value.title == "Cannot use this file"
        assert str(bad_files[name].parent) not in refused.value.message
    with pytest.raises(gr.Error) as refused:
        load_clip(studio, str(bad_files["not_media"]), None)
    assert refused.value.message == ("notes.mp4 is not a media file PyAV can read; expected a video such as mp4, "
                                     "mkv, webm, mov or avi")  # without FFmpeg's "[Errno ...] Invalid data found"
    assert "[Errno " in str(refused.value.__cause__.__cause__)  # the library's own error keeps the details
    with pytest.raises(gr.Error, match="no video"):
        predictions.run(studio, None, "audio + visual", 0, None, "", None)
    with pytest.raises(gr.Error, match="needs the other clip"):
        predictions.run(studio, str(studio.examples[0].path), "audio from another clip", 0, None, "", None)


def test_load_clip_decodes_into_the_session(studio, upload):
    session, info = load_clip(studio, str(upload), None)
    assert session.clip is not None and "my upload.mp4" in info
    assert load_clip(studio, str(upload), session)[0] is session
    assert load_clip(studio, None, session) == (None, "Pick an example or upload a video, then press **Run**.")


def test_ask_answers_and_refuses_empty_questions(studio, ran):
    session = ran[0]
    answer = predictions.ask(studio, QUESTION, session)
    assert answer == ran[7]  # the same question and clip as the Run
    other = predictions.ask(studio, "where is the loudest sounding object?", session)
    assert len(other) == 5 and other != answer
    with pytest.raises(gr.Error, match="the question is empty"):
        predictions.ask(studio, "   ", session)
    with pytest.raises(gr.Error, match="no clip yet"):
        predictions.ask(studio, QUESTION, None)


def test_predict_json_is_the_prediction_summary(studio, ran):
    summary = predictions.predict_json(studio, str(studio.examples[0].path), "audio + visual", 0, None, QUESTION)
    assert summary == ran[-1]
    assert set(summary["tasks"]["ave"]["router"]) >= {"visual/0/p1", "audio/0/p2"}
    assert predictions.suggest(studio, str(studio.examples[0].path)).choices[0][0] == studio.examples[0].questions[0]


def test_router_explorer_draws_the_trace_and_a_second_condition(studio, ran):
    session = ran[0]
    heat, summary = router.render("ave", "audio", "p2", session)
    trace = session.prediction.tasks["ave"].trace
    first = trace.keys("audio", "p2")[0]
    np.testing.assert_allclose(heat.data[0].z, trace.stack("audio", "p2")[:, 0, :, 0].numpy(), rtol=1e-6)
    assert heat.layout.title.text == "Router weights · ave · audio stream · p2" and first[0] == "audio"
    session, heat, summary = router.compare(studio, "ave", "visual", "p1", "visual only", 0, None, session)
    assert session.compare.condition == "visual-only" and len(heat.data) == 6
    a, b, diff = heat.data[0], heat.data[2], heat.data[4]  # columns A, B, A - B of expert cma0
    np.testing.assert_allclose(np.asarray(diff.z), np.asarray(a.z) - np.asarray(b.z), atol=1e-6)
    assert not np.allclose(a.z, b.z)  # silencing the audio moves the visual routers
    with pytest.raises(gr.Error, match="press Run first"):
        router.compare(studio, "ave", "visual", "p1", "visual only", 0, None, None)


def test_intervene_pins_the_router_and_reports_every_task(studio, ran):
    session = ran[0]
    summary, effects, heat = intervene.intervene(studio, "cross-modal only", "", None, [], ["audio", "visual"],
                                                 session)
    assert "Override `cma` on every layer" in summary
    for task in ("AVE", "AVVP", "S4", "MS3", "AVQA"):
        assert f"**{task}**" in summary
    intervened = [t for t in heat.data if t.hovertemplate.startswith("intervened<br>expert cma0")][0]
    np.testing.assert_allclose(intervened.z, 1.0)
    assert len(effects.data) == 2 * 5  # untouched and intervened, per task
    summary, _, heat = intervene.intervene(studio, "pin weights", "0.2, 0.8", None, [studio.layers()[0]], ["visual"],
                                           session)
    pinned = [t for t in heat.data if t.hovertemplate.startswith("intervened<br>expert ua0")][0]
    np.testing.assert_allclose(np.asarray(pinned.z)[0], 0.8, rtol=1e-6)  # the first layer is pinned ...
    assert not np.allclose(np.asarray(pinned.z)[1:], 0.8)  # ... the others are not
    for args, text in (((("pin weights", "a, b", None, [], ["audio"])), "must be numbers"),
                       ((("pin weights", "1, 0, 0", None, [], ["audio"])), "pinned 3 weights"),
                       ((("unimodal only", "", None, [], [])), "no stream ticked")):
        with pytest.raises(gr.Error, match=text):
            intervene.intervene(studio, *args, session)
    override = intervene.make_override("knock out one expert", "", "ua0", [1, 4], ["audio"])
    assert (override.mode, override.expert, override.layers, override.streams) == ("knockout", "ua0", (1, 4),
                                                                                   ("audio",))


def test_robustness_on_the_evaluation_set_and_the_current_clip(studio, ran, tmp_path, monkeypatch):
    monkeypatch.setenv("AVMOE_CACHE", str(tmp_path))  # an empty cache: the first Evaluate computes
    assert not robustness.evaluation_cached(studio, "ave")
    table, chart = robustness.evaluate_set(studio, "ave")
    assert robustness.evaluation_cached(studio, "ave")
    assert not robustness.evaluation_cached(studio, "s4")  # no evaluation set
    assert table["headers"] == ["variant", "metric", "av", "visual-only", "mismatched"]
    rows = {(r[0], r[1]): r[2:] for r in table["data"]}
    assert ("avmoe", "accuracy") in rows and ("frozen", "accuracy") in rows
    assert rows[("avmoe", "router_cma_share_visual")][0] == pytest.approx(0.5, abs=0.2)
    assert {t.name for t in chart.data} == {"avmoe", "frozen"}
    again, _ = robustness.evaluate_set(studio, "ave")  # from the disk cache
    assert again == table
    table, chart = robustness.compare_clip(studio, "ave", ran[0])
    rows = {r[0]: r[2:] for r in table["data"]}
    assert rows["avmoe"][0] == 100.0 and rows["frozen"][0] == 100.0  # av agrees with itself
    with pytest.raises(gr.Error, match="no evaluation set for s4"):
        robustness.evaluate_set(studio, "s4")


def test_pivot_puts_conditions_in_columns():
    rows = [{"variant": "avmoe", "condition": c, "metric": "accuracy", "value": v}
            for c, v in (("av", 50.123456), ("visual-only", float("nan")))]
    assert robustness.pivot(rows) == {"headers": ["variant", "metric", "av", "visual-only"],
                                      "data": [["avmoe", "accuracy", 50.1235, None]]}


def test_agreement_scores():
    def pred(**outputs):
        return type("P", (), {"outputs": {k: torch.as_tensor(v) for k, v in outputs.items()}})()
    assert robustness.agreement("ave", pred(ave=[1, 2, -1, 3]), pred(ave=[1, 2, 2, 0])) == 50.0
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    half = masks.clone()
    masks[:, :2] = True
    half[:, :1] = True
    assert robustness.agreement("s4", pred(masks=masks), pred(masks=half)) == 50.0
    assert robustness.agreement("avqa", pred(answer=3), pred(answer=4)) == 0.0


def test_features_embed_the_evaluation_set_with_the_clip(studio, ran):
    fig = features.features(studio, "ave", "visual", features.FINAL, "t-SNE", "class", ran[0])
    assert sum(len(t.x) for t in fig.data) == 4 + 1
    assert [t.name for t in fig.data][-1] == "current clip"
    fig = features.features(studio, "ave", "audio", str(studio.layers()[1]), "t-SNE", "condition", ran[0])
    names = {t.name for t in fig.data}
    assert {"av", "visual-only", "audio-only", "current clip"} <= names
    assert sum(len(t.x) for t in fig.data) == 3 * 4 + 1


def test_figures_are_made_as_png_and_pdf(studio, tmp_path):
    ctx = Context(models=studio.models_root, eval_root=studio.eval_root, cache=None, clips=2,
                  ablation=tmp_path / "no_ablation.json")
    status, first, second, files = figures.make_figure(ctx, "router_weights")
    names = {Path(f).name for f in files}
    assert "**router_weights**" in status and {"router_weights.png", "router_weights.pdf"} <= names
    assert Path(first.value["path"]).name == "router_weights.png" and first.visible
    assert second.visible is False
    assert all(Path(f).stat().st_size > 1000 for f in files if f.endswith((".png", ".pdf")))
    with pytest.raises(gr.Error, match="cannot make 'ablation', missing"):
        figures.make_figure(ctx, "ablation")
    with pytest.raises(gr.Error, match="unknown figure"):
        figures.make_figure(ctx, "pie chart")
