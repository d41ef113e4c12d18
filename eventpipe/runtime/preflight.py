"""What ``eventpipe run`` checks before anything loads (no torch import here).

:func:`preflight` takes a validated :class:`~eventpipe.runtime.config.RunConfig`
(types and bounds are the config engine's job) and checks what the config alone
cannot say: the source URI and its scheme (the one table,
:data:`eventpipe.sources.uri.SCHEMES`), the sensor size the source needs (a file's
from its header, else from one pass over its events as ``eventpipe info`` does;
``udp://`` must be told), a camera for ``dvcam:``, and the model (``default``, an
existing checkpoint, or a registry name).  It returns the config with a file's
sensor size filled in.  Errors are ``ConfigError`` / ``DataError``, one line each.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

from eventpipe.errors import ConfigError, DataError, EventFormatError
from eventpipe.runtime.config import RunConfig, check_sensor_size, sensor_size_problem


def source_kind(uri: str) -> tuple[str, str]:
    """(scheme, rest) of a ``--source`` URI; a bare path is ``file``; aliases resolved."""
    from eventpipe.sources.uri import ALIASES, SCHEMES

    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        return ALIASES.get(scheme.lower(), scheme.lower()), rest
    scheme, sep, rest = uri.partition(":")
    if sep and ALIASES.get(scheme.lower(), scheme.lower()) in SCHEMES:
        return ALIASES.get(scheme.lower(), scheme.lower()), rest
    return "file", uri


def file_sensor_size(path: str) -> tuple[int, int]:
    """The recording's sensor size from its header, else from one pass over its events."""
    from eventpipe.io import open_reader

    reader = open_reader(path)
    if os.path.getsize(path) == 0:
        raise EventFormatError("empty file (0 bytes), not a recording", path=path, offset=0)
    size = reader.info.sensor_size
    if size is None:
        reader.stats()  # one streaming pass infers the size from the coordinates
        size = reader.info.sensor_size
    if size is None:
        from eventpipe.info import recognised_by_content

        if recognised_by_content(path) is not None:  # a recording, of no events (and no size)
            raise EventFormatError(f"the {reader.info.format} recording holds no events and "
                                   "states no sensor size: nothing to run", path=path, offset=0)
        raise EventFormatError(f"no events decoded as {reader.info.format}, so no sensor size "
                               f"(not a recording?)", path=path, offset=0)
    return tuple(int(v) for v in size)


def check_model_name(name: str) -> None:
    """'default', an existing checkpoint file, or a registry name; else a clear error."""
    from eventpipe.runtime.model_loader import check_checkpoint_file, resolve_checkpoint

    if name == "default":
        resolve_checkpoint(name)  # the shipped weights must be there
        return
    path = Path(name)
    if path.exists():
        check_checkpoint_file(path, f"model {name}")
        return
    if path.suffix in (".pt", ".pth", ".ckpt") or os.sep in name:
        raise DataError(f"no such checkpoint: {name}")
    from snn import list_models

    known = list(list_models())
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        if "=" in name:
            hint += " (config overrides are --set KEY=VALUE)"
        raise ConfigError(f"unknown model {name!r}{hint}; give 'default', a checkpoint path "
                          f"or one of: {', '.join(known)}")


def preflight(cfg: RunConfig) -> RunConfig:
    """Check what can be checked before anything loads; return the config with the sensor
    size of a file source filled in.  Raises ``ConfigError`` / ``DataError``."""
    from eventpipe.sources.uri import NETWORK, known_schemes, parse_uri

    uri = cfg.source.uri
    scheme, rest = source_kind(uri)
    if "://" in uri:
        if scheme not in NETWORK and scheme != "file":
            raise ConfigError(f"source {uri!r}: unknown scheme {scheme!r} for SCHEME://HOST:PORT "
                              f"(known schemes: {known_schemes()})")
        if scheme != "file":
            try:
                parse_uri(uri)
            except ValueError as exc:
                raise ConfigError(f"source: {exc}") from None
    check_sensor_size(cfg.source.sensor_size)
    size = cfg.source.sensor_size
    if scheme == "file" and size is None:
        path = rest[2:] if uri.startswith("file://") else rest
        if not path:
            raise ConfigError(f"source {uri!r}: file: needs a path")
        if not Path(path).exists() and ":" in path and not uri.startswith("file:"):
            raise ConfigError(f"source {uri!r}: no such file, and {path.partition(':')[0]!r} "
                              f"is not a source scheme (known schemes: {known_schemes()})")
        size = file_sensor_size(path)
        problem = sensor_size_problem(size, " (file)")
        if problem:  # the file's claim, not the user's setting: a data error
            raise EventFormatError(f"the sensor size {problem}; give the real one with "
                                   "--set source.sensor_size=[W,H]", path=path, field="sensor size")
    elif scheme == "udp" and size is None:
        raise ConfigError(f"source {uri!r}: UDP events carry no sensor size; set it with "
                          f"--set source.sensor_size=[W,H]")
    elif scheme == "dvcam" and not rest:
        try:
            import dv_processing as dv
        except ImportError:
            raise ConfigError("dvcam: needs dv-processing (pip install 'eventpipe[interop]')") \
                from None
        if not dv.io.camera.discover():
            raise DataError("dvcam: no iniVation camera found (is it plugged in and "
                            "readable by this user?)")
    check_model_name(cfg.model.name)
    if size != cfg.source.sensor_size:
        cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, sensor_size=size))
    return cfg
