"""Every named API endpoint through gradio_client against the app served on 127.0.0.1, with good and bad input."""
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow

QUESTION = "how many sounding objects are in the video?"
ENDPOINTS = {"/load_clip", "/run", "/ask", "/predict", "/router", "/compare", "/intervene", "/robustness",
             "/robustness_clip", "/features", "/figure", "/overlay_video"}


@pytest.fixture(scope="module")
def client(server, studio, tmp_path_factory):
    """A client whose session has run the first example (the app keeps a clip per session); the files it
    downloads go to a pytest temporary folder, not /tmp."""
    client = Client(server, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    client.predict(handle_file(str(studio.examples[0].path)), "audio + visual", 0, "second-scene", QUESTION,
                   api_name="/run")
    return client


def _plot(value) -> dict:
    assert value["type"] == "plotly"
    return value


def test_the_named_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(api) == ENDPOINTS
    assert [p["parameter_name"] for p in api["/run"]["parameters"]] == ["video", "condition", "snr", "other",
                                                                        "question", "router_task", "stream",
                                                                        "position"]


def test_load_clip_and_run(client, studio, upload, bad_files):
    assert "my upload.mp4" in client.predict(handle_file(str(upload)), api_name="/load_clip")
    with pytest.raises(AppError, match="notes.mp4 is not a media file"):
        client.predict(handle_file(str(bad_files["not_media"])), api_name="/load_clip")
    info, ave, avvp, gallery, heat, usage, answer, summary = client.predict(
        handle_file(str(studio.examples[1].path)), "audio noise", 0, "first-scene", QUESTION, api_name="/run")
    assert "**Scene 1**" in info and "audio-noise:0" in info
    assert _plot(ave) and _plot(avvp) and len(gallery) == 4 and _plot(usage)
    assert "Router weights · ave · visual stream · p1" in str(_plot(heat)["plot"])
    assert client.predict(api_name="/overlay_video").endswith(".mp4")  # of the session's last Run
    assert len(answer["confidences"]) == 5 and answer["label"] == answer["confidences"][0]["label"]
    assert set(summary["tasks"]) == {"ave", "avvp", "s4", "ms3", "avqa"}
    with pytest.raises(AppError, match="sound.wav has no video stream"):
        client.predict(handle_file(str(bad_files["audio_only"])), "audio + visual", 0, None, "", api_name="/run")
    with pytest.raises(AppError, match="over the 20 s limit"):
        client.predict(handle_file(str(bad_files["too_long"])), "audio + visual", 0, None, "", api_name="/run")


def test_predict_returns_the_json_summary(client, upload, bad_files):
    summary = client.predict(handle_file(str(upload)), "visual only", 0, None, QUESTION, api_name="/predict")
    assert summary["condition"] == "visual-only" and summary["segments"] == 4
    assert len(summary["tasks"]["ave"]["predictions"]) == 4
    assert summary["tasks"]["avqa"]["predictions"]["answer"] == summary["tasks"]["avqa"]["predictions"]["top5"][0][
        "answer"]
    assert "visual/0/p1" in summary["tasks"]["s4"]["router"]
    with pytest.raises(AppError, match="big.mp4 is 3 MB, over the 3 MB limit"):
        client.predict(handle_file(str(bad_files["too_large"])), "audio + visual", 0, None, "", api_name="/predict")
    with pytest.raises(AppError, match="'av' .* is not in the list of choices"):
        client.predict(handle_file(str(upload)), "av", 0, None, "", api_name="/predict")


def test_ask(client):
    answer = client.predict("where is the loudest sounding object?", api_name="/ask")
    assert len(answer["confidences"]) == 5
    with pytest.raises(AppError, match="the question is empty"):
        client.predict("", api_name="/ask")
    with pytest.raises(AppError, match="not in the question vocabulary"):
        client.predict("why is the sky blue?", api_name="/ask")


def test_router_and_compare(client):
    heat, usage = client.predict("ave", "visual", "p2", api_name="/router")
    assert "Router weights · ave · visual stream · p2" in str(_plot(heat)["plot"])
    heat, usage = client.predict("avvp", "audio", "p1", "audio only", 0, "first-scene", api_name="/compare")
    assert "B: audio-only" in str(_plot(heat)["plot"]) and "routing entropy" in str(_plot(usage)["plot"])
    with pytest.raises(AppError, match="needs the other clip"):
        client.predict("ave", "audio", "p1", "audio from another clip", 0, None, api_name="/compare")


def test_intervene(client, studio):
    summary, effects, heat = client.predict("knock out one expert", "", "cma0", [], ["visual"],
                                            api_name="/intervene")
    assert "Override `knockout` on every layer, streams visual" in summary and "**AVQA**" in summary
    assert _plot(effects) and _plot(heat)
    with pytest.raises(AppError, match="must be >= 0 with a positive sum"):
        client.predict("pin weights", "-1, 2", None, [], ["audio"], api_name="/intervene")


def test_robustness(client):
    table, chart = client.predict("ave", api_name="/robustness")
    assert table["headers"] == ["variant", "metric", "av", "visual-only", "mismatched"]
    assert {row[0] for row in table["data"]} == {"avmoe", "frozen"} and _plot(chart)
    table, chart = client.predict("ave", api_name="/robustness_clip")
    assert [row[1] for row in table["data"]] == ["agreement with own A+V (%)"] * 2
    with pytest.raises(AppError, match="no evaluation set for avvp"):
        client.predict("avvp", api_name="/robustness")


def test_features_and_figures(client):
    fig = client.predict("ave", "audio", "final (pooled output)", "t-SNE", "dominant expert", api_name="/features")
    assert "coloured by dominant expert" in str(_plot(fig)["plot"])
    with pytest.raises(AppError, match="99 is not in the list of choices"):
        client.predict("ave", "audio", "99", "t-SNE", "class", api_name="/features")
    status, first, second, files = client.predict("expert_usage", api_name="/figure")
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert "**expert_usage**" in status and {"expert_usage.png", "expert_usage.pdf"} <= names
    assert first["value"].endswith("expert_usage.png") and first["visible"]  # an update: preview and its label
    assert second["visible"] == (len([n for n in names if n.endswith(".png")]) > 1)
    assert {n[:-4] for n in names if n.endswith(".png")} == {n[:-4] for n in names if n.endswith(".pdf")}
    with pytest.raises(AppError, match="cannot make 'embeddings', missing"):
        client.predict("embeddings", api_name="/figure")
