"""A small local web page to label a relabel queue (``xrdmap label-ui``).

One card per queued point not yet labeled: its picture (pattern with reference lines,
place on the map), the model's confidences, one checkbox per class and the labeler's
name. Saving a card stores the answer through the core
(:func:`xrdmap.active.queue.label_queued_point`: checked like a CSV import, appended
to the store's labels as one batch); the page then shows the next points. The HTML is
in ``app/templates``; every value put into it is escaped. Served on localhost only by
default; no login: run it where the expert sits.

Against other sites and other hosts: a save needs the page's own random token (a form
posted from another site has none), an ``Origin`` other than the page's own is
refused, requests must name the host the page is served on (no DNS rebinding), and a
body over :data:`MAX_BODY_BYTES` or not UTF-8 is refused before it is read further.
"""

from __future__ import annotations

import html
import re
import secrets
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, quote

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

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
#: A saved card is a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
#: Host names the page answers to, beside the one it is served on.
LOCAL_HOSTS = ("127.0.0.1", "localhost")


async def _form(request: Request) -> dict[str, list[str]]:
    """The posted form, at most :data:`MAX_BODY_BYTES`, UTF-8 (else 413 or 400)."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail="request body too large")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail="request body too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="the form is not UTF-8") from None


def _same_origin(request: Request) -> None:
    """Refuse a request sent by a page of another site (403)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        raise HTTPException(status_code=403, detail="cross-site request refused")


def _card(row: pd.Series, labeler: str, token: str) -> str:
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
        token=token,
    )


def create_app(
    store: str, queue_dir: Path, *, labeler: str = "", host: str = "127.0.0.1"
) -> FastAPI:
    """The labeling app for ``queue_dir`` (a folder written by ``xrdmap query``),
    answering requests for ``host`` (and localhost) only."""
    queue_path = Path(queue_dir) / QUEUE_FILE
    queue = read_queue(Path(queue_dir))
    token = secrets.token_urlsafe(32)
    app = FastAPI(title="xrdmap labeling")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted({host, *LOCAL_HOSTS}))

    @app.get("/", response_class=HTMLResponse)
    def index(saved: str = "", error: str = "") -> HTMLResponse:
        todo = pending_rows(queue, labeled_points(store))
        notice = ""
        if saved:
            notice += f"<p class='message'>Saved {html.escape(saved)}.</p>"
        if error:
            notice += f"<p class='error'>{html.escape(error)}</p>"
        cards = "".join(_card(r, labeler, token) for _, r in todo.iterrows())
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
        _same_origin(request)
        form = await _form(request)
        if not secrets.compare_digest(form.get("csrf", [""])[0], token):
            raise HTTPException(status_code=403, detail="missing or wrong form token")
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
