"""The results table of the shipped models, generated from their model cards (and written into README.md).

`python -m avmoe results [--models assets/models] [--readme README.md]` prints a markdown table of every model's
primary test metric under every condition its card holds, the routing share of the cross-modal experts, and how
long each model trained (head warm-up steps, full steps, minutes including the warm-up); with --readme it replaces
the block between the README's results markers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from avmoe.evaluate import PRIMARY

START, END = "<!-- results:start -->", "<!-- results:end -->"
ROUTING_CONDITIONS = ("av", "visual-only", "audio-only")
UNITS = {"ave": "accuracy %", "avvp": "segment Type@AV F1", "s4": "mIoU %", "ms3": "mIoU %", "avqa": "accuracy %"}


def load_cards(models: Path) -> list[tuple[str, dict[str, Any]]]:
    """(model folder name, card) for every `<models>/*/card.json`, ordered by task then variant as trained."""
    cards = [(p.parent.name, json.loads(p.read_text())) for p in sorted(models.glob("*/card.json"))]
    if not cards:
        raise FileNotFoundError(f"no model cards (*/card.json) under {models}")
    order = {task: i for i, task in enumerate(PRIMARY)}
    return sorted(cards, key=lambda nc: (order.get(nc[1]["data"]["task"], 99), _variant(nc[1]) != "avmoe", nc[0]))


def results_markdown(cards: list[tuple[str, dict[str, Any]]]) -> str:
    """Two markdown tables: test metric per model x condition, then the routers' cross-modal share."""
    conditions = list(dict.fromkeys(c for _, card in cards for c in card.get("test", {})))
    head = ["model", "task metric", "val"] + conditions + ["head warm-up steps", "steps", "train min"]
    rows = [head, ["---"] * len(head)]
    for name, card in cards:
        task = card["data"]["task"]
        metric = PRIMARY[task]
        rows.append([f"`{name}`", UNITS.get(task, metric), _fmt(card.get("best_validation"))]
                    + [_fmt(card.get("test", {}).get(c, {}).get(metric)) for c in conditions]
                    + [str(card.get("config", {}).get("head_warmup", 0)), str(card.get("steps", "")),
                       f"{card['train_seconds'] / 60:.1f}" if "train_seconds" in card else ""])
    routing = [["model"] + [f"{s} stream, {c}" for s in ("audio", "visual") for c in ROUTING_CONDITIONS]]
    routing.append(["---"] * len(routing[0]))
    for name, card in cards:
        test = card.get("test", {})
        if _variant(card) != "avmoe" or "router_cma_share_audio" not in test.get("av", {}):
            continue  # single-expert variants have no router: their one expert always gets weight 1
        routing.append([f"`{name}`"] + [_share(test.get(c, {}).get(f"router_cma_share_{s}"))
                                        for s in ("audio", "visual") for c in ROUTING_CONDITIONS])
    return "\n".join([_table(rows), "", "Share of the routing weight on the cross-modal experts (test split, "
                      "mean over layers, positions and seconds):", "", _table(routing)])


def update_readme(readme: Path, table: str) -> None:
    """Replace the text between the results markers of `readme` with `table`."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no results block; add the lines {START} and {END} where the table goes")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(f"{before}{START}\n{table}\n{END}{after}")


def _variant(card: dict[str, Any]) -> str:
    return card.get("config", {}).get("variant", "avmoe")


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.1f}"


def _share(value: Any) -> str:
    return "" if value is None else f"{value:.2f}"


def _table(rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="assets/models", help="folder of model directories with card.json")
    parser.add_argument("--readme", help="write the tables into this README's results block")


def run(args: argparse.Namespace) -> int:
    table = results_markdown(load_cards(Path(args.models)))
    print(table)
    if args.readme:
        update_readme(Path(args.readme), table)
    return 0
