"""Prediction over a store as a Prefect flow on Dask, versions kept, maps drawn."""

import re

import numpy as np
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import DaskConfig

pytestmark = pytest.mark.slow


def test_predict_keeps_every_version_and_draws_maps(
    prefect_server, tiny_store, two_versions, tmp_path
):
    from flows.predict import run_predict_store
    from models.registry import load_model
    from xrdmap.features import pattern_features

    registry, v1, v2, _ = two_versions
    on_dask = DaskConfig(n_workers=2, in_process_below_mb=0)
    first = run_predict_store(
        tiny_store, registry, on_dask, version=v1, maps_dir=str(tmp_path / "m1")
    )
    in_process = DaskConfig(n_workers=2)  # the tiny store is far below 512 MB
    latest = run_predict_store(
        tiny_store, registry, in_process, version=None, maps_dir=str(tmp_path / "m2")
    )
    assert (first.version, latest.version) == (v1, v2) and latest.n_points == 731
    root = zarr.open_group(tiny_store, mode="r")
    from xrdmap.maps import sample_calls

    for summary in (first, latest):  # counted on Dask and on threads as the maps see them
        assert list(summary.abstained) == ["A_urban", "B_marine"]
        for sample, counted in summary.abstained.items():
            conf, abstain = sample_calls(root, sample, summary.version)
            assert counted == (abstain.sum(), np.isfinite(conf).all(axis=1).sum())
    assert sum(a for a, _ in first.abstained.values()) > 0, first.abstained
    group = root["samples/A_urban/confidence"]
    assert group.attrs["latest"] == v2 and group.attrs["versions"] == [v1, v2]
    c1, c2 = group[v1][:], group[v2][:]
    assert c1.shape == (320, len(CLASS_NAMES)) and ((c1 >= 0) & (c1 <= 1)).all()
    assert group[v1].attrs["classes"] == list(CLASS_NAMES)
    assert group[v1].attrs["model_version"] == v1 and not np.allclose(c1, c2)
    patterns = pattern_features(root["samples/A_urban/patterns"][:])
    members = load_model(registry, v1).predict(patterns, verbose=0)
    assert members.shape == (320, 1, len(CLASS_NAMES))  # QUICK_TRAIN: one member
    np.testing.assert_allclose(c1, members.mean(axis=1), atol=1e-5)  # on Dask
    spread = root["samples/A_urban/spread"][v1]
    np.testing.assert_allclose(spread[:], members.std(axis=1), atol=1e-5)
    assert np.isfinite(spread[:]).all()
    in_threads = load_model(registry, v2).predict(patterns, verbose=0).mean(axis=1)
    np.testing.assert_allclose(c2, in_threads, atol=1e-5)  # on threads: just as right
    import xarray as xr  # the consolidated metadata was refreshed by each prediction

    conf = xr.open_zarr(tiny_store, group="samples/A_urban/confidence", consolidated=True)
    assert set(conf.data_vars) == {v1, v2} and list(conf["class"].values) == list(CLASS_NAMES)
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
    header = out.stdout.splitlines()[1].split()
    assert header[:8] == ["class", "accuracy", "bal.acc.", "precision", "recall", "F1", "ECE", "TP"]
    missing = xrdmap("evaluate", tiny_store, "--labels", labels_csv, "--model", "v0042")
    assert missing.returncode == 2 and "no confidences of model v0042" in missing.stderr


def _as_if_measured_at(store, wavelength_m: float) -> None:
    """Rewrite the store's PONI wavelength: its patterns now lie at other d-spacings."""
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    record = root.attrs["xrdmap"]
    poni = record["geometry"]["poni"]
    record["geometry"]["poni"] = re.sub(r"Wavelength: .*", f"Wavelength: {wavelength_m!r}", poni)
    root.attrs["xrdmap"] = record


def test_a_store_outside_the_models_domain_needs_resample(fresh_store, two_versions, xrdmap):
    registry, v1, _, _ = two_versions
    _as_if_measured_at(fresh_store, 0.9e-10)
    refused = xrdmap("predict", fresh_store, "--registry", registry, "--model", v1)
    assert refused.returncode == 2
    assert "outside the domain of model v0001: wavelength 0.9 A, the model's is 1.2398 A" in (
        refused.stderr
    )
    assert "--resample" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    root = zarr.open_group(fresh_store, mode="r")
    assert "confidence" not in root["samples/A_urban"]  # nothing was started

    (fresh_store.parent / "a file").write_text("")
    maps = fresh_store.parent / "a file" / "maps"
    refused = xrdmap("predict", fresh_store, "--registry", registry, "--resample", "--maps", maps)
    assert refused.returncode == 2  # it had predicted every point, then failed on the maps
    assert refused.stderr.strip().endswith(f"--maps {maps}: cannot make {maps} (Not a directory)")
    assert "confidence" not in root["samples/A_urban"]

    out = xrdmap("predict", fresh_store, "--registry", registry, "--model", v1, "--resample")
    assert out.returncode == 0, out.stderr
    assert "Resampled through d-spacing" in out.stdout
    array = root["samples/A_urban/confidence"][v1]
    record = array.attrs["resampled"]
    assert record["from"].endswith("at 0.9 A (d 1.296-5.299 A)")
    assert 0.85 < record["coverage"] < 0.9  # d above 5.3 A is not measured at 0.9 A
    assert np.isfinite(array[:]).all()


def test_a_card_records_the_domain_and_the_intensity_scale(two_versions, tiny_store):
    from models.registry import read_card

    registry, v1, _, _ = two_versions
    card = read_card(registry, v1)
    root = zarr.open_group(tiny_store, mode="r")
    np.testing.assert_allclose(card["domain"]["tth_deg"], root["samples/A_urban/tth_deg"][:])
    assert card["domain"]["wavelength_a"] == pytest.approx(1.2398, abs=1e-4)
    assert card["domain"]["integration"]["polarization_factor"] == 0.99
    assert card["intensity"]["peak_height_median"] > card["intensity"]["background_median"] > 0
