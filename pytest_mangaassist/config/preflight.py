"""Start-up and per-test checks of a run: everything the plugin verifies before a gate may pass.

- the rootdir and ini file were not chosen because of a path option written with a space
  (`--model-path DIR`): pytest picks them before plugins load, taking DIR for a test path;
- writable destinations (report folder, snapshot file) are checked before any test runs;
- `--gate-tier` names tiers that collected tests carry;
- a test whose input (model, golden set, ...) was not given fails, unless skipping was asked for;
- a run in which the plugin's inputs were needed but no gate ran is a failure;
- the disk cache's key (MANGAASSIST_CACHE_KEY) is long enough where set, and pytest's cache folders the
  plugin writes in are real folders, not links planted by a restored cache;
- the libraries the plugin drives write only inside pytest's cache folder (hypothesis, torch's inductor)
  or nothing (onnxruntime telemetry);
- once per model: logits and IG word scores must not depend on batch composition;
- the traffic to replay (--traffic) is read and validated whole, and the replay engine can run (Ray Data
  installed, the cluster address answering).

Bad input raises MangaAssistInputError; the plugin turns it into a UsageError at start-up or a short
failure message inside a test. Nothing heavy is imported at module import.
"""

from __future__ import annotations

import inspect
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..errors import GateFailure, MangaAssistInputError
from .settings import OPTIONS, Settings

# fixture -> (option, Settings attribute, what it is)
INPUT_FIXTURES = {
    "intent_model": ("--model-path", "model", "model under test"),
    "pretrained_model": ("--pretrained-path", "pretrained", "pre-trained checkpoint"),
    "baseline_model": ("--baseline-path", "baseline", "production (baseline) model"),
    "golden_set": ("--golden-set", "golden_set", "golden set"),
    "validation_set": ("--validation-set", "validation_set", "validation set"),
    "traffic": ("--traffic", "traffic_path", "traffic to replay (unlabelled messages)"),
    "training_set": ("--training-set", "training_set", "training data"),
}
OPTIONAL_MARKER = "mangaassist_optional"
ALLOW_MISSING_FLAG = "--mangaassist-allow-missing"
ALLOW_MISSING_INI = "mangaassist_allow_missing"
WORKER_USAGE_ERROR = "mangaassist_usage_error"  # key in an xdist worker's workeroutput
INPUTS_ATTRIBUTE = "mangaassist_inputs"  # on a setup report: the input fixtures the test needs (survives xdist)


def ini_key(flag: str) -> str:
    return next(o.dest for o in OPTIONS if flag == o.flag or flag in o.aliases)


# -- rootdir ---------------------------------------------------------------------------------------
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
    flags = {name: o.flag for o in OPTIONS if o.kind != "flag" for name in (o.flag, *o.aliases)}
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


# -- destinations ----------------------------------------------------------------------------------
def check_destinations(settings: Settings) -> None:
    """The report folder and the snapshot file must be usable before the run, not found broken after it."""
    report = settings.report_dir
    if report is not None:
        if report.exists() and not report.is_dir():
            raise MangaAssistInputError(
                f"--mangaassist-report {report} is a file; the report is a folder (results.json, report.html).",
                "Pass --mangaassist-report (ini mangaassist_report) a folder, new or existing, not a file.")
        _check_writable(report, "--mangaassist-report")
    snapshot = settings.snapshot_file
    if snapshot is not None:
        from ..gates.snapshot import check_path

        check_path(snapshot)
        if settings.update_snapshot:
            if snapshot.exists() and not os.access(snapshot, os.W_OK):
                raise MangaAssistInputError(f"The snapshot file {snapshot} is not writable.",
                                            "Make it writable, or point --mangaassist-snapshot-file elsewhere.")
            _check_writable(snapshot.parent, "--mangaassist-snapshot-file")


def _check_writable(folder: Path, flag: str) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise MangaAssistInputError(f"{flag}: {folder} cannot be created, because {existing} is a file.",
                                    f"Pass {flag} a path under a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MangaAssistInputError(f"{flag}: {existing} is not writable, so {folder} cannot be written.",
                                    f"Pass {flag} a path in a writable folder.")


# -- the disk cache --------------------------------------------------------------------------------
CACHE_FOLDERS = ("mangaassist", "hypothesis", "torchinductor")  # what the plugin keeps in pytest's cache


def check_cache(config, settings: Settings) -> None:
    """MANGAASSIST_CACHE_KEY, where set, is a usable secret; in a run given the plugin's inputs, pytest's
    cache folder, its d/ and the plugin's folders in it are real folders (or absent): a restored CI cache
    must not make a link of them. (A project that merely has the plugin installed keeps its own choices.)"""
    from ..cache import store

    store.key_from_environment()
    root = cache_root(config, settings)
    if root is not None and any(getattr(settings, attribute) for _, attribute, _ in INPUT_FIXTURES.values()):
        store.check_cache_folders([root, root / "d", *(root / "d" / name for name in CACHE_FOLDERS)])


def cache_root(config, settings: Settings) -> Path | None:
    """pytest's cache folder (cache_dir ini); None without a disk cache."""
    cache = getattr(config, "cache", None)
    if cache is None or settings.no_cache:
        return None
    return Path(cache._cachedir)  # pytest's Cache keeps it there; cache.mkdir(name) is _cachedir / "d" / name


# -- traffic --------------------------------------------------------------------------------------
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


# -- tiers -----------------------------------------------------------------------------------------
def item_tiers(item) -> set[str]:
    return {str(t) for m in item.iter_markers("gate")
            for t in (*m.args, *([m.kwargs["tier"]] if "tier" in m.kwargs else []))}


def select_tiers(items: list, tiers: tuple[str, ...]) -> tuple[list, list]:
    """(kept, dropped) for --gate-tier: tests marked with a selected tier, and every unmarked test. A tier
    that no collected test carries is a mistake (a typo deselects everything without a word)."""
    carried = set().union(*(item_tiers(item) for item in items)) if items else set()
    unknown = [t for t in tiers if t not in carried]
    if unknown:
        raise MangaAssistInputError(
            f"--gate-tier {','.join(tiers)}: no collected test carries the tier(s) {', '.join(unknown)}; "
            + (f"the collected tests carry: {', '.join(sorted(carried))}." if carried else
               "no collected test has a @pytest.mark.gate(...) tier."),
            "Pass tiers that the suite's @pytest.mark.gate marks name (comma-separated), or leave --gate-tier out.")
    keep, drop = [], []
    for item in items:
        marked = item_tiers(item)
        has_mark = any(True for _ in item.iter_markers("gate"))
        (keep if not has_mark or marked & set(tiers) else drop).append(item)
    return keep, drop


# -- missing inputs --------------------------------------------------------------------------------
def needed_inputs(fixturenames) -> list[str]:
    return [name for name in INPUT_FIXTURES if name in fixturenames]


def unexpected_xfail(item, exc: BaseException) -> str | None:
    """Why exc must not count as the expected failure of item's xfail mark, or None where it may.

    A gate test (one that reads the plugin's inputs or carries @pytest.mark.gate) marked xfail expects the
    model to fail a gate, i.e. a GateFailure. A TypeError from a plugin bug, an error in the test itself, or a
    plain `assert` read as "xfailed" would hide the bug until the model is fixed, and then look like a fix
    (issue #23). A mark with raises= states what it expects: pytest checks that, not the plugin. pytest.xfail()
    called in the test is its own decision."""
    if isinstance(exc, (GateFailure, pytest.xfail.Exception)):
        return None
    gate_test = bool(needed_inputs(getattr(item, "fixturenames", ()))) or item.get_closest_marker("gate") is not None
    if not gate_test or any(mark.kwargs.get("raises") is not None for mark in item.iter_markers("xfail")):
        return None
    return (f"this gate test is marked xfail, which expects a gate to fail (GateFailure), but it raised "
            f"{type(exc).__name__} instead: an error in the test or the plugin, not the model's known weakness, so "
            f"it is not counted as the expected failure.\n"
            f"  fix: fix the error (the traceback above); make the test's check a gate (assert_*), or, if it really "
            f"expects this exception, say so: @pytest.mark.xfail(raises={type(exc).__name__}, strict=True, ...).")


def missing_inputs(fixturenames, settings: Settings) -> list[str]:
    return [name for name in needed_inputs(fixturenames) if getattr(settings, INPUT_FIXTURES[name][1]) is None]


def optional_inputs(item) -> set[str] | None:
    """The input fixtures the test's mangaassist_optional marks allow to be missing (None: no mark)."""
    marks = list(item.iter_markers(OPTIONAL_MARKER))
    if not marks:
        return None
    names = {str(a) for m in marks for a in m.args}
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


@dataclass
class GateRunCheck:
    """A run that needed the plugin's inputs but in which no gate ran (every such test skipped) is not a
    pass: registered as a plugin object; works from the test reports, so it holds under xdist too."""

    needing: set[str] = field(default_factory=set)
    passed: int = 0
    gates: int = 0
    message: str | None = None
    usage_error: str | None = None  # met by an xdist worker at collection (a worker cannot stop the run itself)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        self.usage_error = self.usage_error or getattr(node, "workeroutput", {}).get(WORKER_USAGE_ERROR)

    def pytest_runtest_logreport(self, report) -> None:
        from ..reporting.session import GATE_PROPERTY

        if getattr(report, INPUTS_ATTRIBUTE, None):
            self.needing.add(report.nodeid)
        if any(key == GATE_PROPERTY for key, _ in getattr(report, "user_properties", ())):
            self.gates += 1
        if report.when == "call" and report.passed and report.nodeid in self.needing:
            self.passed += 1

    def verdict(self) -> str | None:
        if self.gates or self.passed or not self.needing:
            return None
        return (f"pytest-mangaassist: no gate ran: the {len(self.needing)} test(s) that need the model or data inputs "
                "were all skipped (or xfailed), so this run checked nothing and must not pass.\n"
                "  fix: give the inputs (--model-path=DIR, --golden-set=FILE, ...), or run a selection in which "
                "gates run.")

    def finish(self, session) -> None:
        if self.usage_error:
            self.message = f"ERROR: {self.usage_error}"
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if session.exitstatus != pytest.ExitCode.OK:
            return
        self.message = self.verdict()
        if self.message is not None:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.message:
            terminalreporter.section("mangaassist", red=True, bold=True)
            terminalreporter.write_line(self.message, red=True)


# -- side effects of the libraries the plugin drives -----------------------------------------------
def quiet_onnxruntime() -> None:
    """onnxruntime writes a telemetry database under ~/.cache/Microsoft when imported; off, unless the
    user set ORT_DISABLE_TELEMETRY themselves. Read at import, so set before any import (and inherited
    by xdist workers); if onnxruntime is already imported, turn its events off at least."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    ort = sys.modules.get("onnxruntime")
    if ort is not None and os.environ["ORT_DISABLE_TELEMETRY"] == "1":
        try:
            ort.disable_telemetry_events()
        except Exception:
            pass


class HypothesisHome:
    """Keeps hypothesis' storage (`.hypothesis/`: example database, constants cache) inside pytest's cache
    folder instead of the working folder, for runs that use the plugin; a user's own choice
    (HYPOTHESIS_STORAGE_DIRECTORY, set_hypothesis_home_dir) wins. Restored at the end of the run."""

    def __init__(self) -> None:
        self._previous = None
        self._moved = False
        self._temporary: str | None = None

    def move_to(self, folder: Path | None) -> None:
        if self._moved or os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
            return
        try:
            import hypothesis.configuration as configuration
        except ImportError:
            return
        current = getattr(configuration, "__hypothesis_home_directory", None)
        default = getattr(configuration, "__hypothesis_home_directory_default", None)
        if current is not None and current != default:
            return  # set by the user
        if folder is None:
            folder = Path(self._temporary or tempfile.mkdtemp(prefix="mangaassist-hypothesis-"))
            self._temporary = str(folder)
        self._previous = current
        configuration.set_hypothesis_home_dir(folder)
        self._moved = True

    def restore(self) -> None:
        if self._moved:
            import hypothesis.configuration as configuration

            configuration.set_hypothesis_home_dir(self._previous)
            self._moved = False
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


class InductorHome:
    """torch's inductor (torch.export, the dynamo ONNX exporter) keeps a cache in /tmp/torchinductor_<user>;
    for runs that use the plugin it goes into pytest's cache folder (a temporary folder without one), unless
    TORCHINDUCTOR_CACHE_DIR is set. torch reads the variable on each use, so setting it before the first
    export is enough; restored at the end of the run."""

    VARIABLE = "TORCHINDUCTOR_CACHE_DIR"

    def __init__(self) -> None:
        self._moved = False
        self._temporary: str | None = None

    def move_to(self, folder: Path | None) -> None:
        if self._moved or self.VARIABLE in os.environ:
            return
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="mangaassist-inductor-"))
            self._temporary = str(folder)
        os.environ[self.VARIABLE] = str(folder)
        self._moved = True

    def restore(self) -> None:
        if self._moved:
            os.environ.pop(self.VARIABLE, None)
            self._moved = False
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def uses_plugin(items) -> bool:
    return (any(needed_inputs(getattr(item, "fixturenames", ())) for item in items)
            or "pytest_mangaassist.strategies" in sys.modules)


# -- header ----------------------------------------------------------------------------------------
def truncated_count(settings: Settings) -> int | None:
    """How many golden texts the tokenizer cuts at the model's max_length (tokenizer.json only, no model
    forward, no transformers import); None where it cannot be told cheaply."""
    if settings.model is None or settings.golden_set is None:
        return None
    tokenizer_file = Path(settings.model.path) / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        from ..loading.model import DEFAULT_MAX_LENGTH, counting_prefix

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        texts = [counting_prefix(text, DEFAULT_MAX_LENGTH) for text in settings.golden_set.texts]
        encodings = tokenizer.encode_batch(texts)
        return sum(len(e.ids) > DEFAULT_MAX_LENGTH for e in encodings)
    except Exception:  # a header line must never break a run; the model's own loading reports a bad tokenizer
        return None


# -- once per model --------------------------------------------------------------------------------
ATTRIBUTION_TOLERANCE = 1e-3  # relative to the largest word score
# Padding either changes the word scores or not, at any step count: the check runs the audit's fewest steps
# (8 intervals, 9 evaluations a message and condition, half of the default 16), since it runs in every cold
# session given a golden set.
ATTRIBUTION_CHECK_STEPS = 8


def warn_if_batch_dependent(model, settings: Settings) -> None:
    """Every sweep and attribution batch pads; the gates read each row as if the message ran alone.
    Checked once per model on the golden set, logits and IG word scores (cached on disk by weight hash,
    so a warm run loads no weights for it); a failure is a warning, since every gate is then suspect."""
    import warnings

    from ..cache.analyses import attribution_batch_invariance, batch_invariance

    if settings.golden_set is None:
        return
    texts = settings.golden_set.texts
    result = batch_invariance(model, texts)
    if not result.ok:
        warnings.warn(pytest.PytestWarning(result.warning(model.source)))
    by_length = sorted(set(texts), key=len)
    sample = by_length[:2] + by_length[-1:]  # short messages padded next to the longest
    target = model.labels[0]  # any intent's logit: padding must not change any of them
    attribution_diff = attribution_batch_invariance(model, sample, target, n_steps=ATTRIBUTION_CHECK_STEPS)
    if attribution_diff > ATTRIBUTION_TOLERANCE:
        warnings.warn(pytest.PytestWarning(
            f"pytest-mangaassist: the IG word scores of {model.source} change by {attribution_diff:.1e} (relative) "
            f"when messages are attributed in one padded batch instead of alone (tolerance {ATTRIBUTION_TOLERANCE:g}); "
            "attribution gates may depend on batching. Check the attention mask and eval mode."))
