"""One codec for every cached result: a typed value <-> a flat dict of numpy arrays (an .npz payload).

Type-directed and generic: the type (a function's return annotation) says how to write and read a
value, so no result type has a serialiser of its own and a cache file can only ever supply data,
never choose a type or code to run. Handled: numpy arrays, float, int, bool, str, None-able values
(X | None), dataclasses (their init fields, by their annotations), fixed tuples (tuple[A, B]),
sequences (tuple[X, ...], list[X]) and dict[K, V], nested freely.

Sequences are stored by column: a list of dataclasses becomes one array per field, a list of arrays
of different shapes one flat array plus their shapes, a list of lists the flat items plus their
lengths; so a 5,000-message result is a handful of arrays, not 5,000 zip members.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

import numpy as np

ROOT = "v"
_SCALARS = {float: np.float64, int: np.int64, bool: np.bool_, str: np.uint8}  # str: its UTF-8 bytes


def _utf8(text: str) -> bytes:
    return str(text).encode("utf-8", "surrogatepass")  # exact: trailing NULs, lone surrogates survive


def _optional_of(tp):
    """X for X | None (typing.Optional[X]); None for any other type."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(args) == 2 and len(inner) == 1:
            return inner[0]
        raise TypeError(f"the cache codec handles X | None unions only, not {tp!r}")
    return None


@functools.lru_cache(maxsize=None)
def _fields(cls) -> tuple[tuple[str, object], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _kind(tp) -> str:
    if tp is np.ndarray or typing.get_origin(tp) is np.ndarray:
        return "array"
    if tp in _SCALARS:
        return "scalar"
    if _optional_of(tp) is not None:
        return "optional"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "dataclass"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin is list and len(args) == 1:
        return "sequence"
    if origin is tuple and args and Ellipsis not in args:
        return "tuple"
    if origin is dict and len(args) == 2:
        return "dict"
    raise TypeError(f"the cache codec does not handle values of type {tp!r}")


def _item_type(tp):
    return typing.get_args(tp)[0]


def schema(tp) -> str:
    """A text that changes whenever the stored layout of tp changes (part of every cache key)."""
    kind = _kind(tp)
    if kind == "array":
        return "array"
    if kind == "scalar":
        return tp.__name__
    if kind == "optional":
        return f"optional[{schema(_optional_of(tp))}]"
    if kind == "dataclass":
        return f"{tp.__qualname__}({','.join(f'{n}:{schema(t)}' for n, t in _fields(tp))})"
    if kind == "sequence":
        return f"seq[{schema(_item_type(tp))}]"
    return f"{kind}[{','.join(schema(a) for a in typing.get_args(tp))}]"


# -- writing --------------------------------------------------------------------------------------
def encode(value, tp) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    _put(value, tp, ROOT, out)
    return out


def _plain(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.hasobject:
        raise TypeError(f"the cache codec stores no object arrays ({key})")
    return array


def _put(value, tp, key: str, out: dict) -> None:
    kind = _kind(tp)
    if kind == "array":
        out[key] = _plain(np.asarray(value), key)
    elif kind == "scalar" and tp is str:
        out[key] = np.frombuffer(_utf8(value), dtype=np.uint8).copy()
    elif kind == "scalar":
        out[key] = np.array(value, dtype=_SCALARS[tp])
    elif kind == "optional":
        out[f"{key}?"] = np.array(value is None)
        if value is not None:
            _put(value, _optional_of(tp), key, out)
    elif kind == "dataclass":
        for name, hint in _fields(tp):
            _put(getattr(value, name), hint, f"{key}.{name}", out)
    elif kind == "tuple":
        hints = typing.get_args(tp)
        if len(value) != len(hints):
            raise TypeError(f"{key}: expected {len(hints)} items for {tp!r}, got {len(value)}")
        for i, (item, hint) in enumerate(zip(value, hints)):
            _put(item, hint, f"{key}.{i}", out)
    elif kind == "sequence":
        _put_column(list(value), _item_type(tp), key, out)
    else:  # dict
        k_type, v_type = typing.get_args(tp)
        _put_column(list(value.keys()), k_type, f"{key}.k", out)
        _put_column(list(value.values()), v_type, f"{key}.v", out)


def _put_column(values: list, tp, key: str, out: dict) -> None:
    """n values of type tp as a few arrays (n stored at key#)."""
    out[f"{key}#"] = np.array(len(values), dtype=np.int64)
    kind = _kind(tp)
    if kind == "scalar" and tp is str:
        encoded = [_utf8(v) for v in values]
        out[f"{key}.len"] = np.array([len(b) for b in encoded], dtype=np.int64)
        out[key] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    elif kind == "scalar":
        out[key] = np.array(values, dtype=_SCALARS[tp])
    elif kind == "array":
        arrays = [_plain(np.asarray(v), key) for v in values]
        ndims = {a.ndim for a in arrays}
        if len(ndims) > 1:
            raise TypeError(f"{key}: arrays of different dimensions {sorted(ndims)} in one sequence")
        ndim = ndims.pop() if ndims else 0
        out[f"{key}.shapes"] = np.array([a.shape for a in arrays], dtype=np.int64).reshape(len(arrays), ndim)
        out[f"{key}.flat"] = (np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0))
    elif kind == "optional":
        out[f"{key}?"] = np.array([v is None for v in values], dtype=bool)
        _put_column([v for v in values if v is not None], _optional_of(tp), f"{key}.some", out)
    elif kind == "dataclass":
        for name, hint in _fields(tp):
            _put_column([getattr(v, name) for v in values], hint, f"{key}.{name}", out)
    elif kind == "tuple":
        hints = typing.get_args(tp)
        for v in values:
            if len(v) != len(hints):
                raise TypeError(f"{key}: expected {len(hints)} items for {tp!r}, got {len(v)}")
        for i, hint in enumerate(hints):
            _put_column([v[i] for v in values], hint, f"{key}.{i}", out)
    elif kind == "sequence":
        out[f"{key}.len"] = np.array([len(v) for v in values], dtype=np.int64)
        _put_column([item for v in values for item in v], _item_type(tp), f"{key}.i", out)
    else:  # dict
        k_type, v_type = typing.get_args(tp)
        out[f"{key}.len"] = np.array([len(v) for v in values], dtype=np.int64)
        _put_column([k for v in values for k in v.keys()], k_type, f"{key}.k", out)
        _put_column([x for v in values for x in v.values()], v_type, f"{key}.v", out)


# -- reading --------------------------------------------------------------------------------------
def decode(arrays: dict[str, np.ndarray], tp):
    """The value encode() wrote; KeyError / ValueError / TypeError when the arrays do not fit tp."""
    return _get(arrays, tp, ROOT)


def _text(array: np.ndarray) -> str:
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"expected UTF-8 bytes, got {array.dtype} of shape {array.shape}")
    return array.tobytes().decode("utf-8", "surrogatepass")


def _scalar(array: np.ndarray, tp):
    if tp is str:
        return _text(array)
    if array.shape != ():
        raise ValueError(f"expected a single {tp.__name__}, got shape {array.shape}")
    return tp(array.item())


def _get(arrays: dict, tp, key: str):
    kind = _kind(tp)
    if kind == "array":
        return arrays[key]
    if kind == "scalar":
        return _scalar(arrays[key], tp)
    if kind == "optional":
        if bool(_scalar(arrays[f"{key}?"], bool)):
            return None
        return _get(arrays, _optional_of(tp), key)
    if kind == "dataclass":
        return tp(**{name: _get(arrays, hint, f"{key}.{name}") for name, hint in _fields(tp)})
    if kind == "tuple":
        return tuple(_get(arrays, hint, f"{key}.{i}") for i, hint in enumerate(typing.get_args(tp)))
    if kind == "sequence":
        return _as_sequence(_get_column(arrays, _item_type(tp), key), tp)
    k_type, v_type = typing.get_args(tp)
    return dict(zip(_get_column(arrays, k_type, f"{key}.k"), _get_column(arrays, v_type, f"{key}.v"), strict=True))


def _as_sequence(items: list, tp):
    return tuple(items) if typing.get_origin(tp) is tuple else list(items)


def _split(items: list, lengths: np.ndarray) -> list[list]:
    if int(lengths.sum()) != len(items) or (lengths < 0).any():
        raise ValueError("sequence lengths do not match the stored items")
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return [items[bounds[i]:bounds[i + 1]] for i in range(len(lengths))]


def _get_column(arrays: dict, tp, key: str) -> list:
    n = _scalar(arrays[f"{key}#"], int)
    kind = _kind(tp)
    if kind == "scalar" and tp is str:
        lengths = arrays[f"{key}.len"]
        if lengths.shape != (n,):
            raise ValueError(f"{key}: expected {n} lengths")
        data = arrays[key]
        _text(data)  # checks the dtype
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        if bounds[-1] != data.size or (lengths < 0).any():
            raise ValueError(f"{key}: text lengths do not match the stored bytes")
        raw = data.tobytes()
        return [raw[bounds[i]:bounds[i + 1]].decode("utf-8", "surrogatepass") for i in range(n)]
    if kind == "scalar":
        column = arrays[key]
        if column.shape != (n,):
            raise ValueError(f"{key}: expected {n} values, got shape {column.shape}")
        return [tp(x) for x in column.tolist()]
    if kind == "array":
        shapes, flat = arrays[f"{key}.shapes"], arrays[f"{key}.flat"]
        if shapes.shape[0] != n or flat.ndim != 1:
            raise ValueError(f"{key}: stored shapes do not match {n} arrays")
        sizes = np.prod(shapes, axis=1, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        if int(sizes.sum()) != flat.size:
            raise ValueError(f"{key}: stored shapes do not match the stored values")
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        return [flat[bounds[i]:bounds[i + 1]].reshape(tuple(shapes[i].tolist())) for i in range(n)]
    if kind == "optional":
        missing = arrays[f"{key}?"]
        present = iter(_get_column(arrays, _optional_of(tp), f"{key}.some"))
        column = [None if m else next(present) for m in missing.tolist()]
        if len(column) != n or next(present, None) is not None:
            raise ValueError(f"{key}: optional values do not match their mask")
        return column
    if kind == "dataclass":
        fields = _fields(tp)
        columns = {name: _get_column(arrays, hint, f"{key}.{name}") for name, hint in fields}
        if any(len(c) != n for c in columns.values()):
            raise ValueError(f"{key}: fields of different lengths")
        return [tp(**{name: columns[name][i] for name, _ in fields}) for i in range(n)]
    if kind == "tuple":
        columns = [_get_column(arrays, hint, f"{key}.{i}") for i, hint in enumerate(typing.get_args(tp))]
        if any(len(c) != n for c in columns):
            raise ValueError(f"{key}: tuple items of different lengths")
        return list(zip(*columns)) if columns else [()] * n
    lengths = arrays[f"{key}.len"]
    if lengths.shape != (n,):
        raise ValueError(f"{key}: expected {n} lengths")
    if kind == "sequence":
        return [_as_sequence(part, tp) for part in _split(_get_column(arrays, _item_type(tp), f"{key}.i"), lengths)]
    k_type, v_type = typing.get_args(tp)
    keys = _split(_get_column(arrays, k_type, f"{key}.k"), lengths)
    values = _split(_get_column(arrays, v_type, f"{key}.v"), lengths)
    return [dict(zip(k, v, strict=True)) for k, v in zip(keys, values)]
