"""The SQL allow-list: what a query may contain, checked on DuckDB's own parse of the SQL that runs.

A query is parsed by DuckDB itself (``json_serialize_sql``: its parser, no binding, no execution) and the parse
tree is walked: every query node, table reference and expression class must be one this module lists, every
function one of :data:`FUNCTIONS`, every table a view lakehouse created for the query or one of its CTEs. What
is not listed is refused, so a function a future DuckDB adds is refused until someone adds it here. This is the
first wall; the second is the engine: sandboxed queries run in a worker process whose DuckDB has no file or
network access at all (:mod:`lakehouse.sql.worker`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from lakehouse.errors import QueryError

if TYPE_CHECKING:
    import duckdb

MAX_GENERATED = 10_000
"""The largest output length of ``lpad``/``rpad`` and the largest width or precision in a ``printf``/``format``
string a query may ask for (they build their result outside DuckDB's buffer manager)."""

_OPERATORS = {
    "+", "-", "*", "/", "//", "%", "**", "^", "&", "|", "<<", ">>", "~", "!__postfix", "||", "@",
    "~~", "!~~", "~~*", "!~~*", "~~~", "^@", "&&", "<@", "@>", "->>", "<->", "<=>",
}  # fmt: skip
_MATH = {
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bit_count", "cbrt", "ceil",
    "ceiling", "cos", "cosh", "cot", "degrees", "divide", "even", "exp", "factorial", "fdiv", "floor", "fmod",
    "gamma", "gcd", "greatest", "greatest_common_divisor", "isfinite", "isinf", "isnan", "lcm", "least",
    "least_common_multiple", "lgamma", "ln", "log", "log10", "log2", "mod", "multiply", "nextafter", "pi", "pow",
    "power", "radians", "random", "round", "round_even", "roundbankers", "sign", "signbit", "sin", "sinh", "sqrt",
    "subtract", "tan", "tanh", "trunc", "xor", "equi_width_bins", "bin", "hex", "unbin", "unhex", "to_base",
    "to_binary", "from_binary", "from_hex", "to_hex", "get_bit", "set_bit", "bit_length", "bit_position",
}  # fmt: skip
_TEXT = {
    "ascii", "bar", "base64", "char_length", "character_length", "chr", "concat", "concat_ws", "contains",
    "damerau_levenshtein", "editdist3", "ends_with", "format_bytes", "formatreadabledecimalsize",
    "formatreadablesize", "from_base64", "hamming", "ilike_escape", "instr", "jaccard", "jaro_similarity",
    "jaro_winkler_similarity", "lcase", "left", "left_grapheme", "len", "length", "length_grapheme", "levenshtein",
    "like_escape", "lower", "ltrim", "md5", "md5_number", "md5_number_lower", "md5_number_upper", "mismatches",
    "nfc_normalize", "not_ilike_escape", "not_like_escape", "octet_length", "ord", "position", "prefix",
    "regexp_escape", "regexp_extract", "regexp_extract_all", "regexp_full_match", "regexp_matches",
    "regexp_replace", "regexp_split_to_array", "replace", "reverse", "right", "right_grapheme", "rtrim", "sha1",
    "sha256", "hash", "split", "split_part", "starts_with", "str_split", "str_split_regex", "string_split",
    "string_split_regex", "string_to_array", "strip_accents", "strlen", "strpos", "substr", "substring",
    "substring_grapheme", "suffix", "to_base64", "translate", "trim", "ucase", "unicode", "upper", "url_decode",
    "url_encode", "encode", "decode", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp",
    "uuid_extract_version", "lpad", "rpad", "printf", "format", "parse_formatted_bytes",
}  # fmt: skip
_TIME = {
    "age", "century", "current_date", "current_localtime", "current_localtimestamp", "date_add", "date_diff",
    "date_part", "date_sub", "date_trunc", "datediff", "datepart", "datesub", "datetrunc", "day", "dayname",
    "dayofmonth", "dayofweek", "dayofyear", "days_in_month", "decade", "epoch", "epoch_ms", "epoch_ns", "epoch_us",
    "era", "get_current_time", "get_current_timestamp", "hour", "isodow", "isoyear", "julian", "last_day",
    "make_date", "make_time", "make_timestamp", "make_timestamp_ms", "make_timestamp_ns", "make_timestamptz",
    "microsecond", "millennium", "millisecond", "minute", "month", "monthname", "nanosecond",
    "normalized_interval", "now", "quarter", "second", "strftime", "strptime", "time_bucket", "timezone",
    "timezone_hour", "timezone_minute", "to_centuries", "to_days", "to_decades", "to_hours", "to_microseconds",
    "to_millennia", "to_milliseconds", "to_minutes", "to_months", "to_quarters", "to_seconds", "to_timestamp",
    "to_weeks", "to_years", "today", "transaction_timestamp", "try_strptime", "week", "weekday", "weekofyear",
    "year", "yearweek", "ago",
}  # fmt: skip
_NESTED = {
    "aggregate", "apply", "array_aggr", "array_aggregate", "array_append", "array_apply", "array_cat",
    "array_concat", "array_contains", "array_cosine_distance", "array_cosine_similarity", "array_cross_product",
    "array_distance", "array_distinct", "array_dot_product", "array_extract", "array_filter", "array_grade_up",
    "array_has", "array_has_all", "array_has_any", "array_indexof", "array_inner_product", "array_intersect",
    "array_length", "array_negative_dot_product", "array_negative_inner_product", "array_pop_back",
    "array_pop_front", "array_position", "array_prepend", "array_push_back", "array_push_front", "array_reduce",
    "array_reverse", "array_reverse_sort", "array_select", "array_slice", "array_sort", "array_to_string",
    "array_transform", "array_unique", "array_value", "array_where", "array_zip", "cardinality", "element_at",
    "filter", "flatten", "grade_up", "list_aggr", "list_aggregate", "list_any_value", "list_append", "list_apply",
    "list_approx_count_distinct", "list_avg", "list_bit_and", "list_bit_or", "list_bit_xor", "list_bool_and",
    "list_bool_or", "list_cat", "list_concat", "list_contains", "list_cosine_distance", "list_cosine_similarity",
    "list_count", "list_distance", "list_distinct", "list_dot_product", "list_element", "list_entropy",
    "list_extract", "list_filter", "list_first", "list_grade_up", "list_has", "list_has_all", "list_has_any",
    "list_histogram", "list_indexof", "list_inner_product", "list_intersect", "list_kurtosis", "list_kurtosis_pop",
    "list_last", "list_mad", "list_max", "list_median", "list_min", "list_mode", "list_negative_dot_product",
    "list_negative_inner_product", "list_pack", "list_position", "list_prepend", "list_product", "list_reduce",
    "list_reverse", "list_reverse_sort", "list_select", "list_sem", "list_skewness", "list_slice", "list_sort",
    "list_stddev_pop", "list_stddev_samp", "list_string_agg", "list_sum", "list_transform", "list_unique",
    "list_value", "list_var_pop", "list_var_samp", "list_where", "list_zip", "reduce", "unnest", "map",
    "map_concat", "map_contains", "map_contains_entry", "map_contains_value", "map_entries", "map_extract",
    "map_extract_value", "map_from_entries", "map_keys", "map_values", "struct_concat", "struct_contains",
    "struct_extract", "struct_extract_at", "struct_has", "struct_indexof", "struct_insert", "struct_keys",
    "struct_pack", "struct_position", "struct_update", "struct_values", "row", "union_extract", "union_tag",
    "union_value", "to_json", "json_array", "json_array_length", "json_contains", "json_exists", "json_extract",
    "json_extract_path", "json_extract_path_text", "json_extract_string", "json_keys", "json_merge_patch",
    "json_object", "json_pretty", "json_quote", "json_structure", "json_transform", "json_transform_strict",
    "json_type", "json_valid", "json_value", "json", "from_json", "from_json_strict", "array_to_json",
    "row_to_json",
}  # fmt: skip
_OTHER = {
    "coalesce", "ifnull", "nullif", "typeof", "error", "constant_or_null", "can_cast_implicitly", "alias",
    "create_sort_key", "enum_code", "enum_first", "enum_last", "enum_range", "enum_range_boundary", "try",
}  # fmt: skip
_AGGREGATES = {
    "any_value", "approx_count_distinct", "approx_quantile", "approx_top_k", "arbitrary", "arg_max",
    "arg_max_null", "arg_max_nulls_last", "arg_min", "arg_min_null", "arg_min_nulls_last", "argmax", "argmin",
    "array_agg", "avg", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or", "corr", "count", "count_if",
    "count_star", "countif", "covar_pop", "covar_samp", "entropy", "favg", "first", "fsum", "geomean",
    "geometric_mean", "group_concat", "histogram", "histogram_exact", "kahan_sum", "kurtosis", "kurtosis_pop",
    "last", "list", "listagg", "mad", "max", "max_by", "mean", "median", "min", "min_by", "mode", "product",
    "quantile", "quantile_cont", "quantile_disc", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept",
    "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "reservoir_quantile", "sem", "skewness",
    "stddev", "stddev_pop", "stddev_samp", "string_agg", "sum", "sum_no_overflow", "sumkahan", "var_pop",
    "var_samp", "variance", "wavg", "weighted_avg", "json_group_array", "json_group_object",
    "json_group_structure",
}  # fmt: skip
_WINDOW = {
    "row_number", "rank", "dense_rank", "rank_dense", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value", "fill",
}  # fmt: skip

FUNCTIONS: frozenset[str] = frozenset(_OPERATORS | _MATH | _TEXT | _TIME | _NESTED | _OTHER | _AGGREGATES | _WINDOW)
"""Every function a query may call, by the name DuckDB's parser gives it (operators included: ``a + b`` is the
function ``+``). Left out on purpose: functions that read or write files or URLs, expose settings, variables,
the environment or the catalog (``current_setting``, ``getvariable``, ``duckdb_*``, ``pg_*``), serialise or run
other SQL (``json_serialize_plan``, ``json_execute_serialized_sql``), build values of any size in one call
(``range``, ``generate_series``, ``repeat``, ``list_resize``, ``bitstring``), sleep, and DuckDB internals."""

_BOUNDED = {"lpad": 1, "rpad": 1}
"""Functions whose argument at this index is an output length: it must be a literal of at most MAX_GENERATED."""
_FORMATS = {"printf", "format"}

QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "EMPTY_FROM", "PIVOT"})
EXPRESSIONS = frozenset(
    {
        "BETWEEN", "CASE", "CAST", "COLLATE", "COLUMN_REF", "COMPARISON", "CONJUNCTION", "CONSTANT", "FUNCTION",
        "LAMBDA", "LAMBDA_REF", "OPERATOR", "STAR", "SUBQUERY", "WINDOW", "POSITIONAL_REFERENCE",
    }
)  # fmt: skip
"""Expression classes a query may use. Not: PARAMETER (``$1``, ``?``: nothing binds them), DEFAULT."""
_MODIFIERS = frozenset({"ORDER_MODIFIER", "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER", "DISTINCT_MODIFIER"})
_ORDER_TYPES = frozenset({"ORDER_DEFAULT", "ASCENDING", "DESCENDING"})


_local = threading.local()
_reserved: frozenset[str] | None = None


def check_sql(sql: str, *, tables: Collection[str]) -> None:
    """Parse ``sql`` with DuckDB's parser (a connection of this thread that reads nothing) and :func:`check` it.

    >>> check_sql("SELECT count(*) FROM v WHERE x > 1", tables={"v"})
    >>> check_sql("WITH pg_settings AS (SELECT 1) SELECT * FROM pg_settings", tables={"v"})
    Traceback (most recent call last):
    ...
    lakehouse.errors.QueryError: a CTE may not be named 'pg_settings': that is a name of the engine's catalog
    """
    con = _parser()
    check(parse(con, sql), tables=tables, reserved=reserved_names(con))


def _parser() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "enable_external_access": False,
            }
        )
        _local.con = con
    return con


def reserved_names(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Names of the tables and views every DuckDB catalog has (``pg_settings``, ``sqlite_master``,
    ``information_schema``'s ...): a bare name that is not a CTE in scope binds to one of these."""
    global _reserved
    if _reserved is None:
        rows = con.execute(
            "SELECT lower(view_name) FROM duckdb_views() UNION SELECT lower(table_name) FROM duckdb_tables()"
        ).fetchall()
        _reserved = frozenset(r[0] for r in rows)
    return _reserved


def parse(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of ``sql`` (its parser only: nothing is bound or run)."""
    try:
        raw = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    except Exception as e:  # duckdb.Error: the parser itself failed
        raise QueryError(f"cannot parse SQL: {_first_line(e)}") from e
    tree = json.loads(raw[0]) if raw else {}
    if tree.get("error"):
        raise QueryError(f"cannot run this SQL: {tree.get('error_message') or 'not a query'}")
    return dict(tree)


def check(tree: dict[str, Any], *, tables: Collection[str], reserved: Collection[str] = ()) -> None:
    """Refuse anything in DuckDB's parse tree of one query that the allow-list does not name.

    Args:
        tree: :func:`parse`'s output.
        tables: the names a FROM may use: the views lakehouse made for this query (CTE names are added from the
            tree).
        reserved: names of objects in the engine's catalog (system views); a CTE may not take one of these
            names, so that whatever scope DuckDB binds a reference in, it cannot reach them.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> check(parse(con, "SELECT upper(name), count(*) FROM v GROUP BY 1"), tables={"v"})
    >>> check(parse(con, "SELECT json_serialize_plan('SELECT 1')"), tables={"v"})
    Traceback (most recent call last):
    ...
    lakehouse.errors.QueryError: function json_serialize_plan is not allowed: queries read catalog tables only
    """
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, not {len(statements)}")
    ctes = {name.lower() for name in _cte_names(statements[0])}
    clash = ctes & {r.lower() for r in reserved}
    if clash:
        raise QueryError(f"a CTE may not be named {sorted(clash)[0]!r}: that is a name of the engine's catalog")
    allowed = {t.lower() for t in tables} | ctes
    for node in _nodes(statements[0]):
        _check_node(node, allowed)


def _check_node(node: dict[str, Any], tables: set[str]) -> None:
    cls = node.get("class")
    kind = node.get("type")
    if cls is not None:
        if cls not in EXPRESSIONS:
            raise QueryError(f"{_words(cls)} expressions are not allowed in queries here")
        if cls in ("FUNCTION", "WINDOW"):
            _check_function(node)
        return
    if not isinstance(kind, str):
        return
    if kind in QUERY_NODES or kind in _MODIFIERS or kind in _ORDER_TYPES:
        if node.get("sample") is not None:
            _check_sample(node["sample"])
        return
    if kind in TABLE_REFS:
        if kind == "BASE_TABLE":
            _check_table(node, tables)
        return
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name != "unnest" or function.get("schema") not in ("", "main", None) or function.get("catalog"):
            raise QueryError(f"table function {name or '?'} is not allowed: queries read catalog tables only")
        return
    if kind in ("NULLS_FIRST", "NULLS_LAST", "ORDER_DEFAULT"):
        return
    raise QueryError(f"{_words(kind)} is not allowed in queries here")


def _check_function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") not in ("", "main", None) or node.get("catalog") not in ("", "system", None):
        raise QueryError(f"function {node.get('schema') or node.get('catalog')}.{name} is not allowed")
    if name not in FUNCTIONS:
        raise QueryError(f"function {name} is not allowed: queries read catalog tables only")
    args = node.get("children") or []
    if name in _BOUNDED:
        size = args[_BOUNDED[name]] if len(args) > _BOUNDED[name] else None
        value = _constant(size)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GENERATED:
            raise QueryError(f"{name} needs a literal length of at most {MAX_GENERATED}")
    elif name in _FORMATS:
        fmt = _constant(args[0]) if args else None
        if not isinstance(fmt, str):
            raise QueryError(f"{name} needs a literal format string")
        from lakehouse.sql.rewrite import format_widths

        for width in format_widths(name, fmt):
            if not width.isdigit() or int(width) > MAX_GENERATED:
                raise QueryError(
                    f"{name}: widths and precisions must be literal numbers of at most {MAX_GENERATED}, not {width!r}"
                )


def _check_table(node: dict[str, Any], tables: set[str]) -> None:
    name = str(node.get("table_name", ""))
    if node.get("schema_name") or node.get("catalog_name"):
        raise QueryError(f"table {node.get('schema_name') or node.get('catalog_name')}.{name} is not allowed here")
    if node.get("at_clause") is not None:
        raise QueryError("time travel is written AT (VERSION => n) on a catalog table")
    if name.lower() not in tables:
        raise QueryError(f"unknown table {name!r}: queries read catalog tables (namespace.table) and their CTEs")


def _check_sample(sample: Any) -> None:
    if not isinstance(sample, dict):
        raise QueryError("this sample clause is not allowed")


def _constant(node: Any) -> Any:
    if isinstance(node, dict) and node.get("class") == "CONSTANT":
        value = node.get("value") or {}
        return None if value.get("is_null") else value.get("value")
    if isinstance(node, dict) and node.get("class") == "CAST":  # '5'::INT
        return _constant(node.get("child"))
    return None


def _cte_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map") or []:
                if isinstance(entry, dict) and "key" in entry:
                    yield str(entry["key"])
        for value in node.values():
            yield from _cte_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _cte_names(value)


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object of the tree that is an expression (``class``) or a node with a ``type``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if "class" in current or isinstance(current.get("type"), str):
                yield current
            if "value" in current and current.get("class") == "CONSTANT":
                continue  # a constant's value is data, not tree (a type id is no node)
            # a type (of a cast, a constant) describes data and holds no expression
            stack.extend(v for k, v in current.items() if isinstance(v, dict | list) and k not in _TYPE_KEYS)
        elif isinstance(current, list):
            stack.extend(current)


_TYPE_KEYS = frozenset({"type", "cast_type", "type_info"})


def _words(kind: str) -> str:
    return kind.replace("_", " ").lower()


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
