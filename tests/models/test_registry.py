"""The model registry: new versions, never overwritten, loaded back in safe mode."""

import json

import numpy as np
import pytest

from models.registry import (
    RegistryError,
    latest_version,
    load_model,
    read_card,
    save_version,
    versions,
)


@pytest.fixture(scope="module")
def tiny_model():
    from models.network import BalancedBinaryCrossentropy, build_dense_classifier

    model = build_dense_classifier(300, 9, hidden=(8,))
    model.compile(optimizer="adam", loss=BalancedBinaryCrossentropy([1.0] * 9))
    return model


def test_versions_are_new_and_immutable(tmp_path, tiny_model):
    assert versions(tmp_path) == []
    with pytest.raises(RegistryError, match="no trained model yet"):
        latest_version(tmp_path)
    v1 = save_version(tmp_path, tiny_model, {"labels_sha256": "a"})
    before = (tmp_path / v1 / "model.keras").read_bytes()
    v2 = save_version(tmp_path, tiny_model, {"labels_sha256": "b"})
    assert (v1, v2) == ("v0001", "v0002") and latest_version(tmp_path) == "v0002"
    assert (tmp_path / v1 / "model.keras").read_bytes() == before
    card = json.loads((tmp_path / v1 / "card.json").read_text())
    assert card["version"] == "v0001" and len(card["model_sha256"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".incoming")]


def test_load_back_in_safe_mode_and_check_hash(tmp_path, tiny_model):
    v = save_version(tmp_path, tiny_model, {})
    model, card = load_model(tmp_path), read_card(tmp_path)
    x = np.random.default_rng(0).random((4, 300)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), tiny_model.predict(x, verbose=0))
    assert card["version"] == v
    with pytest.raises(RegistryError, match="no such model version"):
        load_model(tmp_path, "v0099")
    (tmp_path / v / "model.keras").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="sha256 differs"):
        load_model(tmp_path, v)


def test_threads_of_one_process_share_one_load(tmp_path, tiny_model):
    """Prediction threads (predict on threads) wait for one load instead of each
    deserializing the network."""
    import threading

    from models.registry import _load

    save_version(tmp_path, tiny_model, {})
    before = _load.cache_info()
    threads = [threading.Thread(target=load_model, args=(tmp_path,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = _load.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 3)
