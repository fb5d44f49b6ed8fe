"""Format name -> adapter class, imported lazily so a missing SDK costs nothing until it is used.

>>> sorted(FORMATS)
['delta', 'iceberg']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lakehouse.errors import DependencyMissingError, InvalidInputError, TableNotFoundError

if TYPE_CHECKING:
    from lakehouse.tables.base import LakehouseTable, StorageContext

FORMATS: dict[str, tuple[str, str, str]] = {
    # name: (module, class, extra that installs its SDK)
    "delta": ("lakehouse.tables.delta", "DeltaAdapter", "delta"),
    "iceberg": ("lakehouse.tables.iceberg", "IcebergAdapter", "iceberg"),
}


def adapter_class(fmt: str) -> type[LakehouseTable]:
    """The adapter class of a format name."""
    try:
        module_name, class_name, extra = FORMATS[fmt]
    except KeyError:
        raise InvalidInputError(
            f"unknown table format {fmt!r}", hint=f"use one of: {', '.join(sorted(FORMATS))}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if isinstance(e, DependencyMissingError):
            raise
        raise DependencyMissingError(
            f"the {fmt} adapter cannot be imported: {e}", hint=f"pip install 'lakehouse[{extra}]'"
        ) from e
    cls: type[LakehouseTable] = getattr(module, class_name)
    return cls


def detect_format(location: str, ctx: StorageContext) -> str:
    """Which format's table lives at ``location``.

    Raises:
        TableNotFoundError: when neither a Delta log nor Iceberg metadata is there.
    """
    for fmt in FORMATS:
        if adapter_class(fmt).exists_at(location, ctx=ctx):
            return fmt
    raise TableNotFoundError(f"no Delta or Iceberg table at {location}")


def loaded_formats() -> list[str]:
    """Formats whose adapter module is imported already (without importing the others)."""
    import sys

    return [fmt for fmt, (module, _, _) in FORMATS.items() if module in sys.modules]
