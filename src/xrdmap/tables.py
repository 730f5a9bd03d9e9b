"""Reading the CSV tables users and beamlines hand us, with errors that name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def read_csv_table(
    path: Path, required: Sequence[str], *, dtype: dict, error: type[Exception]
) -> pd.DataFrame:
    """Read ``path``; raise ``error`` naming the file if unreadable or a column is missing."""
    try:
        table = pd.read_csv(path, dtype=dtype)
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: not a readable CSV table: {exc}") from None
    absent = [c for c in required if c not in table.columns]
    if absent:
        raise error(f"{path}: column(s) {', '.join(absent)} missing")
    return table
