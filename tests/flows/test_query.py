"""The relabel queue: cold start, uncertain points, pictures, import back, oracle run."""

import numpy as np
import pandas as pd
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES

pytestmark = pytest.mark.slow


@pytest.fixture
def store_copy(fresh_store):
    return fresh_store


def _fake_predictions(store, version="v0042", disagree=None):
    """Confidences as ``xrdmap predict`` stores them: sure everywhere except a few points;
    with ``disagree`` (point indices), an ensemble's spread, high at those points."""
    from xrdmap.store import create_confidences, publish_confidences, write_confidences

    unsure = {}
    name, regions = create_confidences(
        str(store), version, {"classes": list(CLASS_NAMES)}, chunk=100_000
    )
    for region in regions:
        n = region.stop - region.start
        conf = np.where(np.random.default_rng(0).random((n, len(CLASS_NAMES))) < 0.5, 0.02, 0.98)
        unsure[region.sample] = [5, 77, 150]
        conf[unsure[region.sample], 2] = 0.5
        spread = None
        if disagree is not None:
            spread = np.full(conf.shape, 0.01, np.float32)
            spread[disagree, 4] = 0.3
        write_confidences(str(store), region, name, conf.astype(np.float32), spread)
    publish_confidences(str(store), version, name)
    return unsure


def _fill_from_truth(queue_csv, truth_dir, rows=None):
    queue = pd.read_csv(queue_csv)
    for i in rows if rows is not None else range(len(queue)):
        truth = pd.read_csv(truth_dir / f"{queue.loc[i, 'sample']}.csv").set_index("point")
        for c in CLASS_NAMES:
            queue.loc[i, c] = truth.loc[queue.loc[i, "point"], c]
    queue["labeler"] = "oracle"
    queue.to_csv(queue_csv, index=False)


def test_cold_start_queue_fills_imports_and_is_not_asked_again(store_copy, tiny_beamtime, xrdmap):
    """In a folder whose name has a space: the import command the query prints is the
    one to paste into a shell."""
    import shlex

    (store_copy.parent / "beam time").mkdir()
    store_copy = store_copy.rename(store_copy.parent / "beam time" / store_copy.name)
    out = xrdmap("query", store_copy, "--n", 6)
    assert out.returncode == 0, out.stderr
    assert "from a cold start (no model yet)" in out.stdout
    queue_csv = store_copy.parent / "copy.zarr-queue" / "cold-start" / "queue.csv"
    queue = pd.read_csv(queue_csv)
    assert len(queue) == 6 and queue[list(CLASS_NAMES)].isna().all().all()
    assert queue["reason"].str.startswith("cold start").all()
    for picture in queue["picture"]:
        assert (queue_csv.parent / picture).stat().st_size > 10_000
    printed = shlex.split(out.stdout.strip().splitlines()[-1].split("import with: ", 1)[1])
    assert printed == ["xrdmap", "labels", "import", str(store_copy), str(queue_csv)]
    out = xrdmap(*printed[1:])
    assert out.returncode == 2 and "no labels filled in" in out.stderr
    _fill_from_truth(queue_csv, tiny_beamtime.truth_dir, rows=[0, 1, 2])  # labeled in parts
    out = xrdmap(*printed[1:])
    assert out.returncode == 0 and "Imported 3 labels" in out.stdout, out.stderr
    again = xrdmap("query", store_copy, "--n", 6)
    assert again.returncode == 0
    second = pd.read_csv(store_copy.parent / "copy.zarr-queue" / "cold-start-2" / "queue.csv")
    first_three = set(zip(queue["sample"][:3], queue["point"][:3], strict=True))
    assert not first_three & set(zip(second["sample"], second["point"], strict=True))


def test_queue_from_a_model_asks_where_it_is_unsure(store_copy, xrdmap):
    unsure = _fake_predictions(store_copy)
    out = xrdmap("query", store_copy, "--n", 4, "--strategy", "uncertainty")
    assert out.returncode == 0, out.stderr
    queue = pd.read_csv(store_copy.parent / "copy.zarr-queue" / "v0042" / "queue.csv")
    assert (queue["queried_by"] == "v0042").all()
    assert all(p in unsure[s] for s, p in zip(queue["sample"], queue["point"], strict=True))
    assert (queue["conf_gamma-FeOOH"] == 0.5).all() and (queue["score"] == 1.0).all()
    assert (queue["asked_about"] == "gamma-FeOOH").all()
    out = xrdmap("query", store_copy, "--n", 4, "--model", "v0007")
    assert out.returncode == 2 and "no confidences of model v0007" in out.stderr


def test_per_class_queue_names_the_class_that_asked(store_copy, xrdmap):
    _fake_predictions(store_copy)
    out = xrdmap("query", store_copy, "--n", 9, "--strategy", "per-class")
    assert out.returncode == 0, out.stderr
    queue = pd.read_csv(store_copy.parent / "copy.zarr-queue" / "v0042" / "queue.csv")
    gamma = queue[queue["reason"].str.startswith("turn of gamma-FeOOH: confidence 0.50")]
    assert len(gamma) == 1 and len(queue) == 9  # one turn per class
    assert queue["reason"].str.contains("the closest to 0.5 among unlabeled points").all()
    turns = queue["reason"].str.split(":").str[0].str.removeprefix("turn of ")
    assert (queue["asked_about"] == turns).all() and sorted(turns) == sorted(CLASS_NAMES)


def test_points_the_members_disagree_on_are_asked_first_and_drawn_apart(store_copy, xrdmap):
    """An ensemble sure on average but split on Fe(FCC) at points 20 and 40: the queue
    asks them first, and the phase map gives them (and the undecided points) the
    abstain colour."""
    from matplotlib.colors import to_rgb

    from xrdmap.maps import ABSTAIN_COLOUR, phase_image, sample_calls
    from xrdmap.store import open_store

    _fake_predictions(store_copy, disagree=[20, 40])
    out = xrdmap("query", store_copy, "--n", 4, "--strategy", "uncertainty")
    assert out.returncode == 0, out.stderr
    queue = pd.read_csv(store_copy.parent / "copy.zarr-queue" / "v0042" / "queue.csv")
    first = set(zip(queue["sample"][:4], queue["point"][:4], strict=True))
    assert first == {(s, p) for s in ("A_urban", "B_marine") for p in (20, 40)}
    assert queue["reason"][:4].str.startswith("members disagree").all()
    root = open_store(str(store_copy))
    assert sample_calls(root, "B_marine", "v0042")[1].sum() == 5
    conf, abstain = sample_calls(root, "A_urban", "v0042")
    assert set(np.flatnonzero(abstain)) == {5, 20, 40, 77, 150}
    image = phase_image(root, "A_urban", conf, abstain)
    rows, cols = root["samples/A_urban/grid_index"][20]
    np.testing.assert_allclose(image[rows, cols], to_rgb(ABSTAIN_COLOUR))


def test_pictures_draw_the_raw_frame_on_the_stored_geometry(tiny_store, tmp_path):
    """The queue pictures' frame panel: 2theta and chi of every pixel from the PONI the
    store was integrated with, spanning the integrated axis."""
    from xrdmap.active.queue import frame_grid, point_picture
    from xrdmap.config import load_phases
    from xrdmap.phases import store_reference_lines

    root = zarr.open_group(tiny_store, mode="r")
    tth, chi = frame_grid(root, "A_urban")
    assert tth.shape == chi.shape == root["samples/A_urban/frames"].shape[1:]
    axis = root["samples/A_urban/tth_deg"][:]
    assert abs(tth.min() - axis[0]) < 0.2 and abs(tth.max() - axis[-1]) < 0.2
    lines = store_reference_lines(tiny_store, load_phases())
    path = tmp_path / "p.png"
    point_picture(root, "A_urban", 5, "", "Fe3O4", lines, path, None, (tth, chi))
    assert path.stat().st_size > 30_000
