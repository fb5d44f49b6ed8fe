"""Content verification of rewrites: see :mod:`lakehouse.verify`, which this re-exports.

The fingerprint functions live below the table adapters (they need only :mod:`lakehouse.errors` and
:mod:`lakehouse.sql`), so that the adapters' own rewrites (row deletes) verify as the maintenance jobs do
without importing :mod:`lakehouse.maintenance`.
"""

from lakehouse.verify import Fingerprint, canonical, column_sums, fingerprint, verify

__all__ = ["Fingerprint", "canonical", "column_sums", "fingerprint", "verify"]
