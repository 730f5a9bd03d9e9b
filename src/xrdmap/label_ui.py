"""A small local web page to label a relabel queue (``xrdmap label-ui``).

One card per queued point not yet labeled: its picture (pattern with reference lines,
place on the map), the model's confidences, one checkbox per class and the labeler's
name. Submitting a card checks it like a CSV import and appends it to the store's
labels (one batch per point, source "label-ui"); the page then shows the next points.
Served on localhost only by default; no login: run it where the expert sits.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import import_labels, labeled_points
from xrdmap.labels import LabelsError, check_labels_table
from xrdmap.relabel_queue import PICTURES, QUEUE_FILE
from xrdmap.store import sample_sizes

_PICTURE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin-bottom: 1.5em; }
.card img { max-width: 100%; }
.classes label { display: inline-block; min-width: 11em; margin: 0.2em 0; }
.conf { color: #555; font-size: 0.85em; }
.message { padding: 0.6em; background: #e8f4e8; border: 1px solid #9c9; }
.error { padding: 0.6em; background: #fbe9e9; border: 1px solid #c99; }
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def create_app(store: str, queue_dir: Path, *, labeler: str = "") -> FastAPI:
    """The labeling app for ``queue_dir`` (a folder written by ``xrdmap query``)."""
    queue_path = Path(queue_dir) / QUEUE_FILE
    queue = pd.read_csv(queue_path, dtype={"sample": str, "queried_by": str})
    sizes = sample_sizes(store)
    app = FastAPI(title="xrdmap labeling")

    def pending() -> pd.DataFrame:
        keys = labeled_points(store)
        todo = [(s, int(p)) not in keys for s, p in zip(queue["sample"], queue["point"],
                                                         strict=True)]  # fmt: skip
        return queue[todo]

    def card(row) -> str:
        conf = " · ".join(
            f"{c} {row[f'conf_{c}']:.2f}" for c in CLASS_NAMES if pd.notna(row.get(f"conf_{c}"))
        )
        boxes = "".join(
            f"<label><input type='checkbox' name='classes' value='{html.escape(c)}'> "
            f"{html.escape(c)}</label>"
            for c in CLASS_NAMES
        )
        picture = Path(str(row["picture"])).name
        key = f"{row['sample']}-{int(row['point'])}"
        return (
            f"<div class='card' id='{html.escape(key)}'>"
            f"<h3>{html.escape(str(row['sample']))} point {int(row['point'])}</h3>"
            f"<p>{html.escape(str(row['reason']))}</p>"
            f"<img src='/pictures/{quote(picture)}' alt='pattern of {html.escape(key)}'>"
            f"<p class='conf'>model {html.escape(str(row['queried_by']) or 'none')}: "
            f"{html.escape(conf) or 'no confidences yet'}</p>"
            f"<form method='post' action='/label'>"
            f"<input type='hidden' name='sample' value='{html.escape(str(row['sample']))}'>"
            f"<input type='hidden' name='point' value='{int(row['point'])}'>"
            f"<div class='classes'>{boxes}</div>"
            f"<p>Labeler: <input name='labeler' required value='{html.escape(labeler)}'> "
            f"<button type='submit'>Save label</button> (no box checked = none of the "
            f"classes)</p></form></div>"
        )

    @app.get("/", response_class=HTMLResponse)
    def index(saved: str = "", error: str = "") -> HTMLResponse:
        todo = pending()
        head = (
            f"<h1>Relabel queue: {html.escape(str(queue_path))}</h1>"
            f"<p>{len(todo)} of {len(queue)} points still to label; labels go to "
            f"{html.escape(store)}.</p>"
        )
        if saved:
            head += f"<p class='message'>Saved {html.escape(saved)}.</p>"
        if error:
            head += f"<p class='error'>{html.escape(error)}</p>"
        cards = "".join(card(r) for _, r in todo.iterrows()) or "<p>All points labeled.</p>"
        return _page("xrdmap labeling", head + cards)

    @app.get("/pictures/{name}")
    def picture(name: str) -> FileResponse:
        path = Path(queue_dir) / PICTURES / name
        if not _PICTURE_NAME.match(name) or not path.is_file():
            raise HTTPException(status_code=404, detail="no such picture")
        return FileResponse(path, media_type="image/png")

    @app.post("/label")
    async def label(request: Request) -> RedirectResponse:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
        sample = form.get("sample", [""])[0]
        point = form.get("point", [""])[0]
        who = form.get("labeler", [""])[0].strip()
        chosen = set(form.get("classes", []))
        try:
            queued = queue[(queue["sample"] == sample) & (queue["point"].astype(str) == point)]
            if queued.empty:
                raise LabelsError(f"point {point} of {sample} is not in this queue")
            if not who:
                raise LabelsError("labeler: give your name")
            unknown = chosen - set(CLASS_NAMES)
            if unknown:
                raise LabelsError(f"unknown class(es) {', '.join(sorted(unknown))}")
            row = {"sample": sample, "point": int(point),
                   **{c: int(c in chosen) for c in CLASS_NAMES}, "labeler": who,
                   "time": datetime.now(UTC).isoformat(timespec="seconds"),
                   "queried_by": str(queued["queried_by"].fillna("").iloc[0])}  # fmt: skip
            table = check_labels_table(
                pd.DataFrame([row]), sizes, origin="label-ui", source="label-ui"
            )
            import_labels(store, table, origin=f"label-ui {queue_path}")
        except LabelsError as exc:
            return RedirectResponse(f"/?error={quote(str(exc))}", status_code=303)
        return RedirectResponse(f"/?saved={quote(f'{sample} point {point}')}", status_code=303)

    return app
