"""Files written for people and other programs (maps, reports, exports): each replaced
whole, so that nobody reads one half written.

A figure or table is written to a hidden file beside its place, then renamed over it in
one step: a reader (a browser, the Prefect UI, a second command) sees the previous file
or the new one, never a part; two commands that write the same map at once leave one of
their two whole files; a command killed while writing leaves the previous file (and its
hidden part, named after it and the writer's process).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """A path to write ``path``'s new content to (same folder and suffix, so that a
    writer that goes by the suffix chooses the same format); renamed over ``path``
    once the block has finished, removed if it fails."""
    path = Path(path)
    part = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.part{path.suffix}")
    try:
        yield part
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
