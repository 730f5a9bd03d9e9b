"""Raw detector frames, read-only: one :class:`FrameSource` class per file family
(miniCBF, every fabio format, HDF5/NeXus), chosen by file name, and the batch reader
that quarantines bad frames."""

from xrdmap.sources.base import (
    STATUS_CORRUPT,
    STATUS_MEANING,
    STATUS_MISSING,
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_PENDING,
    STATUS_WRONG_SHAPE,
    FrameError,
    FrameSource,
    HeaderValues,
    split_spec,
)
from xrdmap.sources.reading import (
    FrameBatch,
    FrameRefs,
    prefetch,
    read_ahead,
    read_frames,
    source_identity,
)
from xrdmap.sources.registry import open_source, source_class

__all__ = [
    "STATUS_CORRUPT",
    "STATUS_MEANING",
    "STATUS_MISSING",
    "STATUS_NONFINITE",
    "STATUS_OK",
    "STATUS_PENDING",
    "STATUS_WRONG_SHAPE",
    "FrameBatch",
    "FrameError",
    "FrameRefs",
    "FrameSource",
    "HeaderValues",
    "open_source",
    "prefetch",
    "read_ahead",
    "read_frames",
    "source_class",
    "source_identity",
    "split_spec",
]
