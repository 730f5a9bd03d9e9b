"""The labels table stored with the beamtime: append-only batches, checked imports."""

import numpy as np
import pandas as pd
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import import_labels, stored_labels
from xrdmap.labels import LabelsError, read_labels_csv

SIZES = {"A": 10, "B": 5}


def _csv(path, rows, extra=None):
    table = pd.DataFrame(
        [[s, p, *[int(c in present) for c in CLASS_NAMES]] for s, p, present in rows],
        columns=["sample", "point", *CLASS_NAMES],
    )
    for col, value in (extra or {}).items():
        table[col] = value
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def store(tmp_path):
    """A store as the labels see it: the layout record naming its samples."""
    root = zarr.open_group(tmp_path / "s.zarr", mode="w")
    root.attrs["xrdmap"] = {"samples": list(SIZES)}
    return str(tmp_path / "s.zarr")


def test_a_zarr_store_of_another_tool_gets_no_labels(tmp_path):
    zarr.open_group(tmp_path / "other.zarr", mode="w")
    table = pd.DataFrame([{"sample": "A", "point": 1, **dict.fromkeys(CLASS_NAMES, 0)}])
    with pytest.raises(ValueError, match="not a store written by `xrdmap process`"):
        import_labels(str(tmp_path / "other.zarr"), table, origin="t")
    assert "labels" not in zarr.open_group(tmp_path / "other.zarr", mode="r")


def test_imports_append_batches_with_provenance(store, tmp_path):
    first = _csv(
        tmp_path / "1.csv",
        [("A", 1, ["Fe3O4"]), ("B", 4, ["resin only"])],
        {"labeler": "jdoe", "queried_by": "v0003"},
    )
    report = import_labels(store, read_labels_csv(first, SIZES), origin=str(first))
    assert (report.batch[:6], report.added, report.total) == ("b0001-", 2, 2)
    second = _csv(tmp_path / "2.csv", [("A", 1, ["Fe3O4"]), ("A", 7, ["Other"])])
    report = import_labels(store, read_labels_csv(second, SIZES), origin=str(second))
    assert (report.batch[:6], report.added, report.already_stored) == ("b0002-", 1, 1)
    table = stored_labels(store)
    assert table[["sample", "point"]].values.tolist() == [["A", 1], ["B", 4], ["A", 7]]
    assert table["Fe3O4"].tolist() == [1, 0, 0] and table["Other"].tolist() == [0, 0, 1]
    assert table["labeler"].tolist() == ["jdoe", "jdoe", "unknown"]
    assert table["queried_by"].tolist() == ["v0003", "v0003", ""]
    assert table["batch"].str[:5].tolist() == ["b0001", "b0001", "b0002"]
    assert table["batch"].str.fullmatch(r"b000\d-[0-9a-f]{8}").all()  # unique names
    batches = zarr.open_group(store, mode="r")["labels"].attrs["batches"]
    assert [b["file"] for b in batches] == [str(first), str(second)]
    again = import_labels(store, read_labels_csv(second, SIZES), origin=str(second))
    assert again.batch is None and again.added == 0 and len(stored_labels(store)) == 3


def test_imports_refresh_the_consolidated_metadata_unless_a_writer_runs(store, tmp_path):
    """Readers that open the consolidated metadata (xarray) see each import; while a
    writer holds the lock the import leaves the refresh to it, and xrdmap's own reads
    never see a stale view."""
    from xrdmap.locks import WRITE, store_lock
    from xrdmap.store import exclusive_writer

    def consolidated_batches():
        return set(zarr.open_group(store, mode="r", use_consolidated=True)["labels"])

    first = _csv(tmp_path / "1.csv", [("A", 1, ["Fe3O4"])])
    one = import_labels(store, read_labels_csv(first, SIZES), origin=str(first))
    assert consolidated_batches() == {one.batch}
    second = _csv(tmp_path / "2.csv", [("A", 2, ["Other"])])
    with store_lock(store, WRITE):  # a running writer
        two = import_labels(store, read_labels_csv(second, SIZES), origin=str(second))
    assert consolidated_batches() == {one.batch}  # stale until the writer ends
    assert stored_labels(store)["batch"].tolist() == [one.batch, two.batch]
    with exclusive_writer(store):
        pass
    assert consolidated_batches() == {one.batch, two.batch}


def test_a_different_answer_for_a_stored_point_is_refused(store, tmp_path):
    first = _csv(tmp_path / "1.csv", [("A", 1, ["Fe3O4"])])
    import_labels(store, read_labels_csv(first, SIZES), origin=str(first))
    before = stored_labels(store)
    other = _csv(tmp_path / "2.csv", [("A", 2, []), ("A", 1, ["alpha-FeOOH"])])
    with pytest.raises(LabelsError, match=r"2.csv: point 1 of A is already labeled .*b0001-"):
        import_labels(store, read_labels_csv(other, SIZES), origin=str(other))
    pd.testing.assert_frame_equal(stored_labels(store), before)  # nothing half-written


def test_an_uncommitted_batch_is_ignored_then_removed(store, tmp_path):
    first = _csv(tmp_path / "1.csv", [("A", 1, ["Fe3O4"])])
    import_labels(store, read_labels_csv(first, SIZES), origin=str(first))
    crashed = zarr.open_group(store, mode="r+")["labels"].create_group("b0002")
    crashed.create_array("point", data=np.array([9, 9, 9]))  # a crash before the commit
    assert len(stored_labels(store)) == 1
    second = _csv(tmp_path / "2.csv", [("B", 0, ["Fe(BCC)"])])
    report = import_labels(store, read_labels_csv(second, SIZES), origin=str(second))
    assert report.batch.startswith("b0002-")
    assert stored_labels(store)["point"].tolist() == [1, 0]
    assert "b0002" not in zarr.open_group(store, mode="r")["labels"]


@pytest.mark.slow
def test_labels_cli_import_export_and_train_from_the_store(
    fresh_store, tiny_beamtime, tmp_path, quick_train_conf, xrdmap
):
    store = fresh_store
    bad = _csv(tmp_path / "bad.csv", [("A_urban", 3, ["Fe3O4"]), ("Z_unknown", 1, [])])
    out = xrdmap("labels", "import", store, bad)
    assert out.returncode == 2 and "line 3: sample: unknown sample 'Z_unknown'" in out.stderr
    assert "labels" not in zarr.open_group(store, mode="r")  # nothing written
    drawn = tmp_path / "drawn.csv"
    xrdmap("draw-labels", tiny_beamtime.truth_dir, "--store", store, "--n", 60, "--out", drawn)
    out = xrdmap("labels", "import", store, drawn, "--labeler", "tester")
    assert out.returncode == 0, out.stderr
    assert "Imported 60 labels" in out.stdout and "batch b0001-" in out.stdout
    exported = tmp_path / "exported.csv"
    assert xrdmap("labels", "export", store, "--out", exported).returncode == 0
    back = read_labels_csv(exported, {"A_urban": 320, "B_marine": 411})
    assert len(back) == 60 and (back["labeler"] == "tester").all()
    out = xrdmap(
        "--conf", quick_train_conf(tmp_path), "train", store, "--registry", tmp_path / "registry"
    )
    assert out.returncode == 0, out.stderr
    assert "Trained model v0001" in out.stdout and "on 35 labels" in out.stdout
