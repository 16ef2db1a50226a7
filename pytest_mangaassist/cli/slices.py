"""python -m pytest_mangaassist slices discover|add: find failure slices, and promote reviewed ones into the
golden set without letting duplicates or training data in (docs/slices.md).

    slices discover --model DIR --data labelled.jsonl [--out candidates.jsonl] [--at-least-size N] [--fdr Q]
    slices add --golden golden.jsonl --slice NAME messages.jsonl [--model DIR] [--train train.jsonl]
               [--also-golden other.jsonl ...] [--skip-duplicates]

Every bad input is one message naming the problem and the fix, exit code 2; `slices add` writes the golden
set only when every check passed, atomically (a temporary file in the same folder, validated by the golden
loader, then renamed over it), so a refused or interrupted add leaves it byte for byte as it was.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..analysis.leakage import (MAX_SIMILARITY, SIMILARITY, LeakedPair, near_duplicates, near_duplicates_within,
                                pairs_table)
from ..analysis.slices import SliceCandidate, SliceDiscovery
from ..errors import MangaAssistInputError, renamed_twice, renamed_warning
from ..loading.golden import GoldenExample, GoldenSet, check_labels_match, load_golden_set, to_record

INPUT_ERROR = 2
SLICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "discover":
            discover(args)
        else:
            add(args)
    except MangaAssistInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INPUT_ERROR
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_mangaassist",
                                     description="pytest-mangaassist workflows outside a pytest run.")
    commands = parser.add_subparsers(dest="command", required=True)
    slices = commands.add_parser("slices", help="failure slices: discover them, add reviewed ones to the golden set")
    actions = slices.add_subparsers(dest="action", required=True)
    find = actions.add_parser("discover", help="rank candidate failure slices of a model on labelled data")
    find.add_argument("--model", required=True, help="checkpoint folder of the model")
    find.add_argument("--data", required=True,
                      help="labelled messages (golden-set JSON Lines), e.g. the validation set")
    find.add_argument("--out", help="write the significant slices' messages here (golden-set format, for review)")
    find.add_argument("--at-least-size", type=int, help="smallest slice tested (default 10)")
    find.add_argument("--min-size", type=int, dest="old_min_size", help=argparse.SUPPRESS)  # the old name, one release
    find.add_argument("--fdr", type=float, default=0.05, help="Benjamini-Hochberg false discovery rate (default 0.05)")
    find.add_argument("--top", type=int, default=15, help="candidates shown (default 15)")
    find.add_argument("--ignore-tags", action="store_true", help="ignore the data's slice tags (find slices blind)")
    promote = actions.add_parser("add", help="append reviewed messages to the golden set as one slice")
    promote.add_argument("messages", help="JSON Lines of {text, intent}; lines of another slice are skipped")
    promote.add_argument("--golden", required=True,
                         help="the golden set to append to (a new file is created: a second golden file of slices)")
    promote.add_argument("--also-golden", action="append", default=[], metavar="PATH",
                         help="another golden file the suite reads: messages duplicating it are refused too, and "
                              "its labels are known labels (repeatable)")
    promote.add_argument("--slice", required=True, dest="slice_name", help="the slice name the messages get")
    promote.add_argument("--train", help="training data: messages near-duplicating it are refused")
    promote.add_argument("--model", help="checkpoint folder of the model: labels it does not know are refused (else "
                                         "the golden set's labels are the known ones)")
    promote.add_argument("--max-similarity", type=float, default=MAX_SIMILARITY,
                         help=f"near-duplicate threshold (default {MAX_SIMILARITY}; {SIMILARITY})")
    promote.add_argument("--skip-duplicates", action="store_true",
                         help="leave duplicated messages out and add the rest, instead of refusing them all")
    return parser


# -- discover ---------------------------------------------------------------------------------------------
def discover(args) -> SliceDiscovery:
    from ..cache.analyses import discover_slices
    from ..loading.model import IntentModel

    at_least_size = _renamed_option(args.at_least_size, "--at-least-size", args.old_min_size, "--min-size", 10)
    _check_number("--at-least-size", at_least_size, 5, None)
    _check_number("--fdr", args.fdr, 0.0, 1.0)
    out = _writable(Path(args.out)) if args.out else None
    data = _load(Path(args.data), "--data")
    if args.ignore_tags:
        data = GoldenSet.from_examples((replace(ex, slice=None) for ex in data), data.source)
    model = IntentModel.load(args.model, option="--model")
    check_labels_match(data, model.labels, model.source, require_all=False)
    discovery = discover_slices(model, data, at_least_size=at_least_size)
    found = discovery.significant(args.fdr)
    print(discovery.table(limit=args.top, fdr=args.fdr))
    print(f"\n{len(found)} slice(s) significantly worse than the rest at FDR {args.fdr:g}.")
    for candidate in found:
        print(f"\n== {candidate.name}: {candidate.rule}\n   n={candidate.size}, {candidate.errors} errors, error rate "
              f"{candidate.error_rate.describe()}, lift {candidate.lift:.2f}, p BH {candidate.p_adjusted:.2g}\n"
              + discovery.worst_table(candidate))
    if found:
        print("\nready-to-paste tests (they fail until the slice is fixed: mark them xfail(strict=True) meanwhile):\n")
        print("from pytest_mangaassist import assert_accuracy_above\n")
        for candidate in found:
            print(test_function(candidate, discovery, args.data) + "\n")
    if out is not None:
        if found:
            _write_atomically(out, "".join(json.dumps(to_record(ex), ensure_ascii=False) + "\n"
                                           for c in found for ex in discovery.examples_of(c)))
            print(f"wrote {sum(c.size for c in found)} messages of {len(found)} slice(s) to {out}: review them, then "
                  f"`python -m pytest_mangaassist slices add --golden GOLDEN --slice NAME {out}`")
        else:
            print(f"nothing written to {out}: no slice is significant")
    return discovery


def test_function(candidate: SliceCandidate, discovery: SliceDiscovery, data: str) -> str:
    """A regression test for the slice: its accuracy must reach the model's overall accuracy (rounded down to
    0.05) once its messages are in the golden set."""
    floor = math.floor((1 - discovery.error_rate) * 20) / 20
    name = re.sub(r"\W", "_", candidate.name)
    return (f"def test_slice_{name}(intent_model, golden_set):\n"
            f"    # found by `slices discover` on {Path(data).name}: {candidate.rule}; error rate "
            f"{candidate.error_rate.estimate:.3f} {candidate.error_rate.interval()} on {candidate.size}, lift "
            f"{candidate.lift:.2f}, p BH {candidate.p_adjusted:.2g}\n"
            f"    assert_accuracy_above(intent_model, golden_set, slice={candidate.name!r}, min_accuracy={floor:.2f})")


def _renamed_option(value, flag: str, old, old_flag: str, default):
    """The option's value, also read under its old name for one release (a warning on stderr names the new)."""
    if old is None:
        return default if value is None else value
    if value is not None:
        raise renamed_twice(old_flag, flag, flag)
    print(f"warning: {renamed_warning(old_flag, 'pass ' + flag)}", file=sys.stderr)
    return old


def _check_number(option: str, value: float, low: float, high: float | None) -> None:
    if not (value > low if high is not None else value >= low) or (high is not None and value >= high) \
            or value != value:
        accepted = f"in ({low:g}, {high:g})" if high is not None else f">= {low:g}"
        raise MangaAssistInputError(f"{option} must be {accepted}; got {value!r}.", f"Pass {option} {accepted}.")


def _writable(path: Path) -> Path:
    """Refuse an output path that cannot be written, before any model runs."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise MangaAssistInputError(f"--out {path} is a folder.", "Pass a file path, e.g. --out candidates.jsonl.")
    if not folder.is_dir():
        raise MangaAssistInputError(f"--out {path}: the folder {folder} does not exist.",
                                    f"Create it (mkdir -p {folder}) or write elsewhere.")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MangaAssistInputError(f"--out {path} cannot be written (no write permission).",
                                    "Write to a folder you can write to, e.g. --out ./candidates.jsonl.")
    return path


def _write_atomically(path: Path, text: str, check=None) -> None:
    """Write text to a temporary file next to path, run check(temporary path), then rename it over path: a
    reader (or a crash) sees the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        else:  # mkstemp's 0600 would hide a new golden file from the team's other users
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        if check is not None:
            check(Path(temporary))
        os.replace(temporary, path)
    except OSError as exc:
        raise MangaAssistInputError(f"{path} could not be written: {exc.strerror or exc}.",
                                    "Check the folder's permissions and free space; nothing was changed.") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# -- add --------------------------------------------------------------------------------------------------
def add(args) -> int:
    """Append the messages to the golden set as slice NAME (creating the file if it does not exist yet);
    returns how many were added."""
    golden_path = Path(args.golden)
    starting = _may_start(golden_path)
    unchanged = f"{golden_path} was not {'created' if starting else 'changed'}."
    if not SLICE_NAME.match(args.slice_name):
        raise MangaAssistInputError(f"--slice {args.slice_name!r} is not a slice name. {unchanged}",
                                    "Use letters, digits, '-', '_' or '.', at most 64, e.g. --slice title-berserk.")
    _check_number("--max-similarity", args.max_similarity, 0.0, 1.0)
    goldens = [] if starting else [_load(golden_path, "--golden", unchanged)]
    goldens += [_load(Path(path), "--also-golden", unchanged) for path in args.also_golden]
    original = b"" if starting else golden_path.read_bytes()
    known = _known_labels(args.model, goldens, unchanged)
    examples, lines, skipped = _messages(Path(args.messages), args.slice_name, known, unchanged)
    refused = _refusals(examples, lines, goldens, args)
    if refused:
        report = "\n\n".join(text for _, text in refused)
        if not args.skip_duplicates:
            raise MangaAssistInputError(f"{len(set().union(*(r for r, _ in refused)))} message(s) of {args.messages} "
                                        f"are duplicates; nothing was added. {unchanged}\n\n{report}",
                                        "Delete or rephrase those lines, or pass --skip-duplicates to add the rest.")
        drop = set().union(*(r for r, _ in refused))
        print(f"skipping {len(drop)} duplicated message(s):\n\n{report}\n")
        examples = [ex for i, ex in enumerate(examples) if i not in drop]
        if not examples:
            raise MangaAssistInputError(f"every message of {args.messages} is a duplicate; nothing was added. "
                                        f"{unchanged}", "Collect messages that are new to the golden set and to "
                                        "the training data.")
    separator = b"" if not original or original.endswith(b"\n") else b"\n"
    text = (original + separator).decode("utf-8") + "".join(
        json.dumps(to_record(ex), ensure_ascii=False) + "\n" for ex in examples)
    _write_atomically(golden_path, text, check=lambda temporary: load_golden_set(temporary))
    done = (f"started {golden_path} with {len(examples)} message(s)" if starting
            else f"added {len(examples)} message(s) to {golden_path}")
    print(f"{done} as slice {args.slice_name!r}" + (f" ({skipped} line(s) of other slices skipped)" if skipped else ""))
    return len(examples)


def _may_start(path: Path) -> bool:
    """Whether `slices add` starts a new golden file at path (a second golden file, e.g. the promoted slices
    beside the suite's golden set): nothing is there yet, or an empty regular file, in an existing folder."""
    if os.path.islink(path):
        return False  # loaded, and refused, as what it is
    if path.is_file() and path.stat().st_size == 0:
        return True
    return not os.path.lexists(path) and path.parent.is_dir()


def _load(path: Path, option: str, unchanged: str = "", allow_duplicates: bool = False) -> GoldenSet:
    """load_golden_set, its messages naming this command's option (and that the golden set was not changed)."""
    if not path.is_file():
        raise MangaAssistInputError(f"{option} {path} does not exist or is not a file. {unchanged}".rstrip(),
                                    f"Pass {option} the path of a JSON Lines file (one {{\"text\": ..., "
                                    "\"intent\": ...} per line).")
    try:
        return load_golden_set(path, allow_duplicates=allow_duplicates)
    except MangaAssistInputError as exc:
        raise MangaAssistInputError(f"{option}: {exc.problem} {unchanged}".rstrip(), exc.fix) from None


def _known_labels(model: str | None, goldens: list[GoldenSet], unchanged: str) -> tuple[set[str], str]:
    """The labels a message may carry, and what knows them: the model's (--model), else the golden files'."""
    if model is None:
        if not goldens:
            raise MangaAssistInputError(f"no label is known for a new golden file. {unchanged}",
                                        "Pass --model DIR (its labels are the known ones) or --also-golden with the "
                                        "suite's golden set.")
        return set().union(*(g.labels for g in goldens)), "a label of " + " or ".join(str(g.source) for g in goldens)
    from ..loading.checkpoint import inspect_checkpoint

    try:
        info = inspect_checkpoint(Path(model), "--model")
        for golden in goldens:
            check_labels_match(golden, info.labels, str(info.path))
    except MangaAssistInputError as exc:
        raise MangaAssistInputError(f"{exc.problem} {unchanged}", exc.fix) from None
    return set(info.labels), f"a label of the model {info.path}"


def _messages(path: Path, name: str, known: tuple[set[str], str], unchanged: str):
    """The messages to add (slice set to name), their line numbers, and how many lines of other slices
    (a discover output holds several) were skipped."""
    loaded = _load(path, "messages", unchanged, allow_duplicates=True)
    with open(path, "rb") as fh:  # the loader skips blank lines: number the others as it read them
        numbers = [n for n, raw in enumerate(fh, start=1) if raw.strip()]
    kept = [(ex, n) for ex, n in zip(loaded, numbers) if ex.slice in (None, name)]
    if not kept:
        raise MangaAssistInputError(f"{path} has no message without a slice or of slice {name!r} (its slices: "
                                    f"{', '.join(loaded.slice_names)}). {unchanged}",
                                    "Pass --slice with one of its slice names, or a file of that slice's messages.")
    labels, knower = known  # a label outside them: a typo (or a new label: train the model on it first)
    for ex, n in kept:
        for label in (ex.intent, *ex.also):
            if label not in labels:
                close = difflib.get_close_matches(label, sorted(labels), n=1)
                raise MangaAssistInputError(
                    f"{path}, line {n}: intent {label!r} is not {knower}"
                    + (f" (did you mean {close[0]!r}?)" if close else "") + f". {unchanged}",
                    f"Use one of the labels {', '.join(sorted(labels))}.")
    examples = [replace(ex, slice=name) for ex, _ in kept]
    return examples, [n for _, n in kept], len(loaded) - len(kept)


def _refusals(examples: list[GoldenExample], lines: list[int], goldens: list[GoldenSet], args) -> list[tuple[set, str]]:
    """(positions refused, report) for each reason: repeated within the file, (near) duplicate of a golden file,
    (near) duplicate of the training data."""
    texts = [ex.text for ex in examples]
    out = []
    repeats = near_duplicates_within(texts, args.max_similarity)
    if repeats:
        out.append(({p.query_index for p in repeats},
                    f"{len(repeats)} message(s) repeat an earlier line of the file (the first is kept):\n"
                    + pairs_table(repeats, "messages", "earlier", limit=None, query_lines=lines,
                                  match_lines=lines)))
    against = [("golden", golden.source, golden.texts) for golden in goldens]
    if args.train:
        train = _load(Path(args.train), "--train", f"{args.golden} was not changed.", allow_duplicates=True)
        against.append(("train", args.train, train.texts))
    for label, path, others in against:
        pairs = near_duplicates(texts, others, args.max_similarity)
        if pairs:
            out.append(({p.query_index for p in pairs}, _pairs_report(pairs, label, path, lines, args.max_similarity)))
    return out


def _pairs_report(pairs: list[LeakedPair], label: str, path: str, lines: list[int], threshold: float) -> str:
    exact = sum(p.exact for p in pairs)
    return (f"{len(pairs)} message(s) duplicate the {label} data {path} ({exact} exactly, the others above "
            f"similarity {threshold:g}, {SIMILARITY}):\n"
            + pairs_table(pairs, "messages", label, limit=None, query_lines=lines))
