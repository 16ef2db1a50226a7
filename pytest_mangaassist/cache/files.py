"""Files the plugin reads and replaces inside the project (cache entries, the cache key, exports' MACs,
the snapshot file), without following a symbolic link planted in their place.

A restored CI cache or a pull request can put a symbolic link, a FIFO or a device where the plugin
expects a file or a folder. Reading a link to /dev/zero never ends, opening a FIFO blocks, and writing
through a link writes outside the project. So here (by hand: neither pathlib nor tempfile opens without
following links):

- a folder is opened with O_DIRECTORY | O_NOFOLLOW, and the files in it relative to that descriptor
  (dir_fd), so a folder swapped for a link after the check still cannot redirect a read or a write;
- a file is opened with O_NOFOLLOW | O_NONBLOCK (a FIFO does not block) and read only if fstat says it
  is a regular file, at most `limit` bytes;
- a file is replaced by writing a new temporary file (O_CREAT | O_EXCL | O_NOFOLLOW) and renaming it
  over the old name: a rename replaces a link itself, never its target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ..loading.files import kind_of

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW
READ_FLAGS = os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_BINARY", 0)


class NotAFile(OSError):
    """A path holds something other than what the plugin expects there (a link, a FIFO, a device...)."""


def _mode(path: Path) -> int | str | None:
    """path's own mode (a link examined, never followed); None where absent (under a file: the caller's checks
    name that); a sentence where it cannot be examined."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"unusable ({exc.strerror})"


def describe(path: Path) -> str | None:
    """None where path is absent or a regular file; else what it is ("a symbolic link (to X)", "a folder",
    "a FIFO (named pipe)", ...). The link itself is examined, never its target."""
    mode = _mode(path)
    if mode is None or isinstance(mode, str) or stat.S_ISREG(mode):
        return None if not isinstance(mode, str) else mode
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "a symbolic link"
    return kind_of(mode)


def folder_problem(path: Path) -> str | None:
    """None where path is absent or a real folder; else what it is (a link is examined, never followed)."""
    mode = _mode(path)
    if mode is None or isinstance(mode, str) or stat.S_ISDIR(mode):
        return None if not isinstance(mode, str) else mode
    return describe(path) or "a regular file"


@contextlib.contextmanager
def folder(path: Path, create: bool = True):
    """A descriptor of the real folder path (created when absent); NotAFile where path is a link or not a
    folder. Files are then opened relative to it."""
    if create:
        with contextlib.suppress(FileExistsError):  # a file in its place: told below
            Path(path).mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, FOLDER_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise NotAFile(exc.errno, f"{path} is {folder_problem(Path(path)) or 'unusable'}, not a folder") from None
    try:
        yield fd
    finally:
        os.close(fd)


def read(folder_fd: int, name: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file `name` in the folder; FileNotFoundError where absent, NotAFile where it
    is a link, a FIFO, a device or a folder, or is larger than limit (bytes; None: any size)."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=folder_fd)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise NotAFile(exc.errno, _what(folder_fd, name, exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFile(0, f"is {kind_of(info.st_mode)}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise NotAFile(0, f"is {info.st_size:,} bytes, more than the {limit:,} accepted")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    finally:
        os.close(fd)


def _what(folder_fd: int, name: str, exc: OSError) -> str:
    try:
        mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
    except OSError:
        return f"could not be opened ({exc.strerror})"
    return f"is {kind_of(mode)}, not a regular file"


def read_file(path: Path, limit: int | None = None) -> bytes:
    """read() of a path: its folder opened without following a link at its last component."""
    path = Path(path)
    with folder(path.parent, create=False) as fd:
        return read(fd, path.name, limit)


def create_temporary(folder_fd: int, name: str, suffix: str = "", mark: str = ".tmp-") -> tuple[str, int]:
    """(name, descriptor) of a new, empty file ".<name><mark><random><suffix>" in the folder."""
    while True:
        candidate = f".{name}{mark}{secrets.token_hex(6)}{suffix}"
        try:
            return candidate, os.open(candidate, CREATE_FLAGS, 0o600, dir_fd=folder_fd)
        except FileExistsError:
            continue


def replace(folder_fd: int, name: str, data: bytes, mode: int = 0o644, mark: str = ".tmp-") -> None:
    """Put data under `name` in the folder atomically: a reader sees the old file or the new one. Whatever
    held the name (a link, a FIFO) is replaced itself; a link's target is never written."""
    temporary, fd = create_temporary(folder_fd, name, mark=mark)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise


def replace_file(path: Path, data: bytes, mode: int = 0o644, mark: str = ".tmp-") -> None:
    """replace() of a path whose folder exists (or is created)."""
    path = Path(path)
    with folder(path.parent) as fd:
        replace(fd, path.name, data, mode, mark)


def clear(folder_fd: int, name: str) -> str | None:
    """Remove `name` from the folder when it is anything but a regular file (a link is removed itself, a
    folder with what is in it); returns what it was, None where it was a regular file or absent."""
    try:
        mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        import shutil

        shutil.rmtree(name, dir_fd=folder_fd)  # removes links inside it, never follows them
    else:
        os.unlink(name, dir_fd=folder_fd)
    return kind_of(mode)
