"""python -m pytest_mangaassist.reference build --out DIR [--small] [--force]"""

from __future__ import annotations

import argparse
import sys

from ..errors import MangaAssistInputError
from .build import FULL, SMALL, build_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_mangaassist.reference",
                                     description="Build the reference MangaAssist intent model.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write DIR/pretrained, DIR/finetuned and DIR/data")
    build.add_argument("--out", required=True, help="output folder (reused when already built)")
    build.add_argument("--small", action="store_true", help="the 2-layer test model (seconds, not minutes)")
    build.add_argument("--force", action="store_true", help="rebuild even when DIR holds an up-to-date build")
    args = parser.parse_args(argv)
    try:
        build_reference(args.out, SMALL if args.small else FULL, force=args.force)
    except MangaAssistInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
