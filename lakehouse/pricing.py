"""What storage, requests and retrievals cost: one price model for ``lakehouse cost`` and the cost benchmark.

The defaults are AWS S3 us-east-1 list prices (USD; storage per GB-month, requests per 1,000, retrievals per GB)
with the billing rules that decide what a table of small files costs:

* **minimum billable object size**: an object in ``STANDARD_IA``, ``ONEZONE_IA`` or ``GLACIER_IR`` is billed as
  at least 128 KB, so moving a 10 KB streaming file there costs 12.8x its bytes;
* **minimum storage duration**: such an object deleted or moved within 30 days (IA) or 90 days (Glacier IR) of
  entering the class is billed for the remaining days;
* **S3 Intelligent-Tiering**: an object of at least 128 KB moves to its infrequent access tier after 30 days
  without access and to archive instant access after 90, back to frequent on access, and costs a monitoring fee
  per object a month; smaller objects are never monitored and always billed at the frequent tier's price;
* requests of the class the object is in (``PUT``/``COPY``/``POST``/``LIST``, ``GET``/``HEAD``), and a
  retrieval fee per GB read from the infrequent access and Glacier classes.

A flat price (MinIO or other storage on premises: ``[cost] flat_price``) bills every byte at one price per
GB-month, with requests and retrievals free, whatever class an object lists.

The functions take plain numbers; the caller says which class an object is in (see
:func:`lakehouse.maintenance.tiering.table_cost`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GB = 1024**3
KB = 1024

STORAGE = {
    # per GB-month
    "STANDARD": 0.023,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
    "REDUCED_REDUNDANCY": 0.024,
}
PUT = {  # PUT, COPY, POST, LIST per 1,000
    "STANDARD": 0.005,
    "INTELLIGENT_TIERING": 0.005,
    "STANDARD_IA": 0.01,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.02,
    "GLACIER": 0.03,
    "DEEP_ARCHIVE": 0.05,
    "REDUCED_REDUNDANCY": 0.005,
}
GET = {  # GET, SELECT, HEAD per 1,000
    "STANDARD": 0.0004,
    "INTELLIGENT_TIERING": 0.0004,
    "STANDARD_IA": 0.001,
    "ONEZONE_IA": 0.001,
    "GLACIER_IR": 0.01,
    "GLACIER": 0.0004,
    "DEEP_ARCHIVE": 0.0004,
    "REDUCED_REDUNDANCY": 0.0004,
}
RETRIEVAL = {"STANDARD_IA": 0.01, "ONEZONE_IA": 0.01, "GLACIER_IR": 0.03}  # per GB read
MIN_OBJECT_BYTES = {"STANDARD_IA": 128 * KB, "ONEZONE_IA": 128 * KB, "GLACIER_IR": 128 * KB}
MIN_STORAGE_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
INTELLIGENT_TIERING = {
    "frequent": 0.023,
    "infrequent": 0.0125,  # after 30 days without access
    "archive_instant": 0.004,  # after 90 days without access
    "monitoring_per_1000_objects": 0.0025,  # a month, objects of at least 128 KB
    "min_monitored_bytes": 128 * KB,
}


@dataclass(frozen=True)
class Prices:
    """One price table. ``flat``: every byte at this price per GB-month, requests and retrievals free."""

    storage: Mapping[str, float] = field(default_factory=lambda: dict(STORAGE))
    put: Mapping[str, float] = field(default_factory=lambda: dict(PUT))
    get: Mapping[str, float] = field(default_factory=lambda: dict(GET))
    retrieval: Mapping[str, float] = field(default_factory=lambda: dict(RETRIEVAL))
    min_object_bytes: Mapping[str, int] = field(default_factory=lambda: dict(MIN_OBJECT_BYTES))
    min_storage_days: Mapping[str, int] = field(default_factory=lambda: dict(MIN_STORAGE_DAYS))
    intelligent_tiering: Mapping[str, float] = field(default_factory=lambda: dict(INTELLIGENT_TIERING))
    flat: float | None = None

    def storage_rate(self, storage_class: str) -> float:
        """Price per GB-month of ``storage_class``."""
        if self.flat is not None:
            return self.flat
        if storage_class not in self.storage:
            from lakehouse.errors import InvalidInputError

            raise InvalidInputError(
                f"no price for storage class {storage_class}", hint="add it under [cost.prices] in lakehouse.toml"
            )
        return self.storage[storage_class]

    def billable_bytes(self, storage_class: str, size: int) -> int:
        """The bytes an object of ``size`` is billed for (the class's minimum object size)."""
        if self.flat is not None:
            return size
        return max(size, self.min_object_bytes.get(storage_class, 0))

    def object_month(self, storage_class: str, size: int) -> float:
        """Storage of one object for a month."""
        return self.billable_bytes(storage_class, size) / GB * self.storage_rate(storage_class)

    def storage_month(self, objects: Iterable[tuple[str, int]]) -> float:
        """Storage of ``objects`` (storage class, size) for a month."""
        return sum(self.object_month(c, s) for c, s in objects)

    def requests(self, storage_class: str, *, puts: int = 0, gets: int = 0) -> float:
        """``puts`` PUT/COPY/POST/LIST and ``gets`` GET/HEAD requests to objects of ``storage_class``."""
        if self.flat is not None:
            return 0.0
        return puts / 1000 * self.put.get(storage_class, 0.0) + gets / 1000 * self.get.get(storage_class, 0.0)

    def retrieval_cost(self, storage_class: str, size: int) -> float:
        """Reading ``size`` bytes from an object of ``storage_class``."""
        if self.flat is not None:
            return 0.0
        return size / GB * self.retrieval.get(storage_class, 0.0)

    def early_deletion(self, storage_class: str, size: int, days_stored: float) -> float:
        """What deleting (or moving out) an object after ``days_stored`` days in its class still costs."""
        if self.flat is not None:
            return 0.0
        minimum = self.min_storage_days.get(storage_class, 0)
        if days_stored >= minimum:
            return 0.0
        return self.object_month(storage_class, size) * (minimum - days_stored) / 30

    def intelligent_tiering_month(self, size: int, days_since_access: float) -> tuple[str, float]:
        """(the Intelligent-Tiering tier, what the object costs a month there, monitoring included)."""
        it = self.intelligent_tiering
        if size < it["min_monitored_bytes"]:
            return "frequent", size / GB * it["frequent"]  # never monitored, never moved
        tier = "frequent" if days_since_access < 30 else "infrequent" if days_since_access < 90 else "archive_instant"
        return tier, size / GB * it[tier] + it["monitoring_per_1000_objects"] / 1000


def prices_from(
    storage: Mapping[str, float],
    *,
    flat: float | None = None,
    put: Mapping[str, float] | None = None,
    get: Mapping[str, float] | None = None,
    retrieval: Mapping[str, float] | None = None,
) -> Prices:
    """A :class:`Prices` with settings' tables (each entry replaces the default of its class)."""
    return Prices(
        storage={**STORAGE, **storage},
        put={**PUT, **(put or {})},
        get={**GET, **(get or {})},
        retrieval={**RETRIEVAL, **(retrieval or {})},
        flat=flat,
    )
