"""DuckDB as every layer uses it to read and write Parquet: a connection with the offline extensions, the DuckDB
spelling of Arrow types, and reading files whose writers named nested fields otherwise (Parquet field ids).

The table adapters (reads DuckDB does better than the SDKs), the maintenance jobs (rewrites) and the SQL engines
(queries) share these; they sit below all of them. Nothing here knows a table format or a catalog.
"""

from __future__ import annotations

import glob
import importlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import ConfigError, DependencyMissingError, UnsupportedOperationError

if TYPE_CHECKING:
    import duckdb

    from lakehouse.credentials import S3Credentials
    from lakehouse.storage import StorageContext

# avro must be loaded before iceberg
EXTENSIONS = ("httpfs", "avro", "iceberg", "delta")


def extension_path(name: str) -> str:
    """Path of the ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` wheel."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as e:
        raise DependencyMissingError(
            f"DuckDB's {name} extension is not installed", hint="pip install 'lakehouse[sql]'"
        ) from e
    base = os.path.dirname(module.__file__ or "")
    found = sorted(glob.glob(os.path.join(base, "**", f"{name}.duckdb_extension"), recursive=True))
    if not found:
        raise DependencyMissingError(f"duckdb-extension-{name} ships no {name}.duckdb_extension under {base}")
    return found[-1]


_VERIFIED: dict[str, tuple[int, int, int, int]] = {}
"""The extension files DuckDB has checked the signature of in this process: path -> (device, inode, size,
modification time) as they were when it did."""
_VERIFIED_LOCK = threading.Lock()


def _file_identity(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _all_verified(paths: Sequence[str]) -> bool:
    """Whether DuckDB checked the signature of each of ``paths`` in this process and none has changed since."""
    with _VERIFIED_LOCK:
        try:
            return bool(paths) and all(_VERIFIED.get(p) == _file_identity(p) for p in paths)
        except OSError:
            return False


def _note_verified(paths: Sequence[str], identities: Sequence[tuple[int, int, int, int]]) -> None:
    with _VERIFIED_LOCK:
        _VERIFIED.update(zip(paths, identities, strict=True))


def connect_duckdb(
    ctx: StorageContext,
    *,
    memory_limit: str | int,
    threads: int | None = None,
    temp_directory: str | None = None,
    extensions: Sequence[str] = EXTENSIONS,
    allowed_directories: Sequence[str] | None = None,
    settings: Mapping[str, bool | int | str] | None = None,
    extra_credentials: Sequence[tuple[str, S3Credentials]] = (),
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the offline extensions loaded, S3 configured and configuration locked.

    With ``allowed_directories`` (the query engine), DuckDB's external access is switched off except below
    those directories (table locations): a second wall behind the allow-list (:mod:`lakehouse.sql.allowlist`).
    ``extra_credentials`` are (S3 prefix, credentials) pairs beyond the context's own: tables of an external
    catalog on a store of their own. ``settings`` are SET before the lock (Parquet's own, such as
    ``parquet_metadata_cache``, load the built-in parquet extension first).

    DuckDB checks an extension's signature on every ``LOAD``: a SHA-256 of the whole file, about 1 s of CPU for
    the four extensions (166 MB). Each file is checked the first time this process loads it; later connections
    load files that were checked and have not changed since (same device, inode, size and modification time)
    with ``allow_unsigned_extensions``, which skips the check. Nothing else can use that setting: these
    connections run only lakehouse's own statements, and the query engine's (``allowed_directories``) have
    external access switched off, which refuses every ``LOAD``."""
    try:
        import duckdb
    except ImportError as e:
        raise DependencyMissingError("SQL needs duckdb", hint="pip install 'lakehouse[sql]'") from e
    scoped = [*ctx.scoped_credentials(), *(extra_credentials or ())]
    names = [*extensions, *(["aws"] if any(not creds.access_key_id for _, creds in scoped) else [])]
    paths = [extension_path(name) for name in names]
    verified = _all_verified(paths)
    identities = [] if verified else [_file_identity(p) for p in paths]  # as the files were before DuckDB read them
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_unsigned_extensions": verified,
        "memory_limit": f"{memory_limit}B" if isinstance(memory_limit, int) else memory_limit,
    }
    if threads:
        config["threads"] = threads
    if temp_directory:  # a rewrite: spill instead of failing, and order only where a query asks for it
        config["temp_directory"] = temp_directory
        config["preserve_insertion_order"] = False
    try:
        con = duckdb.connect(config=config)
        for path in paths:  # "aws" last, where a store uses the AWS default chain (the aws extension's)
            con.execute(f"LOAD '{path.replace(chr(39), chr(39) * 2)}'")
        if not verified:
            _note_verified(paths, identities)
        for i, (scope, creds) in enumerate(scoped):
            # the default first, then one secret per store, scoped to its prefix (DuckDB picks the longest match)
            con.execute(creds.duckdb_secret_sql("lakehouse_s3" if scope is None else f"lakehouse_s3_{i}", scope=scope))
        if scoped and "httpfs" in extensions:
            for key, number in scoped[0][1].duckdb_settings().items():
                con.execute(f"SET {key} = {number}")
        if settings:
            if any(k.startswith("parquet_") for k in settings):
                con.execute("LOAD parquet")  # built in; autoloading is off
            for key, value in settings.items():
                if isinstance(value, bool):
                    literal = "true" if value else "false"
                elif isinstance(value, int):
                    literal = str(value)
                else:
                    literal = "'" + value.replace("'", "''") + "'"
                con.execute(f"SET GLOBAL {key} = {literal}")  # cursors of the connection too
        if allowed_directories is not None:
            dirs = ", ".join("'" + d.replace("'", "''") + "'" for d in allowed_directories)
            con.execute(f"SET allowed_directories = [{dirs}]")
            con.execute("SET enable_external_access = false")
        # nothing a query sends can change settings, load extensions or reach other files' config
        con.execute("SET lock_configuration = true")
    except duckdb.Error as e:
        raise ConfigError(f"cannot start DuckDB with these settings: {_first_line(e)}") from e
    return con


_DUCK_INTS = {
    (8, True): "TINYINT",
    (16, True): "SMALLINT",
    (32, True): "INTEGER",
    (64, True): "BIGINT",
    (8, False): "UTINYINT",
    (16, False): "USMALLINT",
    (32, False): "UINTEGER",
    (64, False): "UBIGINT",
}
_DUCK_TIMESTAMPS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type, exact wherever DuckDB has one.

    ``CAST(NULL AS duck_type(t))`` reads back into Arrow as ``t`` itself, except for these canonical
    equivalents (DuckDB has no closer type): float16 -> FLOAT (float32), large/view strings -> VARCHAR (string),
    large/view/fixed-size binaries -> BLOB (binary), date64 -> DATE (date32), time32 -> TIME (time64[us]),
    timestamps with a zone -> TIMESTAMPTZ (µs, UTC: DuckDB keeps instants, not zones), duration -> INTERVAL,
    large lists -> ``T[]`` (list), decimal32/64/256 of precision <= 38 -> DECIMAL(p,s) (decimal128), and
    decimals of precision > 38 -> VARCHAR (DuckDB's widest decimal has 38 digits; see :func:`duck_inexact`).
    Struct field names are quoted."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return _DUCK_INTS[(t.bit_width, pa.types.is_signed_integer(t))]
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})" if t.precision <= 38 else "VARCHAR"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return "BLOB"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME_NS" if t.unit == "ns" else "TIME"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else _DUCK_TIMESTAMPS[t.unit]
    if pa.types.is_duration(t):
        return "INTERVAL"
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return "STRUCT(" + ", ".join(f"{_quote(f.name)} {duck_type(f.type)}" for f in fields) + ")"
    if pa.types.is_map(t):
        return f"MAP({duck_type(t.key_type)}, {duck_type(t.item_type)})"
    if pa.types.is_fixed_size_list(t):
        return f"{duck_type(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{duck_type(t.value_type)}[]"
    return "VARCHAR"


def duck_inexact(t: pa.DataType) -> str | None:
    """Why DuckDB cannot carry values of Arrow type ``t`` exactly through a Parquet read and write (a rewrite
    would change them), or None when it can. Recurses into nested types."""
    if pa.types.is_decimal(t) and t.precision > 38:
        return f"decimal({t.precision},{t.scale}) has more digits than DuckDB's widest decimal (38)"
    if pa.types.is_timestamp(t) and t.tz and t.unit == "ns":
        return "DuckDB reads zoned nanosecond timestamps at microsecond precision"
    if pa.types.is_time(t) and t.unit == "ns":
        return "DuckDB reads nanosecond times from Parquet at microsecond precision"
    if pa.types.is_duration(t):
        return "DuckDB reads durations from Parquet as plain integers"
    if pa.types.is_float16(t):
        return "DuckDB writes half floats back as 32-bit floats"
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            why = duck_inexact(t.field(i).type)
            if why:
                return why
    if pa.types.is_map(t):
        return duck_inexact(t.key_type) or duck_inexact(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return duck_inexact(t.value_type)
    return None


# ---- Parquet field ids --------------------------------------------------------------------------------------

FIELD_ID = b"PARQUET:field_id"


def field_id(f: pa.Field) -> int | None:
    raw = (f.metadata or {}).get(FIELD_ID)
    return int(raw) if raw is not None else None


def _null_of(t: pa.DataType) -> Callable[[str], str]:
    return lambda _: _null(t)


def is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _identity(e: str) -> str:
    return e


def match_field_ids(declared: pa.DataType, stored: pa.DataType, path: str) -> tuple[pa.DataType, Callable[[str], str]]:
    """The declared type with the field ids of the stored one on its nested fields, and a function turning a SQL
    expression of the stored value into one with the declared nested names (nested fields are matched by id
    where the declared type carries ids, else by name)."""
    if pa.types.is_struct(declared):
        if not pa.types.is_struct(stored):
            raise UnsupportedOperationError(f"cannot rewrite {path}: the files hold {stored}, the table {declared}")
        children = [stored.field(i) for i in range(stored.num_fields)]
        by_id = {field_id(f): f for f in children if field_id(f) is not None}
        by_name = {f.name: f for f in children}
        fields: list[pa.Field] = []
        parts: list[tuple[str, str | None, Callable[[str], str]]] = []
        renamed = declared.num_fields != stored.num_fields
        for i in range(declared.num_fields):
            d = declared.field(i)
            did = field_id(d)
            s = by_id.get(did) if did is not None else by_name.get(d.name)
            if s is None and did is None and by_id:
                # without the table's id of this field, one a writer renamed cannot be told from one added since
                raise UnsupportedOperationError(
                    f"cannot rewrite {path}: its field {d.name!r} is not in the files under that name, and the "
                    "table's id of it is not known"
                )
            if s is None:  # a field added since these files were written: NULL of its type
                fields.append(d)
                parts.append((d.name, None, _null_of(d.type)))
                renamed = True
                continue
            t, fn = match_field_ids(d.type, s.type, f"{path}.{d.name}")
            sid = field_id(s)
            fields.append(pa.field(d.name, t, nullable=d.nullable, metadata={FIELD_ID: str(sid)} if sid else None))
            parts.append((d.name, s.name, fn))
            renamed = renamed or d.name != s.name or fn is not _identity or children[i].name != s.name
        if not renamed:
            return pa.struct(fields), _identity

        def struct_expr(e: str) -> str:
            packed = ", ".join(
                f"{_quote(d)} := {fn(f'({e}).{_quote(s)}' if s is not None else '')}" for d, s, fn in parts
            )
            return f"CASE WHEN ({e}) IS NULL THEN NULL ELSE struct_pack({packed}) END"

        return pa.struct(fields), struct_expr
    if pa.types.is_map(declared) and pa.types.is_map(stored):
        kt, kfn = match_field_ids(declared.key_type, stored.key_type, f"{path}.key")
        vt, vfn = match_field_ids(declared.item_type, stored.item_type, f"{path}.value")
        key = pa.field("key", kt, nullable=False, metadata=stored.key_field.metadata)
        value = pa.field("value", vt, nullable=declared.item_field.nullable, metadata=stored.item_field.metadata)
        t = pa.map_(key, value, keys_sorted=declared.keys_sorted)
        if kfn is _identity and vfn is _identity:
            return t, _identity
        return (
            t,
            lambda e: (
                "map_from_entries(list_transform(map_entries(" + e + "), lambda lh_kv: struct_pack(key := "
                f"{kfn('lh_kv.key')}, value := {vfn('lh_kv.value')})))"
            ),
        )
    if is_list_type(declared) and is_list_type(stored):
        it, ifn = match_field_ids(declared.value_type, stored.value_type, f"{path}[]")
        item = pa.field("element", it, nullable=declared.value_field.nullable, metadata=stored.value_field.metadata)
        if pa.types.is_fixed_size_list(declared):
            lt: pa.DataType = pa.list_(item, declared.list_size)
        else:
            lt = pa.large_list(item) if pa.types.is_large_list(declared) else pa.list_(item)
        if ifn is _identity:
            return lt, _identity
        depth = path.count("[]")
        var = f"lh_e{depth}"
        return lt, lambda e: f"list_transform({e}, lambda {var}: {ifn(var)})"
    return declared, _identity


def _null(t: pa.DataType) -> str:
    return f"CAST(NULL AS {duck_type(t)})"


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
