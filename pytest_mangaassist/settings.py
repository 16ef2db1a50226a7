"""Command-line and ini options, resolved and validated once at configure time.

Every option is also an ini key (`--model-path` <-> `mangaassist_model_path`); a path from the
ini file is relative to the ini file's folder, a path on the command line to the working
directory. Bad input raises MangaAssistInputError, which the plugin turns into a UsageError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointInfo, inspect_checkpoint
from .errors import MangaAssistInputError
from .golden import GoldenSet, check_labels_match, load_golden_set


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    metavar: str = "PATH"
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    default: str | None = None

    @property
    def dest(self) -> str:
        return "mangaassist_" + self.flag.lstrip("-").replace("mangaassist-", "").replace("-", "_")


OPTIONS = (
    Option("--model-path", "checkpoint folder of the model under test (Hugging Face sequence classifier)", "DIR"),
    Option("--pretrained-path", "checkpoint fine-tuning started from (where did fine-tuning change the encoder)",
           "DIR"),
    Option("--baseline-path", "the model in production now (did this retrain drift or regress)", "DIR"),
    Option("--onnx-path", "exported ONNX graph of the model under test (else exported on the fly)", "FILE"),
    Option("--serving-artifact", "compiled serving artifact: TorchScript or torch-neuronx module", "FILE",
           aliases=("--neuron-path",)),
    Option("--golden-set", "golden set, JSON Lines of {text, intent, slice?, also?} (else the suite's default)",
           "FILE"),
    Option("--validation-set", "larger labelled set (same format) for layer probes, CKA and patching", "FILE"),
    Option("--device", "device to run the models on", "{cpu,cuda}", choices=("cpu", "cuda"), default="cpu"),
    Option("--mangaassist-report", "folder for results.json and report.html", "DIR"),
)


@dataclass(frozen=True)
class Settings:
    model: CheckpointInfo | None = None
    pretrained: CheckpointInfo | None = None
    baseline: CheckpointInfo | None = None
    onnx_path: Path | None = None
    serving_artifact: Path | None = None
    golden_set: GoldenSet | None = None
    validation_set: GoldenSet | None = None
    device: str = "cpu"
    report_dir: Path | None = None


def add_options(parser) -> None:
    group = parser.getgroup("mangaassist", "pytest-mangaassist: post-training gates for intent classifiers")
    for option in OPTIONS:
        kwargs = {"dest": option.dest, "default": None, "metavar": option.metavar,
                  "help": f"{option.help} [ini: {option.dest}]"}
        if option.choices:
            kwargs["choices"] = option.choices
        group.addoption(option.flag, *option.aliases, **kwargs)
        parser.addini(option.dest, option.help, default=option.default)


def _raw(config, option: Option) -> tuple[str | None, Path]:
    """The option's value and the folder a relative path in it is relative to."""
    value = config.getoption(option.dest)
    if value is not None:
        return value, Path(config.invocation_params.dir)
    value = config.getini(option.dest)
    base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    return (value or None), base


def _path(config, option: Option) -> Path | None:
    value, base = _raw(config, option)
    return None if value is None else (base / Path(value).expanduser()).resolve()


def _existing_file(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.is_file():
        raise MangaAssistInputError(f"{flag} {path} does not exist or is not a file.",
                                    f"Pass {flag} the path of an existing file, or leave it out.")
    return path


def load_settings(config) -> Settings:
    by_flag = {option.flag: option for option in OPTIONS}
    paths = {flag: _path(config, option) for flag, option in by_flag.items() if flag != "--device"}
    model = paths["--model-path"] and inspect_checkpoint(paths["--model-path"], "--model-path")
    pretrained = paths["--pretrained-path"] and inspect_checkpoint(paths["--pretrained-path"], "--pretrained-path")
    baseline = paths["--baseline-path"] and inspect_checkpoint(paths["--baseline-path"], "--baseline-path")
    if model and baseline and baseline.labels != model.labels:
        raise MangaAssistInputError(
            f"The baseline model {baseline.path} has labels {list(baseline.labels)}, the model under test "
            f"{model.path} has {list(model.labels)}; a paired comparison needs the same labels in the same order.",
            "Pass --baseline-path the production checkpoint of this label set.",
        )
    golden = paths["--golden-set"] and load_golden_set(paths["--golden-set"])
    validation = paths["--validation-set"] and load_golden_set(paths["--validation-set"])
    for labelled in (golden, validation):
        if labelled and model:
            check_labels_match(labelled, model.labels, str(model.path))
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
        baseline=baseline or None,
        onnx_path=_existing_file(paths["--onnx-path"], "--onnx-path"),
        serving_artifact=_existing_file(paths["--serving-artifact"], "--serving-artifact"),
        golden_set=golden or None,
        validation_set=validation or None,
        device=device,
        report_dir=paths["--mangaassist-report"],
    )
