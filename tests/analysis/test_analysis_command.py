"""`python -m analysis figures` makes what it can, names exactly what a skipped figure lacks, and fails only when
nothing could be made; `ablation` keeps the runs it already has."""
from __future__ import annotations

import json

from analysis.__main__ import main
from analysis.ablation import AblationSettings, run_ablation


def test_missing_inputs_are_named_and_nothing_made_fails(tmp_path, capsys):
    empty = tmp_path / "nothing"
    code = main(["figures", "--out", str(tmp_path / "out"), "--models", str(empty / "models"), "--eval",
                 str(empty / "eval"), "--ablation", str(empty / "ablation.json"), "--no-cache"])
    out = capsys.readouterr()
    assert code == 1 and "no figure could be made" in out.err
    lines = out.out.splitlines()
    assert len(lines) == 6 and all(line.startswith("skipped ") for line in lines)
    router = next(line for line in lines if line.startswith("skipped router_weights:"))
    assert f"{empty / 'eval' / 'ave'}/ (evaluation clips: python -m avmoe make-data --task ave" in router
    assert f"{empty / 'models' / 'ave-avmoe'}/ (a model folder with config.json and model.safetensors)" in router
    embeddings = next(line for line in lines if line.startswith("skipped embeddings:"))
    assert all(f"ave-{v}/" in embeddings for v in ("frozen", "cma-only", "avmoe"))
    assert f"{empty / 'ablation.json'} (make it with: python -m analysis ablation" in out.out


def test_one_figure_is_made_with_its_index(ablation_json, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["figures", "--out", str(out), "--only", "ablation", "--ablation", str(ablation_json)])
    assert code == 0
    assert (out / "ablation.png").is_file() and (out / "ablation.pdf").is_file()
    assert f"wrote {out / 'ablation.pdf'}" in capsys.readouterr().out
    index = (out / "index.md").read_text()
    assert index.startswith("![ablation](ablation.png)") and "cross-modal + unimodal experts" in index


def test_ablation_keeps_finished_runs_and_replaces_other_settings(ablation_json, tmp_path):
    doc = json.loads(ablation_json.read_text())
    settings = AblationSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["settings"].items()})
    again = run_ablation(ablation_json, [(1, 2)], settings, work=tmp_path / "unused")
    assert again == doc and not (tmp_path / "unused").exists()
    assert json.loads(ablation_json.read_text()) == doc


def test_ablation_trains_with_the_given_recipe(ablation_json):
    settings = json.loads(ablation_json.read_text())["settings"]
    assert (settings["head_warmup"], settings["head_lr_scale"], settings["gate_lr_scale"]) == (2, 0.5, 3.0)
    card = json.loads((ablation_json.parent / "runs" / "cma1-ua2" / "card.json").read_text())
    assert "head_warmup_seconds" in card and card["history"][0]["epoch"] == 0  # the warm-up model was validated
