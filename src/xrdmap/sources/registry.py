"""Which frame source reads a file: chosen by its name, one class per family."""

from __future__ import annotations

from pathlib import Path

from xrdmap.sources.base import FrameSource, split_spec
from xrdmap.sources.cbf import CbfFile
from xrdmap.sources.fabio_file import FabioFile
from xrdmap.sources.hdf5 import Hdf5Dataset

#: Name endings -> source class; anything else goes to fabio.
BY_SUFFIX: dict[str, type[FrameSource]] = {
    ".cbf": CbfFile,
    ".cbf.gz": CbfFile,
    ".cbf.bz2": CbfFile,
    ".h5": Hdf5Dataset,
    ".hdf5": Hdf5Dataset,
    ".hdf": Hdf5Dataset,
    ".nxs": Hdf5Dataset,
    ".nx5": Hdf5Dataset,
}


def source_class(path: Path) -> type[FrameSource]:
    """The class that reads ``path`` (by its name; fabio for every other format)."""
    name = path.name.lower()
    for suffix, cls in sorted(BY_SUFFIX.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return cls
    return FabioFile


def open_source(spec: str | Path, directory: Path | None = None) -> FrameSource:
    """Open ``spec`` (``file`` or ``file.h5::/dataset``, relative to ``directory``)."""
    name, dataset = split_spec(str(spec))
    path = Path(name) if directory is None else directory / name
    return source_class(path)(path, dataset)
