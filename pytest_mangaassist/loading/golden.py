"""Golden sets: JSON Lines of {"text", "intent", "slice"?, "also"?}, validated where they enter."""

from __future__ import annotations

import difflib
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MangaAssistInputError
from .files import bounded_lines, not_a_file
from .jsonfile import parse_json

ALLOWED_KEYS = ("text", "intent", "slice", "also")
# The longest message accepted wherever messages are read (golden and validation sets, traffic, `slices`
# input). The supported encoders read at most 512 positions, and WordPiece puts at most 100 characters in one
# token (a longer word becomes one [UNK]): 512 x 100 = 51,200 characters is more than any of them can read, so
# no text a model reads in full is refused. A longer "message" is a paste, a log or a hostile file (one 50 MB
# text once took a run to 10.7 GB while its tokens were counted): refused with its line, before any tokenizer.
MAX_TEXT_CHARS = 100_000
# The longest line read: a text at MAX_TEXT_CHARS in JSON's longest encoding (\uXXXX escapes, 6 bytes a
# character: 600,000 bytes) fits with room for the other fields. A longer line is refused after reading this
# much of it, so memory does not grow with it.
MAX_LINE_BYTES = 1 << 20
SHORTEN = (f"A message is at most {MAX_TEXT_CHARS:,} characters (the model reads only its first max_length tokens, "
           "128 by default, a few hundred characters): shorten the message to what a customer sends, or delete the "
           "line.")
# Names other datasets use for the same fields, for the did-you-mean of an unknown key.
KEY_ALIASES = {"label": "intent", "labels": "intent", "class": "intent", "category": "intent",
               "utterance": "text", "message": "text", "query": "text", "sentence": "text",
               "secondary": "also", "secondary_intents": "also", "segment": "slice", "tag": "slice"}


@dataclass(frozen=True)
class GoldenExample:
    text: str
    intent: str
    slice: str | None = None
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoldenSet:
    """An ordered, immutable set of labelled messages."""

    examples: tuple[GoldenExample, ...]
    source: str = "<memory>"
    content_hash: str = field(default="", compare=False)

    def __post_init__(self):
        """A set built directly (GoldenSet(examples)) is hashed too: results are memoised by content hash."""
        object.__setattr__(self, "examples", tuple(self.examples))
        if not self.content_hash:
            digest = hashlib.sha256()
            for ex in self.examples:
                digest.update(json.dumps(to_record(ex), sort_keys=True).encode("utf-8", "surrogatepass"))
            object.__setattr__(self, "content_hash", digest.hexdigest()[:16])

    @classmethod
    def from_examples(cls, examples: Iterable[GoldenExample], source: str = "<memory>") -> GoldenSet:
        return cls(tuple(examples), source)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def duplicate_count(self) -> int:
        """How many examples repeat an earlier example's message (see normalize_text); 0 unless the set
        was loaded with allow_duplicates=True or built in memory."""
        return sum(len(group) - 1 for group in duplicate_groups(self.texts))

    def __iter__(self):
        return iter(self.examples)

    @property
    def texts(self) -> list[str]:
        return [ex.text for ex in self.examples]

    @property
    def intents(self) -> list[str]:
        return [ex.intent for ex in self.examples]

    @property
    def labels(self) -> set[str]:
        """Every label the set mentions, primary or secondary."""
        return {ex.intent for ex in self.examples} | {a for ex in self.examples for a in ex.also}

    @property
    def slice_names(self) -> list[str]:
        return sorted({ex.slice for ex in self.examples if ex.slice})

    def only_slice(self, name: str) -> GoldenSet:
        """The examples of one slice; a slice the set does not have is an error, not an empty pass."""
        if name not in self.slice_names:
            raise MangaAssistInputError(
                f"The golden set {self.source} has no slice {name!r} (slices: {', '.join(self.slice_names) or 'none'}).",
                "Add examples with that \"slice\" value to the golden set, or name an existing slice.",
            )
        return GoldenSet.from_examples((ex for ex in self.examples if ex.slice == name), f"{self.source}[{name}]")

    def only_intent(self, intent: str) -> GoldenSet:
        return GoldenSet.from_examples(
            (ex for ex in self.examples if ex.intent == intent), f"{self.source}[intent={intent}]"
        )


def to_record(ex: GoldenExample) -> dict:
    record: dict = {"text": ex.text, "intent": ex.intent}
    if ex.slice:
        record["slice"] = ex.slice
    if ex.also:
        record["also"] = list(ex.also)
    return record


def write_golden_set(examples: Iterable[GoldenExample], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(to_record(ex), ensure_ascii=False) + "\n")


def load_golden_set(path: str | Path, *, allow_duplicates: bool = False) -> GoldenSet:
    """Read and validate a golden set; every problem names its line number and the fix.

    Refused, each with its line number: a line that is not one JSON object with the known keys; a line longer
    than MAX_LINE_BYTES or a text longer than MAX_TEXT_CHARS; a text that is empty or holds only invisible
    characters (whitespace, zero-width spaces and joiners, word joiner, byte-order mark); a string with a lone
    surrogate; one message labelled with two intents.

    Duplicates: two lines whose texts are equal after normalize_text (Unicode NFC, invisible characters
    removed, runs of whitespace collapsed, ends stripped) are the same message, counted twice. They are
    refused unless allow_duplicates=True (then GoldenSet.duplicate_count counts them). Case is kept:
    "Hi" and "hi" are different inputs to a cased model and a deliberate casing variant in a golden set.
    """
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise MangaAssistInputError(
            f"The golden set {path} {problem}.",
            "Pass --golden-set with the path of a JSON Lines file (one {\"text\": ..., \"intent\": ...} per line).",
        )
    examples, lines, first_line = [], [], {}
    with open(path, "rb") as fh:
        for number, raw in bounded_lines(fh, path, max_bytes=MAX_LINE_BYTES, fix=SHORTEN):
            line = _decode(raw, number, path)
            if line.strip():
                example = _parse_line(line, number, path)
                _check_consistent(example, number, first_line, path)
                examples.append(example)
                lines.append(number)
    if not examples:
        raise MangaAssistInputError(
            f"The golden set {path} holds no examples.",
            "Add one JSON object per line: {\"text\": \"the message\", \"intent\": \"its label\"}.",
        )
    if not allow_duplicates:
        _refuse_duplicates(examples, lines, path)
    return GoldenSet.from_examples(examples, str(path))


# Characters that render as nothing: a text made only of these (and whitespace) is an empty message.
INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
                      "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068"
                      "\u2069\u206a\u206b\u206c\u206d\u206e\u206f\u2800\u3164\ufeff\uffa0")


def _invisible(char: str) -> bool:
    return char.isspace() or char in INVISIBLE or unicodedata.category(char) in ("Cc", "Cf")


def normalize_text(text: str) -> str:
    """The form in which two golden texts count as the same message: Unicode NFC, invisible
    characters removed, whitespace runs collapsed to one space, ends stripped; case kept."""
    if text.isascii() and text.isprintable():  # the common case: nothing to normalise or remove but spacing
        return " ".join(text.split())
    kept = (c for c in unicodedata.normalize("NFC", text) if c.isspace() or not _invisible(c))
    return " ".join("".join(kept).split())


def duplicate_groups(texts: Sequence[str]) -> list[list[int]]:
    """Positions (0-based) of texts that are the same message after normalize_text, one list per
    repeated message, in order of first occurrence."""
    by_text: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        by_text.setdefault(normalize_text(text), []).append(i)
    return [group for group in by_text.values() if len(group) > 1]


def _refuse_duplicates(examples: list[GoldenExample], lines: list[int], path: Path) -> None:
    groups = duplicate_groups([ex.text for ex in examples])
    if not groups:
        return
    repeats = sum(len(group) - 1 for group in groups)
    shown = "; ".join(f"{examples[g[0]].text!r} on lines {', '.join(str(lines[i]) for i in g)}" for g in groups[:5])
    more = f"; and {len(groups) - 5} more" if len(groups) > 5 else ""
    raise MangaAssistInputError(
        f"The golden set {path} repeats {len(groups)} message(s) ({repeats} extra line(s)), so they count more "
        f"than once in every figure: {shown}{more}.",
        "Delete the repeated lines (texts equal after Unicode NFC and whitespace normalisation count as one), "
        "or accept them with --mangaassist-allow-duplicates (ini mangaassist_allow_duplicates = true).",
    )


def _decode(raw: bytes, number: int, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        raise MangaAssistInputError(f"{path}, line {number} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
                                    "Save the golden set as UTF-8.") from None


def _check_consistent(example: GoldenExample, number: int, first_line: dict, path: Path) -> None:
    """The same message labelled with two different intents is a contradiction, not data."""
    previous = first_line.setdefault(normalize_text(example.text), (number, example.intent))
    if previous[1] != example.intent:
        raise MangaAssistInputError(
            f"{path}: line {number} labels {example.text!r} as {example.intent!r}, line {previous[0]} as "
            f"{previous[1]!r}.",
            "Keep one label per message; list a secondary intent in \"also\".",
        )


def _parse_line(line: str, number: int, path: Path) -> GoldenExample:
    where = f"{path}, line {number}"
    record = parse_json(line, where, fix="Each line must be one JSON object, e.g. "
                        "{\"text\": \"the message\", \"intent\": \"its label\"}.")
    if not isinstance(record, dict):
        raise MangaAssistInputError(f"{where} is a JSON {type(record).__name__}, not an object.",
                                    "Write one JSON object per line.")
    unknown = sorted(set(record) - set(ALLOWED_KEYS))
    if unknown:
        guesses = {k: [KEY_ALIASES[k]] if k in KEY_ALIASES else difflib.get_close_matches(k, ALLOWED_KEYS, n=1)
                   for k in unknown}
        advice = "; ".join(f"{k!r}" + (f" (did you mean {g[0]!r}?)" if g else "") for k, g in guesses.items())
        raise MangaAssistInputError(f"{where} has unknown key(s) {advice}.",
                                    f"Use only the keys {', '.join(ALLOWED_KEYS)}.")
    _check_surrogates(record, where)
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise MangaAssistInputError(f"{where} has an empty or missing \"text\" (got {text!r}).",
                                    "Give every example the customer message as a non-empty string.")
    check_text_length(len(text), where, "text")
    if all(_invisible(c) for c in text):
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in text if not c.isspace()}))
        raise MangaAssistInputError(
            f"{where} has an empty \"text\": it holds only invisible characters ({codes}), which the tokenizer "
            "drops, so the model would see no message.",
            "Give every example the customer message as visible text, or delete the line.")
    intent = record.get("intent")
    if not isinstance(intent, str) or not intent:
        raise MangaAssistInputError(f"{where} has no \"intent\" string (got {intent!r}).",
                                    "Give every example its expected intent label.")
    slice_name = record.get("slice")
    if slice_name is not None and (not isinstance(slice_name, str) or not slice_name):
        raise MangaAssistInputError(f"{where}: \"slice\" must be a non-empty string (got {slice_name!r}).",
                                    "Drop the key or name the slice, e.g. \"short_messages\".")
    also = record.get("also", [])
    if not isinstance(also, list) or not all(isinstance(a, str) and a for a in also):
        raise MangaAssistInputError(f"{where}: \"also\" must be a list of intent labels (got {also!r}).",
                                    "List the message's secondary intents, e.g. [\"another_label\"].")
    return GoldenExample(text=text, intent=intent, slice=slice_name, also=tuple(also))


def check_text_length(length: int, where: str, field_name: str) -> None:
    """A message of more than MAX_TEXT_CHARS characters is refused where it is read (golden sets, traffic)."""
    if length > MAX_TEXT_CHARS:
        raise MangaAssistInputError(f"{where}: \"{field_name}\" is {length:,} characters long; at most "
                                    f"{MAX_TEXT_CHARS:,} are accepted.", SHORTEN)


def _check_surrogates(record: dict, where: str) -> None:
    """A lone surrogate (e.g. the JSON escape \\ud800) is not a character: it cannot be encoded, hashed or
    tokenized, so it would crash a later step instead of being refused here."""
    for key, value in record.items():
        strings = value if isinstance(value, list) else [value]
        for string in strings:
            if isinstance(string, str) and any("\ud800" <= c <= "\udfff" for c in string):
                position = next(i for i, c in enumerate(string) if "\ud800" <= c <= "\udfff")
                raise MangaAssistInputError(
                    f"{where}: \"{key}\" holds a lone surrogate (U+{ord(string[position]):04X} at character "
                    f"{position + 1}), which is not a Unicode character.",
                    "Write the character itself in UTF-8, or a complete surrogate pair (e.g. \\ud83d\\ude00 for "
                    "one emoji), or delete it.")


def check_labels_match(golden: GoldenSet, model_labels: Sequence[str], model_source: str,
                       require_all: bool = True) -> None:
    """Every golden label must be a model label; with require_all, every model label needs examples."""
    model_set = set(model_labels)
    unknown = sorted(golden.labels - model_set)
    if unknown:
        close = {u: difflib.get_close_matches(u, model_labels, n=1) for u in unknown}
        listed = ", ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
        raise MangaAssistInputError(
            f"The golden set {golden.source} uses label(s) {listed} that the model {model_source} does not know; "
            f"its id2label has {len(model_labels)} labels: {', '.join(model_labels)}.",
            "Fix the labels in the golden set, or point --model-path at the checkpoint trained on this label set.",
        )
    missing = sorted(model_set - {ex.intent for ex in golden})
    if require_all and missing:
        raise MangaAssistInputError(
            f"The model {model_source} has {len(model_labels)} labels but the golden set {golden.source} "
            f"has examples of only {len(model_set) - len(missing)}; none for: {', '.join(missing)}.",
            "Add golden examples for every intent the model can route to (per-intent recall is undefined "
            "without them), or use the checkpoint whose label set matches the golden set.",
        )
