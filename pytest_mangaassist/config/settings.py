"""Command-line and ini options, resolved and validated once at configure time.

Every option is also an ini key (`--model-path` <-> `mangaassist_model_path`); a path from the
ini file is relative to the ini file's folder, a path on the command line to the working
directory. Bad input raises MangaAssistInputError, which the plugin turns into a UsageError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..loading.checkpoint import CheckpointInfo, inspect_checkpoint
from ..errors import MangaAssistInputError, renamed_twice, renamed_warning
from ..loading.golden import GoldenSet, check_labels_match, load_golden_set

if TYPE_CHECKING:
    from ..analysis.counterfactuals import RoutingPolicy


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    metavar: str = "PATH"
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    default: str | None = None
    kind: str = "path"  # path (resolved against the ini file's folder or the working directory), text, flag
    old_flag: str | None = None  # the option's former name: still read, with a DeprecationWarning, for one release

    @property
    def dest(self) -> str:
        return dest_of(self.flag)

    @property
    def names(self) -> tuple[str, ...]:
        """Every flag that sets this option."""
        return (self.flag, *self.aliases, *([self.old_flag] if self.old_flag else []))


def dest_of(flag: str) -> str:
    """The option's argparse destination, which is also its ini key."""
    return "mangaassist_" + flag.lstrip("-").replace("mangaassist-", "").replace("-", "_")


OPTIONS = (
    Option("--model-path", "checkpoint folder of the model under test (Hugging Face sequence classifier)", "DIR"),
    Option("--pretrained-path", "checkpoint fine-tuning started from (where did fine-tuning change the encoder)",
           "DIR"),
    Option("--production-path", "the model in production now (did this retrain drift or regress)", "DIR",
           old_flag="--baseline-path"),
    Option("--onnx-path", "exported ONNX graph of the model under test (else exported on the fly)", "FILE"),
    Option("--serving-artifact", "compiled serving artifact: TorchScript or torch-neuronx module", "FILE",
           aliases=("--neuron-path",)),
    Option("--golden-set", "golden set, JSON Lines of {text, intent, slice?, also?} (else the suite's default)",
           "FILE"),
    Option("--validation-set", "larger labelled set (same format) for layer probes, CKA and patching", "FILE"),
    Option("--device", "device to run the models on", "{cpu,cuda}", choices=("cpu", "cuda"), default="cpu",
           kind="text"),
    Option("--mangaassist-report", "folder for results.json and report.html", "DIR"),
    Option("--gate-tier", "run only tests marked @pytest.mark.gate(tier) with one of these comma-separated tiers "
           "(e.g. monthly,release); unmarked tests always run", "TIERS", kind="text"),
    Option("--mangaassist-snapshot-file", "snapshot of accepted figures for assert_no_regression "
           "(default: mangaassist-snapshot.json next to the ini file)", "FILE"),
    Option("--mangaassist-update-snapshot", "store this run's figures in the snapshot file instead of comparing",
           kind="flag"),
    Option("--mangaassist-no-cache", "keep no disk cache: analyses in memory only, exports in a session temporary "
           "folder (release gates that must not trust a restored cache)", kind="flag"),
    Option("--mangaassist-allow-missing", "skip, instead of fail, a test whose input option was not given "
           "(per test: @pytest.mark.mangaassist_optional('production_model', ...))", kind="flag"),
    Option("--traffic", "unlabelled production traffic to replay: a JSON Lines or Parquet file, a folder of shards or "
           "a glob (fixture traffic)", "PATH"),
    Option("--traffic-text-field", "the field of a traffic record that holds the message (the others are kept for "
           "the report)", "FIELD", default="text", kind="text"),
    Option("--mangaassist-engine", "where the traffic replay runs: embedded (in this process) or ray (Ray Data on a "
           "pool of actors; pip install pytest-mangaassist[ray])", "{embedded,ray}", choices=("embedded", "ray"),
           default="embedded", kind="text"),
    Option("--mangaassist-ray-address", "address of an existing Ray cluster for --mangaassist-engine=ray (default: "
           "start a local one)", "ADDRESS", kind="text"),
    Option("--routing-policy", "JSON routing policy of the routing and traffic gates: {thresholds: {label: min "
           "confidence}, fallbacks: {label: route}, default_fallback} (default: the label set's profile's, else argmax)",
           "FILE"),
    Option("--training-set", "training data (golden-set format): the pack's leakage gate checks the golden set "
           "against it", "FILE"),
    Option("--mangaassist-pack", "run the built-in gate pack (pytest_mangaassist/pack) on the given model and golden "
           "set, without a test file", kind="flag"),
    Option("--mangaassist-allow-duplicates", "accept golden-set lines that repeat a message (counted in the header) "
           "instead of refusing them", kind="flag"),
    Option("--mangaassist-mlflow", "MLflow tracking URI (sqlite:///file.db, a folder or http://server:5000): log each "
           "run's figures there and draw their trend in report.html; pip install pytest-mangaassist[mlflow]", "URI",
           kind="text"),
    Option("--mangaassist-markdown", "write a Markdown summary of the gates here (default when $GITHUB_STEP_SUMMARY "
           "is set: appended to it), and print failing gates as CI annotations", "FILE"),
)
DEFAULT_SNAPSHOT_FILE = "mangaassist-snapshot.json"


@dataclass(frozen=True)
class Settings:
    model: CheckpointInfo | None = None
    pretrained: CheckpointInfo | None = None
    production: CheckpointInfo | None = None
    onnx_path: Path | None = None
    serving_artifact: Path | None = None
    golden_set: GoldenSet | None = None
    validation_set: GoldenSet | None = None
    device: str = "cpu"
    report_dir: Path | None = None
    tiers: tuple[str, ...] | None = None  # None: every test runs
    snapshot_file: Path | None = None
    update_snapshot: bool = False
    no_cache: bool = False
    allow_missing: bool = False
    allow_duplicates: bool = False
    traffic_path: str | None = None  # a file, folder or glob: validated and loaded by config.inputs.load_traffic_input
    traffic_text_field: str = "text"
    engine: str = "embedded"
    ray_address: str | None = None
    mlflow_uri: str | None = None  # checked at start-up by reporting.history.check_tracking_uri
    markdown_file: Path | None = None  # --mangaassist-markdown (written), else $GITHUB_STEP_SUMMARY (appended to)
    markdown_appends: bool = False  # True for $GITHUB_STEP_SUMMARY: other steps write there too
    routing_policy: RoutingPolicy | None = None  # None: domain.routing_policy decides per model
    training_set: GoldenSet | None = None
    pack: bool = False


def add_options(parser) -> None:
    group = parser.getgroup("mangaassist", "pytest-mangaassist: post-training gates for intent classifiers")
    for option in OPTIONS:
        kwargs = {"dest": option.dest, "default": None, "help": f"{option.help} [ini: {option.dest}]"}
        if option.kind == "flag":
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = option.metavar
        if option.choices:
            kwargs["choices"] = option.choices
        group.addoption(option.flag, *option.aliases, **kwargs)
        parser.addini(option.dest, option.help, type="bool" if option.kind == "flag" else "string",
                      default=False if option.kind == "flag" else option.default)
        if option.old_flag:
            old = f"deprecated name of {option.flag} (ini {option.dest}); goes in the next release"
            group.addoption(option.old_flag, dest=dest_of(option.old_flag), default=None, metavar=option.metavar,
                            help=old)
            parser.addini(dest_of(option.old_flag), old, type="string", default=None)


def _raw(config, option: Option) -> tuple[str | None, Path]:
    """The option's value and the folder a relative path in it is relative to; a value given under the
    option's old name is used with a DeprecationWarning naming the new one."""
    value = _given(config, option.dest)
    old = option.old_flag and _given(config, dest_of(option.old_flag))
    if not old:
        return value or (None, _ini_folder(config))
    if value:
        raise renamed_twice(f"{option.old_flag} (ini {dest_of(option.old_flag)})",
                            f"{option.flag} (ini {option.dest})", option.flag)
    config.issue_config_time_warning(renamed_warning(f"pytest-mangaassist: {option.old_flag} (ini "
                                                     f"{dest_of(option.old_flag)})",
                                                     f"pass {option.flag} (ini {option.dest})"), stacklevel=2)
    return old


def _given(config, dest: str) -> tuple[str, Path] | None:
    """(value, folder a relative path in it is relative to) from the command line, else the ini file."""
    value = config.getoption(dest)
    if value is not None:
        return value, Path(config.invocation_params.dir)
    value = config.getini(dest)
    return (value, _ini_folder(config)) if value else None


def _path(config, option: Option) -> Path | None:
    value, base = _raw(config, option)
    if value is None:
        return None
    try:
        path = base / Path(value).expanduser()
        if option.flag == "--mangaassist-snapshot-file":  # checked as it is: a link there is refused, not followed
            return path.parent.resolve() / path.name
        return path.resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # ~nosuchuser, a NUL byte, a loop of links
        raise MangaAssistInputError(f"{option.flag} (ini {option.dest}) = {value!r} is not a usable path ({exc}).",
                                    f"Pass {option.flag} an existing path.") from None


def _existing_file(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.is_file():
        raise MangaAssistInputError(f"{flag} {path} does not exist or is not a file.",
                                    f"Pass {flag} the path of an existing file, or leave it out.")
    return path


def load_settings(config) -> Settings:
    by_flag = {option.flag: option for option in OPTIONS}
    paths = {flag: _path(config, option) for flag, option in by_flag.items() if option.kind == "path"}
    model = paths["--model-path"] and inspect_checkpoint(paths["--model-path"], "--model-path")
    pretrained = paths["--pretrained-path"] and inspect_checkpoint(paths["--pretrained-path"], "--pretrained-path")
    production = paths["--production-path"] and inspect_checkpoint(paths["--production-path"], "--production-path")
    if model and production and production.labels != model.labels:
        raise MangaAssistInputError(
            f"The production model {production.path} has labels {list(production.labels)}, the model under test "
            f"{model.path} has {list(model.labels)}; a paired comparison needs the same labels in the same order.",
            "Pass --production-path the production checkpoint of this label set.",
        )
    allow_duplicates = _flag(config, by_flag["--mangaassist-allow-duplicates"])
    golden = paths["--golden-set"] and load_golden_set(paths["--golden-set"], allow_duplicates=allow_duplicates)
    validation = paths["--validation-set"] and load_golden_set(paths["--validation-set"],
                                                               allow_duplicates=allow_duplicates)
    for labelled in (golden, validation):
        if labelled and model:
            check_labels_match(labelled, model.labels, str(model.path))
    policy_file = _existing_file(paths["--routing-policy"], "--routing-policy")
    if policy_file:
        from ..domain import check_policy_labels, load_routing_policy  # numpy: only when a policy is given

    policy = policy_file and load_routing_policy(policy_file)
    if policy and model:
        check_policy_labels(policy, model.labels)
    training = paths["--training-set"] and load_golden_set(_existing_file(paths["--training-set"], "--training-set"),
                                                           allow_duplicates=True)
    device = _raw(config, by_flag["--device"])[0] or "cpu"
    if device not in ("cpu", "cuda"):
        raise MangaAssistInputError(f"mangaassist_device = {device!r} is not a device.", "Use cpu or cuda.")
    if device == "cuda":
        import torch  # only when a GPU is asked for

        if not torch.cuda.is_available():
            raise MangaAssistInputError("--device cuda was asked for, but torch sees no CUDA device.",
                                        "Run on a machine with a GPU and a CUDA build of torch, or use --device cpu.")
    return Settings(
        model=model or None,
        pretrained=pretrained or None,
        production=production or None,
        onnx_path=_existing_file(paths["--onnx-path"], "--onnx-path"),
        serving_artifact=_existing_file(paths["--serving-artifact"], "--serving-artifact"),
        golden_set=golden or None,
        validation_set=validation or None,
        device=device,
        report_dir=paths["--mangaassist-report"],
        tiers=_tiers(_raw(config, by_flag["--gate-tier"])[0]),
        snapshot_file=paths["--mangaassist-snapshot-file"] or _ini_folder(config) / DEFAULT_SNAPSHOT_FILE,
        update_snapshot=_flag(config, by_flag["--mangaassist-update-snapshot"]),
        no_cache=_flag(config, by_flag["--mangaassist-no-cache"]),
        allow_missing=_flag(config, by_flag["--mangaassist-allow-missing"]),
        allow_duplicates=allow_duplicates,
        traffic_path=None if paths["--traffic"] is None else str(paths["--traffic"]),
        traffic_text_field=_raw(config, by_flag["--traffic-text-field"])[0] or "text",
        engine=_raw(config, by_flag["--mangaassist-engine"])[0] or "embedded",
        ray_address=_raw(config, by_flag["--mangaassist-ray-address"])[0] or None,
        mlflow_uri=_tracking_uri(*_raw(config, by_flag["--mangaassist-mlflow"])),
        markdown_file=paths["--mangaassist-markdown"] or _github_step_summary(),
        markdown_appends=paths["--mangaassist-markdown"] is None and _github_step_summary() is not None,
        routing_policy=policy or None,
        training_set=training or None,
        pack=_flag(config, by_flag["--mangaassist-pack"]),
    )


def _tracking_uri(value: str | None, base: Path) -> str | None:
    """A URI with a scheme as given; a bare folder resolved like every other path (against the ini file's
    folder or the working directory), so a relative one means the same from any directory."""
    if not value or "://" in value or value.startswith("file:"):
        return value or None
    return str((base / Path(value).expanduser()).resolve())


def _github_step_summary() -> Path | None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(summary) if summary else None


def _flag(config, option: Option) -> bool:
    if config.getoption(option.dest):
        return True
    try:
        return bool(config.getini(option.dest))
    except (ValueError, TypeError):  # pytest's bool ini parsing refuses anything but true/false words
        raise MangaAssistInputError(f"ini key {option.dest} is not a boolean.",
                                    f"Set {option.dest} to true or false.") from None


def _ini_folder(config) -> Path:
    return Path(config.inipath).parent if config.inipath else Path(config.rootpath)


def _tiers(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    tiers = tuple(t.strip() for t in value.split(",") if t.strip())
    if not tiers:
        raise MangaAssistInputError(f"--gate-tier {value!r} names no tier.",
                                    "Pass comma-separated tier names, e.g. --gate-tier monthly,release.")
    return tiers
