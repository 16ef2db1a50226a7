"""python -m pytest_mangaassist check DIR [pytest options]: the gate pack on a checkpoint, with no test file.

The same run as `pytest --model-path=DIR --mangaassist-pack [pytest options]` (every other option of the
plugin and of pytest passes through: --golden-set, --production-path, -k, --mangaassist-report, ...);
the exit code is pytest's.
"""

from __future__ import annotations

import sys

USAGE = ("usage: python -m pytest_mangaassist check DIR --golden-set=FILE [--production-path=DIR] "
         "[--pretrained-path=DIR --validation-set=FILE] [--training-set=FILE] [--traffic=PATH] [pytest options]")


def main(argv: list[str]) -> int:
    import pytest

    if not argv or argv[0].startswith("-"):
        print(f"error: name the checkpoint folder to check.\n{USAGE}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    model, *rest = argv
    return int(pytest.main([f"--model-path={model}", "--mangaassist-pack", *rest]))
