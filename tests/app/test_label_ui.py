"""The labeling web page: served by FastAPI, driven by a real headless Chromium."""

import re
import shutil
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import stored_labels

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def queued(fresh_store, phases, tmp_path):
    from xrdmap.active.query import query_points
    from xrdmap.active.queue import write_queue
    from xrdmap.phases import store_reference_lines

    store = fresh_store
    query = query_points(str(store), 3, seed=0)
    lines = store_reference_lines(str(store), phases)
    write_queue(str(store), query.table, query.version, tmp_path / "queue", lines)
    return str(store), tmp_path / "queue", query.table


def test_other_sites_hosts_and_bodies_are_refused(queued):
    """Cross-site posts, DNS rebinding, huge or non-UTF-8 bodies: refused, nothing kept."""
    from app.label_page import create_app

    store, queue_dir, table = queued
    client = TestClient(create_app(store, queue_dir), base_url="http://127.0.0.1:8765")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
    form = {
        "sample": table["sample"].iloc[0],
        "point": int(table["point"].iloc[0]),
        "labeler": "x",
        "classes": "Fe3O4",
    }
    assert client.post("/label", data=form).status_code == 403  # no token: another site
    other = {"origin": "http://evil.example"}
    assert client.post("/label", data={**form, "csrf": token}, headers=other).status_code == 403
    rebound = TestClient(create_app(store, queue_dir), base_url="http://evil.example:8765")
    assert rebound.get("/").status_code == 400  # a host name the page is not served on
    huge = client.post(
        "/label",
        content=b"a=" + b"x" * 10_000_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    latin = client.post(
        "/label",
        content=b"sample=\xe9\xff&csrf=" + token.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert latin.status_code == 400
    assert stored_labels(store).empty


def test_bad_submissions_are_refused_and_pictures_stay_inside(queued):
    from app.label_page import create_app

    store, queue_dir, table = queued
    client = TestClient(create_app(store, queue_dir), base_url="http://127.0.0.1:8765")
    page = client.get("/")
    assert page.status_code == 200 and "3 of 3 points still to label" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    sample, point = table["sample"].iloc[0], int(table["point"].iloc[0])
    form = {"sample": sample, "point": "99999", "labeler": "x", "csrf": token}
    bad = client.post("/label", data=form)
    assert "is not in this queue" in bad.text and stored_labels(store).empty
    bad = client.post("/label", data={**form, "point": point, "labeler": ""})
    assert "labeler: give your name" in bad.text
    bad = client.post("/label", data={**form, "point": point, "classes": "Rust"})
    assert "unknown class(es) Rust" in bad.text and stored_labels(store).empty
    assert client.get("/pictures/..%2F..%2Fqueue.csv").status_code == 404
    name = table["sample"].iloc[0] + f"_{point}.png"
    assert client.get(f"/pictures/{name}").headers["content-type"] == "image/png"


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_a_label_submitted_in_chromium_lands_in_the_labels_table(queued):
    from playwright.sync_api import sync_playwright

    from app.label_page import create_app

    store, queue_dir, table = queued
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(store, queue_dir), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    sample, point = table["sample"].iloc[0], int(table["point"].iloc[0])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            card = page.locator(f"#{sample}-{point}")
            assert card.locator("img").evaluate("img => img.naturalWidth") > 500
            card.locator("input[value='Fe3O4']").check()
            card.locator("input[value='alpha-FeOOH']").check()
            card.locator("input[name='labeler']").fill("jdoe")
            card.locator("button").click()
            page.wait_for_selector(".message")
            assert f"Saved {sample} point {point}" in page.inner_text(".message")
            assert "2 of 3 points still to label" in page.inner_text("body")
            assert page.locator(f"#{sample}-{point}").count() == 0
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    labels = stored_labels(store)
    assert len(labels) == 1
    row = labels.iloc[0]
    assert (row["sample"], row["point"], row["labeler"]) == (sample, point, "jdoe")
    assert row["source"] == "label-ui"
    assert [row[c] for c in CLASS_NAMES] == [
        int(c in ("Fe3O4", "alpha-FeOOH")) for c in CLASS_NAMES
    ]
