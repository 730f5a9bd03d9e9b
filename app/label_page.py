"""A small local web page to label a relabel queue (``xrdmap label-ui``).

One card per queued point not yet labeled: its picture (pattern with reference lines,
place on the map), the model's confidences, one checkbox per class and the labeler's
name. Saving a card stores the answer through the core
(:func:`xrdmap.active.queue.label_queued_point`: checked like a CSV import, appended
to the store's labels as one batch); the page then shows the next points. The HTML is
in ``app/templates``; every value put into it is escaped. Served on localhost only by
default; no login: run it where the expert sits.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, quote

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from xrdmap.active.queue import (
    PICTURES,
    QUEUE_FILE,
    label_queued_point,
    pending_rows,
    read_queue,
)
from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import labeled_points
from xrdmap.labels import LabelsError

TEMPLATES = Path(__file__).parent / "templates"
_PAGE = Template((TEMPLATES / "label_page.html").read_text())
_CARD = Template((TEMPLATES / "label_card.html").read_text())
_PICTURE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def _card(row: pd.Series, labeler: str) -> str:
    conf = " · ".join(
        f"{c} {row[f'conf_{c}']:.2f}" for c in CLASS_NAMES if pd.notna(row.get(f"conf_{c}"))
    )
    boxes = "".join(
        f"<label><input type='checkbox' name='classes' value='{html.escape(c)}'> "
        f"{html.escape(c)}</label>"
        for c in CLASS_NAMES
    )
    picture = Path(str(row["picture"])).name
    esc = html.escape
    return _CARD.substitute(
        key=esc(f"{row['sample']}-{int(row['point'])}"),
        sample=esc(str(row["sample"])),
        point=int(row["point"]),
        reason=esc(str(row["reason"])),
        picture_url=quote(picture),
        model=esc(str(row["queried_by"]) or "none"),
        confidences=esc(conf) or "no confidences yet",
        boxes=boxes,
        labeler=esc(labeler),
    )


def create_app(store: str, queue_dir: Path, *, labeler: str = "") -> FastAPI:
    """The labeling app for ``queue_dir`` (a folder written by ``xrdmap query``)."""
    queue_path = Path(queue_dir) / QUEUE_FILE
    queue = read_queue(Path(queue_dir))
    app = FastAPI(title="xrdmap labeling")

    @app.get("/", response_class=HTMLResponse)
    def index(saved: str = "", error: str = "") -> HTMLResponse:
        todo = pending_rows(queue, labeled_points(store))
        notice = ""
        if saved:
            notice += f"<p class='message'>Saved {html.escape(saved)}.</p>"
        if error:
            notice += f"<p class='error'>{html.escape(error)}</p>"
        cards = "".join(_card(r, labeler) for _, r in todo.iterrows())
        return HTMLResponse(
            _PAGE.substitute(
                queue_path=html.escape(str(queue_path)),
                n_todo=len(todo),
                n_queued=len(queue),
                store=html.escape(store),
                notice=notice,
                cards=cards or "<p>All points labeled.</p>",
            )
        )

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
        try:
            label_queued_point(
                store,
                queue,
                sample=sample,
                point=point,
                classes=set(form.get("classes", [])),
                labeler=form.get("labeler", [""])[0].strip(),
                origin=f"label-ui {queue_path}",
            )
        except LabelsError as exc:
            return RedirectResponse(f"/?error={quote(str(exc))}", status_code=303)
        return RedirectResponse(f"/?saved={quote(f'{sample} point {point}')}", status_code=303)

    return app
