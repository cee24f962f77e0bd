"""The README results table is generated from model cards."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from avmoe.results import END, START, load_cards, results_markdown, update_readme


def _card(folder: Path, task: str, variant: str, test: dict, seconds: float = 600.0) -> None:
    folder.mkdir(parents=True)
    card = {"data": {"task": task}, "config": {"variant": variant, "head_warmup": 3000 if task == "ave" else 0},
            "best_validation": 70.25, "steps": 250,
            "train_seconds": seconds, "test": test}
    (folder / "card.json").write_text(json.dumps(card))


def test_table_has_every_model_and_condition_with_the_primary_metric(tmp_path):
    _card(tmp_path / "s4-avmoe", "s4", "avmoe", {"av": {"miou": 71.234, "router_cma_share_audio": 0.5,
                                                        "router_cma_share_visual": 0.25}})
    _card(tmp_path / "ave-frozen", "ave", "frozen", {"av": {"accuracy": 50.04}, "audio-only": {"accuracy": 40.0}})
    _card(tmp_path / "ave-avmoe", "ave", "avmoe", {"av": {"accuracy": 85.06, "router_cma_share_audio": 0.4,
                                                          "router_cma_share_visual": 0.6},
                                                   "audio-only": {"accuracy": 80.0}}, seconds=1200)
    cards = load_cards(tmp_path)
    assert [name for name, _ in cards] == ["ave-avmoe", "ave-frozen", "s4-avmoe"]
    table = results_markdown(cards)
    lines = table.splitlines()
    assert lines[0] == "| model | task metric | val | av | audio-only | head warm-up steps | steps | train min |"
    assert lines[2] == "| `ave-avmoe` | accuracy % | 70.2 | 85.1 | 80.0 | 3000 | 250 | 20.0 |"
    assert lines[3] == "| `ave-frozen` | accuracy % | 70.2 | 50.0 | 40.0 | 3000 | 250 | 10.0 |"
    assert lines[4] == "| `s4-avmoe` | mIoU % | 70.2 | 71.2 |  | 0 | 250 | 10.0 |"
    routing = [line for line in lines if line.startswith("| `")][3:]
    assert routing == ["| `ave-avmoe` | 0.40 |  |  | 0.60 |  |  |", "| `s4-avmoe` | 0.50 |  |  | 0.25 |  |  |"]


def test_readme_block_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START}\nold table\n{END}\n\nafter\n")
    update_readme(readme, "| new |")
    assert readme.read_text() == f"# Title\n\n{START}\n| new |\n{END}\n\nafter\n"


def test_missing_block_and_missing_cards_are_named(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no results block"):
        update_readme(readme, "x")
    with pytest.raises(FileNotFoundError, match="no model cards"):
        load_cards(tmp_path)
