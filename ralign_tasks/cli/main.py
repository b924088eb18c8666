"""The ``ralign`` command: parse, run the command, and turn the project's own errors and
signals into one line and an exit status."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ralign_tasks.cli.demo import DemoError, run_demo
from ralign_tasks.cli.parser import build_parser
from ralign_tasks.cli.reports import (
    cmd_check_data,
    cmd_cost,
    cmd_export,
    cmd_report,
    cmd_view,
)
from ralign_tasks.cli.runs import execute, plan_runs
from ralign_tasks.data import (
    DataUnavailableError,
)
from ralign_tasks.identity import (
    UNUSABLE_EXIT,
)
from ralign_tasks.scorers.ask import EndpointDownError, StopRun
from ralign_tasks.scorers.cache import OPENED as OPENED_CACHES
from ralign_tasks.scorers.errors import UserError
from ralign_tasks.task_configs import include_path

# Exit statuses of a run stopped by a signal: 128 + its number, as a shell reports it.
INTERRUPTED_EXIT = 128 + signal.SIGINT
TERMINATED_EXIT = 128 + signal.SIGTERM


class _Signals:
    """SIGTERM (what ``timeout``, Docker and Slurm send) handled as Ctrl-C: the run stops
    through the same path, committing every answer received, and exits with 143."""

    def __init__(self) -> None:
        self.terminated = False

    def __enter__(self) -> _Signals:
        # Only the main thread may set handlers (``main`` called from another thread is left
        # with the process's own).
        self.previous = (
            signal.signal(signal.SIGTERM, self._on_term)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        return self

    def _on_term(self, signum: int, frame: Any) -> None:
        self.terminated = True
        # Delivered as SIGINT, so that a running event loop stops the way Ctrl-C stops it
        # (its tasks cancelled and their cleanup run), and plain code gets KeyboardInterrupt.
        signal.raise_signal(signal.SIGINT)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _interrupted_message(terminated: bool) -> str:
    """What an interrupted run kept, naming the caches it actually used."""
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    if not OPENED_CACHES:
        return f"ralign: {what}. Nothing was cached (--no-cache): a rerun asks every request again."
    caches = ", ".join(str(path) for path in sorted(OPENED_CACHES))
    return (
        f"ralign: {what}. Every answer received so far is cached in {caches}; run the same "
        "command again to resume."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    OPENED_CACHES.clear()  # those of an earlier command of this process are not this one's
    with _Signals() as signals:
        try:
            return _command(args)
        except EndpointDownError as exc:
            print(f"ralign: error: {exc}", file=sys.stderr)
            return UNUSABLE_EXIT
        except (
            UserError,  # an option, a name, a file or a data row the user gave
            StopRun,  # a cache that cannot be used, a folder another run is writing, a bad key
            DemoError,
            DataUnavailableError,
            OSError,  # files: missing, not writable, a folder where a file should be
        ) as exc:
            # Only the project's own errors: any other exception is a bug, with its traceback.
            print(f"ralign: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(_interrupted_message(signals.terminated), file=sys.stderr)
            return TERMINATED_EXIT if signals.terminated else INTERRUPTED_EXIT


def _command(args: argparse.Namespace) -> int:
    if args.command == "include-path":
        print(include_path())
        return 0
    if args.command == "demo":
        return run_demo(args.output_dir)
    commands = {
        "report": cmd_report,
        "view": cmd_view,
        "export": cmd_export,
        "cost": cmd_cost,
        "check-data": cmd_check_data,
    }
    if args.command in commands:
        return commands[args.command](args)
    return execute(plan_runs(args), args)
