"""On-disk cache of arrays, keyed by content hashes; shared by pytest runs and xdist workers.

Entries are .npz files (numpy arrays only, loaded with allow_pickle=False: never pickles),
written to a temporary name and renamed into place, so a reader never sees half a file; a file
lock per entry makes concurrent xdist workers wait for the one computing it instead of repeating it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def content_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def texts_hash(texts: list[str]) -> str:
    return content_key(*texts)


def load_arrays(cache_dir: Path | None, name: str) -> dict[str, np.ndarray] | None:
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):  # absent, or unreadable: recompute
        return None


def save_arrays(cache_dir: Path | None, name: str, arrays: dict[str, np.ndarray]) -> None:
    if cache_dir is None:
        return
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, cache_dir / f"{name}.npz")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lock(cache_dir: Path | None, name: str):
    """A file lock per cache entry, so concurrent xdist workers compute an entry once."""
    if cache_dir is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(cache_dir) / f".{name}.lock"))


def cached_on_model(model, kind: str, parts: tuple[str, ...], compute) -> dict[str, np.ndarray]:
    """compute() -> arrays, once per model instance and once per disk cache, keyed by the model's
    content hash, its tokenizer length and parts (data hash, seed, format version...)."""
    key = content_key(kind, model.content_hash, str(model.max_length), *parts)

    def load_or_compute() -> dict[str, np.ndarray]:
        name = f"{kind}-{key}"
        arrays = load_arrays(model.cache_dir, name)
        if arrays is None:
            with _lock(model.cache_dir, name):  # an xdist worker waits for the one computing it
                arrays = load_arrays(model.cache_dir, name)
                if arrays is None:
                    arrays = compute()
                    save_arrays(model.cache_dir, name, arrays)
        return arrays

    return model.memo((kind, key), load_or_compute)
