"""Scan positions -> the map grid: each point's (row, col), derived from the motor
positions themselves (raster, snake or fly scans with jitter), not from a formula."""

from __future__ import annotations

import numpy as np

from xrdmap.errors import BeamtimeError

#: Levels of one axis are split where neighbours differ by more than this fraction of
#: the axis's step (jitter of a fly scan stays well below it).
DEFAULT_TOLERANCE = 0.3
#: ... and a level spread over more than this fraction of the step is no grid.
MAX_SPREAD = 0.5


def step_positions(
    rows: int, cols: int, step_um: tuple[float, float], *, snake: bool
) -> np.ndarray:
    """(n, 2) x_um, y_um in acquisition order: rows along y, points along x; a snake
    scan runs every other row backwards."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    if snake:
        c = np.where(r % 2 == 1, cols - 1 - c, c)
    return np.column_stack([c * step_um[0], r * step_um[1]]).astype(np.float64)


def _levels(values: np.ndarray, tolerance_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Group sorted ``values`` into levels where gaps exceed ``tolerance_um``: the level
    of each value and each level's spread."""
    order = np.argsort(values, kind="stable")
    gaps = np.diff(values[order])
    level_sorted = np.concatenate([[0], np.cumsum(gaps > tolerance_um)])
    level = np.empty_like(level_sorted)
    level[order] = level_sorted
    spread = np.array([np.ptp(values[level == k]) for k in range(level_sorted[-1] + 1)])
    return level, spread


def _axis_step(values: np.ndarray) -> float:
    """The typical step between distinct levels of one axis (0 for a single level)."""
    gaps = np.diff(np.sort(values))
    if gaps.size == 0 or gaps.max() <= 0:
        return 0.0
    big = gaps[gaps > 0.25 * gaps.max()]
    return float(np.median(big))


def grid_from_positions(
    xy_um: np.ndarray, *, tolerance_um: float | None = None, where: str
) -> tuple[tuple[int, int], np.ndarray]:
    """The (rows, cols) grid and each point's (row, col); rows follow y, columns x,
    both ascending. ``where`` names the positions in errors.

    Cells no point visited (an aborted scan) stay empty on the map. Raises
    BeamtimeError when the positions form no grid: a cell visited twice, or positions
    scattered more than the tolerance inside a row or column.
    """
    steps = [_axis_step(xy_um[:, k]) for k in (0, 1)]
    scale = max(steps)
    if scale == 0:
        if len(xy_um) == 1:
            return (1, 1), np.zeros((1, 2), np.int64)
        raise BeamtimeError(f"{where}: all {len(xy_um)} points at one position: no map")
    tol = (
        tolerance_um
        if tolerance_um is not None
        else DEFAULT_TOLERANCE * min(s for s in steps if s > 0)
    )
    (col, col_spread), (row, row_spread) = (_levels(xy_um[:, k], tol) for k in (0, 1))
    for name, spread, step in (("x", col_spread, steps[0]), ("y", row_spread, steps[1])):
        if spread.max() > max(tol, MAX_SPREAD * step):
            raise BeamtimeError(
                f"{where}: {name} positions scatter {spread.max():.3g} um within one "
                f"column/row, more than {MAX_SPREAD} of the {step:.3g} um step: not a grid "
                "(or set grid_tolerance_um)"
            )
    grid = (int(row.max()) + 1, int(col.max()) + 1)
    cells = row * grid[1] + col
    counts = np.bincount(cells, minlength=grid[0] * grid[1])
    if (counts > 1).any():
        raise BeamtimeError(
            f"{where}: {len(xy_um)} positions on {grid[0]} rows x {grid[1]} columns, "
            f"{int((counts > 1).sum())} cells visited twice: not a grid"
        )
    return grid, np.column_stack([row, col]).astype(np.int64)
