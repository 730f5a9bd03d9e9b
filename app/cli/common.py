"""What every command group shares: configuration paths, the Prefect session, output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from xrdmap.errors import InputError


@contextmanager
def prefect_session(verbose: bool) -> Iterator[None]:
    """Quiet terminal defaults set before Prefect configures its logging, and the API
    (a configured server, or one temporary local server) for the flows run inside.
    Without ``--verbose`` the command speaks for itself and Prefect's console stays
    silent; every log still reaches the API (the UI). Import the flows inside the
    block: Prefect reads these settings when it is first imported."""
    from flows.runtime import prefect_api, quiet_defaults

    console_level = "INFO" if verbose else "CRITICAL"
    quiet_defaults(console_level=console_level)
    with prefect_api(console_level=console_level):
        yield


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="show Prefect's logs")


def print_metrics(metrics: dict[str, dict]) -> None:
    """One line per class: accuracy, precision, recall, F1 and the confusion counts."""
    print(f"{'class':18} {'accuracy':>9} {'precision':>9} {'recall':>9} {'F1':>6}   TP  FP  FN  TN")
    for name, m in metrics.items():
        print(
            f"{name:18} {m['accuracy']:9.3f} {m['precision']:9.3f} {m['recall']:9.3f} "
            f"{m['f1']:6.3f} {m['tp']:4d}{m['fp']:4d}{m['fn']:4d}{m['tn']:4d}"
        )


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command; bad input is one line on stderr and exit status 2."""
    try:
        return args.func(args)
    except InputError as exc:
        print(f"xrdmap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrdmap {args.command}: interrupted", file=sys.stderr)
        return 130
