"""Measured 1D powder patterns from files: 2theta (degrees) and intensity.

Read here: column text, whatever a diffractometer or an integration program wrote
(``.xy``, ``.xye``, ``.dat``, ``.txt``, ``.asc``, ``.csv``, pyFAI's and Fit2D's ``.chi``):
the first two numeric columns of every line that holds numbers, split on blanks, commas
or semicolons; header and comment lines are skipped. Binary instrument formats (Bruker
``.raw``/``.brml``, PANalytical ``.xrdml``, Rigaku ``.ras``) are refused with the advice
to export two columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from xrdmap.errors import InputError

TEXT_SUFFIXES = (".xy", ".xye", ".dat", ".txt", ".asc", ".csv", ".chi")
BINARY_SUFFIXES = (".raw", ".brml", ".xrdml", ".ras", ".rasx", ".udf")
#: Fewer points than this is not a pattern.
MIN_POINTS = 20
_SPLIT = re.compile(r"[\s,;]+")


def read_pattern(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(2theta in degrees, intensity) of a measured pattern, sorted by 2theta.

    Raises
    ------
    InputError
        One line naming the file (and the line) for a file that is not such a pattern.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        raise InputError(
            f"{path}: {suffix} is an instrument's binary format; export the pattern as two "
            "columns (2theta, intensity), e.g. .xy, with the instrument's software"
        )
    try:
        text = path.read_text(errors="strict")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file of 2theta and intensity columns") from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    rows: list[tuple[float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in _SPLIT.split(line.strip()) if f]
        if len(fields) < 2:
            continue
        try:
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            if rows:  # text after the data started: not a header
                raise InputError(
                    f"{path}, line {number}: not two numbers: {line.strip()[:60]!r}"
                ) from None
            continue
        rows.append((x, y))
    if len(rows) < MIN_POINTS:
        raise InputError(
            f"{path}: {len(rows)} lines of 2theta and intensity; a pattern has at least "
            f"{MIN_POINTS}"
        )
    data = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(data).all():
        bad = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
        raise InputError(f"{path}: point {bad + 1} is not a finite number")
    tth, intensity = data[:, 0], data[:, 1]
    if tth.min() <= 0 or tth.max() >= 180:
        raise InputError(
            f"{path}: first column runs {tth.min():g}-{tth.max():g}; expected 2theta in "
            "degrees, between 0 and 180"
        )
    order = np.argsort(tth, kind="stable")
    if np.any(np.diff(tth[order]) == 0):
        raise InputError(f"{path}: the same 2theta appears twice")
    return tth[order], intensity[order]
