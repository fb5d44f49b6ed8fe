"""The price model of ``lakehouse cost`` and the cost benchmark (lakehouse/pricing.py)."""

from __future__ import annotations

import pytest

from lakehouse.config import load_settings
from lakehouse.errors import ConfigError, InvalidInputError
from lakehouse.pricing import GB, KB, Prices


def test_infrequent_classes_bill_small_objects_as_128_kb() -> None:
    p = Prices()
    small = 10 * KB
    assert p.billable_bytes("STANDARD", small) == small
    assert p.billable_bytes("STANDARD_IA", small) == 128 * KB
    assert p.billable_bytes("GLACIER_IR", 1 * GB) == 1 * GB
    # a 10 KB file costs more in STANDARD_IA than in STANDARD: tiering small files raises the bill
    assert p.object_month("STANDARD_IA", small) > p.object_month("STANDARD", small)
    assert p.object_month("STANDARD_IA", GB) == pytest.approx(0.0125)


def test_early_deletion_charges_the_rest_of_the_minimum_duration() -> None:
    p = Prices()
    assert p.early_deletion("STANDARD", GB, 1) == 0
    assert p.early_deletion("STANDARD_IA", GB, 30) == 0
    assert p.early_deletion("STANDARD_IA", GB, 10) == pytest.approx(0.0125 * 20 / 30)
    assert p.early_deletion("GLACIER_IR", GB, 0) == pytest.approx(0.004 * 3)


def test_intelligent_tiering_moves_monitored_objects_and_never_small_ones() -> None:
    p = Prices()
    big, small = 1 * GB, 64 * KB
    assert p.intelligent_tiering_month(big, 0) == ("frequent", pytest.approx(0.023 + 0.0025 / 1000))
    assert p.intelligent_tiering_month(big, 45)[0] == "infrequent"
    assert p.intelligent_tiering_month(big, 120) == ("archive_instant", pytest.approx(0.004 + 0.0025 / 1000))
    tier, cost = p.intelligent_tiering_month(small, 400)
    assert tier == "frequent" and cost == pytest.approx(small / GB * 0.023), "no monitoring fee, never moved"


def test_requests_and_retrievals_by_class() -> None:
    p = Prices()
    assert p.requests("STANDARD", puts=1000, gets=1000) == pytest.approx(0.005 + 0.0004)
    assert p.requests("GLACIER_IR", puts=1000, gets=1000) == pytest.approx(0.02 + 0.01)
    assert p.retrieval_cost("STANDARD", GB) == 0
    assert p.retrieval_cost("GLACIER_IR", GB) == pytest.approx(0.03)


def test_settings_override_prices_and_a_flat_price_bills_every_byte_alike() -> None:
    s = load_settings(
        config_file=False,
        cost={
            "prices": {"standard": 0.02},
            "get_prices": {"STANDARD": 0.001},
            "retrieval_prices": {"STANDARD_IA": 0.02},
        },
    )
    p = s.cost.price_table()
    assert p.storage_rate("STANDARD") == 0.02 and p.storage_rate("GLACIER_IR") == 0.004
    assert p.requests("STANDARD", gets=1000) == pytest.approx(0.001)
    assert p.retrieval_cost("STANDARD_IA", GB) == pytest.approx(0.02)
    flat = load_settings(config_file=False, cost={"flat_price": 0.01}).cost.price_table()
    assert flat.object_month("STANDARD_IA", 10 * KB) == pytest.approx(10 * KB / GB * 0.01), "no minimum size"
    assert flat.requests("GLACIER_IR", puts=10**6, gets=10**6) == 0 and flat.retrieval_cost("GLACIER_IR", GB) == 0
    with pytest.raises(ConfigError, match="negative"):
        load_settings(config_file=False, cost={"flat_price": -1})
    with pytest.raises(InvalidInputError, match="no price for storage class"):
        Prices().storage_rate("TAPE")
