"""A map figure is built once per thread and redrawn for each sample: a redrawn figure
must be the same, to the pixel, as a new one (no size, limits, ticks or title left over
from the sample before)."""

import matplotlib.image as mimg
import numpy as np

from xrdmap.classes import CLASS_NAMES
from xrdmap.maps import ConfidenceFigure, PhaseFigure


def _sample(rng, rows, cols, width_um, height_um, channels):
    grid = rng.random((rows, cols, channels))
    grid[0, :3] = np.nan  # cells the scan never visited
    return grid, (-5.0, width_um - 5.0, height_um, 0.0)


def _pixels(path):
    return mimg.imread(path)


def test_a_redrawn_figure_is_the_same_as_a_new_one(tmp_path):
    rng = np.random.default_rng(0)
    wide = _sample(rng, 20, 90, 900.0, 200.0, len(CLASS_NAMES))
    tall = _sample(rng, 60, 12, 60.0, 300.0, len(CLASS_NAMES))
    reused = ConfidenceFigure()
    reused.save(*wide, "A: confidence per class, a long title", tmp_path / "a.png")
    reused.save(*tall, "B: confidence", tmp_path / "b_reused.png")
    ConfidenceFigure().save(*tall, "B: confidence", tmp_path / "b_new.png")
    a, b_reused, b_new = (_pixels(tmp_path / f) for f in ("a.png", "b_reused.png", "b_new.png"))
    assert a.shape != b_new.shape  # the sizes differ: the test can see a stale size
    assert np.array_equal(b_reused, b_new)
    extent = tall[1]
    for ax, image in zip(reused.axes, reused.images, strict=True):  # B's data, B's extent
        assert ax.get_xlim() == extent[:2] and ax.get_ylim() == extent[2:]
        assert image.get_array().shape == tall[0].shape[:2]

    wide_rgb = (wide[0][..., :3].copy(), wide[1])
    tall_rgb = (np.nan_to_num(tall[0][..., :3], nan=1.0), tall[1])
    phases = PhaseFigure()
    phases.save(*wide_rgb, "A: corrosion products\nabstained on 9 of 1800", tmp_path / "pa.png")
    phases.save(*tall_rgb, "B: corrosion products", tmp_path / "pb_reused.png")
    PhaseFigure().save(*tall_rgb, "B: corrosion products", tmp_path / "pb_new.png")
    assert np.array_equal(_pixels(tmp_path / "pb_reused.png"), _pixels(tmp_path / "pb_new.png"))
    assert phases.ax.get_xlim() == extent[:2] and phases.ax.get_ylim() == extent[2:]


def test_a_map_being_redrawn_is_never_read_half_written(tmp_path):
    """A map is replaced whole: while one thread redraws it (as a second command would,
    or the same command on a re-run), every read of it is a whole PNG, never the
    truncated file that writing in place shows; the hidden part files are gone after."""
    import threading

    rng = np.random.default_rng(1)
    rgb, extent = _sample(rng, 120, 150, 600.0, 480.0, 3)
    rgb = np.nan_to_num(rgb, nan=1.0)
    path = tmp_path / "S01_phases.png"
    PhaseFigure().save(rgb, extent, "S01: corrosion products", path)
    done = threading.Event()

    def redraw() -> None:
        figure = PhaseFigure()
        for _ in range(15):
            figure.save(rgb, extent, "S01: corrosion products", path)
        done.set()

    writer = threading.Thread(target=redraw)
    writer.start()
    reads = 0
    while not done.is_set():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND", len(data)
        reads += 1
    writer.join()
    assert reads > 15 and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_failed_write_leaves_the_previous_file_and_no_part(tmp_path):
    import pytest

    from xrdmap.outputs import written_whole

    path = tmp_path / "report.csv"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError), written_whole(path) as part:
        part.write_text("half")
        raise RuntimeError("killed while writing")
    assert path.read_text() == "previous\n" and list(tmp_path.iterdir()) == [path]
