"""The layer contract (``[tool.importlinter]`` in pyproject.toml, checked by ``lint-imports``) covers every
module and has no way around it: a top-level module missing from the layers would be unchecked."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import lakehouse

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict[str, object]:
    config: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return config


def _contracts() -> list[dict[str, object]]:
    contracts = _config()["contracts"]
    assert isinstance(contracts, list)
    return contracts


def test_every_top_level_module_is_in_a_layer() -> None:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    assert isinstance(layers, list)
    listed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {f"lakehouse.{m.name}" for m in pkgutil.iter_modules(lakehouse.__path__)} | {"api"}
    assert modules - listed == set(), "add these to the layers in pyproject.toml (and ARCHITECTURE.md)"
    assert listed - modules == set(), "these layers name no module"


def test_no_exceptions() -> None:
    assert not _config().get("exclude_type_checking_imports"), "annotation-only imports are dependencies too"
    for contract in _contracts():
        assert not contract.get("ignore_imports"), contract["name"]
