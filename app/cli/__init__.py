"""The ``xrdmap`` command line: one entry point, one module per command group.

- :mod:`app.cli.beamtime`: ``simulate``, ``process``
- :mod:`app.cli.labels`: ``labels import|export``, ``label-ui``, ``draw-labels``
- :mod:`app.cli.model`: ``train``, ``predict``, ``evaluate``
- :mod:`app.cli.phases`: ``fit``, ``report``
- :mod:`app.cli.active_learning`: ``query``, ``al-rounds``

Handlers parse, call the core (or a flow) and print; the work is done elsewhere.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from pathlib import Path

from app.cli import active_learning, beamtime, labels, model, phases
from app.cli.common import run_command
from xrdmap import __version__

GROUPS = (beamtime, labels, model, phases, active_learning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrdmap",
        description="Synchrotron XRD mapping beamtimes to phase maps.",
    )
    parser.add_argument("--version", action="version", version=f"xrdmap {__version__}")
    parser.add_argument(
        "--conf",
        type=Path,
        default=None,
        metavar="DIR",
        help="configuration folder (default: the project's conf/)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command of ``argv`` (default: this process's command line)."""
    args = build_parser().parse_args(argv)
    code = run_command(args)
    if argv is None:
        # The process ends next. Its last garbage collection would walk every object
        # TensorFlow and Prefect made (1 s after predict, measured): leave them to the OS.
        gc.freeze()
    return code
