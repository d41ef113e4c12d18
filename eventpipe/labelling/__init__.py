"""Labelling your own recordings: labels files (:mod:`.files`), the key-driven labelling
state (:mod:`.state`) and its OpenCV window (:mod:`.window`, ``eventpipe label``), and
the per-window truth of a labelled recording (:mod:`.truth`, ``eventpipe eval --stream``)."""

from eventpipe.labelling.files import (
    LabelFileError,
    Segment,
    find_labels_file,
    label_at,
    labels_path_for,
    read_labels,
    write_labels,
)

__all__ = ["LabelFileError", "Segment", "find_labels_file", "label_at", "labels_path_for",
           "read_labels", "write_labels"]
