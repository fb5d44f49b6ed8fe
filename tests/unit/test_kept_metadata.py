"""KeptMetadata: the per-process store of immutable table metadata the adapters share between handles."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from lakehouse.tables.base import KeptMetadata


def test_oldest_entries_go_first_once_the_weight_passes_the_limit() -> None:
    kept: KeptMetadata[str, tuple[int, ...]] = KeptMetadata(10, len)
    kept.put("a", (1, 2, 3, 4))
    kept.put("b", (1, 2, 3, 4))
    assert kept.get("a") == (1, 2, 3, 4)
    kept.put("c", (1, 2, 3))  # 11 > 10: "a", the oldest put, goes
    assert kept.get("a") is None and kept.get("b") is not None and kept.get("c") is not None
    kept.put("b", (9,))  # replacing an entry makes it the newest and frees its old weight
    kept.put("d", (1, 2, 3, 4, 5, 6))  # 1 + 3 + 6 = 10: nothing goes
    assert [kept.get(k) for k in "bcd"] == [(9,), (1, 2, 3), (1, 2, 3, 4, 5, 6)]
    kept.forget("c")
    assert kept.get("c") is None
    kept.put("e", (1, 2, 3))  # 1 + 6 + 3 = 10
    assert kept.get("b") == (9,)


def test_an_entry_heavier_than_the_limit_is_still_kept_alone() -> None:
    kept: KeptMetadata[str, str] = KeptMetadata(3, len)
    kept.put("small", "ab")
    kept.put("big", "abcdefgh")
    assert kept.get("big") == "abcdefgh" and kept.get("small") is None


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 6)), max_size=60), st.integers(1, 30))
def test_the_kept_weight_never_passes_the_limit_with_more_than_one_entry(
    ops: list[tuple[int, int]], limit: int
) -> None:
    kept: KeptMetadata[int, int] = KeptMetadata(limit, lambda w: w)
    model: dict[int, int] = {}
    for key, weight in ops:
        kept.put(key, weight)
        model.pop(key, None)
        model[key] = weight
        while sum(model.values()) > limit and len(model) > 1:
            model.pop(next(iter(model)))
        assert {k: kept.get(k) for k in range(21) if kept.get(k) is not None} == model


def test_concurrent_puts_keep_the_weight_consistent() -> None:
    kept: KeptMetadata[int, int] = KeptMetadata(50, lambda w: w)

    def work(base: int) -> None:
        for i in range(500):
            kept.put(base * 1000 + i % 40, 1 + i % 5)

    threads = [threading.Thread(target=work, args=(b,)) for b in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kept._total == sum((kept._weight(v) for v in kept._items.values()), 0) <= 50


def test_partition_keys_are_kept_per_value_and_type() -> None:
    """partition_key is cached per partition: equal-comparing values of other types (True, 1, 1.0) are other
    partitions, with other keys."""
    from lakehouse.maintenance.planner import partition_key

    keys = [partition_key({"p": v}) for v in (True, 1, 1.0, "1", None)]
    assert keys == ['{"p": true}', '{"p": 1}', '{"p": 1.0}', '{"p": "1"}', '{"p": null}']
    assert partition_key({"b": 2, "a": [1]}) == '{"a": [1], "b": 2}'  # unhashable values too, keys sorted


def test_gc_pauses_nest_and_restore_the_collector_as_it_was() -> None:
    import gc

    from lakehouse.tables.base import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # switched off before: left off
    finally:
        gc.enable()
    try:
        with gc_paused():
            raise ValueError("a failed listing")
    except ValueError:
        pass
    assert gc.isenabled()
