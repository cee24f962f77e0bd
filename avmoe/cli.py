"""`python -m avmoe <command>`: one sub-command per module, each providing `add_arguments(parser)` and `run(args)`."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("avmoe.info", "build a preset on the meta device and print its parameters by part"),
    "make-data": ("avmoe.data.synthetic.make_data", "render scene-world clips (mp4 + labels JSON)"),
    "pretrain": ("avmoe.pretrain", "train a tiny backbone on its own modality, then freeze it"),
    "train": ("avmoe.train", "train a task model (one process, or DDP under torchrun)"),
    "eval": ("avmoe.evaluate", "evaluate a model directory under input conditions"),
    "export": ("avmoe.export", "turn a trained run into a shippable fp16 model directory with shared backbones"),
    "bench": ("avmoe.bench", "time decode, backbones, mixtures, heads and the Predictor on one clip"),
    "results": ("avmoe.results", "the results table of the shipped models, from their model cards"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m avmoe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    if chosen is None:
        parser.parse_args(argv)  # prints usage or the unknown-command error
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(importlib.import_module(COMMANDS[chosen][0]).run(args) or 0)
