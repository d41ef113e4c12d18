"""HAR-DVS "compact event files" (Wang et al., HARDVS, github.com/Event-AHU/HARDVS).

The dataset (DAVIS346, 346 x 260; 300 action classes) is laid out as::

    <root>/action_000/<sample>.npz ... <root>/action_299/<sample>.npz
    <root>/train_label.txt, val_label.txt, test_label.txt

Each sample is an ``.npz`` with arrays t, x, y, p (read by
:class:`~eventpipe.io.plain.NpzReader`'s checked conversion; p may be 0/1 or
-1/1).  The sensor size comes from the camera table (346 x 260, source
``"table"``) unless the file carries a ``sensor_size`` array.

A list file has one sample per line: ``<path relative to root> <label>``; a
comma or tab may separate them instead of spaces (``path,label``).  Blank
lines and lines starting with ``#`` are skipped.  The label is the integer
class index as written (it need not equal the directory number).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.io.plain import ZIP_MAGIC, NpzReader

DAVIS346 = (346, 260)
N_CLASSES = 300
SPLITS = ("train", "val", "test")
_ACTION_DIR = re.compile(r"^action_(\d{3})$")


class HarDvsReader(NpzReader):
    """One HAR-DVS sample (``action_XXX/<sample>.npz``)."""

    format = "hardvs"
    title = "HAR-DVS compact event file (action_XXX/<sample>.npz, t,x,y,p)"
    extensions = (".npz",)

    @staticmethod
    def sniff(head: bytes) -> bool:
        """Content alone is an ordinary .npz; only :meth:`sniff_path` claims files."""
        return False

    @classmethod
    def sniff_path(cls, path, head: bytes) -> bool:
        path = Path(path)
        return (path.suffix.lower() == ".npz" and bool(_ACTION_DIR.match(path.parent.name))
                and NpzReader.sniff(head))

    def _parse_header(self) -> None:
        super()._parse_header()
        m = _ACTION_DIR.match(self.path.parent.name)
        if m:
            self.info.extras["action_dir"] = self.path.parent.name
            self.info.extras["action_index"] = int(m.group(1))
        self.info.extras["camera"] = "DAVIS346"
        if self.info.sensor_size is None:
            self.info.sensor_size = DAVIS346
            self.info.sensor_size_source = "table"


class HarDvsIndex:
    """The ``(path, label)`` pairs of one split of a HAR-DVS tree.

    ``HarDvsIndex(root, split="train")`` reads ``<root>/train_label.txt``
    (or ``list_file=`` a path).  ``check_files=True`` (default) verifies that
    every listed sample exists and raises :class:`FileNotFoundError` naming the
    first missing ones.  A malformed line is an :class:`EventFormatError` with
    the list file, line number and byte offset.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 list_file: str | os.PathLike | None = None, check_files: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"HAR-DVS root is not a directory: {self.root}")
        if list_file is None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
            list_file = self.root / f"{split}_label.txt"
        self.split = split
        self.list_file = Path(list_file)
        if not self.list_file.is_file():
            raise FileNotFoundError(f"HAR-DVS list file missing: {self.list_file}")
        self.items = self._parse(self.list_file.read_bytes())
        if check_files:
            missing = [str(p) for p, _ in self.items if not p.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} sample(s) listed in {self.list_file} are missing, e.g. "
                    + ", ".join(missing[:3]))

    def _parse(self, data: bytes) -> list[tuple[Path, int]]:
        items = []
        offset = 0
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            here = offset
            offset += len(raw) + 1
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise EventFormatError(f"line {lineno}: not UTF-8 text", path=self.list_file,
                                       offset=here, field="line") from None
            if not line or line.startswith("#"):
                continue
            sep = "," if "," in line else ("\t" if "\t" in line else None)
            parts = line.rsplit(sep, 1)
            if len(parts) != 2 or not parts[0].strip():
                raise EventFormatError(f"line {lineno}: expected '<path> <label>', got {line!r}",
                                       path=self.list_file, offset=here, field="line")
            rel, label = parts[0].strip(), parts[1].strip()
            if not re.fullmatch(r"\d+", label) or int(label) >= N_CLASSES:
                raise EventFormatError(
                    f"line {lineno}: label {label!r} is not a class index in [0, {N_CLASSES})",
                    path=self.list_file, offset=here, field="label")
            items.append((self.root / rel, int(label)))
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Path, int]:
        return self.items[i]

    def __iter__(self):
        return iter(self.items)

    @property
    def labels(self) -> np.ndarray:
        return np.array([lab for _, lab in self.items], dtype=np.int64)

    def read(self, i: int, **options) -> tuple[np.ndarray, int]:
        """Events and label of sample ``i``."""
        path, label = self.items[i]
        return HarDvsReader(path, **options).read(), label


def is_hardvs_sample(path, head: bytes | None = None) -> bool:
    """True for an ``action_XXX/<sample>.npz`` path (``head`` checked when given)."""
    path = Path(path)
    return bool(_ACTION_DIR.match(path.parent.name)) and path.suffix.lower() == ".npz" and (
        head is None or head.startswith(ZIP_MAGIC))
