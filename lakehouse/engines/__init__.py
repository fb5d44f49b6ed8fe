"""Execution engines of maintenance jobs and SQL.

``local`` runs everything in this process (DuckDB, delta-rs, pyiceberg). ``spark`` runs the heavy part of the
same jobs on a Spark session (:mod:`lakehouse.engines.spark`, the only module that imports ``pyspark``): the
planner, policies, dry runs, job history, lineage and audit stay the same; only the calls that read and write
data files change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from lakehouse.errors import DependencyMissingError, InvalidInputError

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.engines.spark import SparkEngine
    from lakehouse.tables.base import StorageContext

EngineName = Literal["local", "spark"]
ENGINES: tuple[str, ...] = ("local", "spark")


def check_engine(name: str) -> EngineName:
    """Validate an engine name given by a user.

    >>> check_engine("spark")
    'spark'
    """
    if name not in ENGINES:
        raise InvalidInputError(f"unknown engine {name!r}", hint="use one of: " + ", ".join(ENGINES))
    return "spark" if name == "spark" else "local"


def open_spark(settings: Settings, ctx: StorageContext) -> SparkEngine:
    """A Spark engine for this lakehouse (the session starts on first use)."""
    try:
        from lakehouse.engines.spark import SparkEngine
    except ImportError as e:  # pyspark missing
        raise DependencyMissingError(
            f"the Spark engine needs pyspark ({e.name or e})", hint="pip install 'lakehouse[spark]'"
        ) from e
    return SparkEngine(settings, ctx)
