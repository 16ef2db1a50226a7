"""The corpus templates: data files in templates/ (JSON), read and checked on first use.

- templates/phrasings.json: phrasings per intent and slice ("plain" = slice None, the plain traffic)
- templates/bridges.json: training-only phrasings (vocabulary bridges, never held out)
- templates/slots.json: the values a "{slot}" is filled with
- templates/surface.json: multi-intent priority and connectors, greetings, sign-offs, jargon words

Each file's "about" says what it holds. Importing this module reads nothing and changes nothing;
load_templates() returns one frozen Templates value (read-only mappings of tuples), cached per folder.
The build fingerprint covers every file in TEMPLATE_FILES (build.BUILD_SOURCES).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from pytest_mangaassist.domain import INTENTS, SLICES
from pytest_mangaassist.errors import MangaAssistInputError

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_FILES = ("phrasings.json", "bridges.json", "slots.json", "surface.json")
PLAIN = "plain"  # the data files' key for slice None (JSON keys are strings)
SURFACE_KEYS = ("priority", "connectors", "greetings", "closings", "jp_closings", "jargon")

BySlice = Mapping[str | None, tuple[str, ...]]


@dataclass(frozen=True)
class Templates:
    phrasings: Mapping[str, BySlice]  # intent -> slice -> phrasings, in file order (the held-out split uses it)
    bridges: Mapping[str, BySlice]    # intent -> slice -> training-only phrasings
    slots: Mapping[str, tuple[str, ...]]
    priority: tuple[str, ...]         # most urgent intent first: a multi-intent message's label
    connectors: tuple[str, ...]
    greetings: tuple[str, ...]
    closings: tuple[str, ...]
    jp_closings: tuple[str, ...]
    jargon: tuple[str, ...]


@cache
def load_templates(folder: Path = TEMPLATE_DIR) -> Templates:
    """Read and check the template files in folder (the package's own by default)."""
    folder = Path(folder)
    data = {name: _read(folder / name) for name in TEMPLATE_FILES}
    surface = data["surface.json"]
    missing = [key for key in SURFACE_KEYS if key not in surface]
    if missing:
        raise _bad(folder / "surface.json", f"has no {', '.join(missing)}", f"add the lists {', '.join(missing)}")
    templates = Templates(
        phrasings=_by_intent(folder / "phrasings.json", data["phrasings.json"], "phrasings"),
        bridges=_by_intent(folder / "bridges.json", data["bridges.json"], "bridges"),
        slots=MappingProxyType({name: _strings(folder / "slots.json", f"slots.{name}", values)
                                for name, values in _object(folder / "slots.json", data["slots.json"], "slots").items()}),
        **{key: _strings(folder / "surface.json", key, surface[key]) for key in SURFACE_KEYS},
    )
    _check(folder, templates)
    return templates


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad(path, "is missing", f"restore it (the kit reads {', '.join(TEMPLATE_FILES)})") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, f"is not valid JSON ({exc})", "fix the JSON syntax at that line") from None


def _bad(path: Path, problem: str, fix: str) -> MangaAssistInputError:
    return MangaAssistInputError(f"template file {path} {problem}", fix)


def _object(path: Path, data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _bad(path, f"has no object {key!r}", f"put the content under the key {key!r}")
    return value


def _strings(path: Path, where: str, values) -> tuple[str, ...]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _bad(path, f"{where} is not a non-empty list of strings", f"make {where} a list of strings")
    return tuple(values)


def _by_intent(path: Path, data: dict, key: str) -> Mapping[str, BySlice]:
    result = {}
    for intent, by_slice in _object(path, data, key).items():
        if intent not in INTENTS:
            raise _bad(path, f"names an unknown intent {intent!r}", f"use one of {', '.join(INTENTS)}")
        if not isinstance(by_slice, dict):
            raise _bad(path, f"{key}.{intent} is not an object of slices", f"write {key}.{intent} as {{slice: [...]}}")
        slices = {}
        for name, lines in by_slice.items():
            if name != PLAIN and name not in SLICES:
                raise _bad(path, f"{key}.{intent} names an unknown slice {name!r}",
                           f"use {PLAIN!r} or one of {', '.join(SLICES)}")
            slices[None if name == PLAIN else name] = _strings(path, f"{key}.{intent}.{name}", lines)
        result[intent] = MappingProxyType(slices)
    return MappingProxyType(result)


def _check(folder: Path, templates: Templates) -> None:
    """What the corpus generator relies on, checked once, with the file and entry named."""
    if set(templates.phrasings) != set(INTENTS):
        missing = sorted(set(INTENTS) - set(templates.phrasings))
        raise _bad(folder / "phrasings.json", f"has no phrasings for {', '.join(missing)}",
                   "add phrasings for every intent of pytest_mangaassist.domain.INTENTS")
    for intent, by_slice in templates.phrasings.items():
        if None not in by_slice:  # multi-intent messages join two plain phrasings
            raise _bad(folder / "phrasings.json", f"has no {PLAIN!r} phrasings for {intent}",
                       f"add phrasings.{intent}.{PLAIN}")
    for intent, by_slice in templates.bridges.items():
        for slice_ in by_slice:
            if slice_ not in templates.phrasings[intent]:
                name = PLAIN if slice_ is None else slice_
                raise _bad(folder / "bridges.json", f"bridges.{intent}.{name} has no phrasings.{intent}.{name}",
                           "a bridge joins the training lines of a slice that has phrasings: add them or drop it")
    if sorted(templates.priority) != sorted(INTENTS):
        raise _bad(folder / "surface.json", "priority is not an ordering of every intent",
                   f"list each of {', '.join(INTENTS)} once, most urgent first")
    for file, group in (("phrasings.json", templates.phrasings), ("bridges.json", templates.bridges)):
        for intent, by_slice in group.items():
            for lines in by_slice.values():
                for line in lines:
                    _check_line(folder / file, line, templates.slots)


def _check_line(path: Path, line: str, slots: Mapping[str, tuple[str, ...]]) -> None:
    unknown = sorted(set(re.findall(r"\{(\w+)\}", line)) - set(slots))
    if unknown:
        raise _bad(path, f"uses unknown slot {{{unknown[0]}}} in {line!r}", f"use one of {', '.join(slots)}")
    depth = 0
    for char in line:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise _bad(path, f"has unbalanced or nested [...] in {line!r}", "close each [a|b] group once, unnested")
    if depth:
        raise _bad(path, f"has an unclosed [ in {line!r}", "close each [a|b] group")
