"""The ``lakehouse`` command line: one module per command group, sharing :mod:`lakehouse.cli._common`.

Every read command takes ``--json``; every error is one line on stderr and a non-zero exit
(1 for a lakehouse error, 2 for a usage error).
"""

from __future__ import annotations

import signal
import sys

from lakehouse.cli._common import app, err

# the command groups register their commands on ``app``, in the order ``--help`` lists them
# isort: off
from lakehouse.cli import service, table, catalogs, data, maintenance, operations, governance  # noqa: F401

# isort: on
from lakehouse.errors import LakehouseError

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: one line on stderr and exit 1 for a lakehouse error."""
    import logging

    # pyiceberg warns on every commit it retries after a concurrent writer won: routine beside a stream, and
    # lakehouse reports the conflicts that matter itself
    logging.getLogger("pyiceberg.table").setLevel(logging.ERROR)
    terminated: list[int] = []

    def on_term(signum: int, _frame: object) -> None:
        # like Ctrl-C: the running job's record is closed at once (interrupted, or committed if its commit
        # landed) and the table's lease released, instead of both waiting for the lease to lapse
        terminated.append(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)  # commands with their own handling (ingest, autopilot) replace it
    try:
        app()
    except SystemExit:
        if terminated:
            err.print("terminated", markup=False)
        raise
    except LakehouseError as e:
        err.print("error: " + " ".join(str(e).split()), markup=False, highlight=False)  # always one line
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
