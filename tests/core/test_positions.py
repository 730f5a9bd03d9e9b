"""The map grid derived from motor positions: raster, snake, jittered fly scans."""

import numpy as np
import pytest

from xrdmap.errors import BeamtimeError
from xrdmap.positions import grid_from_positions, step_positions


@pytest.mark.parametrize("snake", [False, True])
def test_raster_and_snake_scans_give_each_point_its_cell(snake):
    xy = step_positions(4, 6, (5.0, 2.0), snake=snake)
    grid, index = grid_from_positions(xy, where="t")
    assert grid == (4, 6)
    assert (index[:, 1] * 5.0 == xy[:, 0]).all() and (index[:, 0] * 2.0 == xy[:, 1]).all()
    if snake:
        assert index[6].tolist() == [1, 5]  # the second row runs backwards


def test_a_jittered_fly_scan_with_a_missing_point(tmp_path):
    rng = np.random.default_rng(0)
    xy = step_positions(10, 20, (1.0, 1.0), snake=True) + rng.normal(0, 0.05, (200, 2))
    grid, index = grid_from_positions(xy[:-1], where="t")  # aborted one point early
    assert grid == (10, 20)
    assert (index == np.round(xy[:-1]).astype(int)[:, ::-1]).all()


def test_one_row_and_one_point():
    assert grid_from_positions(step_positions(1, 5, (3.0, 3.0), snake=False), where="t")[0] == (
        1,
        5,
    )
    assert grid_from_positions(np.zeros((1, 2)), where="t")[0] == (1, 1)


def test_positions_that_form_no_grid_are_refused_naming_them():
    xy = step_positions(3, 3, (1.0, 1.0), snake=False)
    with pytest.raises(BeamtimeError, match=r"A/pos.csv: 10 positions on 3 rows x 3 columns, 1"):
        grid_from_positions(np.vstack([xy, xy[4]]), where="A/pos.csv")
    rng = np.random.default_rng(1)
    with pytest.raises(BeamtimeError, match=r"scatter .* not a grid"):
        grid_from_positions(rng.uniform(0, 10, (50, 2)), tolerance_um=0.5, where="t")
    with pytest.raises(BeamtimeError, match="all 4 points at one position"):
        grid_from_positions(np.zeros((4, 2)), where="t")
