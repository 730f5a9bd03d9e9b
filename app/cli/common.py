"""What every command group shares: configuration paths, the Prefect session, output."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xrdmap.errors import InputError


@contextmanager
def prefect_session(verbose: bool, *preload: str) -> Iterator[None]:
    """Quiet terminal defaults set before Prefect configures its logging, and the API
    (a configured server, or one temporary local server) for the flows run inside.
    Without ``--verbose`` the command speaks for itself and Prefect's console stays
    silent; every log still reaches the API (the UI). Import the flows inside the
    block: Prefect reads these settings when it is first imported. ``preload``: the
    modules the block will import (its flows; the network where it predicts in this
    process), imported while a temporary server starts instead of after it."""
    from flows.runtime import prefect_api, quiet_defaults

    console_level = "INFO" if verbose else "CRITICAL"
    # the command line decides (--verbose), whatever an outer process left in the env
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = console_level
    quiet_defaults(console_level=console_level)
    with prefect_api(console_level=console_level, preload=preload):
        yield


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above 0 (0 workers, 0 points or 0 rounds
    had run with a default, or started and ended in a traceback)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: not a {'whole ' if kind is int else ''}number"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be above 0")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def make_folder(path: Path, option: str, *, parent: bool = False) -> None:
    """Make the output folder ``path`` (with ``parent``: the folder of the file or new
    folder ``path``) named on the command line, before any work: one that cannot be
    made is a one-line error now, not after a whole prediction or query."""
    folder = path.parent if parent else path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{option} {path}: {folder} is a file, not a folder") from None
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot make {folder} ({exc.strerror})") from None


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="show Prefect's logs")


def print_metrics(metrics: dict[str, dict]) -> None:
    """One line per class: accuracy, balanced accuracy, precision, recall, F1, expected
    calibration error and the confusion counts; a ratio with nothing to count (no
    positive predicted, none labeled) shows as "-"."""
    print(
        f"{'class':18} {'accuracy':>9} {'bal.acc.':>9} {'precision':>9} {'recall':>9} "
        f"{'F1':>6} {'ECE':>6}    TP    FP    FN    TN"
    )
    for name, m in metrics.items():
        tp, fp, fn = m["tp"], m["fp"], m["fn"]
        precision = f"{m['precision']:9.3f}" if tp + fp else f"{'-':>9}"
        recall = f"{m['recall']:9.3f}" if tp + fn else f"{'-':>9}"
        f1 = f"{m['f1']:6.3f}" if tp + fp + fn else f"{'-':>6}"
        print(
            f"{name:18} {m['accuracy']:9.3f} {m['balanced_accuracy']:9.3f} {precision} "
            f"{recall} {f1} {m['ece']:6.3f} "
            f"{tp:5d} {fp:5d} {fn:5d} {m['tn']:5d}"
        )


def run_command(args: argparse.Namespace) -> int:
    """Run the chosen command; bad input (and a disk that refuses to be written: full,
    read-only, no permission; an address nothing answers on) is one line on stderr,
    exit status 2; a cluster or server that times out mid-run is one line, status 1;
    ``--debug`` shows the traceback instead."""
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`xrdmap describe ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except InputError as exc:
        if args.debug:
            raise
        print(f"xrdmap {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        _quiet_leftovers()
        return 2
    except (TimeoutError, ConnectionError) as exc:  # a cluster or server, not the user
        if args.debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"xrdmap {args.command}: error: {type(exc).__name__}: {text} (the Dask cluster "
            "or the Prefect server did not answer; --debug shows where)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # a disk that refuses, or a wrong address (Dask, S3)
        if args.debug:
            raise
        print(f"xrdmap {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        _quiet_leftovers()
        return 2
    except KeyboardInterrupt:
        print(f"xrdmap {args.command}: interrupted", file=sys.stderr)
        return 130


def _quiet_leftovers() -> None:
    """After the one line: Zarr writes chunks concurrently, and when the disk refuses
    one, the others' failures are left in futures nobody reads; asyncio logs each as
    "Future exception was never retrieved" with a traceback when they are collected
    (measured: 13 more lines after a full disk on a loaded machine). The error was
    reported; they are not."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _one_line(exc: Exception) -> str:
    """The first line of the message; a disk error (one with an errno: full, read-only,
    no permission) names its file and says that the disk refused."""
    if isinstance(exc, OSError) and not isinstance(exc, InputError) and exc.errno is not None:
        where = exc.filename or "a file"
        return f"{where}: {exc.strerror or exc} (the disk refused the write or read)"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
