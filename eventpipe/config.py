"""Typed configuration from TOML files, with strict validation.

A config is a tree of dataclasses.  :func:`from_dict` builds one from plain
data, rejecting unknown keys (suggesting the closest known one), values of the
wrong type, numbers that are not finite (``nan``, ``inf``) and values outside a
field's bounds (declared with :func:`bounded`) with a :class:`ConfigError` that
names the dotted key.  :func:`apply_overrides` takes ``section.key=value``
strings from the command line (``--set``; values parsed as TOML scalars);
:func:`load_config` is file + overrides + validation in one call, what every
command (``run``, ``train``, ``eval``) and the emulator use.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from eventpipe.errors import ConfigError

T = TypeVar("T")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # Optional[X]: X's own message says more
            raise errors[0]
        raise ConfigError(f"{key}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return value


def bounded(default=dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None,
            each: bool = False, **field_kwargs):
    """A dataclass field whose value (every item of it, with ``each``) :func:`from_dict`
    checks against ``ge`` (>=), ``gt`` (>), ``le`` (<=), ``lt`` (<); ``None`` values pass."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds, "each": each},
                             **field_kwargs)


_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_OK = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b,
             "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}


def _check_bounds(value, field: dataclasses.Field, key: str) -> None:
    bounds = field.metadata.get("bounds")
    if not bounds or value is None:
        return
    items = list(value) if field.metadata.get("each") else [value]
    for v in items:
        for name, b in bounds.items():
            if not _BOUND_OK[name](v, b):
                rule = " and ".join(f"{_BOUND_TEXT[n]} {x}" for n, x in bounds.items())
                raise ConfigError(f"{key}: {v!r} is out of range (must be {rule})")


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in fields:
            close = difflib.get_close_matches(k, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {key!r}{hint}; known: {', '.join(fields)}")
        kwargs[k] = _coerce(v, hints[k], key)
        _check_bounds(kwargs[k], fields[k], key)
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


#: the largest config file read (ours are a few KiB): a recording or a device given as
#: ``--config`` is refused, not read into memory whole (/dev/zero never ends)
MAX_CONFIG_BYTES = 1 << 20


def _read_config(path: Path) -> bytes:
    from eventpipe.paths import special_kind

    kind = special_kind(path)
    if kind == "a directory":
        raise IsADirectoryError(path)
    if kind is not None:
        raise ConfigError(f"{path}: not a regular file (a pipe or a device): a config file is "
                          "a TOML text file")
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {os.path.getsize(path):,} bytes, more than a config file "
                          f"holds (at most {MAX_CONFIG_BYTES:,}): not a TOML config?")
    return data


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        return tomllib.loads(_read_config(path).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a TOML text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and tables
        raise ConfigError(f"{path}: invalid TOML: nested too deep") from None


def set_key(data: dict, key: str, value) -> dict:
    """``data`` with the dotted ``key`` set to ``value`` (a typed value, e.g. from a flag)."""
    data = _deep_copy(data)
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {p!r} is not a table")
    node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None, *, base: dict | None = None) -> T:
    """``cls`` from the TOML file ``path`` (or ``base``, or the defaults), then the
    ``key=value`` strings of ``--set``, then typed ``values`` by dotted key (command-line
    flags, which win); everything checked by :func:`from_dict`."""
    data = load_toml(path) if path is not None else _deep_copy(base or {})
    data = apply_overrides(data, list(overrides or []))
    for key, value in (values or {}).items():
        data = set_key(data, key, value)
    return from_dict(cls, data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as a TOML scalar/array)."""
    data = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # bare words are strings
        except RecursionError:
            raise ConfigError(f"override {item!r}: value nested too deep") from None
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a table")
        node[parts[-1]] = value
    return data


def _deep_copy(d):
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d
