"""Labels CSV checks, and training a registry version from a processed store."""

import json

import pandas as pd
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.labels import LabelsError, labels_sha256, read_labels_csv

SIZES = {"A": 10, "B": 5}


def _write(tmp_path, rows, columns=None):
    columns = columns or ["sample", "point", *CLASS_NAMES]
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def _row(sample, point, present=()):
    return [sample, point, *[int(c in present) for c in CLASS_NAMES]]


def test_good_file_gets_provenance_defaults(tmp_path):
    path = _write(tmp_path, [_row("A", 1, ["Fe3O4"]), _row("B", 4, ["resin only"])])
    table = read_labels_csv(path, SIZES)
    assert len(table) == 2 and (table["labeler"] == "unknown").all()
    assert (table["source"] == "csv import").all() and table["Fe3O4"].tolist() == [1, 0]
    shuffled = table.iloc[::-1]
    assert labels_sha256(shuffled) == labels_sha256(table)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_row("C", 1)], r"line 2: sample: unknown sample 'C'"),
        ([_row("A", 1), _row("B", 5)], r"line 3: point: 5 not in 0..4"),
        ([_row("A", 1.5)], r"line 2: point: 1.5 not in 0..9"),
        ([[*_row("A", 1)[:2], 2, *_row("A", 1)[3:]]], r"line 2: Fe3O4: 2 is not 0/1"),
        ([_row("A", 1, ["Fe3O4"]), _row("A", 1)], r"point 1 of A is labeled twice"),
    ],
)
def test_bad_labels_are_named(tmp_path, rows, message):
    with pytest.raises(LabelsError, match=message):
        read_labels_csv(_write(tmp_path, rows), SIZES)


def test_blank_rows_are_skipped_and_half_filled_rows_refused(tmp_path):
    blank = ["B", 2, *[None] * len(CLASS_NAMES)]
    table = read_labels_csv(_write(tmp_path, [blank, _row("A", 3, ["Other"])]), SIZES)
    assert table[["sample", "point"]].values.tolist() == [["A", 3]]
    half = ["A", 4, 1, *[None] * (len(CLASS_NAMES) - 1)]
    with pytest.raises(LabelsError, match=r"line 3: alpha-FeOOH: blank; give every class"):
        read_labels_csv(_write(tmp_path, [_row("A", 1), half]), SIZES)
    bad_after_blank = [blank, ["A", 99, *[0] * len(CLASS_NAMES)]]
    with pytest.raises(LabelsError, match=r"line 3: point: 99 not in 0..9"):  # file's line
        read_labels_csv(_write(tmp_path, bad_after_blank), SIZES)


def test_a_queue_saved_by_a_spreadsheet_with_semicolons_is_read(tmp_path):
    """Excel in most of Europe saves a CSV with ";" between fields (the decimal mark is
    a comma) and a byte-order mark: every column had been "missing"."""
    from xrdmap.labels import QUEUE_COLUMNS

    columns = ["sample", "point", *CLASS_NAMES, *QUEUE_COLUMNS]
    extra = ["0,4600" if c == "score" or c.startswith("conf_") else "x" for c in QUEUE_COLUMNS]
    path = tmp_path / "queue.csv"
    pd.DataFrame(
        [[*_row("A", 1, ["Fe3O4"]), *extra], [*_row("B", 4, ["Other"]), *extra]],
        columns=columns,
    ).to_csv(path, index=False, sep=";", encoding="utf-8-sig")
    table = read_labels_csv(path, SIZES)
    assert table[["sample", "point", "Fe3O4", "Other"]].values.tolist() == [
        ["A", 1, 1, 0],
        ["B", 4, 0, 1],
    ]


def test_positions_saved_with_semicolons_and_decimal_commas_are_numbers(tmp_path):
    from xrdmap.tables import read_csv_table

    path = tmp_path / "positions.csv"
    for text in ("x_um;y_um\n12,5;3,0\n-1,25;4\n", "x_um;y_um\n12.5;3.0\n-1.25;4\n"):
        path.write_text(text)  # decimal commas, as such a spreadsheet writes; or points
        table = read_csv_table(path, ("x_um", "y_um"), dtype={}, error=ValueError)
        numbers = [pd.to_numeric(table[c], errors="coerce").tolist() for c in table]
        assert numbers == [[12.5, -1.25], [3.0, 4.0]], text


def test_missing_and_unknown_columns(tmp_path):
    cols = ["sample", "point", *CLASS_NAMES[:-1]]
    with pytest.raises(LabelsError, match=r"column\(s\) Other missing"):
        read_labels_csv(_write(tmp_path, [_row("A", 1)[:-1]], cols), SIZES)
    cols = ["sample", "point", *CLASS_NAMES, "colour"]
    with pytest.raises(LabelsError, match=r"unknown column\(s\) colour"):
        read_labels_csv(_write(tmp_path, [[*_row("A", 1), "red"]], cols), SIZES)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LabelsError, match="not a readable CSV"):
        read_labels_csv(tmp_path / "empty.csv", SIZES)


@pytest.mark.slow
def test_train_cli_writes_a_version(
    tiny_beamtime, tiny_store, tmp_path, xrdmap, quick_train_conf, capsys
):
    conf = quick_train_conf(tmp_path)
    labels = tmp_path / "labels.csv"
    out = xrdmap(
        "draw-labels", tiny_beamtime.truth_dir, "--store", tiny_store, "--n", 60, "--out", labels
    )
    assert out.returncode == 0, out.stderr
    registry = tmp_path / "registry"
    out = xrdmap("--conf", conf, "train", tiny_store, "--labels", labels, "--registry", registry)
    assert out.returncode == 0, out.stderr
    assert "Trained model v0001" in out.stdout and "alpha-FeOOH" in out.stdout
    card = json.loads((registry / "v0001" / "card.json").read_text())
    assert card["labels"]["count"] == 60 and card["labels"]["sources"] == ["simulated ground truth"]
    assert len(card["split"]["train"]) == 35 and len(card["split"]["test"]) == 12
    assert set(card["test_metrics"]) == set(CLASS_NAMES)
    assert card["software"]["keras"] and card["model_sha256"]
    assert card["pretraining"]["synthetic_patterns"] == 400
    from app.cli import main  # the same command in this process: Keras is loaded already

    argv = ["--conf", conf, "train", tiny_store, "--labels", labels, "--registry", registry]
    assert main([str(a) for a in [*argv, "--seed", 1]]) == 0
    assert "Trained model v0002" in capsys.readouterr().out
    assert (registry / "v0001" / "card.json").read_text() == json.dumps(card, indent=2) + "\n"


def test_train_cli_refuses_bad_labels(tiny_store, tmp_path, xrdmap):
    path = _write(tmp_path, [_row("A_urban", 999)])
    out = xrdmap("train", tiny_store, "--labels", path, "--registry", tmp_path / "r")
    assert out.returncode == 2
    assert out.stderr.strip().endswith("line 2: point: 999 not in 0..319")
    assert not (tmp_path / "r").exists()
