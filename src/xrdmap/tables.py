"""Reading the CSV tables users and beamlines hand us, with errors that name the file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

#: The separators a CSV table may use: a spreadsheet saves ";" where the decimal mark
#: is a comma (a relabel queue filled in and saved by Excel in most of Europe).
SEPARATORS = ",;\t"


def read_csv_table(
    path: Path, required: Sequence[str], *, dtype: dict, error: type[Exception]
) -> pd.DataFrame:
    """Read ``path`` (its separator told by its header line: comma, semicolon with
    decimal commas, or tab); raise ``error`` naming the file if unreadable or a column
    is missing."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            header = fh.readline()
        try:
            sep = csv.Sniffer().sniff(header, delimiters=SEPARATORS).delimiter
        except csv.Error:  # one column, or no header at all
            sep = ","
        # with ";" numbers have decimal commas ("12,5"); a decimal point still reads, as
        # text that the numeric columns' own conversion takes
        table = pd.read_csv(path, dtype=dtype, sep=sep, decimal="," if sep == ";" else ".")
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: not a readable CSV table: {exc}") from None
    absent = [c for c in required if c not in table.columns]
    if absent:
        raise error(f"{path}: column(s) {', '.join(absent)} missing")
    return table
