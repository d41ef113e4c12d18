"""The ``%`` text header shared by Prophesee RAW (EVT 2.0 / 3.0) and DAT files.

The word-stream reader and encoder driver built on it are in
:mod:`eventpipe.io.prophesee.words`.

A header is a run of lines that start with ``%``; each line is ``% key value``
(``% Date 2020-09-14 09:03:25``, ``% evt 3.0``, ``% format EVT3;height=720;width=1280``,
``% geometry 1280x720``, ``% plugin_name hal_plugin_gen41_evk3``, ``% system_ID 48``,
``% Height 240``/``% Width 304`` in DAT files).  Newer RAW files close the header
with ``% end``; older ones simply stop at the first byte that is not ``%``.

Because an old header has no terminator, a body whose first byte happens to be
``0x25`` (``%``) is ambiguous.  We follow the line structure: a ``%`` line must be
printable text ending in ``\\n`` within ``MAX_LINE`` bytes; the first ``%`` that does
not start such a line (after at least one header line) starts the body.

Sensor geometry, in openeb's order of precedence (``PseeRawFileHeader::check_header``):
the ``format`` line's ``width``/``height`` options, then ``% geometry WxH`` (both must
agree when both are present), then -- for files from Prophesee's own software only --
the ``system_ID`` table, then the ``plugin_name`` table (openeb ``raw_constants.h``).
Only entries found in openeb are listed; anything else leaves the size unknown.

Detection: ``% evt 3.0`` / ``% format EVT3`` -> evt3, ``% evt 2.0`` / ``EVT2`` -> evt2, an
old header with neither takes the system ID's default encoding (openeb's rule); a DAT
header starts ``% Data file containing`` or has ``% Version``.  A RAW file with no
encoding at all is claimed by no reader, so detection falls back to the extension
(``.raw`` -> evt3, the first such entry of the format table).
"""

from __future__ import annotations

import dataclasses
import re

from eventpipe.errors import EventFormatError

MAX_LINE = 4096
MAX_HEADER = 1 << 20

# openeb hal_psee_plugins device_system_id.h + PseeRawFileHeader::check_header system_id_map:
# system ID -> (sensor generation, (W, H), default encoding when the header names none).
_VGA, _HD = (640, 480), (1280, 720)
SYSTEM_ID_TABLE: dict[int, tuple[str, tuple[int, int], str]] = {
    0x15: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM3_GEN3
    0x1C: ("Gen3.1", _VGA, "evt2"),   # SYSTEM_CCAM3_GEN31
    0x1A: ("Gen4.0", _HD, "evt2"),    # SYSTEM_CCAM3_GEN4
    0x17: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM4_GEN3
    0x97: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM4_GEN3_EVK
    0x19: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM4_GEN3_REV_B
    0x99: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM4_GEN3_REV_B_EVK
    0x1D: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_CCAM4_GEN3_REV_B_EVK_BRIDGE
    0x23: ("Gen3.1", _VGA, "evt2"),   # SYSTEM_CCAM5_GEN31 (= SYSTEM_EVK3_GEN31_EVT2)
    0x1E: ("Gen4.0", _HD, "evt3"),    # SYSTEM_CCAM5_GEN4 (= SYSTEM_CX3_CCAM5_GEN4)
    0x2E: ("Gen4.0", _HD, "evt3"),    # SYSTEM_CCAM5_GEN4_FIXED_FRAME
    0x21: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_VISIONCAM_GEN3
    0xA1: ("Gen3.0", _VGA, "evt2"),   # SYSTEM_VISIONCAM_GEN3_EVK
    0x22: ("Gen3.1", _VGA, "evt2"),   # SYSTEM_VISIONCAM_GEN31
    0xA2: ("Gen3.1", _VGA, "evt2"),   # SYSTEM_VISIONCAM_GEN31_EVK
    0x29: ("Gen3.1", _VGA, "evt2"),   # SYSTEM_EVK2_GEN31
    0x1F: ("Gen4.0", _HD, "evt2"),    # SYSTEM_EVK2_GEN4
    0x27: ("Gen4.1", _HD, "evt2"),    # SYSTEM_EVK2_GEN41
    0x28: ("Gen3.1", _VGA, "evt3"),   # SYSTEM_EVK3_GEN31_EVT3
    0x30: ("Gen4.1", _HD, "evt3"),    # SYSTEM_EVK3_GEN41
    0x32: ("IMX636", _HD, "evt3"),    # SYSTEM_EVK2_IMX636
    0x31: ("IMX636", _HD, "evt3"),    # SYSTEM_EVK3_IMX636
}

# openeb hal_psee_plugins raw_constants.h plugins_map: plugin name -> (generation, (W, H)).
PLUGIN_TABLE: dict[str, tuple[str, tuple[int, int]]] = {
    "hal_plugin_gen3_fx3": ("Gen3.0", _VGA),
    "hal_plugin_gen31_fx3": ("Gen3.1", _VGA),
    "hal_plugin_gen31_evk2": ("Gen3.1", _VGA),
    "hal_plugin_gen31_evk3": ("Gen3.1", _VGA),
    "hal_plugin_gen4_fx3": ("Gen4.0", _HD),
    "hal_plugin_gen4_evk2": ("Gen4.0", _HD),
    "hal_plugin_gen41_evk2": ("Gen4.1", _HD),
    "hal_plugin_gen41_evk3": ("Gen4.1", _HD),
}

_EVT_VERSIONS = {"2.0": "evt2", "3.0": "evt3", "2.1": "evt21"}
_FORMAT_NAMES = {"EVT2": "evt2", "EVT3": "evt3", "EVT21": "evt21"}
_PRINTABLE = re.compile(rb"^[\x20-\x7e\t\r\x80-\xff]*$")


@dataclasses.dataclass
class PercentHeader:
    """The parsed ``%`` lines of a file."""

    lines: list[str]
    fields: dict[str, str]   # first word after '%' -> rest of the line (last one wins)
    data_offset: int         # first byte after the header
    ended: bool              # closed by '% end'
    truncated: bool = False  # the data ends inside a text line that starts with '%'

    def get(self, key: str, default: str | None = None) -> str | None:
        """Case-insensitive field lookup."""
        low = key.lower()
        for k, v in self.fields.items():
            if k.lower() == low:
                return v
        return default


def split_header(data: bytes) -> PercentHeader:
    """Split ``data`` (the file's first bytes) into ``%`` header lines and body.

    Never raises: a file without a header gives ``lines == []`` and offset 0.
    """
    lines: list[str] = []
    fields: dict[str, str] = {}
    pos = 0
    ended = truncated = False
    n = len(data)
    while pos < n and data[pos] == 0x25 and pos < MAX_HEADER:
        nl = data.find(b"\n", pos, pos + MAX_LINE)
        if nl < 0 and n - pos < MAX_LINE and _PRINTABLE.match(data[pos:]):
            truncated = True
            break
        if nl < 0 or not _PRINTABLE.match(data[pos:nl]):
            break  # not a text line: the body starts here (see module docstring)
        raw = data[pos + 1:nl].decode("latin-1").rstrip("\r")
        pos = nl + 1
        text = raw.strip()
        lines.append(text)
        if text == "end":
            ended = True
            break
        key, _, value = text.partition(" ")
        if key:
            fields[key] = value.strip()
    return PercentHeader(lines=lines, fields=fields, data_offset=pos, ended=ended,
                         truncated=truncated)


def declared_encoding(h: PercentHeader) -> str | None:
    """'evt2'/'evt3'/'evt21' from ``% format`` or ``% evt`` lines, else from the
    system-ID table (openeb's rule for old headers), else ``None``.  An
    unrecognised declaration is returned as ``'unknown:<text>'``."""
    fmt = h.get("format")
    if fmt:
        name = fmt.split(";", 1)[0].strip().upper()
        return _FORMAT_NAMES.get(name, f"unknown:{name}")
    evt = h.get("evt")
    if evt:
        return _EVT_VERSIONS.get(evt.strip(), f"unknown:evt {evt.strip()}")
    sid = system_id(h)
    if sid is not None and sid in SYSTEM_ID_TABLE and _is_prophesee(h):
        return SYSTEM_ID_TABLE[sid][2]
    return None


def system_id(h: PercentHeader) -> int | None:
    v = h.get("system_ID")
    if v is None:
        return None
    try:
        return int(v.split()[0], 0)
    except (ValueError, IndexError):
        return None


def _is_prophesee(h: PercentHeader) -> bool:
    # openeb only trusts the system ID table for files written by Prophesee software
    for key in ("integrator_name", "camera_integrator_name", "plugin_integrator_name"):
        v = h.get(key)
        if v is not None and v.strip() != "Prophesee":
            return False
    return True


def _positive(text: str, what: str, offset: int, path) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise EventFormatError(f"header {what} is not an integer: {text!r}", path=path,
                               offset=offset, field=what) from None
    if not 0 < v <= 0x10000:
        raise EventFormatError(f"header {what} out of range: {v}", path=path, offset=offset,
                               field=what)
    return v


def header_geometry(h: PercentHeader, path=None) -> tuple[int, int] | None:
    """(W, H) declared in the header itself (format options, geometry, DAT Width/Height)."""
    w = hgt = None
    fmt = h.get("format")
    if fmt:
        for opt in fmt.split(";")[1:]:
            k, _, v = opt.partition("=")
            if k.strip().lower() == "width":
                w = _positive(v, "width", 0, path)
            elif k.strip().lower() == "height":
                hgt = _positive(v, "height", 0, path)
    geo = h.get("geometry")
    if geo:
        gw, sep, gh = geo.lower().partition("x")
        if not sep:
            raise EventFormatError(f"header geometry is not WxH: {geo!r}", path=path, offset=0,
                                   field="geometry")
        gw, gh = _positive(gw, "geometry", 0, path), _positive(gh, "geometry", 0, path)
        if (w is not None and w != gw) or (hgt is not None and hgt != gh):
            raise EventFormatError(f"header geometry {geo!r} disagrees with format {fmt!r}",
                                   path=path, offset=0, field="geometry")
        w, hgt = gw, gh
    if h.get("Width") is not None and h.get("Height") is not None and w is None:
        w = _positive(h.get("Width"), "Width", 0, path)
        hgt = _positive(h.get("Height"), "Height", 0, path)
    if w is None or hgt is None:
        return None
    return (w, hgt)


def table_geometry(h: PercentHeader) -> tuple[tuple[int, int], str, str] | None:
    """((W, H), generation, what matched) from the system-ID or plugin tables."""
    sid = system_id(h)
    if sid is not None and sid in SYSTEM_ID_TABLE and _is_prophesee(h):
        gen, size, _ = SYSTEM_ID_TABLE[sid]
        return size, gen, f"system_ID {sid}"
    plugin = (h.get("plugin_name") or "").strip()
    if plugin in PLUGIN_TABLE:
        gen, size = PLUGIN_TABLE[plugin]
        return size, gen, f"plugin_name {plugin}"
    return None


def fill_info(info, h: PercentHeader, path=None) -> None:
    """Set ``info.sensor_size`` (file > table) and extras from a parsed header."""
    size = header_geometry(h, path)
    if size is not None:
        info.sensor_size, info.sensor_size_source = size, "file"
    tab = table_geometry(h)
    if tab is not None:
        info.extras["sensor_generation"] = tab[1]
        if size is None:
            info.sensor_size, info.sensor_size_source = tab[0], "table"
            info.extras["sensor_size_from"] = tab[2]
    for key, name in (("serial_number", "serial"), ("plugin_name", "plugin"),
                      ("system_ID", "system_id"), ("Date", "date"),
                      ("integrator_name", "integrator"), ("firmware_version", "firmware")):
        v = h.get(key)
        if v:
            info.extras[name] = v
    info.extras["header"] = dict(h.fields)


def read_header(reader) -> PercentHeader:
    """Parse ``reader``'s header: set ``data_offset`` and ``info``; reject a header
    that declares another encoding than ``reader.format``."""
    if reader.file_size == 0:
        raise reader.error("empty file: no header and no events", offset=0)
    with reader._open() as f:
        head = f.read(MAX_HEADER + MAX_LINE)
    h = split_header(head)
    if h.truncated and len(head) >= reader.file_size:
        raise reader.error("truncated header: the file ends inside a '%' line",
                           offset=h.data_offset, field="header")
    enc = declared_encoding(h)
    if enc is not None and enc != reader.format:
        raise reader.error(f"header declares {enc}, not {reader.title}", offset=0, field="evt")
    reader.header = h
    reader.data_offset = h.data_offset
    fill_info(reader.info, h, reader.path)
    return h
