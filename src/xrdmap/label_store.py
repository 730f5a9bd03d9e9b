"""The labels table stored with the beamtime: append-only batches inside the store.

Layout (Zarr v3, beside the samples)::

    labels/                      attrs "batches": committed batches, in import order
    labels/b0001-<token>/sample  (n,) str      (batch names are unique: b<n>-<8 hex>)
    labels/b0001/point           (n,) int64    point index in the sample's scan
    labels/b0001/classes         (n, 9) uint8  0/1 per class, attrs "classes"
    labels/b0001/labeler         (n,) str
    labels/b0001/time            (n,) str      ISO 8601, when the expert labeled
    labels/b0001/source          (n,) str      e.g. "expert", "simulated ground truth"
    labels/b0001/queried_by      (n,) str      model version whose query asked ("" if none)

An import holds the store's labels lock (:mod:`xrdmap.locks`; a second importer, the
command line or the labeling page, waits for it), checks the rows against every
committed label, writes one new batch under a name no other batch has, then appends
its entry (name, rows, file, sha256, imported at) to the ``batches`` attribute: that is
the commit. A crash before it leaves an uncommitted batch that readers ignore and the
next import removes. Labels are never changed or removed: a point labeled again with
the same answer is skipped, with a different answer refused (naming the point and the
earlier batch).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.labels import PROVENANCE_COLUMNS, LabelsError, labels_sha256, read_labels_csv
from xrdmap.locks import LABELS, store_lock
from xrdmap.outputs import written_whole
from xrdmap.store import (
    LABELS_GROUP,
    consolidate_unless_busy,
    labeled_point_patterns,
    open_store,
    sample_sizes,
    writing,
)

_TEXT_COLUMNS = ("sample", *PROVENANCE_COLUMNS)
#: Seconds an import waits for another importer of the same store.
IMPORT_WAIT_S = 60.0


@dataclass(frozen=True)
class ImportReport:
    """What one import did: the batch written, rows added, already stored, total."""

    batch: str | None  #: None when every row was already stored
    added: int
    already_stored: int
    total: int


def _labels_group(root: zarr.Group) -> zarr.Group:
    if LABELS_GROUP not in root:
        return root.create_group(LABELS_GROUP, attributes={"batches": []})
    return root[LABELS_GROUP]


def stored_labels(store: str) -> pd.DataFrame:
    """Every committed label of the store, in import order, with a ``batch`` column."""
    root = open_store(store)
    columns = ["sample", "point", *CLASS_NAMES, *PROVENANCE_COLUMNS, "batch"]
    if LABELS_GROUP not in root:
        return pd.DataFrame(columns=columns)
    group = root[LABELS_GROUP]
    frames = []
    for entry in group.attrs["batches"]:
        batch = group[entry["name"]]
        table = pd.DataFrame(batch["classes"][:], columns=list(CLASS_NAMES))
        table.insert(0, "point", batch["point"][:])
        for col in _TEXT_COLUMNS:
            table[col] = batch[col][:].tolist()
        table["batch"] = entry["name"]
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def labeled_points(store: str) -> set[tuple[str, int]]:
    """(sample, point) of every stored label."""
    done = stored_labels(store)
    return set(zip(done["sample"], done["point"].astype(int), strict=True))


def labels_for(store: str, path: Path | None = None) -> pd.DataFrame:
    """The labels CSV ``path`` if given (checked against the store), else the labels
    stored in ``store`` (an error when there are none)."""
    if path is not None:
        return read_labels_csv(path, sample_sizes(store))
    labels = stored_labels(store)
    if labels.empty:
        raise LabelsError(f"{store}: no labels stored yet (xrdmap labels import STORE FILE)")
    return labels


#: A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_labels(store: str, path: Path) -> int:
    """Write the stored labels to ``path`` in the import format; text cells that a
    spreadsheet would run as a formula get a leading ``'``. Returns the rows written."""
    labels = labels_for(store).drop(columns="batch")
    for col in ("sample", *PROVENANCE_COLUMNS):
        text = labels[col].astype(str)
        labels[col] = text.where(~text.str.startswith(_FORMULA_START), "'" + text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as part:
        labels.to_csv(part, index=False)
    return len(labels)


def labeled_patterns(store: str, labels: pd.DataFrame) -> np.ndarray:
    """(n_labels, nbins) float32 patterns of the labeled points, in the table's order;
    points without a valid pattern (quarantined) are refused."""
    root = open_store(store)
    out = []
    for sample, rows in labels.groupby("sample", sort=False):
        try:
            found = labeled_point_patterns(root, sample, rows["point"].to_numpy())
        except ValueError as exc:
            raise LabelsError(str(exc)) from None
        out.append(pd.DataFrame(found, index=rows.index))
    return pd.concat(out).loc[labels.index].to_numpy(dtype=np.float32)


def _new_rows(existing: pd.DataFrame, table: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Rows of ``table`` not yet stored; a stored point with another answer is refused."""
    if existing.empty:
        return table
    keys = ["sample", "point"]
    merged = table.merge(existing, on=keys, how="left", suffixes=("", "_stored"), indicator=True)
    stored = merged["_merge"] == "both"
    stored_classes = merged.loc[stored, [f"{c}_stored" for c in CLASS_NAMES]].to_numpy()
    differs = (merged.loc[stored, list(CLASS_NAMES)].to_numpy() != stored_classes).any(axis=1)
    if differs.any():
        row = merged[stored][differs].iloc[0]
        raise LabelsError(
            f"{origin}: point {row['point']} of {row['sample']} is already labeled with "
            f"different answers (batch {row['batch']}); stored labels are never changed"
        )
    return table[~stored.to_numpy()]


def import_labels(store: str, table: pd.DataFrame, *, origin: str) -> ImportReport:
    """Append checked labels as one batch of the store's labels table.

    Parameters
    ----------
    store : str
        A store written by ``xrdmap process``.
    table : pandas.DataFrame
        Labels checked by :func:`xrdmap.labels.read_labels_csv` (or
        :func:`xrdmap.labels.check_labels_table`).
    origin : str
        Where they come from (a file, the labeling page): recorded, named in errors.

    Returns
    -------
    ImportReport
        The batch written (None when every row was stored already) and the counts.

    Raises
    ------
    LabelsError
        A point already stored with other answers; nothing is written.
    """
    with writing(store), store_lock(store, LABELS, wait_s=IMPORT_WAIT_S):
        report = _import(store, table, origin)
    consolidate_unless_busy(store)
    return report


def _import(store: str, table: pd.DataFrame, origin: str) -> ImportReport:
    existing = stored_labels(store)
    new = _new_rows(existing, table, origin)
    total = len(existing) + len(new)
    if new.empty:
        return ImportReport(None, 0, len(table), total)
    root = open_store(store, mode="r+")
    group = _labels_group(root)
    batches = list(group.attrs["batches"])
    committed = {b["name"] for b in batches}
    for leftover in [k for k in group.group_keys() if k not in committed]:
        del group[leftover]  # an import that crashed before its commit
    name = f"b{len(batches) + 1:04d}-{secrets.token_hex(4)}"
    batch = group.create_group(name)
    n = len(new)
    batch.create_array("point", data=new["point"].to_numpy(np.int64))
    batch.create_array(
        "classes",
        data=new[list(CLASS_NAMES)].to_numpy(np.uint8),
        attributes={"classes": list(CLASS_NAMES)},
    )
    for col in _TEXT_COLUMNS:
        arr = batch.create_array(col, shape=(n,), dtype=str, fill_value="")
        arr[:] = new[col].astype(str).to_numpy()
    batches.append(
        {
            "name": name,
            "rows": n,
            "file": origin,
            "sha256": labels_sha256(new),
            "imported": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    group.attrs["batches"] = batches
    return ImportReport(name, n, len(table) - n, total)
