"""The model registry: a folder of immutable versions, each a `.keras` file and a card.

    <registry>/<version>/model.keras   the trained network (loaded back in safe mode)
    <registry>/<version>/card.json     labels used (and their hash), split, per-class
                                       metrics, settings, software versions, the model's
                                       sha256

Versions are ``v0001``, ``v0002``, ...; a version is written to a temporary folder and
renamed into place, so a crash leaves no half version, and nothing is ever overwritten.
A version is named, never given as a path: nothing outside the registry is loaded.
The card is read without Keras (:func:`read_card`); the network is loaded once per
process (:func:`load_model`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from functools import cache
from pathlib import Path

from xrdmap.errors import RegistryError, first_line
from xrdmap.hashing import sha256_file

VERSION_PATTERN = re.compile(r"^v(\d{4,})$")


def versions(registry: str | Path) -> list[str]:
    root = Path(registry)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
    return sorted(found, key=lambda v: int(v[1:]))


def latest_version(registry: str | Path) -> str:
    found = versions(registry)
    if not found:
        raise RegistryError(f"{registry}: no trained model yet (run `xrdmap train` first)")
    return found[-1]


def save_version(registry: str | Path, model, card: dict) -> str:
    """Write a new version; returns its name. Never replaces an existing version."""
    root = Path(registry)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        model.save(tmp / "model.keras")
        card = {**card, "model_sha256": sha256_file(tmp / "model.keras")}
        while True:
            existing = versions(root)
            version = f"v{int(existing[-1][1:]) + 1 if existing else 1:04d}"
            card["version"] = version
            (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
            try:
                tmp.rename(root / version)  # fails if the version appeared meanwhile
                return version
            except OSError:
                if not (root / version).exists():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def version_folder(registry: str | Path, version: str | None = None) -> Path:
    """The folder of ``version`` (default: the latest); an error for a name that is not a
    version of this registry (``v0001``, ...), so no path leads outside it."""
    version = version or latest_version(registry)
    if not VERSION_PATTERN.match(version):
        raise RegistryError(f"{version!r}: not a model version name (v0001, v0002, ...)")
    folder = Path(registry) / version
    if not (folder / "model.keras").is_file() or not (folder / "card.json").is_file():
        known = ", ".join(versions(registry)) or "none"
        raise RegistryError(f"{folder}: no such model version (known: {known})")
    return folder


def read_card(registry: str | Path, version: str | None = None) -> dict:
    """The model card of ``version`` (default: the latest), without loading Keras."""
    folder = version_folder(registry, version)
    try:
        return json.loads((folder / "card.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{folder / 'card.json'}: not a readable card: {exc}") from None


#: One load at a time: prediction threads of one process share the loaded network.
_LOADING = threading.Lock()


def load_model(registry: str | Path, version: str | None = None):
    """The Keras network of ``version`` (default: the latest), checked against the sha256
    of its card and loaded in safe mode, for prediction only; once per process."""
    folder = version_folder(registry, version)
    path = folder / "model.keras"
    sha256 = sha256_file(path)  # milliseconds: checked on every call, loaded once
    if sha256 != read_card(registry, folder.name).get("model_sha256"):
        raise RegistryError(f"{path}: sha256 differs from its card")
    with _LOADING:  # prediction threads of one process wait for one load, not load twice
        return _load(str(path.resolve()), sha256)


@cache
def _load(path: str, sha256: str):
    """The network at ``path`` whose bytes have ``sha256`` (the cache key)."""
    import keras

    from models.network import ExcludedBy

    # Loaded for prediction only: without compile, no optimizer state is restored.
    try:
        return keras.saving.load_model(
            path, compile=False, safe_mode=True, custom_objects={"ExcludedBy": ExcludedBy}
        )
    except Exception as exc:  # Keras raises many types for a file it cannot load
        first = first_line(exc)
        raise RegistryError(f"{path}: not a Keras model this version can load ({first})") from None
