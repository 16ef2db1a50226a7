"""python -m pytest_mangaassist slices {discover,add} | check DIR: see pytest_mangaassist.cli."""

import sys

if sys.argv[1:2] == ["check"]:
    from .cli.check import main as check

    sys.exit(check(sys.argv[2:]))

from .cli.slices import main  # noqa: E402

sys.exit(main())
