"""The rootdir and ini file of a run were not chosen because of a path option written with a space.

pytest picks them from the command line's free arguments before any plugin loads, so the DIR of
`--model-path DIR` counts as a test path there (not with `--model-path=DIR`); the plugin checks this
before the (possibly wrong) rootdir's conftest files are imported, and again at configure time.
"""

from __future__ import annotations

import inspect
import os
import shlex
from pathlib import Path

from ..errors import MangaAssistInputError
from .settings import OPTIONS


def check_rootdir(config) -> None:
    """pytest chooses its rootdir and ini file from the command line's free arguments before any plugin
    is loaded, so the DIR of `--model-path DIR` counts as a test path there (not with `--model-path=DIR`).
    Refuse a run whose rootdir or ini file would differ without those values."""
    ns = config.known_args_namespace
    if getattr(ns, "help", False) or getattr(ns, "version", False):
        return
    invocation_dir = Path(config.invocation_params.dir)
    try:
        raw = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *map(str, config.invocation_params.args)]
    except ValueError:
        return
    flags = {name: o.flag for o in OPTIONS if o.kind != "flag" for name in o.names}
    spaced = [(raw[i], raw[i + 1]) for i in range(len(raw) - 1)
              if raw[i] in flags and not raw[i + 1].startswith("-") and _exists(invocation_dir / raw[i + 1])]
    if not spaced:
        return
    values = {value for _, value in spaced}
    free = [a for a in (getattr(ns, "file_or_dir", None) or []) if a in raw and a not in values]
    intended = _determine_setup(ns, free, invocation_dir)
    if intended is None:
        return
    rootpath, inipath = intended
    actual = (Path(config.rootpath), config.inipath and Path(config.inipath))
    if (rootpath, inipath) == actual:
        return
    given = ", ".join(f"{flag} {value}" for flag, value in spaced)
    equals = " ".join(f"{flag}={value}" for flag, value in spaced)
    raise MangaAssistInputError(
        f"pytest took the value of {given} for a test path when it chose its rootdir and ini file (it does that "
        f"before plugins load): it chose rootdir {actual[0]} with ini file {actual[1] or 'none'} instead of "
        f"rootdir {rootpath} with ini file {inipath or 'none'}, so the suite's ini keys (golden set, addopts) "
        "and cache folder would not be used.",
        f"Write the option with '=': {equals} (the same for every path option of the plugin).")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _determine_setup(ns, args: list[str], invocation_dir: Path):
    """What pytest would have chosen from the command line without the plugin's option values; None
    where this pytest's internals differ from the ones known here (the check is then skipped)."""
    try:
        from _pytest.config.findpaths import determine_setup

        wanted = {"inifile": getattr(ns, "inifilename", None), "override_ini": getattr(ns, "override_ini", None),
                  "args": args, "rootdir_cmd_arg": getattr(ns, "rootdir", None) or None,
                  "invocation_dir": invocation_dir}
        params = inspect.signature(determine_setup).parameters
        result = determine_setup(**{k: v for k, v in wanted.items() if k in params})
        return Path(result[0]), (Path(result[1]) if result[1] else None)
    except Exception:  # a private pytest function: never let it break a run
        return None
