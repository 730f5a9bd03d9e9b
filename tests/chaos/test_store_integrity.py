"""Chaos: crashes, concurrent writers and replaced inputs never corrupt a store or mix
two acquisitions (issue 14, items 1-3 and 6)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import load_process
from xrdmap.errors import StoreError
from xrdmap.evaluation import evaluate_store
from xrdmap.ingest import process_chunk
from xrdmap.label_store import import_labels, stored_labels
from xrdmap.labels import read_labels_csv
from xrdmap.locks import WRITE, store_lock
from xrdmap.plan import plan_beamtime
from xrdmap.store import (
    CLASS_COORDINATE,
    create_confidences,
    has_confidences,
    latest_predicted,
    open_store,
    publish_confidences,
    read_confidences,
    sample_sizes,
    write_confidences,
)


@pytest.fixture
def beamtime(tiny_beamtime, tmp_path):
    """A copy of the tiny beamtime (copy2 keeps the files' times, as a move does)."""
    shutil.copytree(tiny_beamtime.beamtime_dir, tmp_path / "bt")
    return tmp_path / "bt"


@pytest.fixture
def cfg():
    """Chunks of 100 frames: several per sample, so a run can stop between them."""
    return load_process().model_copy(update={"chunk_frames": 100})


def _labels_csv(path, sample, points):
    rows = [[sample, p, *([1] + [0] * (len(CLASS_NAMES) - 1))] for p in points]
    pd.DataFrame(rows, columns=["sample", "point", *CLASS_NAMES]).to_csv(path, index=False)
    return path


def test_concurrent_label_imports_keep_every_label(fresh_store, tmp_path):
    """Six importers at once (real processes): every file's labels are kept, each in
    its own committed batch, and the table stays readable."""
    files = [
        _labels_csv(tmp_path / f"{k}.csv", "A_urban", range(10 * k, 10 * k + 10)) for k in range(6)
    ]
    code = textwrap.dedent("""
        import sys
        from xrdmap.label_store import import_labels
        from xrdmap.labels import read_labels_csv
        from xrdmap.store import sample_sizes
        store, path = sys.argv[1], sys.argv[2]
        table = read_labels_csv(path, sample_sizes(store))
        print(import_labels(store, table, origin=path).batch)
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(fresh_store), str(f)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    batches = {out.strip() for out, _ in outputs}
    assert len(batches) == 6  # six distinct batch names
    table = stored_labels(str(fresh_store))
    assert sorted(table["point"]) == list(range(60))
    assert set(table["batch"]) == batches


def test_a_killed_prediction_leaves_the_published_version_untouched(fresh_store):
    store = str(fresh_store)
    attrs = {"classes": list(CLASS_NAMES)}
    name, regions = create_confidences(store, "v0001", attrs, chunk=100_000)
    for r in regions:
        write_confidences(store, r, name, np.full((r.stop - r.start, 9), 0.9, np.float32))
    publish_confidences(store, "v0001", name)
    # the same version predicted again, killed before publication: half written
    again, regions = create_confidences(store, "v0001", attrs, chunk=100_000)
    assert again != name
    write_confidences(store, regions[0], again, np.zeros((regions[0].stop, 9), np.float32))
    root = open_store(store)
    assert latest_predicted(store) == "v0001"
    assert (read_confidences(root, "A_urban", "v0001") == np.float32(0.9)).all()
    # a new version killed before publication: readers refuse it, latest stays
    new, regions = create_confidences(store, "v0002", attrs, chunk=100_000)
    assert not has_confidences(root, "v0002") and latest_predicted(store) == "v0001"
    with pytest.raises(StoreError, match="no complete confidences of model v0002"):
        read_confidences(root, "A_urban", "v0002")
    labels = pd.DataFrame([{"sample": "A_urban", "point": 3, **dict.fromkeys(CLASS_NAMES, 0)}])
    with pytest.raises(StoreError, match="no confidences of model v0002"):
        evaluate_store(store, labels, "v0002")
    # the re-run removes the killed run's arrays, publishes, removes the replaced ones
    final, regions = create_confidences(store, "v0001", attrs, chunk=100_000)
    for r in regions:
        write_confidences(store, r, final, np.full((r.stop - r.start, 9), 0.1, np.float32))
    publish_confidences(store, "v0001", final)
    group = open_store(store)["samples/A_urban/confidence"]
    versions = set(group.array_keys()) - {CLASS_COORDINATE}
    assert versions == {final, new}  # v0002 run left for its re-run
    assert (read_confidences(open_store(store), "A_urban", "v0001") == np.float32(0.1)).all()


KILL_AT = textwrap.dedent("""
    import importlib, os, runpy, signal, sys
    module, name = sys.argv[1].rsplit(".", 1)
    nth = int(sys.argv[2])
    target = importlib.import_module(module)
    real, calls = getattr(target, name), []
    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(target, name, killed)
    sys.argv = sys.argv[3:]
    exec(sys.argv[0])
""")


def _killed_at(target: str, nth: int, code: str, *args) -> subprocess.CompletedProcess:
    """Run ``code`` in a new process that dies by SIGKILL on the ``nth`` call of
    ``target`` (``package.module.function``): no cleanup, no finally, as `kill -9`."""
    return subprocess.run(
        [sys.executable, "-c", KILL_AT, target, str(nth), textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


IMPORT = """
    import sys
    from xrdmap.label_store import import_labels
    from xrdmap.labels import read_labels_csv
    from xrdmap.store import sample_sizes
    store, path = sys.argv[1], sys.argv[2]
    import_labels(store, read_labels_csv(path, sample_sizes(store)), origin=path)
"""


def test_a_label_import_killed_before_its_commit_loses_nothing(fresh_store, tmp_path):
    """kill -9 after the batch's arrays are written, before the table lists it: the
    table keeps what it had, the store's locks are free, the next import commits."""
    store = str(fresh_store)
    first = _labels_csv(tmp_path / "first.csv", "A_urban", [1, 2, 3])
    import_labels(store, read_labels_csv(first, sample_sizes(store)), origin="first")
    second = _labels_csv(tmp_path / "second.csv", "A_urban", [7, 8])
    killed = _killed_at("xrdmap.label_store.labels_sha256", 1, IMPORT, store, second)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    group = open_store(store)["labels"]
    assert len(list(group.group_keys())) == 2  # the killed batch's arrays are there
    assert stored_labels(store)["point"].tolist() == [1, 2, 3]  # but not listed
    report = import_labels(store, read_labels_csv(second, sample_sizes(store)), origin="second")
    assert report.added == 2
    assert sorted(stored_labels(store)["point"]) == [1, 2, 3, 7, 8]
    assert len(list(open_store(store)["labels"].group_keys())) == 2


PREDICT = """
    import sys
    import numpy as np
    from xrdmap.store import create_confidences, publish_confidences, write_confidences
    store, value = sys.argv[1], float(sys.argv[2])
    name, regions = create_confidences(store, "v0001", {"classes": list("abcdefghi")}, chunk=100)
    for region in regions:
        values = np.full((region.stop - region.start, 9), value, np.float32)
        write_confidences(store, region, name, values)
    publish_confidences(store, "v0001", name)
"""


def test_a_prediction_killed_midway_leaves_the_published_version_untouched(fresh_store):
    """kill -9 in the middle of re-predicting a published version, then again just
    before publication: readers see the published confidences every time."""
    store = str(fresh_store)
    done = _killed_at("xrdmap.store.write_confidences", 10**9, PREDICT, store, 0.9)
    assert done.returncode == 0, done.stderr
    for target, nth in (
        ("xrdmap.store.write_confidences", 3),
        ("xrdmap.store.publish_confidences", 1),
    ):
        killed = _killed_at(target, nth, PREDICT, store, 0.1)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert latest_predicted(store) == "v0001"
        assert (read_confidences(open_store(store), "A_urban", "v0001") == np.float32(0.9)).all()
    rerun = _killed_at("xrdmap.store.write_confidences", 10**9, PREDICT, store, 0.1)
    assert rerun.returncode == 0, rerun.stderr
    assert (read_confidences(open_store(store), "A_urban", "v0001") == np.float32(0.1)).all()
    group = open_store(store)["samples/A_urban/confidence"]
    assert len(set(group.array_keys()) - {CLASS_COORDINATE}) == 1  # the killed runs' are gone


def test_resume_refuses_frames_of_another_acquisition(beamtime, cfg, tmp_path, process_core):
    store = tmp_path / "s.zarr"
    process_core(beamtime, store, cfg, chunks=2)  # then killed
    frame = beamtime / "A_urban" / "frames" / "A_urban_000002.cbf"
    other = beamtime / "A_urban" / "frames" / "A_urban_000200.cbf"
    frame.write_bytes(other.read_bytes())  # same names, another acquisition's frames
    with pytest.raises(StoreError, match=r"A_urban points 0\.\.99: their frame files changed"):
        plan_beamtime(str(beamtime), str(store), cfg)


def test_a_finished_store_needs_no_run_unless_its_frames_changed(
    beamtime, cfg, tmp_path, process_core
):
    """`xrdmap process` on a finished store answers without starting a flow: only when
    every chunk is done, and never past frame files changed since they were ingested."""
    from xrdmap.plan import nothing_to_do, preflight

    store = str(tmp_path / "s.zarr")

    def finished() -> bool:
        return nothing_to_do(store, preflight(str(beamtime), store, cfg), cfg)

    assert not finished()  # no store yet
    process_core(beamtime, store, cfg, chunks=2)
    assert not finished()
    process_core(beamtime, store, cfg)
    assert finished()
    frame = beamtime / "B_marine" / "frames" / "B_marine_000002.cbf"
    frame.write_bytes((beamtime / "B_marine" / "frames" / "B_marine_000300.cbf").read_bytes())
    with pytest.raises(StoreError, match=r"B_marine points 0\.\.99: their frame files changed"):
        finished()


def test_resume_refuses_another_beamtime_json_and_says_what_differs(
    beamtime, cfg, tmp_path, process_core
):
    store = tmp_path / "s.zarr"
    process_core(beamtime, store, cfg, chunks=1)
    meta = json.loads((beamtime / "beamtime.json").read_text())
    meta["start_time"] = "2031-01-01T00:00:00"
    (beamtime / "beamtime.json").write_text(json.dumps(meta))
    with pytest.raises(
        StoreError,
        match=r"settings \(beamtime.json: sha256 [0-9a-f]{8} -> sha256 [0-9a-f]{8}\)",
    ):
        plan_beamtime(str(beamtime), str(store), cfg)
    other = cfg.model_copy(update={"integration": cfg.integration.model_copy(update={"npt": 280})})
    plan_beamtime(str(beamtime), str(tmp_path / "fresh.zarr"), cfg)
    with pytest.raises(StoreError, match=r"process.integration.npt: 300 -> 280"):
        plan_beamtime(str(beamtime), str(tmp_path / "fresh.zarr"), other)


def test_a_moved_beamtime_resumes(beamtime, cfg, tmp_path, process_core):
    store = tmp_path / "s.zarr"
    process_core(beamtime, store, cfg, chunks=3)
    moved = tmp_path / "elsewhere" / "bt"
    moved.parent.mkdir()
    beamtime.rename(moved)
    plan = plan_beamtime(str(moved), str(store), cfg)
    assert len(plan.done) == 3 and len(plan.todo) == len(plan.regions) - 3


def test_one_writer_at_a_time_and_a_killed_holder_frees_the_store(fresh_store, lock_holder):
    store = str(fresh_store)
    with lock_holder(store) as holder:
        busy = rf"busy: write lock held by pid {holder.pid} on "
        with pytest.raises(StoreError, match=busy), store_lock(store, WRITE):
            pass
    deadline = time.monotonic() + 10
    while True:  # the kernel releases the dead holder's lock
        try:
            with store_lock(store, WRITE):
                break
        except StoreError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_a_second_process_run_on_a_busy_store_is_refused(
    prefect_server, beamtime, cfg, tmp_path, lock_holder
):
    """Two `process` runs on one store: the second is refused, naming the first."""
    from flows.process_beamtime import run_process_beamtime

    store = str(tmp_path / "s.zarr")
    with (
        lock_holder(store) as first,
        pytest.raises(StoreError, match=rf"busy: write lock held by pid {first.pid}"),
    ):
        run_process_beamtime(str(beamtime), store, cfg)
    assert not (tmp_path / "s.zarr").exists()  # the refused run wrote nothing


def test_a_sample_named_like_the_stores_own_groups_is_just_a_sample(
    beamtime, cfg, tmp_path, process_core
):
    """Samples live under samples/: one named "labels" neither breaks nor meets the
    labels table."""
    (beamtime / "A_urban").rename(beamtime / "labels")
    meta = json.loads((beamtime / "beamtime.json").read_text())
    meta["samples"] = ["labels", "B_marine"]
    (beamtime / "beamtime.json").write_text(json.dumps(meta))
    store = tmp_path / "s.zarr"
    process_core(beamtime, store, cfg)
    path = _labels_csv(tmp_path / "l.csv", "labels", [1, 2])
    import_labels(str(store), read_labels_csv(path, sample_sizes(str(store))), origin="t")
    assert stored_labels(str(store))["sample"].tolist() == ["labels", "labels"]
    assert open_store(str(store))["samples/labels/status"].shape == (320,)


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_quarantined_frames_are_read_again_once_restored(
    beamtime, cfg, tiny_store, tmp_path, process_core
):
    """A frame file missing at ingestion is quarantined; restored, a plain re-run
    refuses (the chunk's files changed) and says how to retry; the retry reads only
    that frame and keeps the rest; an ok file changed since is still refused."""
    victim = next((beamtime / "A_urban" / "frames").glob("*_000105.cbf"))
    kept = victim.read_bytes()
    victim.unlink()
    store = tmp_path / "s.zarr"
    process_core(beamtime, store, cfg)
    status = open_store(str(store))["samples/A_urban/status"]
    assert status[104] == 1 and (status[:104] == 0).all()
    victim.write_bytes(kept)
    with pytest.raises(StoreError, match=r"points 100..199: .* --retry-quarantined reads them"):
        plan_beamtime(str(beamtime), str(store), cfg)
    plan = plan_beamtime(str(beamtime), str(store), cfg, retry_quarantined=True)
    assert plan.retry == {("A_urban", 1): (104,)}
    (chunk,) = plan.todo
    report = process_chunk(str(store), chunk, cfg)
    assert report.n_frames == report.retried == 1 and not report.quarantined
    root = open_store(str(store))
    assert (root["samples/A_urban/status"][:] == 0).all()
    np.testing.assert_array_equal(
        root["samples/A_urban/patterns"][:], open_store(tiny_store)["samples/A_urban/patterns"][:]
    )
    assert plan_beamtime(str(beamtime), str(store), cfg).todo == []  # resumes cleanly now
    victim.unlink()  # quarantined again in a new store, then an ok file of its chunk changes
    process_core(beamtime, tmp_path / "t.zarr", cfg)
    victim.write_bytes(kept)
    other = next((beamtime / "A_urban" / "frames").glob("*_000110.cbf"))
    os.utime(other, ns=(other.stat().st_atime_ns, other.stat().st_mtime_ns + 10**9))
    with pytest.raises(StoreError, match=r"points 100..199: the frame files of its points"):
        plan_beamtime(str(beamtime), str(tmp_path / "t.zarr"), cfg, retry_quarantined=True)
