"""python -m mangaassist_reference build --out DIR [--small] [--force]
   python -m mangaassist_reference defect reinit-top-layer --model DIR --out DIR"""

from __future__ import annotations

import argparse
import sys

from pytest_mangaassist.errors import MangaAssistInputError
from .build import FULL, SMALL
from .derived import build_with_derived
from .defects import reinitialise_top_layer

DEFECTS = {"reinit-top-layer": reinitialise_top_layer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mangaassist_reference",
                                     description="Build the reference MangaAssist intent model.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write DIR/pretrained, DIR/finetuned, DIR/previous and DIR/data")
    build.add_argument("--out", required=True, help="output folder (reused when already built)")
    build.add_argument("--small", action="store_true", help="the 2-layer test model (seconds, not minutes)")
    build.add_argument("--force", action="store_true", help="rebuild even when DIR holds an up-to-date build")
    defect = commands.add_parser("defect", help="write a broken copy of a checkpoint (for checking gates)")
    defect.add_argument("kind", choices=sorted(DEFECTS))
    defect.add_argument("--model", required=True, help="checkpoint folder to copy")
    defect.add_argument("--out", required=True, help="folder for the broken copy")
    args = parser.parse_args(argv)
    try:
        if args.command == "defect":
            print(f"wrote {DEFECTS[args.kind](args.model, args.out)}")
        else:
            build_with_derived(args.out, SMALL if args.small else FULL, force=args.force)
    except MangaAssistInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
