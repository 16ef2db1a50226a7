"""python -m pytest_mangaassist slices {discover,add}: see pytest_mangaassist.cli.slices."""

import sys

from .cli.slices import main

sys.exit(main())
