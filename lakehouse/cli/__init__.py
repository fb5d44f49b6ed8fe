"""The ``lakehouse`` command line: one module per command group, sharing :mod:`lakehouse.cli._common`.

Every read command takes ``--json``; every error is one line on stderr and a non-zero exit
(1 for a lakehouse error, 2 for a usage error).
"""

from __future__ import annotations

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
    try:
        app()
    except LakehouseError as e:
        err.print("error: " + " ".join(str(e).split()), markup=False, highlight=False)  # always one line
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
