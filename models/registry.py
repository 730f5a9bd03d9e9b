"""The model registry: a folder of immutable versions, each a `.keras` file and a card.

    <registry>/<version>/model.keras   the trained network (loaded back in safe mode)
    <registry>/<version>/card.json     labels used (and their hash), split, per-class
                                       metrics, settings, software versions, the model's
                                       sha256

Versions are ``v0001``, ``v0002``, ...; a version is written to a temporary folder and
renamed into place, so a crash leaves no half version, and nothing is ever overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

VERSION_PATTERN = re.compile(r"^v(\d{4,})$")


class RegistryError(ValueError):
    """A version is missing, corrupt, or the registry cannot be written."""


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


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def load_version(registry: str | Path, version: str | None = None):
    """(Keras model, card) of ``version`` (default: the latest), checked against its hash."""
    import keras

    version = version or latest_version(registry)
    folder = Path(registry) / version
    if not (folder / "model.keras").is_file():
        known = ", ".join(versions(registry)) or "none"
        raise RegistryError(f"{folder}: no such model version (known: {known})")
    card = json.loads((folder / "card.json").read_text())
    if sha256_file(folder / "model.keras") != card.get("model_sha256"):
        raise RegistryError(f"{folder / 'model.keras'}: sha256 differs from its card")
    # Loaded for prediction only: without compile, no optimizer state is restored.
    model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
    return model, card
