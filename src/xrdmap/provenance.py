"""Software versions recorded with every output."""

from __future__ import annotations

import platform
from importlib import metadata

from xrdmap import __version__

CORE_PACKAGES = (
    "pyFAI",
    "fabio",
    "zarr",
    "numcodecs",
    "numpy",
    "scipy",
    "h5py",
    "hdf5plugin",
    "pydantic",
)


def software_versions(packages: tuple[str, ...] = CORE_PACKAGES) -> dict[str, str]:
    """xrdmap, Python and each installed package's version ("not installed" if absent)."""
    versions = {"xrdmap": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
