"""User files: what a path really is, and reads that stop at a size bound.

A path may name something that is not a file: a device (a link to /dev/zero reads zeros forever), a FIFO
(opening it waits for a writer that never comes), a socket, a folder or a dangling link. `not_a_file`
names which, so a message says "is a character device" instead of "does not exist", and a reader never
opens it. `bounded_lines` yields a file's lines but holds at most `max_bytes` of any one of them: a longer
line is refused after reading max_bytes + 1 bytes of it, so a 10 GB line costs no more memory than the bound.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import MangaAssistInputError

def kind_of(mode: int) -> str:
    """What a file mode describes, in words for a message (the cache's checks use the same words)."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def not_a_file(path: Path) -> str | None:
    """None when path is a regular file (links followed); else what it is, completing "<path> ...":
    "does not exist", "is a folder", "is a character device (a link to /dev/zero), not a regular file"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"is a link to {os.readlink(path)}, which does not exist" if os.path.islink(path) else "does not exist"
    except OSError as exc:  # a loop of links, a component that is a file, no permission
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = kind_of(mode)
    if kind == "a folder":
        return "is a folder, not a file"
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return f"is {kind}{link}, not a regular file"


def bounded_lines(fh: BinaryIO, path: Path, *, max_bytes: int, fix: str) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw line) of a file opened in binary mode; a line of more than max_bytes bytes
    (its newline aside) is a MangaAssistInputError naming the file, the line and the bound."""
    number = 0
    while raw := fh.readline(max_bytes + 1):
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            raise MangaAssistInputError(
                f"{path}, line {number} is longer than {max_bytes:,} bytes (the longest line read), so it was "
                "refused without reading the rest of it.", fix)
        yield number, raw
