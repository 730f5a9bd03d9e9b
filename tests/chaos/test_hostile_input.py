"""Chaos: nonsensical and hostile inputs get a one-line error that names the file and
field, before any work, or a quarantined frame; nothing is stored as if it were fine
(issue 14, items 4, 5, 8-10)."""

import hashlib
import json
import pickle
import re
import shutil

import fabio
import numpy as np
import pandas as pd
import pytest
import zarr

from models.registry import RegistryError, load_model, read_card
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import load_process
from xrdmap.discovery import discover_beamtime
from xrdmap.errors import BeamtimeError, GeometryError, LabelsError
from xrdmap.integrate import load_geometry, load_mask
from xrdmap.label_store import export_labels, import_labels
from xrdmap.labels import read_labels_csv
from xrdmap.plan import preflight
from xrdmap.sources import STATUS_CORRUPT, read_frames


@pytest.fixture
def bt(tiny_beamtime, tmp_path):
    shutil.copytree(tiny_beamtime.beamtime_dir, tmp_path / "bt")
    return tmp_path / "bt"


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"samples": []}, "samples: give a non-empty list"),
        ({"samples": [123]}, "samples: 123 is not a sample folder name"),
        ({"samples": "A_urban"}, "samples: give a non-empty list"),
        ({"samples": ["A_urban", "A_urban"]}, "samples: A_urban listed twice"),
        ({"samples": ["../A_urban"]}, "is not a sample folder name"),
        ({"geometry": None}, "geometry: give the PONI file's name"),
        ({"instrument": {"count_cutoff": "abc"}}, "instrument.count_cutoff: 'abc' is not a"),
        ({"instrument": {"count_cutoff": -5}}, "instrument.count_cutoff: -5 is not a positive"),
    ],
)
def test_nonsense_in_beamtime_json_is_one_line(bt, changes, message):
    _edit_json(bt / "beamtime.json", **changes)
    with pytest.raises(BeamtimeError, match=re.escape(message)) as err:
        discover_beamtime(bt)
    assert "\n" not in str(err.value) and "beamtime.json" in str(err.value)


def test_nonsense_in_scan_metadata(bt, tmp_path):
    scan = bt / "A_urban" / "scan.json"
    original = scan.read_text()
    _edit_json(scan, grid={"rows": 10.7, "cols": 4})
    with pytest.raises(BeamtimeError, match="grid: rows and cols must be integers"):
        discover_beamtime(bt)
    scan.write_text(original)
    _edit_json(scan, points_file="../../../../../../etc/hostname")
    with pytest.raises(BeamtimeError, match=r"points_file: .* resolves outside the beamtime"):
        discover_beamtime(bt)
    scan.write_text(original)
    points = pd.read_csv(bt / "A_urban" / "points.csv")
    points.loc[7, "x_um"] = np.inf
    points.to_csv(bt / "A_urban" / "points.csv", index=False)
    with pytest.raises(BeamtimeError, match="line 9: x_um: 'inf' is not a finite number"):
        discover_beamtime(bt)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: re.sub(r"Poni1: .*", "Poni1: 1e30", t), "Poni1: 1e30 m is off any detector"),
        (lambda t: re.sub(r"Distance: .*", "Distance: 153", t), "Distance: 153 m; expected"),
        (lambda t: re.sub(r"Rot1: .*", "Rot1: 25", t), "Rot1: 25 is not an angle in radians"),
        (lambda t: t.replace("Detector: Pilatus100k", "Detector: Pilatus9000"), "Detector: "),
    ],
)
def test_implausible_geometry_is_refused(bt, edit, message):
    poni = bt / "geometry.poni"
    poni.write_text(edit(poni.read_text()))
    with pytest.raises(GeometryError, match=re.escape(message)) as err:
        load_geometry(poni)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400  # no detector list


def test_a_binary_poni_and_a_mask_that_masks_everything(bt):
    (bt / "geometry.poni").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(GeometryError, match="not a PONI file"):
        load_geometry(bt / "geometry.poni")
    fabio.edfimage.EdfImage(data=np.ones((195, 487), np.uint8)).write(str(bt / "mask.edf"))
    with pytest.raises(GeometryError, match="masks every pixel"):
        load_mask(bt / "mask.edf", (195, 487))


def test_wrong_values_stop_the_run_before_any_work(bt, tmp_path):
    _edit_json(bt / "beamtime.json", instrument={"count_cutoff": -1})
    with pytest.raises(BeamtimeError, match="count_cutoff"):
        preflight(str(bt), str(tmp_path / "s.zarr"), load_process())
    assert not (tmp_path / "s.zarr").exists()


def test_one_corrupted_byte_in_a_cbf_without_md5_is_quarantined(bt):
    path = bt / "A_urban" / "frames" / "A_urban_000005.cbf"
    raw = path.read_bytes()
    start = raw.find(b"\x0c\x1a\x04\xd5")
    head = re.sub(rb"Content-MD5:[^\r\n]*\r?\n", b"", raw[:start])
    body = bytearray(raw[start:])
    body[4 + 3000] = 0x80  # one byte: the byte-offset stream now decodes short
    path.write_bytes(head + bytes(body))
    sample = discover_beamtime(bt).sample("A_urban")
    batch = read_frames(sample.frame_refs(0, 10), 0, 10, (195, 487))
    assert batch.status[4] == STATUS_CORRUPT and "corrupt data" in batch.reason[4]
    assert (batch.status[:4] == 0).all() and (batch.status[5:] == 0).all()


def test_models_only_from_inside_the_registry(tmp_path):
    (tmp_path / "elsewhere" / "v0001").mkdir(parents=True)
    for version in ("../elsewhere/v0001", "/etc", "v0001/../../x"):
        with pytest.raises(RegistryError, match="not a model version name"):
            load_model(tmp_path / "registry", version)
    (tmp_path / "registry" / "v0001").mkdir(parents=True)
    (tmp_path / "registry" / "v0001" / "card.json").write_text("{not json")
    (tmp_path / "registry" / "v0001" / "model.keras").write_bytes(b"\x80\x04pickle")
    with pytest.raises(RegistryError, match=r"card\.json: not a readable card"):
        read_card(tmp_path / "registry", "v0001")
    payload = pickle.dumps({"not": "a model"})  # a pickle whose card matches it
    (tmp_path / "registry" / "v0001" / "model.keras").write_bytes(payload)
    card = {"model_sha256": hashlib.sha256(payload).hexdigest(), "version": "v0001"}
    (tmp_path / "registry" / "v0001" / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match=r"model\.keras: not a Keras model") as err:
        load_model(tmp_path / "registry", "v0001")
    assert "\n" not in str(err.value)


def test_labels_true_is_not_one_and_export_escapes_formulas(fresh_store, tmp_path):
    rows = [["A_urban", 1, "True", *[0] * 8], ["A_urban", 2, 1, *[0] * 8]]
    path = tmp_path / "l.csv"
    pd.DataFrame(rows, columns=["sample", "point", *CLASS_NAMES]).to_csv(path, index=False)
    sizes = {"A_urban": 320, "B_marine": 411}
    with pytest.raises(LabelsError, match="line 2: Fe3O4: True is not 0/1"):
        read_labels_csv(path, sizes)
    table = pd.DataFrame([rows[1]], columns=["sample", "point", *CLASS_NAMES])
    table["labeler"] = '=HYPERLINK("http://x")'
    table.to_csv(path, index=False)
    import_labels(str(fresh_store), read_labels_csv(path, sizes), origin=str(path))
    export_labels(str(fresh_store), tmp_path / "out.csv")
    cell = pd.read_csv(tmp_path / "out.csv")["labeler"].iloc[0]
    assert cell.startswith("'=")  # a spreadsheet shows it as text, never runs it


def test_a_zarr_store_of_another_tool_is_not_written(tmp_path):
    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["creator"] = "another tool"
    table = pd.DataFrame([{"sample": "A", "point": 1, **dict.fromkeys(CLASS_NAMES, 0)}])
    with pytest.raises(ValueError, match="not a store written by `xrdmap process`"):
        import_labels(str(tmp_path / "other.zarr"), table, origin="t")
    assert list(zarr.open_group(tmp_path / "other.zarr", mode="r").keys()) == []
