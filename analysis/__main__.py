"""`python -m analysis figures --out DIR [--only NAME]` and `python -m analysis ablation --out FILE`."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

log = logging.getLogger("analysis")


def main(argv: Optional[list[str]] = None) -> int:
    from analysis import ablation
    from analysis.figures import FIGURES

    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    figures = sub.add_parser("figures", help="make every figure (PNG + PDF) from the shipped models")
    figures.add_argument("--out", type=Path, required=True, help="output folder, e.g. docs/figures")
    figures.add_argument("--only", action="append", choices=sorted(FIGURES), metavar="NAME",
                         help=f"make only this figure (repeatable): {', '.join(FIGURES)}")
    figures.add_argument("--models", type=Path, help="folder of <task>-<variant> model folders (default "
                                                     "assets/models)")
    figures.add_argument("--eval", type=Path, help="folder of make-data <task>/ folders (default assets/eval)")
    figures.add_argument("--ablation", type=Path, help="ablation JSON (default assets/ablation_ave.json)")
    figures.add_argument("--clips", type=int, default=0, help="use the first N evaluation clips per task (0 = all)")
    figures.add_argument("--snr", type=float, nargs="+", help="noise levels in dB (default -10 -5 0 5 10)")
    figures.add_argument("--cache", type=Path, help="cache folder for evaluations and projections "
                                                    "(default .cache/analysis)")
    figures.add_argument("--no-cache", action="store_true", help="recompute everything")
    figures.add_argument("--threads", type=int, help="torch CPU threads (1 is much faster on busy shared cores)")
    ablation.add_arguments(sub.add_parser("ablation", help="train the expert-count ablation and write its JSON"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("analysis", "avmoe"):
        logging.getLogger(name).setLevel(logging.INFO)
    return ablation.run(args) if args.command == "ablation" else make_figures(args)


def make_figures(args: argparse.Namespace) -> int:
    """Build the chosen figures; say which inputs each skipped one lacks. Exit 1 only when nothing was made."""
    import torch

    from analysis.figures import FIGURES, Context

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = Context()
    for name, value in (("models", args.models), ("eval_root", args.eval), ("ablation", args.ablation),
                        ("cache", args.cache)):
        if value is not None:
            setattr(ctx, name, value)
    ctx.cache = None if args.no_cache else ctx.cache
    ctx.clips, ctx.snrs = args.clips, tuple(args.snr or ctx.snrs)
    ctx.progress = _Bar()
    captions_file = args.out / "captions.json"
    captions = json.loads(captions_file.read_text()) if captions_file.is_file() else {}
    made_any = False
    for name in args.only or list(FIGURES):
        spec = FIGURES[name]
        missing = spec.needs(ctx)
        if missing:
            print(f"skipped {name}: missing " + "; ".join(missing))
            continue
        try:
            made = spec.build(ctx)
        except (ValueError, FileNotFoundError, KeyError) as err:
            log.exception("could not make %s", name)
            print(f"failed {name}: {err}")
            continue
        finally:
            ctx.progress.close()
        for path in made.write(args.out):
            print(f"wrote {path}")
        captions.update(made.captions)
        made_any = made_any or bool(made.figures)
    if captions:
        captions_file.write_text(json.dumps(captions, indent=2))
        (args.out / "index.md").write_text("".join(f"![{n}]({n}.png)\n\n{c} ([PDF]({n}.pdf))\n\n"
                                                   for n, c in captions.items()))
    if not made_any:
        print("no figure could be made", file=sys.stderr)
    return 0 if made_any else 1


class _Bar:
    """progress(fraction, message) on a tqdm bar that restarts when a new sweep begins."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, fraction: float, message: str) -> None:
        from tqdm import tqdm

        steps = round(1000 * fraction)
        if self.bar is None or steps < self.bar.n:
            self.close()
            self.bar = tqdm(total=1000, leave=False, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        self.bar.set_description(message[:40], refresh=False)
        self.bar.update(steps - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


if __name__ == "__main__":
    sys.exit(main())
