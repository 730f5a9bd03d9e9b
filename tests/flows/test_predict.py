"""Prediction over a store as a Prefect flow on Dask, versions kept, maps drawn."""

import numpy as np
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import DaskConfig, load_phases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_versions(tiny_store, tiny_beamtime, tmp_path_factory, quick_train_settings):
    from models.train import train_version
    from xrdmap.simulate.expert import draw_expert_labels

    registry = tmp_path_factory.mktemp("registry")
    labels = draw_expert_labels(tiny_beamtime.truth_dir, ["A_urban", "B_marine"], 60, seed=0)
    labels_csv = registry.parent / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    cfg = quick_train_settings(registry, patience=5)
    v1, card = train_version(tiny_store, labels, cfg, load_phases())
    assert card["pretraining"]["synthetic_patterns"] == 400
    v2, _ = train_version(tiny_store, labels, cfg.model_copy(update={"seed": 1}), load_phases())
    return str(registry), v1, v2, labels_csv


def test_predict_keeps_every_version_and_draws_maps(
    prefect_server, tiny_store, two_versions, tmp_path
):
    from flows.predict import run_predict_store
    from models.registry import load_model
    from xrdmap.features import pattern_features

    registry, v1, v2, _ = two_versions
    dask = DaskConfig(n_workers=2)
    first = run_predict_store(tiny_store, registry, dask, version=v1, maps_dir=str(tmp_path / "m1"))
    latest = run_predict_store(
        tiny_store, registry, dask, version=None, maps_dir=str(tmp_path / "m2")
    )
    assert (first.version, latest.version) == (v1, v2) and latest.n_points == 731
    root = zarr.open_group(tiny_store, mode="r")
    group = root["samples/A_urban/confidence"]
    assert group.attrs["latest"] == v2 and group.attrs["versions"] == [v1, v2]
    c1, c2 = group[v1][:], group[v2][:]
    assert c1.shape == (320, len(CLASS_NAMES)) and ((c1 >= 0) & (c1 <= 1)).all()
    assert group[v1].attrs["classes"] == list(CLASS_NAMES)
    assert group[v1].attrs["model_version"] == v1 and not np.allclose(c1, c2)
    direct = load_model(registry, v1).predict(
        pattern_features(root["samples/A_urban/patterns"][:5]), verbose=0
    )
    np.testing.assert_allclose(c1[:5], direct, atol=1e-5)
    names = sorted(p.rsplit("/", 1)[-1] for p in latest.maps)
    assert names == [
        "A_urban_confidence.png",
        "A_urban_phases.png",
        "B_marine_confidence.png",
        "B_marine_phases.png",
        "overview.png",
    ]
    assert (tmp_path / "m2" / "overview.png").read_bytes()[:4] == b"\x89PNG"

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter())}
    assert {"maps-tiny-zarr-a-urban", "overview-tiny-zarr"} <= keys


def test_evaluate_against_labels(prefect_server, tiny_store, two_versions, xrdmap):
    _, v1, _, labels_csv = two_versions
    out = xrdmap("evaluate", tiny_store, "--labels", labels_csv, "--model", v1)
    assert out.returncode == 0, out.stderr
    assert f"Model {v1} on 60 labeled points" in out.stdout
    assert all(name in out.stdout for name in CLASS_NAMES)
    missing = xrdmap("evaluate", tiny_store, "--labels", labels_csv, "--model", "v0042")
    assert missing.returncode == 2 and "no confidences of model v0042" in missing.stderr
