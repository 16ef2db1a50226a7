"""The on-disk cache (.pytest_cache/d/mangaassist/): shared by pytest runs and xdist workers, and
treated as untrusted input.

CI restores this folder across branches, so anything in it may have been altered or planted.
What the cache trusts and what it does not:

- Every entry is authenticated when it is written: HMAC-SHA256 over the entry's name (which is its
  key: analysis, model content hash, arguments, library versions, format) and its bytes. The MAC key
  is MANGAASSIST_CACHE_KEY when that environment variable is set (set it from a CI secret; set but
  shorter than MIN_KEY_LENGTH, empty included, is refused), else a random key generated once and kept
  in the cache folder itself (KEY_FILE).
- An entry whose MAC does not verify (altered, truncated, planted, renamed from another key, signed
  with another key) is a miss: it is recomputed and replaced, with a CacheWarning naming it. So is an
  entry that cannot be read or decoded. A verdict never comes from an unverified entry.
- With the key kept in the cache folder, the MAC catches entries altered or planted after they were
  written and entries renamed to another key; it does NOT stop a forger who can read the cache folder
  (and so the key) and write an entry signed with it. To stop that one, set MANGAASSIST_CACHE_KEY
  from a secret the cache's writers cannot read, or turn the disk cache off (--mangaassist-no-cache).
- Entries hold numpy arrays only and are read with allow_pickle=False: reading never runs pickles.
- Exports and compiled artifacts (ONNX, TorchScript) are verified the same way before they are
  loaded (cache/artifacts.py).
- The folder, its entries, locks and key file are opened without following symbolic links
  (files.py): a link, FIFO, device or folder planted where a file belongs is a miss (removed and
  recomputed, with a CacheWarning), and a cache folder that is a link or not a folder is refused at
  start-up (check_cache_folders) and, if it becomes one during the run, used for nothing.
- Keys include the versions of the libraries that compute the figures (LIBRARIES), the plugin's own
  version and CACHE_FORMAT, so an upgrade never serves figures of the old versions.

Writes go to a temporary file that is renamed into place, so a reader never sees half a file; a
file lock per entry makes concurrent xdist workers wait for the one computing it. Temporary files
left by killed writers are removed once they are ORPHAN_AGE_S old.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import io
import os
import secrets
import stat
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import MangaAssistInputError
from . import files

CACHE_FORMAT = "cache-2"  # bump when the entry format or the key recipe changes
KEY_ENV = "MANGAASSIST_CACHE_KEY"
KEY_FILE = ".mangaassist-cache-key"
# HMAC-SHA256 takes a key of any length, so a short one is accepted without a word; 32 characters hold
# 128 bits when they are hex digits (`python -c "import secrets; print(secrets.token_hex(32))"` prints 64),
# the security strength NIST SP 800-107 asks of an HMAC key; an empty one is what CI hands a fork's pull
# request whose secret is withheld.
MIN_KEY_LENGTH = 32
KEY_FILE_LIMIT = 1024  # the key file holds 64 hex digits; anything longer is not ours
ENTRY_SUFFIX = ".entry"
MAGIC = b"MACACHE2"  # 8 bytes, then an 8-byte key id, a 32-byte HMAC-SHA256, the npz payload
HEADER = len(MAGIC) + 8 + 32
TMP_MARK = ".tmp-"  # temporary files are ".<entry name>.tmp-<random>[suffix]"
ORPHAN_AGE_S = 10 * 60
# distributions whose versions change the figures (or the exports); missing ones count as "absent"
LIBRARIES = ("torch", "transformers", "captum", "onnxruntime", "onnx", "onnxscript", "numpy", "scipy",
             "scikit-learn", "torch-neuronx", "pytest-mangaassist")


class CacheWarning(UserWarning):
    """A cache entry was ignored (altered, planted, unreadable) and recomputed."""


# -- keys ---------------------------------------------------------------------------------------
def content_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))  # a lone surrogate must not crash the key
        digest.update(b"\0")
    return digest.hexdigest()[:24]




@functools.lru_cache(maxsize=None)
def library_versions() -> tuple[tuple[str, str], ...]:
    """(distribution, version) of every library in LIBRARIES, read from package metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in LIBRARIES:
        try:
            found.append((name, version(name)))
        except PackageNotFoundError:
            found.append((name, "absent"))
    return tuple(found)


@functools.lru_cache(maxsize=None)
def environment_key() -> str:
    """The part of every key that changes with the format, Python and library versions."""
    python = f"python={sys.version_info.major}.{sys.version_info.minor}"
    return content_key(CACHE_FORMAT, python, *(f"{name}={v}" for name, v in library_versions()))


# -- the MAC key --------------------------------------------------------------------------------
def key_from_environment() -> str | None:
    """MANGAASSIST_CACHE_KEY, None where it is not set; MangaAssistInputError where it is set but shorter
    than MIN_KEY_LENGTH (empty included): a withheld CI secret must not fall back to the folder key unseen."""
    secret = os.environ.get(KEY_ENV)
    if secret is not None and len(secret.strip()) < MIN_KEY_LENGTH:
        raise MangaAssistInputError(
            f"{KEY_ENV} is set but {'empty' if not secret.strip() else f'{len(secret.strip())} characters long'}; "
            f"the cache key must be at least {MIN_KEY_LENGTH} characters (128 bits as hex digits). An empty value is "
            "what CI gives a pull request whose secret is withheld: the cache would fall back to the folder key, "
            "which anyone who can write the cache folder can read.",
            f"Set {KEY_ENV} from a secret of {MIN_KEY_LENGTH}+ characters (e.g. python -c \"import secrets; "
            f"print(secrets.token_hex(32))\"), or unset it to use the folder key knowingly.")
    return secret


def key_source() -> str:
    """Which key signs the cache, for the run header (never the secret itself)."""
    if key_from_environment() is not None:
        return f"{KEY_ENV} (a secret from the environment)"
    return (f"the folder key {KEY_FILE} kept in the cache folder (catches alterations, not a forger who can read "
            f"the folder: set {KEY_ENV} from a CI secret)")


def signing_key(cache_dir: Path) -> bytes:
    """MANGAASSIST_CACHE_KEY when set, else the random key kept in cache_dir/KEY_FILE."""
    secret = key_from_environment()
    if secret is not None:
        return hashlib.sha256(b"mangaassist-cache-key\0" + secret.encode("utf-8", "surrogatepass")).digest()
    return _folder_key(Path(cache_dir))


def _read_key_file(path: Path) -> bytes | None:
    try:
        key = bytes.fromhex(files.read_file(path, KEY_FILE_LIMIT).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return key if len(key) == 32 else None


def _folder_key(cache_dir: Path) -> bytes:
    path = cache_dir / KEY_FILE
    key = _read_key_file(path)
    if key is not None:
        return key
    with lock(cache_dir, KEY_FILE):  # xdist workers agree on one key
        key = _read_key_file(path)
        if key is None:  # absent (or unreadable: then every entry signed with it is recomputed)
            key = secrets.token_bytes(32)
            atomic_write(path, key.hex().encode() + b"\n", mode=0o600)
    return key


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"mangaassist-key-id\0" + key).digest()[:8]


def mac(key: bytes, domain: str, name: str, data) -> bytes:
    """HMAC-SHA256 over (domain, name, data): an entry renamed to another key does not verify."""
    tag = hmac.new(key, digestmod=hashlib.sha256)
    tag.update(f"{domain}\0{name}\0".encode("utf-8", "surrogatepass"))
    tag.update(data)
    return tag.digest()


# -- files --------------------------------------------------------------------------------------
_swept: set[Path] = set()


def remove_orphans(cache_dir: Path, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete temporary files of killed writers (older than max_age_s); once per folder and process
    unless called directly. Returns what was removed."""
    removed = []
    now = time.time()
    try:
        candidates = list(Path(cache_dir).glob(f".*{TMP_MARK}*"))
    except OSError:
        return removed
    for path in candidates:
        try:
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > max_age_s:
                path.unlink()
                removed.append(path)
        except OSError:  # another process removed or renamed it first
            pass
    return removed


def _prepare(cache_dir: Path) -> Path:
    """cache_dir, created; files.NotAFile where it is a symbolic link or not a folder."""
    cache_dir = Path(cache_dir)
    with files.folder(cache_dir):
        pass
    if cache_dir not in _swept:
        _swept.add(cache_dir)
        remove_orphans(cache_dir)
    return cache_dir


def temporary_path(target: Path, suffix: str = "") -> Path:
    """A new, empty temporary file beside target, named so that remove_orphans recognises it."""
    with files.folder(target.parent) as folder:
        name, handle = files.create_temporary(folder, target.name, suffix, mark=TMP_MARK)
    os.close(handle)
    return target.parent / name


def atomic_write(target: Path, data: bytes, mode: int = 0o600) -> None:
    """target holds data, whole, or its old content; a link or folder in its place is replaced, never followed."""
    with files.folder(target.parent) as folder:
        files.clear(folder, target.name)  # a rename cannot replace a folder
        files.replace(folder, target.name, data, mode, mark=TMP_MARK)


@contextlib.contextmanager
def lock(cache_dir: Path | None, name: str):
    """A file lock per cache entry, so concurrent xdist workers compute an entry once. A link, FIFO or
    folder planted as the lock is removed (with a CacheWarning); a lock that still cannot be taken costs
    the sharing, not the run: the entry is computed without it (the rename keeps the entry whole)."""
    if cache_dir is None:
        yield
        return
    from filelock import FileLock

    path = _prepare(cache_dir) / f".{name}.lock"
    try:
        with files.folder(path.parent) as folder:
            planted = files.clear(folder, path.name)
        if planted is not None:
            warnings.warn(CacheWarning(f"pytest-mangaassist: cache lock {path} was {planted}; it was removed."),
                          stacklevel=3)
        held = FileLock(str(path))
        held.acquire()
    except OSError as exc:
        warnings.warn(CacheWarning(f"pytest-mangaassist: cache lock {path} could not be taken "
                                   f"({type(exc).__name__}: {exc}); the entry is computed without it."), stacklevel=3)
        yield
        return
    try:
        yield
    finally:
        held.release()


def warn_ignored(path: Path, problem: str) -> None:
    warnings.warn(CacheWarning(f"pytest-mangaassist: cache entry {path} {problem}; it was ignored, "
                               f"recomputed and replaced."), stacklevel=3)


def check_cache_folders(folders) -> None:
    """At start-up: each of folders is a real folder or absent; MangaAssistInputError naming the first that is
    a symbolic link (a restored cache would send every entry where it points), a file or anything else."""
    for folder in folders:
        what = files.folder_problem(folder)
        if what is not None:
            raise MangaAssistInputError(
                f"The cache folder {folder} is {what}, not a folder; the plugin writes no cache entry through it "
                "(a CI cache restored with a link there would receive every entry outside the project).",
                f"Remove it (rm {folder}; the plugin rebuilds its cache), or run with --mangaassist-no-cache.")


# -- entries ------------------------------------------------------------------------------------
MISSING = "missing"
UNSIGNED = "carries no signature of this plugin (planted, or written by another version)"
OTHER_KEY = (f"was signed with another cache key ({KEY_ENV} changed, or the key file {KEY_FILE} "
             "was replaced)")
ALTERED = "failed verification (altered, truncated, renamed or planted after it was written)"


def entry_path(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / f"{name}{ENTRY_SUFFIX}"


def _verified_payload(cache_dir: Path, name: str) -> tuple[bytes | None, str | None]:
    """(payload, None) for an entry that verifies, else (None, why not)."""
    path = entry_path(cache_dir, name)
    try:
        blob = files.read_file(path)
    except FileNotFoundError:
        return None, MISSING
    except files.NotAFile as exc:
        return None, exc.strerror
    except OSError as exc:
        return None, f"could not be read ({type(exc).__name__}: {exc})"
    if not blob.startswith(MAGIC):
        return None, UNSIGNED
    key = signing_key(cache_dir)
    stored_id, tag, payload = blob[len(MAGIC):len(MAGIC) + 8], blob[len(MAGIC) + 8:HEADER], blob[HEADER:]
    if stored_id != key_id(key):
        return None, OTHER_KEY
    if not hmac.compare_digest(tag, mac(key, "entry", name, payload)):
        return None, ALTERED
    return payload, None


def _decode_payload(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def read_entry(cache_dir: Path, name: str, decode=None):
    """(value, None) for a verified, decodable entry; (None, why not) otherwise. decode(arrays) -> value."""
    payload, problem = _verified_payload(cache_dir, name)
    if problem is not None:
        return None, problem
    try:
        arrays = _decode_payload(payload)
        return (arrays if decode is None else decode(arrays)), None
    except Exception as exc:  # verified but not what this version reads: a miss like any other
        return None, f"could not be decoded ({type(exc).__name__}: {exc})"


def write_entry(cache_dir: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    for key, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise TypeError(f"cache entry {name}: {key!r} is an object array; the cache stores plain arrays only")
    cache_dir = _prepare(cache_dir)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    key = signing_key(cache_dir)
    path = entry_path(cache_dir, name)
    atomic_write(path, MAGIC + key_id(key) + mac(key, "entry", name, payload) + payload)
    return path






def load_or_compute(cache_dir: Path | None, name: str, compute, encode=None, decode=None):
    """compute() once per disk cache: a verified entry is decoded and returned; anything else (absent,
    unverified, unreadable, undecodable) is recomputed and replaced, with a CacheWarning unless it was
    simply absent. encode(value) -> arrays and decode(arrays) -> value (default: value is the arrays).
    A computed value is returned as decode(encode(value)), so cold and warm runs return the same thing."""
    if cache_dir is None:
        return compute()
    try:
        cache_dir = _prepare(cache_dir)
    except OSError as exc:  # the folder became a link or a file after the start-up check: use it for nothing
        warnings.warn(CacheWarning(f"pytest-mangaassist: cache folder unusable ({exc.strerror or exc}); the result "
                                   "is used uncached."))
        return compute()
    value, problem = read_entry(cache_dir, name, decode)
    if problem is None:
        return value
    with lock(cache_dir, name):  # an xdist worker waits for the one computing it, then reads its entry
        value, problem = read_entry(cache_dir, name, decode)
        if problem is None:
            return value
        if problem != MISSING:
            warn_ignored(entry_path(cache_dir, name), problem)
        computed = compute()
        arrays = computed if encode is None else encode(computed)
        try:
            write_entry(cache_dir, name, arrays)
        except OSError as exc:  # a read-only or full cache folder costs the reuse, not the run
            warnings.warn(CacheWarning(f"pytest-mangaassist: cache entry {entry_path(cache_dir, name)} could not be "
                                       f"written ({type(exc).__name__}: {exc}); the result is used uncached."))
    return arrays if decode is None else decode(arrays)


def model_key(model, kind: str, *parts: str) -> str:
    """The key of an analysis of model: kind, library versions, the model's content hash and tokenizer
    length, and parts (argument fingerprints, the analysis' format version...)."""
    return content_key(kind, environment_key(), model.content_hash, str(model.max_length),
                       str(getattr(model, "device", "cpu")), *parts)
