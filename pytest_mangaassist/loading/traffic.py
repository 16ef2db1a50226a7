"""Traffic: unlabelled production messages (JSON Lines or Parquet shards), validated where they enter.

    traffic = load_traffic("logs/2026-10/")              # a file, a folder of shards or a glob
    traffic = load_traffic("logs/*.parquet", text_field="message", engine="ray")

Every shard is read once at load time, so bad input stops the run before any model runs: a path that
does not exist, a glob or folder without shards, a shard that is not a regular file (a FIFO, a device), a
line that is empty, longer than MAX_LINE_BYTES, not UTF-8 or not a JSON object (file and line number), a
message without the text field (named, with the fields it has), with an empty text or one longer than
MAX_TEXT_CHARS, and shards whose fields differ (mixed schemas). The scan keeps nothing but counts, field
names and each shard's content hash (the key of its cached predictions); the replay streams the texts
again in chunks, so memory does not grow with the traffic. Fields other than the text are kept for
the report (`records`).
"""

from __future__ import annotations

import glob as globbing
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import MangaAssistInputError
from .files import bounded_lines, not_a_file
from .golden import MAX_LINE_BYTES, MAX_TEXT_CHARS, SHORTEN, check_text_length, normalize_text

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
ENGINES = ("embedded", "ray")
DEFAULT_TEXT_FIELD = "text"
DEFAULT_BATCH_SIZE = 64
RAY_FIX = ('pip install "pytest-mangaassist[ray]" (Ray Data and pyarrow; this project pins '
           'ray[data]==2.60.0 in requirements.lock)')
PARQUET_FIX = 'pip install pyarrow (or pip install "pytest-mangaassist[ray]", which includes it)'
HASH_BLOCK = 1 << 22
# Rows a Parquet scan holds at once: 256 texts of MAX_TEXT_CHARS are at most 100 MB (4 UTF-8 bytes a character),
# where pyarrow's default 65,536 rows of long, well-compressed texts would decompress to gigabytes.
PARQUET_SCAN_ROWS = 256


@dataclass(frozen=True)
class Shard:
    path: Path
    format: str  # "jsonl" or "parquet"
    rows: int
    fields: tuple[str, ...]  # every field its messages have, sorted
    content_hash: str  # sha256 of the file's bytes: the key of its cached predictions


@dataclass(frozen=True)
class Traffic:
    """Validated traffic shards and how to replay them (engine, Ray address, batch size)."""

    shards: tuple[Shard, ...]
    text_field: str = DEFAULT_TEXT_FIELD
    source: str = "<memory>"
    engine: str = "embedded"
    ray_address: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    # predictions made in this process, keyed by (model content hash, max length, shard hash): a second gate
    # on the same traffic does not replay it again, with or without the disk cache
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return sum(shard.rows for shard in self.shards)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.shards[0].fields

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256(self.text_field.encode())
        for shard in self.shards:
            digest.update(shard.content_hash.encode())
        return digest.hexdigest()[:16]

    def with_engine(self, engine: str, ray_address: str | None = None) -> Traffic:
        return replace(self, engine=check_engine(engine), ray_address=ray_address)

    def texts(self, shard: Shard, chunk: int) -> Iterator[list[str]]:
        """The shard's messages in order, `chunk` at a time."""
        if shard.format == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(shard.path) as parquet:
                for batch in parquet.iter_batches(batch_size=chunk, columns=[self.text_field]):
                    yield batch.column(0).to_pylist()
            return
        out: list[str] = []
        for _, record in _json_records(shard.path):
            out.append(record[self.text_field])
            if len(out) == chunk:
                yield out
                out = []
        if out:
            yield out

    def records(self, positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], dict]:
        """The whole records (text and the other fields) at (shard index, row) positions, for the report."""
        wanted: dict[int, set[int]] = {}
        for shard_index, row in positions:
            wanted.setdefault(shard_index, set()).add(row)
        found = {}
        for shard_index, rows in wanted.items():
            shard = self.shards[shard_index]
            for row, record in _rows(shard, rows):
                found[(shard_index, row)] = record
        return found


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise MangaAssistInputError(f"--mangaassist-engine (ini mangaassist_engine) = {engine!r} is not an engine.",
                                    f"Use one of {', '.join(ENGINES)} (embedded: in this process; ray: a Ray cluster).")
    return engine


# -- finding the shards ------------------------------------------------------------------------------
def shard_paths(path: str | Path, option: str = "--traffic") -> list[Path]:
    """The shard files of a file, a folder (every .jsonl/.parquet file under it) or a glob, sorted."""
    text = str(path)
    fix = (f"Pass {option} a JSON Lines or Parquet file, a folder of such shards, or a glob such as "
           "'logs/2026-10/*.jsonl'.")
    if globbing.has_magic(text):
        matches = sorted(Path(p) for p in globbing.glob(text, recursive=True) if not Path(p).is_dir())
        if not matches:
            raise MangaAssistInputError(f"{option} {text}: the glob matches no file.", fix)
        paths = matches
    else:
        folder = Path(text)
        if not folder.exists():
            raise MangaAssistInputError(f"{option} {folder} does not exist.", fix)
        if folder.is_dir():
            paths = sorted(p for p in folder.rglob("*") if not p.is_dir() and _format(p) is not None)
            if not paths:
                present = sorted(p.name for p in folder.rglob("*") if p.is_file())[:8]
                raise MangaAssistInputError(
                    f"{option} {folder} is a folder without traffic shards (no {', '.join(JSONL_SUFFIXES)} or "
                    f"{', '.join(PARQUET_SUFFIXES)} file" + (f"; it holds {', '.join(present)}" if present else
                                                             "; it is empty") + ").", fix)
        else:
            paths = [folder]
    unknown = [p for p in paths if _format(p) is None]
    if unknown:
        raise MangaAssistInputError(f"{option}: {unknown[0]} is neither JSON Lines ({', '.join(JSONL_SUFFIXES)}) nor "
                                    f"Parquet ({', '.join(PARQUET_SUFFIXES)}).", fix)
    for shard in paths:  # a FIFO would block the scan, a device (/dev/zero) never end it: refused, never skipped
        problem = not_a_file(shard)
        if problem:
            raise MangaAssistInputError(f"{option}: the shard {shard} {problem}.", fix)
    return paths


def _format(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "jsonl" if suffix in JSONL_SUFFIXES else "parquet" if suffix in PARQUET_SUFFIXES else None


def load_traffic(path: str | Path, text_field: str = DEFAULT_TEXT_FIELD, *, engine: str = "embedded",
                 ray_address: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 option: str = "--traffic") -> Traffic:
    """Find and validate the shards of path; every problem names its file (and line) and the fix."""
    if not isinstance(text_field, str) or not text_field:
        raise MangaAssistInputError(f"--traffic-text-field {text_field!r} is not a field name.",
                                    "Name the field that holds the message, e.g. --traffic-text-field=text.")
    check_engine(engine)
    shards = tuple(_scan(p, text_field) for p in shard_paths(path, option))
    _check_same_schema(shards, option)
    traffic = Traffic(shards, text_field, str(path), engine, ray_address, batch_size)
    if not len(traffic):
        raise MangaAssistInputError(f"{option} {path} holds no messages: {len(shards)} empty shard(s).",
                                    "Point it at the month's traffic, one message per line.")
    return traffic


def _check_same_schema(shards: tuple[Shard, ...], option: str) -> None:
    first = shards[0]
    for shard in shards[1:]:
        if shard.rows and first.rows and shard.fields != first.fields:
            raise MangaAssistInputError(
                f"{option}: the shards have mixed schemas: {first.path} has the fields {', '.join(first.fields)}, "
                f"{shard.path} has {', '.join(shard.fields)}.",
                "Replay shards of one export (the same fields in every shard), or pass the two kinds separately.")


def _scan(path: Path, text_field: str) -> Shard:
    return _scan_parquet(path, text_field) if _format(path) == "parquet" else _scan_jsonl(path, text_field)


# -- JSON Lines ----------------------------------------------------------------------------------------
def _json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of every line; the lines were validated by the scan (and are read with its bound,
    should the file have changed since)."""
    with open(path, "rb") as fh:
        for number, raw in bounded_lines(fh, path, max_bytes=MAX_LINE_BYTES, fix=SHORTEN):
            yield number, json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))


def _rows(shard: Shard, rows: set[int]) -> Iterator[tuple[int, dict]]:
    if shard.format == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(shard.path)
        for row in sorted(rows):
            yield row, {name: table.column(name)[row].as_py() for name in table.column_names}
        return
    last = max(rows)
    with open(shard.path, "rb") as fh:
        for number, raw in bounded_lines(fh, shard.path, max_bytes=MAX_LINE_BYTES, fix=SHORTEN):
            row = number - 1  # only the wanted lines are parsed
            if row in rows:
                yield row, json.loads(raw.decode("utf-8-sig" if row == 0 else "utf-8"))
            if row >= last:
                return


def _scan_jsonl(path: Path, text_field: str) -> Shard:
    digest = hashlib.sha256()
    fields: set[str] = set()
    rows = 0
    fix = (f"Write one JSON object per line, each with the message under \"{text_field}\" (or name the field "
           "with --traffic-text-field), in UTF-8, without empty lines.")
    try:
        with open(path, "rb") as fh:
            for number, raw in bounded_lines(fh, path, max_bytes=MAX_LINE_BYTES, fix=SHORTEN):
                digest.update(raw)
                record = _parse_line(raw, number, path, fix)
                if text_field not in record:
                    raise MangaAssistInputError(
                        f"{path}, line {number} has no field \"{text_field}\"; it has the field(s) "
                        f"{', '.join(map(repr, record)) or 'none'}.",
                        f"Pass --traffic-text-field (ini mangaassist_traffic_text_field) the field that holds the "
                        f"message (one of {', '.join(record) or 'none'}), or add \"{text_field}\" to every line.")
                _check_text(record[text_field], f"{path}, line {number}", text_field)
                fields.update(record)
                rows += 1
    except OSError as exc:
        raise MangaAssistInputError(f"{path} cannot be read ({exc.strerror or exc}).",
                                    "Make the traffic file readable.") from None
    return Shard(path, "jsonl", rows, tuple(sorted(fields)), digest.hexdigest()[:16])


def _parse_line(raw: bytes, number: int, path: Path, fix: str) -> dict:
    where = f"{path}, line {number}"
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise MangaAssistInputError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}).", fix) from None
    if not line.strip():
        raise MangaAssistInputError(f"{where} is empty.", fix)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MangaAssistInputError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}).", fix) from None
    except (RecursionError, ValueError) as exc:  # nesting thousands deep, a 5,000-digit number
        raise MangaAssistInputError(f"{where} holds JSON Python cannot read ({type(exc).__name__}).", fix) from None
    if not isinstance(record, dict):
        raise MangaAssistInputError(f"{where} is a JSON {type(record).__name__}, not an object.", fix)
    return record


def _check_text(text, where: str, text_field: str) -> None:
    if not isinstance(text, str):
        raise MangaAssistInputError(f"{where}: \"{text_field}\" is a {type(text).__name__}, not a message string "
                                    f"({str(text)[:60]!r}).", f"Store the message under \"{text_field}\" as a string.")
    check_text_length(len(text), where, text_field)
    # ASCII printable text with a visible character is the common case; anything else gets the full check
    if text.isascii() and text.isprintable() and text.strip():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MangaAssistInputError(f"{where}: \"{text_field}\" holds a lone surrogate, not a Unicode character.",
                                    "Write the character itself in UTF-8, or delete it.") from None
    if not normalize_text(text):
        raise MangaAssistInputError(f"{where}: \"{text_field}\" is empty (or only invisible characters): the model "
                                    "would see no message.", "Delete the line, or fix the export that wrote it.")


# -- Parquet -------------------------------------------------------------------------------------------
def _scan_parquet(path: Path, text_field: str) -> Shard:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MangaAssistInputError(f"{path} is a Parquet shard, and reading Parquet needs pyarrow, which is not "
                                    "installed.", PARQUET_FIX) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for one cause: not a Parquet file
        raise MangaAssistInputError(f"{path} could not be read as Parquet ({type(exc).__name__}: {exc}).",
                                    "Write the shard with pyarrow or pandas' to_parquet, or export it as JSON Lines."
                                    ) from None
    with parquet:
        schema = parquet.schema_arrow
        names = tuple(schema.names)
        if text_field not in names:
            raise MangaAssistInputError(
                f"{path} has no field \"{text_field}\"; it has the field(s) {', '.join(map(repr, names)) or 'none'}.",
                f"Pass --traffic-text-field (ini mangaassist_traffic_text_field) the field that holds the message "
                f"(one of {', '.join(names)}).")
        kind = schema.field(text_field).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise MangaAssistInputError(f"{path}: the field \"{text_field}\" holds {kind}, not strings.",
                                        f"Store the message under \"{text_field}\" as a string column.")
        row = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_SCAN_ROWS, columns=[text_field]):
            _refuse_long_texts(batch.column(0), row, path, text_field)
            for text in batch.column(0).to_pylist():
                row += 1
                if text is None:
                    raise MangaAssistInputError(f"{path}, row {row}: \"{text_field}\" is null.",
                                                "Drop the rows without a message before the replay.")
                _check_text(text, f"{path}, row {row}", text_field)
    return Shard(path, "parquet", row, tuple(sorted(names)), _file_hash(path))


def _refuse_long_texts(texts, first_row: int, path: Path, text_field: str) -> None:
    """Lengths measured by Arrow, before any text becomes a Python string."""
    import pyarrow.compute as pc

    lengths = pc.utf8_length(texts)
    too_long = pc.greater(lengths, MAX_TEXT_CHARS)
    if pc.any(too_long).as_py():
        index = pc.index(too_long, True).as_py()
        check_text_length(lengths[index].as_py(), f"{path}, row {first_row + index + 1}", text_field)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
