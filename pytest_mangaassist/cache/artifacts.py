"""Exports made for a test session (ONNX graph, compiled serving artifact), cached and authenticated.

An export is made once per model content hash, export format and library versions, under a file lock
(every xdist worker waits for the one exporting), written to a temporary name and renamed into place.
Beside it, `<file>.mac` holds its HMAC-SHA256 (over its name and bytes, with the cache's key: see
store.py). An artifact is verified before anything loads it; one that does not verify (planted,
altered, renamed, or without its .mac) is rebuilt and replaced with a CacheWarning naming it.
The loaders here load the very bytes that were verified (no window for a swap between check and load).

`directory` may be any folder: pytest's cache, or a session temporary folder when the disk cache is off.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from ..loading import export
from . import files, store

MAC_SUFFIX = ".mac"
MAC_HEADER = "mangaassist-artifact-mac-1"
MAC_LIMIT = 1024  # a header and two hex digests


def _mac_path(target: Path) -> Path:
    return target.with_name(target.name + MAC_SUFFIX)


def _verified_bytes(target: Path) -> tuple[bytes | None, str | None]:
    try:
        data = files.read_file(target)
    except FileNotFoundError:
        return None, store.MISSING
    except files.NotAFile as exc:
        return None, exc.strerror
    except OSError as exc:
        return None, f"could not be read ({type(exc).__name__}: {exc})"
    try:
        header, stored_id, tag = files.read_file(_mac_path(target), MAC_LIMIT).decode("ascii").split()
        stored_id, tag = bytes.fromhex(stored_id), bytes.fromhex(tag)
    except (OSError, ValueError, UnicodeDecodeError):
        return None, store.UNSIGNED
    if header != MAC_HEADER:
        return None, store.UNSIGNED
    key = store.signing_key(target.parent)
    if stored_id != store.key_id(key):
        return None, store.OTHER_KEY
    if not hmac.compare_digest(tag, store.mac(key, "artifact", target.name, data)):
        return None, store.ALTERED
    return data, None


def _sign(target: Path, data: bytes) -> None:
    key = store.signing_key(target.parent)
    line = f"{MAC_HEADER} {store.key_id(key).hex()} {store.mac(key, 'artifact', target.name, data).hex()}\n"
    store.atomic_write(_mac_path(target), line.encode())


def signed_artifact(target: Path, make) -> bytes:
    """The verified bytes of target, made by make(path) first when it is absent or does not verify."""
    target = Path(target)
    data, problem = _verified_bytes(target)
    if problem is None:
        return data
    with store.lock(target.parent, target.name):
        data, problem = _verified_bytes(target)
        if problem is None:
            return data
        if problem != store.MISSING:
            store.warn_ignored(target, problem)
        tmp = store.temporary_path(target, suffix=target.suffix)
        try:
            make(tmp)
            data = tmp.read_bytes()
            _mac_path(target).unlink(missing_ok=True)  # no moment where the old MAC vouches for the new file
            with files.folder(target.parent) as folder:
                files.clear(folder, target.name)  # a folder planted under the name: a rename cannot replace it
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _sign(target, data)
    return data


def onnx_export_path(model, directory: str | Path) -> Path:
    return Path(directory) / f"onnx-{model.content_hash}-{export.EXPORT_FORMAT}-{store.environment_key()[:12]}.onnx"


def serving_artifact_path(model, directory: str | Path) -> Path:
    compiler = "neuronx" if export.torch_neuronx() is not None else "jit"
    return (Path(directory) / f"serving-{model.content_hash}-{compiler}-{export.EXPORT_FORMAT}-"
                              f"{store.environment_key()[:12]}.pt")


def cached_onnx_export(model, directory: str | Path) -> Path:
    """The model's ONNX export in directory, made once and verified before it is returned."""
    target = onnx_export_path(model, directory)
    signed_artifact(target, lambda tmp: export.export_onnx(model, tmp))
    return target


def cached_serving_artifact(model, directory: str | Path) -> Path:
    """The model's compiled serving artifact in directory, made once and verified before it is returned."""
    target = serving_artifact_path(model, directory)
    signed_artifact(target, lambda tmp: export.compile_serving_artifact(model, tmp))
    return target


def load_cached_onnx(model, directory: str | Path):
    """The model's cached ONNX export, loaded in onnxruntime from the bytes that were verified."""
    from ..loading.runtimes import OnnxModel

    target = onnx_export_path(model, directory)
    data = signed_artifact(target, lambda tmp: export.export_onnx(model, tmp))
    return OnnxModel.load(target, exported_here=True, data=data)


def load_cached_serving_artifact(model, directory: str | Path):
    """The model's cached serving artifact, loaded by torch.jit from the bytes that were verified."""
    from ..loading.runtimes import ServingArtifact

    target = serving_artifact_path(model, directory)
    data = signed_artifact(target, lambda tmp: export.compile_serving_artifact(model, tmp))
    return ServingArtifact.load(target, compiled_here=True, data=data)
