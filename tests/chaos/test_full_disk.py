"""Chaos: a full disk gives one line naming the file, and loses nothing stored before
(issue 14, item 9). Needs a small tmpfs: root and mount(8), else skipped."""

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES


@pytest.fixture
def small_disk(tmp_path):
    mount = shutil.which("mount")
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("a full disk is made with a 256 kB tmpfs: needs root and mount")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", str(point)], check=False)


def test_labels_import_on_a_full_disk_is_one_line_and_keeps_what_was_stored(
    small_disk, tmp_path, xrdmap
):
    store = small_disk / "s.zarr"
    root = zarr.open_group(store, mode="w")
    root.create_group("A").create_array("status", data=np.zeros(50, np.uint8))
    root.attrs["xrdmap"] = {"samples": ["A"]}
    labels = tmp_path / "labels.csv"
    rows = [["A", p, 1, *[0] * (len(CLASS_NAMES) - 1)] for p in range(5)]
    pd.DataFrame(rows, columns=["sample", "point", *CLASS_NAMES]).to_csv(labels, index=False)
    assert xrdmap("labels", "import", store, labels).returncode == 0
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill what is left
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    more = tmp_path / "more.csv"
    rows = [["A", p, 0, 1, *[0] * (len(CLASS_NAMES) - 2)] for p in range(5, 40)]
    pd.DataFrame(rows, columns=["sample", "point", *CLASS_NAMES]).to_csv(more, index=False)
    out = xrdmap("labels", "import", store, more)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        f"{store}: cannot write: No space left on device"
    ), out.stderr
    filler.unlink()
    export = xrdmap("labels", "export", store, "--out", tmp_path / "out.csv")
    assert export.returncode == 0, export.stderr
    assert pd.read_csv(tmp_path / "out.csv")["point"].tolist() == [0, 1, 2, 3, 4]
