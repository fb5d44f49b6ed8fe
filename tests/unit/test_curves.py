"""The clustering curves' fast forms equal their textbook forms, bit for bit, for every column count and key width
(a layout recorded by an earlier run stays the layout a later run computes)."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.maintenance.clustering import MAX_COLUMNS, hilbert_index, morton_index


def reference_morton(coords: list[np.ndarray], bits: int) -> list[int]:
    n = len(coords)
    out = []
    for k in range(len(coords[0])):
        v = 0
        for i in range(bits):
            for j, c in enumerate(coords):
                v |= ((int(c[k]) >> i) & 1) << (i * n + (n - 1 - j))
        out.append(v)
    return out


def reference_hilbert(coords: list[np.ndarray], bits: int) -> list[int]:
    """Skilling's AxestoTranspose, one point at a time in plain integers, then the transpose's bits interleaved."""
    n = len(coords)
    out = []
    for k in range(len(coords[0])):
        x = [int(c[k]) for c in coords]
        q = 1 << (bits - 1)
        while q > 1:
            p = q - 1
            for i in range(n):
                if x[i] & q:
                    x[0] ^= p
                else:
                    t = (x[0] ^ x[i]) & p
                    x[0] ^= t
                    x[i] ^= t
            q >>= 1
        for i in range(1, n):
            x[i] ^= x[i - 1]
        t = 0
        q = 1 << (bits - 1)
        while q > 1:
            if x[n - 1] & q:
                t ^= q - 1
            q >>= 1
        x = [v ^ t for v in x]
        v = 0
        for b in range(bits):
            for i in range(n):
                v |= ((x[i] >> b) & 1) << (b * n + (n - 1 - i))
        out.append(v)
    return out


@pytest.mark.parametrize("columns", range(1, MAX_COLUMNS + 1))
def test_curves_equal_their_reference_at_every_width(columns: int) -> None:
    rng = np.random.default_rng(columns)
    for bits in range(1, min(21, 64 // columns) + 1):
        coords = [rng.integers(0, 2**bits, 200, dtype=np.uint64) for _ in range(columns)]
        coords[0][:2] = [0, 2**bits - 1]  # the corners too
        assert hilbert_index(coords, bits).tolist() == reference_hilbert(coords, bits), (columns, bits)
        assert morton_index(coords, bits).tolist() == reference_morton(coords, bits), (columns, bits)


def test_the_inputs_are_not_changed() -> None:
    coords = [np.arange(16, dtype=np.uint64), np.arange(16, dtype=np.uint64)[::-1].copy()]
    before = [c.copy() for c in coords]
    hilbert_index(coords, 4)
    morton_index(coords, 4)
    assert all((a == b).all() for a, b in zip(coords, before, strict=True))


def test_the_keys_are_read_ahead_in_order_and_reading_stops_with_the_consumer() -> None:
    """``fill_curve_keys`` reads the next batch of values while it computes the current one's indexes: the batches
    come in the reader's order, and a consumer that stops (an error, an interruption) leaves at most one batch read
    ahead, and no thread reading."""
    import threading

    import pyarrow as pa

    from lakehouse.maintenance.clustering import _read_ahead

    batches = [pa.record_batch({"v": pa.array([i] * 3)}) for i in range(6)]
    assert [b["v"][0].as_py() for b in _read_ahead(pa.RecordBatchReader.from_batches(batches[0].schema, batches))] == (
        list(range(6))
    )
    read: list[int] = []

    def source() -> object:
        for b in batches:
            read.append(b["v"][0].as_py())
            yield b

    reader = pa.RecordBatchReader.from_batches(batches[0].schema, source())
    ahead = _read_ahead(reader)
    assert next(ahead)["v"][0].as_py() == 0 and next(ahead)["v"][0].as_py() == 1
    ahead.close()
    assert read == [0, 1, 2], "one batch read ahead, then nothing"
    assert not [t for t in threading.enumerate() if t.name.startswith("lakehouse-curve-read")]
