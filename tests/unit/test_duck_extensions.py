"""DuckDB checks an extension's signature the first time a process loads the file, not on every connection
(``lakehouse.duck.connect_duckdb``): a changed file is checked again, and a tampered one refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lakehouse import duck
from lakehouse.errors import ConfigError
from lakehouse.storage import StorageContext

EXTENSION_PATH = duck.extension_path  # before any test replaces it


def _connect(tmp_path: Path, **kw: Any) -> Any:
    ctx = StorageContext(warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db")
    return duck.connect_duckdb(ctx, memory_limit="256MB", extensions=("httpfs",), **kw)


def _unsigned_allowed(con: Any) -> bool:
    return bool(con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0])


def _loaded(con: Any) -> set[str]:
    return {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the httpfs extension file that ``extension_path`` names, and no file checked yet."""
    target = tmp_path / "ext" / "httpfs.duckdb_extension"
    target.parent.mkdir()
    shutil.copyfile(duck.extension_path("httpfs"), target)
    monkeypatch.setattr(duck, "_VERIFIED", {})
    monkeypatch.setattr(duck, "extension_path", lambda name: str(target))
    return target


def test_checked_once_then_loaded_without_the_check(copy: Path, tmp_path: Path) -> None:
    first = _connect(tmp_path)
    assert not _unsigned_allowed(first) and "httpfs" in _loaded(first)  # DuckDB checked the signature
    second = _connect(tmp_path)
    assert _unsigned_allowed(second) and "httpfs" in _loaded(second)  # the same file, unchanged: not again
    first.close()
    second.close()


def test_a_changed_file_is_checked_again_and_a_tampered_one_refused(copy: Path, tmp_path: Path) -> None:
    _connect(tmp_path).close()
    with copy.open("r+b") as f:  # one byte of the code changed, the file's size kept
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ConfigError, match=r"(?i)signature"):
        _connect(tmp_path)
    # and it stays refused: a refused file is not noted as checked
    with pytest.raises(ConfigError, match=r"(?i)signature"):
        _connect(tmp_path)


def test_a_query_connection_loads_nothing_else(copy: Path, tmp_path: Path) -> None:
    """The query engine's connections (``allowed_directories``) skip the check too once the file is checked, and
    cannot load anything themselves: external access is off."""
    _connect(tmp_path).close()
    (tmp_path / "data").mkdir()
    con = _connect(tmp_path, allowed_directories=[str(tmp_path / "data")])
    assert _unsigned_allowed(con)
    for statement in (f"LOAD '{EXTENSION_PATH('avro')}'", "LOAD avro", "INSTALL avro"):  # none loaded here
        with pytest.raises(Exception, match=r"(?i)disabled"):
            con.execute(statement)
    con.close()
