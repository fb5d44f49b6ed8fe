"""Where an ``-n auto`` run sends the tests that start Spark in their own process: all to one worker.

A Spark session lives as long as its process, and each xdist worker that runs one such test starts a JVM of its
own (about 20 CPU-seconds and a gigabyte each; three of them on a 2-core machine). So the tests marked
``spark`` run on one worker, one after the other, sharing that worker's JVM; a test whose Spark runs in other
processes (``@pytest.mark.spark(in_process=False)``: a standalone cluster, a CLI subprocess) is scheduled like
any other.

The controller of an ``-n`` run collects nothing and sees only test ids; a worker's collection writes the ids of
the grouped tests to a file (its path travels in ``LAKEHOUSE_TEST_SPARK_IDS``, made by the controller), which
the scheduler reads once every worker has collected. (pytest-xdist's own ``--dist loadgroup`` cannot do this
with pytest 9: it renames a test through ``item._nodeid``, which pytest 9 no longer reads.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

IDS_ENV = "LAKEHOUSE_TEST_SPARK_IDS"
GROUP = "spark-in-process"
_MADE = "_lakehouse_spark_ids_made"


def configure(config: pytest.Config) -> None:
    """In the controller: make the file the workers write the grouped ids to."""
    if not hasattr(config, "workerinput") and IDS_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="lakehouse-spark-ids-")
        os.close(fd)
        os.environ[IDS_ENV] = path
        setattr(config, _MADE, path)


def unconfigure(config: pytest.Config) -> None:
    made = getattr(config, _MADE, None)
    if made is not None:
        Path(made).unlink(missing_ok=True)
        os.environ.pop(IDS_ENV, None)


def in_process_spark(item: pytest.Item) -> bool:
    mark = item.get_closest_marker("spark")
    return mark is not None and mark.kwargs.get("in_process", True)


def note_collection(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the first worker, after collection: write the ids of the tests to group (every worker collects the
    same tests; the controller checks that before it schedules)."""
    path = os.environ.get(IDS_ENV)
    worker = getattr(config, "workerinput", {}).get("workerid")
    if path is None or worker != "gw0":
        return
    tmp = f"{path}.{os.getpid()}"
    Path(tmp).write_text("".join(item.nodeid + "\n" for item in items if in_process_spark(item)))
    os.replace(tmp, path)


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (what ``-n`` means here) with the in-process Spark tests as one unit of work; any other
    ``--dist`` is left to pytest-xdist."""
    if config.getvalue("dist") != "load" or IDS_ENV not in os.environ:
        return None
    from xdist.scheduler import LoadScopeScheduling

    path = Path(os.environ[IDS_ENV])

    class SparkOnOneWorker(LoadScopeScheduling):
        """Every test its own unit (as ``load``), except the grouped ones: one unit, on one worker. The largest
        unit goes first (``LoadScopeScheduling`` orders units by size), so the Spark tests start right away."""

        _grouped: frozenset[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._grouped is None:
                self._grouped = frozenset(path.read_text().splitlines()) if path.exists() else frozenset()
            return GROUP if nodeid in self._grouped else nodeid

    return SparkOnOneWorker(config, log)
