"""The plugin's inputs: which option gives which fixture (model, golden set, traffic, ...), and what a test
whose input was not given does: it fails naming the option, or skips where the run or the test's
`mangaassist_optional` mark allows it. The traffic to replay (--traffic) is read and validated whole at
start-up, with its engine checked (Ray Data installed, the cluster address answering), so a bad line stops
the run before any model loads.
"""

from __future__ import annotations

import sys

import pytest

from ..errors import MangaAssistInputError
from .settings import OPTIONS, Settings

# fixture -> (option, Settings attribute, what it is)
INPUT_FIXTURES = {
    "intent_model": ("--model-path", "model", "model under test"),
    "pretrained_model": ("--pretrained-path", "pretrained", "pre-trained checkpoint"),
    "production_model": ("--production-path", "production", "production model"),
    "golden_set": ("--golden-set", "golden_set", "golden set"),
    "validation_set": ("--validation-set", "validation_set", "validation set"),
    "traffic": ("--traffic", "traffic_path", "traffic to replay (unlabelled messages)"),
    "training_set": ("--training-set", "training_set", "training data"),
}
OLD_FIXTURE_NAMES = {"baseline_model": "production_model"}  # deprecated: still served, with a warning, one release
OPTIONAL_MARKER = "mangaassist_optional"
ALLOW_MISSING_FLAG = "--mangaassist-allow-missing"
ALLOW_MISSING_INI = "mangaassist_allow_missing"


def ini_key(flag: str) -> str:
    return next(o.dest for o in OPTIONS if flag in o.names)


def needed_inputs(fixturenames) -> list[str]:
    names = {OLD_FIXTURE_NAMES.get(name, name) for name in fixturenames}
    return [name for name in INPUT_FIXTURES if name in names]


def missing_inputs(fixturenames, settings: Settings) -> list[str]:
    return [name for name in needed_inputs(fixturenames) if getattr(settings, INPUT_FIXTURES[name][1]) is None]


def optional_inputs(item) -> set[str] | None:
    """The input fixtures the test's mangaassist_optional marks allow to be missing (None: no mark)."""
    marks = list(item.iter_markers(OPTIONAL_MARKER))
    if not marks:
        return None
    names = {OLD_FIXTURE_NAMES.get(str(a), str(a)) for m in marks for a in m.args}
    unknown = sorted(names - set(INPUT_FIXTURES))
    if unknown:
        raise MangaAssistInputError(
            f"@pytest.mark.{OPTIONAL_MARKER} names {', '.join(map(repr, unknown))}, which is not an input fixture "
            "of the plugin.",
            f"Name some of {', '.join(INPUT_FIXTURES)}, or give no names to make every input optional.")
    if any(not m.args for m in marks):
        return set(INPUT_FIXTURES)
    return names


def check_inputs_given(item, settings: Settings) -> None:
    """Before a test's fixtures are set up: every input it needs was given, or it may be skipped."""
    missing = missing_inputs(item.fixturenames, settings)
    optional = optional_inputs(item)
    if not missing:
        return
    allowed = set(INPUT_FIXTURES) if settings.allow_missing else (optional or set())
    required = [name for name in missing if name not in allowed]
    if required:
        raise missing_input_error(required)
    _skip(skip_reason(missing, "--mangaassist-allow-missing" if settings.allow_missing else
                      f"@pytest.mark.{OPTIONAL_MARKER}"))


def _skip(reason: str) -> None:
    exc = pytest.skip.Exception(reason)
    exc._use_item_location = True  # -rs shows the test's location, not this file's
    raise exc


def skip_reason(names: list[str], allowed_by: str) -> str:
    given = "; ".join(f"no {INPUT_FIXTURES[n][2]}: pass {INPUT_FIXTURES[n][0]} or set {ini_key(INPUT_FIXTURES[n][0])} "
                      "in the ini file" for n in names)
    return f"{given} (skipped as {allowed_by} allows)"


def missing_input_error(names: list[str]) -> MangaAssistInputError:
    what = ", ".join(f"{n} ({INPUT_FIXTURES[n][2]}: {INPUT_FIXTURES[n][0]}, ini {ini_key(INPUT_FIXTURES[n][0])})"
                     for n in names)
    options = " ".join(f"{INPUT_FIXTURES[n][0]}=..." for n in names)
    return MangaAssistInputError(
        f"this test needs {what}, which {'was' if len(names) == 1 else 'were'} not given.",
        f"Pass {options} (or set the ini key). To skip such tests instead, mark them "
        f"@pytest.mark.{OPTIONAL_MARKER}({', '.join(repr(n) for n in names)}) or run with {ALLOW_MISSING_FLAG} "
        f"(ini {ALLOW_MISSING_INI}).")


def missing_input(settings: Settings, fixture: str) -> None:
    """A fixture met a missing input outside check_inputs_given (requested dynamically): skip if the run
    allows it, else fail naming the option."""
    if settings.allow_missing:
        _skip(skip_reason([fixture], "--mangaassist-allow-missing"))
    raise missing_input_error([fixture])


def inputs_given(settings: Settings) -> bool:
    """Whether the run was given any of the plugin's inputs."""
    return any(getattr(settings, attribute) for _, attribute, _ in INPUT_FIXTURES.values())


def uses_plugin(items) -> bool:
    return (any(needed_inputs(getattr(item, "fixturenames", ())) for item in items)
            or "pytest_mangaassist.strategies" in sys.modules)


def load_traffic_input(settings: Settings):
    """The validated Traffic of --traffic (None when not given), with the engine checked: every shard is read
    once now, so a bad line stops the run before any model loads."""
    from ..loading.replay import check_ray
    from ..loading.traffic import check_engine, load_traffic

    check_engine(settings.engine)
    if settings.engine == "ray":
        check_ray(settings.ray_address)
    if settings.traffic_path is None:
        return None
    return load_traffic(settings.traffic_path, settings.traffic_text_field, engine=settings.engine,
                        ray_address=settings.ray_address)
