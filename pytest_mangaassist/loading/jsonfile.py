"""One safe JSON reader for every JSON file the plugin reads from the user (golden-set lines,
config.json, tokenizer files, the snapshot file).

`json.loads` has failure modes that are not `JSONDecodeError`: text nested thousands deep raises
`RecursionError` (pytest shows it as INTERNALERROR), a 5,000-digit number raises a plain `ValueError`,
and an object that repeats a key silently keeps the last value. Here each ends in a
MangaAssistInputError that names the input and says how to fix it.

    from pytest_mangaassist.loading.jsonfile import parse_json, read_json

    data = parse_json(text, "mangaassist-snapshot.json")             # text already read
    data = parse_json(line, "golden.jsonl, line 7")                   # one JSON Lines record
    data = read_json(path, fix="Re-save the checkpoint with save_pretrained().")  # a whole file

`where` is a short description of the input for the message (a path, or "path, line N").
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MangaAssistInputError
from .files import not_a_file

# Far deeper than any file the plugin reads (config.json and the snapshot file nest 3 or 4 deep) and far
# below the interpreter's recursion limit, so data that parses is also safe to walk, hash and print.
MAX_DEPTH = 64
DEFAULT_FIX = "Write the file as plain JSON (e.g. with json.dump), or restore it from version control."
# The largest JSON file read: the biggest stock tokenizer.json files (250,000-piece multilingual vocabularies)
# are under 35 MB; config files and the snapshot are kilobytes. A larger file is refused after reading this much.
MAX_JSON_BYTES = 64 << 20


def parse_json(text: str, where: str, *, fix: str = DEFAULT_FIX, max_depth: int = MAX_DEPTH) -> object:
    """Parse `text` as one JSON value, or raise MangaAssistInputError(problem naming `where`, `fix`).

    Refused: invalid JSON (with line and column), nesting deeper than `max_depth` arrays/objects,
    numbers too long for Python's int conversion, and objects that repeat a key. NaN and Infinity
    are accepted as Python's json module accepts them.
    """
    try:
        value = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}" if "\n" in text.strip() else f"column {exc.colno}"
        raise MangaAssistInputError(f"{where} is not valid JSON ({exc.msg} at {at}).", fix) from None
    except RecursionError:
        raise MangaAssistInputError(
            f"{where} is JSON nested too deep to read (arrays or objects inside each other thousands of levels "
            "deep); no file the plugin reads needs that.", fix) from None
    except _RepeatedKey as exc:
        raise MangaAssistInputError(
            f"{where} repeats the key {exc.key!r} in one object, so it is ambiguous which value counts.", fix) from None
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise MangaAssistInputError(f"{where} holds a value Python cannot read ({exc}).", fix) from None
    depth = _depth(value)
    if depth > max_depth:
        raise MangaAssistInputError(
            f"{where} nests arrays or objects {depth} levels deep; at most {max_depth} are accepted.", fix)
    return value


def read_json(path: str | Path, where: str | None = None, *, fix: str = DEFAULT_FIX,
              max_depth: int = MAX_DEPTH) -> object:
    """Read a UTF-8 JSON file (a byte-order mark is tolerated) with parse_json's checks.

    An unreadable file, one that is not a regular file (a FIFO, a device), one larger than MAX_JSON_BYTES or one
    that is not UTF-8 is a MangaAssistInputError too.
    """
    path = Path(path)
    where = where or str(path)
    problem = not_a_file(path)
    if problem and problem != "does not exist":  # a FIFO would block the read, a device (/dev/zero) never end it
        raise MangaAssistInputError(f"{where} {problem}.", fix)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise MangaAssistInputError(f"{where} cannot be read ({exc.strerror or exc}).", fix) from None
    if len(raw) > MAX_JSON_BYTES:
        raise MangaAssistInputError(f"{where} is larger than {MAX_JSON_BYTES:,} bytes, more than any JSON file the "
                                    "plugin reads; it was not read further.", fix)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MangaAssistInputError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}).", fix) from None
    return parse_json(text, where, fix=fix, max_depth=max_depth)


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return result


def _depth(value: object) -> int:
    """Nesting depth without recursion (a scalar is 0, [] is 1, [[1]] is 2)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
