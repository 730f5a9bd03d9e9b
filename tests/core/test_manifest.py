"""Beamtime manifests: frames and positions described, not laid out; the same frames
give the same store whichever way they were described."""

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from xrdmap.discovery import discover_beamtime
from xrdmap.errors import InputError
from xrdmap.store import on_grid, open_store, sample_group


def _write(path, manifest):
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


@pytest.fixture
def raw(tiny_beamtime):
    return tiny_beamtime.beamtime_dir


def _manifest(raw, **sample):
    return {
        "xrdmap_manifest": 1,
        "raw": str(raw),
        "geometry": {"poni": str(raw / "geometry.poni"), "mask": str(raw / "mask.edf")},
        "samples": [
            {
                "name": "A_urban",
                "frames": "A_urban/frames/A_urban_*.cbf",
                "positions": {"source": "steps", "rows": 80, "cols": 4, "step_um": [2, 2]},
                **sample,
            }
        ],
    }


@pytest.fixture
def processed(process_core):
    """``processed(description, store)`` -> the store's root, processed."""

    def run(description, store):
        process_core(description, store)
        return open_store(str(store))

    return run


def test_a_manifest_gives_the_store_the_folder_layout_gives(raw, tiny_store, tmp_path, processed):
    path = _write(tmp_path / "bt.yaml", _manifest(raw))
    bt = discover_beamtime(path)
    a = bt.sample("A_urban")
    assert (a.grid, a.n_points, a.frame_format) == ((80, 4), 320, "cbf")
    assert bt.count_cutoff == 1048575  # from the CBF header
    root = processed(path, tmp_path / "m.zarr")
    ours, theirs = sample_group(root, "A_urban"), sample_group(open_store(tiny_store), "A_urban")
    np.testing.assert_array_equal(ours["patterns"][:], theirs["patterns"][:])
    np.testing.assert_array_equal(ours["positions"][:], theirs["positions"][:])
    assert (ours["input_checksum"][:] == theirs["input_checksum"][:]).all()


def test_a_snake_scan_lands_on_the_same_map(raw, tiny_store, tmp_path, processed):
    """The same frames acquired as a snake (every other row backwards), with their
    motor positions in a CSV: the map is the raster map."""
    points = pd.read_csv(raw / "A_urban" / "points.csv")
    snake = points.sort_values(
        ["row", "col"], key=lambda c: c if c.name == "row" else np.where(points.row % 2, -c, c)
    )
    shutil.copytree(raw, tmp_path / "raw")
    snake[["x_um", "y_um"]].rename(columns={"x_um": "samx", "y_um": "samy"}).to_csv(
        tmp_path / "raw" / "positions.csv", index=False
    )
    manifest = _manifest(
        tmp_path / "raw",
        frames=list(snake["file"].map(lambda f: f"A_urban/{f}")),
        positions={"source": "csv", "file": "positions.csv", "x": "samx", "y": "samy"},
    )
    root = processed(_write(tmp_path / "bt.yaml", manifest), tmp_path / "s.zarr")
    mean = np.nanmean(sample_group(root, "A_urban")["patterns"][:], axis=1)
    theirs = open_store(tiny_store)
    expected = np.nanmean(sample_group(theirs, "A_urban")["patterns"][:], axis=1)
    np.testing.assert_array_equal(
        on_grid(root, "A_urban", mean), on_grid(theirs, "A_urban", expected)
    )
    assert sample_group(root, "A_urban")["grid_index"][4].tolist() == [1, 3]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("raw"), r"bt.yaml: raw: Field required"),
        (lambda m: m["samples"][0].update(name="../x"), r"samples.0.name: String should match"),
        (
            lambda m: m["samples"][0].update(grid_tolerance=0.5),
            r"samples.0.grid_tolerance: not a setting \(did you mean grid_tolerance_um\?\)",
        ),
        (
            lambda m: m["samples"][0]["positions"].update(step=2),
            r"samples.0.positions.steps.step: not a setting \(did you mean step_um\?\)",
        ),
        (
            lambda m: m["samples"][0]["positions"].update(rows=81),
            r"samples.A_urban: 320 frames but 324 positions",
        ),
        (
            lambda m: m["samples"][0].update(frames="A_urban/*.tif"),
            r"samples.A_urban: frames: 'A_urban/\*.tif' matches no file",
        ),
        (
            lambda m: m["samples"][0].update(frames=["../../../../etc/hostname"] * 320),
            r"samples.A_urban: frames: .* resolves outside the beamtime folder",
        ),
        (
            lambda m: m["samples"][0]["positions"].update(source="motors"),
            r"samples.0.positions: Input tag 'motors' found using 'source' does not match",
        ),
    ],
)
def test_a_wrong_manifest_is_one_line_naming_the_field(raw, tmp_path, edit, message):
    manifest = _manifest(raw)
    edit(manifest)
    with pytest.raises(InputError, match=message) as err:
        discover_beamtime(_write(tmp_path / "bt.yaml", manifest))
    assert "\n" not in str(err.value)
