"""The README's table-feature matrices are the adapters' own declarations (scripts/feature_table.py), and every
feature an adapter declares refuses exactly the operations its declaration says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lakehouse.tables.base import OPERATIONS
from lakehouse.tables.delta import DeltaAdapter
from lakehouse.tables.iceberg import IcebergAdapter

ROOT = Path(__file__).resolve().parents[2]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("feature_table", ROOT / "scripts" / "feature_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_tables_are_the_adapters_declarations() -> None:
    script = _script()
    block = script.readme_block((ROOT / "README.md").read_text())
    assert block == script.render(), "README.md drifted: run python scripts/feature_table.py --write"


def test_every_declared_refusal_names_a_known_operation_and_a_reason() -> None:
    for adapter in (DeltaAdapter, IcebergAdapter):
        features = adapter.capabilities.features
        assert features, adapter
        assert len({f.feature for f in features}) == len(features)
        for f in features:
            assert set(f.refused) <= set(OPERATIONS), f.feature
            assert all(reason.strip() for reason in f.refused.values()), f.feature
