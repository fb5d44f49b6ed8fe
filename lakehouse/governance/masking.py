"""Masking policies for PII columns: the primitives live in :mod:`lakehouse.masking` (a low layer, so that the
policy model can validate them and the isolated SQL worker can apply them without importing governance); this
name keeps working for callers that import them from here."""

from lakehouse.masking import (
    KINDS,
    REDACTED,
    MaskKind,
    MaskPolicy,
    apply_masks,
    check_column,
    mask_array,
    parse_mask,
    token,
)

__all__ = [
    "KINDS",
    "REDACTED",
    "MaskKind",
    "MaskPolicy",
    "apply_masks",
    "check_column",
    "mask_array",
    "parse_mask",
    "token",
]
