"""The active-learning rounds flow: waits for the expert, resumes, retrains, re-predicts."""

import json
import threading
import time

import pandas as pd
import pytest
import zarr

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import DaskConfig

pytestmark = pytest.mark.slow


def test_rounds_wait_for_labels_resume_and_retrain(
    prefect_server, fresh_store, tiny_beamtime, tmp_path, monkeypatch, quick_train_conf
):
    from flows.active_learning import active_learning
    from tasks.active_learning import LabelsTimeoutError
    from xrdmap.label_store import import_labels
    from xrdmap.labels import read_labels_csv

    store = str(fresh_store)
    registry = str(tmp_path / "registry")
    args = {
        "rounds": 1,
        "n": 8,
        "conf_dir": str(quick_train_conf(tmp_path)),
        "poll_s": 0.2,
        "dask": DaskConfig(n_workers=1),
    }
    monkeypatch.setenv("XRDMAP_FAILURE_LOG", str(tmp_path / "failures.jsonl"))
    with pytest.raises(LabelsTimeoutError, match="0 of 8 points labeled"):
        active_learning(store, registry, timeout_s=1.0, **args)
    (failure,) = [json.loads(line) for line in (tmp_path / "failures.jsonl").open()]
    assert failure["flow"] == "active-learning" and failure["state"] == "FAILED"
    assert "0 of 8 points labeled" in failure["message"]
    assert failure["parameters"]["store"] == store
    queue_csv = tmp_path / "copy.zarr-queue" / "cold-start" / "queue.csv"
    assert queue_csv.is_file() and not (tmp_path / "registry").exists()

    result = {}

    def run():
        try:
            result["records"] = active_learning(store, registry, timeout_s=300, **args)
        except Exception as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(3)
    assert thread.is_alive() and not result  # waiting for the expert
    queue = pd.read_csv(queue_csv)
    truth = {s: pd.read_csv(tiny_beamtime.truth_dir / f"{s}.csv") for s in set(queue["sample"])}
    for i, row in queue.iterrows():
        for c in CLASS_NAMES:
            queue.loc[i, c] = truth[row["sample"]].loc[row["point"], c]
    queue.to_csv(queue_csv, index=False)
    sizes = {"A_urban": 320, "B_marine": 411}
    import_labels(store, read_labels_csv(queue_csv, sizes), origin=str(queue_csv))
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    (record,) = result["records"]
    assert (record.round, record.labels, record.model, record.queried_by) == (1, 8, "v0001", "")
    assert 0 <= record.unsure_share <= 1
    root = zarr.open_group(store, mode="r")
    assert root["samples/A_urban/confidence"].attrs["latest"] == "v0001"
    rounds = pd.read_csv(tmp_path / "copy.zarr-queue" / "rounds.csv")
    assert rounds["model"].tolist() == ["v0001"] and rounds["labels"].tolist() == [8]


def test_rounds_predict_on_the_configured_scheduler(
    prefect_server, fresh_store, tiny_beamtime, tmp_path, quick_train_conf, dask_scheduler
):
    """The rounds take the whole Dask configuration: with a scheduler address, the
    re-prediction runs on that scheduler's workers (a local cluster used to be built)."""
    from flows.active_learning import active_learning
    from xrdmap.label_store import import_labels
    from xrdmap.labels import read_labels_csv
    from xrdmap.simulate.expert import draw_expert_labels

    def predicted_here() -> bool:
        import sys

        return "models.predict" in sys.modules

    store = str(fresh_store)
    sizes = {"A_urban": 320, "B_marine": 411}
    labels = draw_expert_labels(tiny_beamtime.truth_dir, list(sizes), 40, seed=3)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    import_labels(store, read_labels_csv(tmp_path / "labels.csv", sizes), origin="test")
    (record,) = active_learning(
        store,
        str(tmp_path / "registry"),
        n=4,
        conf_dir=str(quick_train_conf(tmp_path)),
        min_labels=0,
        dask=DaskConfig(address=dask_scheduler.address),
    )
    assert record.model == "v0001" and record.labels == 40
    assert any(dask_scheduler.client.run(predicted_here).values())
    root = zarr.open_group(store, mode="r")
    assert root["samples/B_marine/confidence"].attrs["latest"] == "v0001"
