"""Expert labels: the CSV import format, checked before anything uses it.

One row per labeled point, with the header (split here over two lines)::

    sample,point,Fe3O4,alpha-FeOOH,gamma-FeOOH,Fe(BCC),Fe(FCC),Fe3C,
        resin only,Fe without peaks,Other,labeler,time,source
    S03,1234,0,1,1,0,0,0,0,0,0,jdoe,2026-11-25T10:00:00+00:00,expert

``point`` is the point index in the sample's scan (``points.csv``); class columns hold
0 (absent) or 1 (present); ``labeler``, ``time``, ``source`` and ``queried_by`` (the
model version whose relabel queue asked for the point) are optional (filled as
"unknown", the import time, "csv import" and "").
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from xrdmap.classes import CLASS_NAMES
from xrdmap.errors import LabelsError
from xrdmap.tables import read_csv_table

PROVENANCE_COLUMNS = ("labeler", "time", "source", "queried_by")
#: Informative columns of a relabel queue (:mod:`xrdmap.relabel_queue`), ignored here.
QUEUE_COLUMNS = (
    "x_um",
    "y_um",
    "score",
    "reason",
    "asked_about",
    "picture",
    *(f"conf_{c}" for c in CLASS_NAMES),
)


def read_labels_csv(path: str | Path, sample_sizes: dict[str, int]) -> pd.DataFrame:
    """Read and check a labels CSV against the samples (name -> number of points)."""
    path = Path(path)
    required = ("sample", "point", *CLASS_NAMES)
    text = dict.fromkeys(("sample", *PROVENANCE_COLUMNS), str)
    table = read_csv_table(path, required, dtype=text, error=LabelsError)
    known = ("sample", "point", *CLASS_NAMES, *PROVENANCE_COLUMNS, *QUEUE_COLUMNS)
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        raise LabelsError(f"{path}: unknown column(s) {', '.join(unknown)}")
    if table.empty:
        raise LabelsError(f"{path}: no labels")
    blank = table[list(CLASS_NAMES)].isna()
    partly = blank.any(axis=1) & ~blank.all(axis=1)
    if partly.any():
        line = int(partly.to_numpy().nonzero()[0][0])
        missing = [c for c in CLASS_NAMES if blank.iloc[line][c]]
        raise LabelsError(
            f"{path}: line {line + 2}: {missing[0]}: blank; give every class of a point "
            "(0 or 1) or leave the whole row blank (not labeled yet)"
        )
    table = table[~blank.all(axis=1).to_numpy()].drop(
        columns=[c for c in QUEUE_COLUMNS if c in table.columns]
    )
    if table.empty:
        raise LabelsError(f"{path}: no labels filled in (every row's class columns are blank)")
    return check_labels_table(table, sample_sizes, origin=str(path), source="csv import")


def check_labels_table(
    table: pd.DataFrame, sample_sizes: dict[str, int], *, origin: str, source: str
) -> pd.DataFrame:
    """Check labels rows (index = row number in ``origin``, named "line index + 2");
    fill missing provenance (``source`` among it). Returns the clean table."""
    path = origin
    for row in table.itertuples():  # the index is the file's row: line = index + 2
        i, sample, point = row.Index + 2, row.sample, row.point
        if sample not in sample_sizes:
            raise LabelsError(f"{path}: line {i}: sample: unknown sample {sample!r}")
        try:
            p = int(point)
        except (TypeError, ValueError):
            raise LabelsError(f"{path}: line {i}: point: {point!r} is not an integer") from None
        if p != point or not 0 <= p < sample_sizes[sample]:
            raise LabelsError(
                f"{path}: line {i}: point: {point!r} not in 0..{sample_sizes[sample] - 1}"
            )
    for c in CLASS_NAMES:
        # True/False equal 1/0 in pandas; a class answer is written 0 or 1, nothing else
        boolean = table[c].map(lambda v: isinstance(v, bool | np.bool_))
        bad = boolean | ~table[c].isin([0, 1])
        if bad.any():
            first = table.index[bad.to_numpy()][0]
            raise LabelsError(f"{path}: line {first + 2}: {c}: {table[c][first]} is not 0/1")
    table["point"] = table["point"].astype(int)
    table[list(CLASS_NAMES)] = table[list(CLASS_NAMES)].astype("uint8")
    dup = table.duplicated(["sample", "point"], keep=False)
    if dup.any():
        groups = table[dup].groupby(["sample", "point"])[list(CLASS_NAMES)].nunique()
        conflict = groups[(groups > 1).any(axis=1)]
        if not conflict.empty:
            s, p = conflict.index[0]
            raise LabelsError(f"{path}: point {p} of {s} is labeled twice with different answers")
        table = table.drop_duplicates(["sample", "point"])
    defaults = {
        "labeler": "unknown",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "queried_by": "",
    }
    for col, value in defaults.items():
        if col not in table.columns:
            table[col] = value
        table[col] = table[col].fillna(value).astype(str)
    return table.reset_index(drop=True)


def labels_sha256(table: pd.DataFrame) -> str:
    """A hash of the labels' content (sample, point, classes), independent of row order."""
    core = table[["sample", "point", *CLASS_NAMES]].sort_values(["sample", "point"])
    return hashlib.sha256(core.to_csv(index=False).encode()).hexdigest()
