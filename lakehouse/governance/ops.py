"""Governance operations on tables: in-place masking, purging history, erasure (right to be forgotten).

* **mask** rewrites every live file with the masked columns, swaps them in one commit, and then stores the
  masking policies in the table's policy (so ingestion masks new rows from then on). A run that fails before
  its commit leaves nothing behind: no policy, no written file. Columns a partition is derived from are
  refused: their raw values live on in the partition values (Delta's generated columns, Iceberg manifests).
* **purge** makes raw values physically gone: a new head that carries nothing of older versions
  (:meth:`LakehouseTable.seal_history`), a vacuum with zero retention (older versions and the files only they
  reference), the old log files (Delta's commit JSON holds column statistics and delete predicates; Iceberg's
  older metadata JSON lists the old snapshots), and every unreferenced file under the location whatever its
  age. Iceberg tags and branches keep their snapshots alive, so a table with one is refused before anything
  changes. Purge while no other writer is active: a file a writer has written but not yet committed is
  unreferenced and is deleted too (its commit then fails).
* **erase** deletes a data subject's rows from each listed table, purges, and records a receipt that names the
  tables, the columns of the predicate and the counts, but stores only a digest of the predicate itself (so do
  the delete's commit, its job and its lineage; :func:`predicate_digest`).

A mask or erase whose commit landed is a success even when a step after it fails (the purge, the final check,
storing the policy): the job is recorded as committed with that failure, and the report says per table
"committed as version N; <step> failed: <why>; to finish: <command>". A failure before the commit is raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.duck import duck_type
from lakehouse.errors import (
    CommitConflictError,
    CommitOutcomeUnknownError,
    IncompleteError,
    InvalidInputError,
    LakehouseError,
    StorageError,
    UnsupportedOperationError,
    error_text,
)
from lakehouse.expr import And, Compare, Expr, In, Not, Or, check_columns, parse_filter
from lakehouse.governance.masking import MaskPolicy, apply_masks, check_column, parse_mask
from lakehouse.storage import delete_tree, split_location
from lakehouse.tables.base import DataFile, LakehouseTable, TableName
from lakehouse.verify import Fingerprint, Verifier, fingerprint_by_column, parquet_by_name

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace


def mask_secret(lh: Workspace) -> bytes | None:
    secret = lh.settings.governance.mask_secret
    return secret.get_secret_value().encode() if secret is not None else None


def predicate_digest(lh: Workspace, predicate: str) -> tuple[str, str]:
    """(digest, kind) of a row-delete predicate: the only form in which lakehouse records one (commit info,
    snapshot summary, job history, audit receipt). Keyed with ``governance.mask_secret`` (``hmac-sha256``): a
    plain hash of ``customer_id = 42`` is easy to reverse by guessing; without a secret it is a plain SHA-256
    (``sha256``), so set one where predicates name people.

    >>> from types import SimpleNamespace
    >>> from pydantic import SecretStr
    >>> keyed = SimpleNamespace(settings=SimpleNamespace(governance=SimpleNamespace(mask_secret=SecretStr("k"))))
    >>> predicate_digest(keyed, "id = 1")[1], len(predicate_digest(keyed, "id = 1")[0])
    ('hmac-sha256', 64)
    """
    secret = mask_secret(lh)
    if secret:
        return hmac.new(secret, predicate.encode(), hashlib.sha256).hexdigest(), "hmac-sha256"
    return hashlib.sha256(predicate.encode()).hexdigest(), "sha256"


def digest_properties(digest: str, kind: str) -> dict[str, str]:
    """The commit properties that record a delete predicate (by its digest)."""
    return {"lakehouse.predicate_digest": digest, "lakehouse.predicate_digest_kind": kind}


def table_masks(lh: Workspace, table: LakehouseTable) -> dict[str, MaskPolicy]:
    """The masking policies of a table (from its policy) for writing (ingestion, ``Lakehouse.append``), checked
    against its columns. A policy on a column a partition is derived from is refused (see
    :func:`check_partition_sources`): ingestion stops with that error rather than land rows whose partition
    values disagree with what the in-place mask of the older rows would leave."""
    masks = _policy_masks(lh, table)
    check_partition_sources(table, masks, where="masking policy")
    return masks


def _policy_masks(lh: Workspace, table: LakehouseTable) -> dict[str, MaskPolicy]:
    masks = {c: parse_mask(p) for c, p in lh.policy(table.name).masking.items()}
    for column, policy in masks.items():
        if table.schema.get_field_index(column) < 0:
            raise InvalidInputError(f"masking policy names column {column}, which {table.name} does not have")
        check_column(policy, table.schema.field(column))
    return masks


def partition_sources(table: LakehouseTable) -> dict[str, list[str]]:
    """Column -> the partition fields computed from it (``ts`` -> ``["day(ts)"]``; identity: the column)."""
    out: dict[str, list[str]] = {}
    for pf in table.definition.partitioning:
        out.setdefault(pf.column, []).append(str(pf))
    return out


def check_partition_sources(table: LakehouseTable, columns: Mapping[str, Any], *, where: str = "mask") -> None:
    """Refuse to mask a column that a partition is derived from (identity or a transform).

    Each file's partition value is computed from the raw column and kept outside it: Delta materialises
    ``day(ts)`` as the generated column ``ts_day`` in the log (every Delta reader sees it, and a filter on it
    would no longer match ``CAST(ts AS DATE)``), Iceberg keeps it in the manifests and refuses files whose
    values moved to another partition. Masking the column in place would leave the raw value there.
    """
    if not columns:
        return  # (no definition read: ingestion calls this on every commit)
    sources = partition_sources(table)
    refused = [c for c in columns if c in sources]
    if not refused:
        return
    what = "; ".join(f"{c} (partitioned by {', '.join(sources[c])})" for c in refused)
    raise InvalidInputError(
        f"cannot mask {what} in {table.name}: each file's partition value is computed from the raw column and "
        "kept outside it (Delta: a generated partition column every reader sees; Iceberg: the manifests), so "
        "masking would leave the raw value there and break partition filters",
        hint=(
            f"remove the policy (`lakehouse policy unset {table.name} {' '.join(f'masking.{c}' for c in refused)}`); "
            if where == "masking policy"
            else ""
        )
        + "mask only columns no partition is derived from, or copy the rows into a table not partitioned by it",
    )


def read_masks(lh: Workspace, table: LakehouseTable) -> dict[str, MaskPolicy]:
    """What a reader without the PII-read permission sees masked: the table's masking policies, and every
    column a PII scan tagged (redacted if text, NULL otherwise). Masking a partition's source column on read
    is fine (the view masks it), so it is not refused here."""
    from lakehouse.names import is_quarantine

    if is_quarantine(table.name):  # raw input: no policy knows which part of a payload is PII (fail closed)
        return {
            f.name: parse_mask("redact" if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) else "null")
            for f in table.schema
        }
    masks = _policy_masks(lh, table)
    for tag in lh.catalog.pii_tags(table.name):
        column = tag["column"]
        if column in masks or table.schema.get_field_index(column) < 0:
            continue
        field = table.schema.field(column)
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        # fail closed: a tagged column that cannot be redacted reads as NULL (even if the table's is NOT NULL)
        masks[column] = parse_mask("redact" if text else "null")
    return masks


# ---- in-place masking ---------------------------------------------------------------------------------------


def mask_table(
    lh: Workspace,
    name: str,
    *,
    policies: Mapping[str, str] | None = None,
    purge: bool = False,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Mask columns of every live file in place (one commit); with ``purge`` also erase the history.

    The given policies are stored in the table's policy only once the commit has landed (lakehouse's ingestion
    masks from then on). Files other writers committed while the job ran are masked next, in further commits
    (:func:`_mask_latecomers`). A failure before the first commit (or a commit the table's history shows did not
    land) deletes every file the run wrote."""
    table = lh.table(name)
    given = {c: str(parse_mask(p)) for c, p in (policies or {}).items()}
    for column, spec in given.items():
        if table.schema.get_field_index(column) < 0:
            raise InvalidInputError(f"unknown column {column} in table {table.name}")
        check_column(parse_mask(spec), table.schema.field(column))
    effective = {**{c: str(p) for c, p in _policy_masks(lh, table).items()}, **given}
    if not effective:
        raise InvalidInputError(
            f"no masking policy for {table.name}", hint="give --column COL --policy hash|redact|partial|null|generalize"
        )
    check_partition_sources(table, effective)
    table.check_rewrite(raw=True)  # masking rewrites each file as it is: deletes beside it would be lost
    outside = [c for c in effective if c not in table.file_columns()]
    if outside:
        raise InvalidInputError(f"cannot mask column(s) {', '.join(outside)} in place: they are not in the data files")
    # a table feature lakehouse cannot mask in place (Delta column mapping, ...) is refused by the adapter, the
    # plan too
    table.check_operation("mask")
    if purge:
        check_purge_possible(lh, table, what="mask --purge", hint="or mask without --purge")
    masks = {c: parse_mask(p) for c, p in effective.items()}
    secret = mask_secret(lh)
    if any(m.kind == "hash" for m in masks.values()) and not secret:
        from lakehouse.errors import ConfigError

        raise ConfigError(
            "the hash masking policy needs a secret",
            hint="set governance.mask_secret in lakehouse.toml or LAKEHOUSE_GOVERNANCE__MASK_SECRET",
        )
    files = table.files() if table.snapshots() else []
    report: dict[str, Any] = {
        "table": str(table.name),
        "dry_run": dry_run,
        "masks": effective,
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "rows": sum(f.row_count for f in files),
        "purge": purge,
    }
    if dry_run:
        return report
    job = lh.catalog.start_job(
        "pii.mask", table=table.name, params={"masks": effective, "purge": purge}, actor=lh.actor
    )
    report["job_id"] = job
    written: list[str] = []
    dirs: list[str] = []
    stage = "writing"  # -> "committing" (replace_files running) -> "committed" | "not committed"
    try:
        partitions: dict[str, dict[str, Any]] = {}
        rows_out = _mask_files(lh, table, job, files, masks, secret, written, dirs, partitions)
        if rows_out != report["rows"]:
            raise StorageError(f"masking {table.name} produced {rows_out} rows from {report['rows']}")
        report["version"] = None
        if files:
            stage = "committing"
            properties = {"lakehouse.job": str(job), "lakehouse.operation": "mask"}
            try:
                report["version"] = table.replace_files(
                    remove=[f.path for f in files], add=written, properties=properties, partitions=partitions
                ).version
            except BaseException as e:
                landed = landed_version(table, properties, e)  # raises when that cannot be told
                if landed is None:
                    stage = "not committed"
                    raise
                # the commit call failed after the commit landed (a lost answer): the masked files are live
                report["version"] = landed
                report["commit_error"] = " ".join(str(e).split()) or type(e).__name__
                stage = "committed"
                if not isinstance(e, Exception):
                    raise
        stage = "committed"
    except BaseException as e:
        if stage in ("writing", "not committed"):  # nothing committed: what was written is garbage
            for d in dirs:
                delete_tree(d, table.ctx)
        if stage != "committed":
            lh.catalog.finish_job(job, state="failed", metrics=_flat(report), error=error_text(e))
            raise
        _after_commit_failed(lh, table.name, job, report, "the commit", e, _mask_command(table.name, given, purge))
        raise  # an interruption while the commit landed: recorded as committed, and the interruption goes on
    report["files_rewritten"] = len(files)
    if report["version"] is not None:  # killed from here on, the job is closed as committed, not failed
        with contextlib.suppress(LakehouseError):
            lh.catalog.note_commit(job, _flat(report))
        with contextlib.suppress(LakehouseError):  # each file masked in place, its rows and row groups kept
            lh.catalog.follow_rewrites(
                table.name, dict(zip([f.path for f in files], written, strict=True)), changed=list(masks)
            )
    step = "storing the masking policy"
    try:
        _store_policy(lh, table, given)  # the files are masked: ingestion masks from now on
        if files:
            step = "masking the files other writers committed during the job"
            _mask_latecomers(lh, table.name, job, report, {f.path for f in files} | set(written), masks, secret)
        if purge:
            step = "purge"
            report["purge_report"] = purge_history(lh, table.name, job=job)
    except BaseException as e:
        if report["version"] is None:  # no file to mask, nothing committed: the failure is the outcome
            lh.catalog.finish_job(job, state="failed", metrics=_flat(report), error=error_text(e))
            raise
        _after_commit_failed(lh, table.name, job, report, step, e, _mask_command(table.name, given, purge))
        if not isinstance(e, Exception):
            raise
        return report
    lh.catalog.finish_job(job, state="committed", metrics=_flat(report))
    lh.catalog.update_table(table.name)
    return report


def _mask_files(
    lh: Workspace,
    table: LakehouseTable,
    job: int,
    files: Sequence[DataFile],
    masks: Mapping[str, MaskPolicy],
    secret: bytes | None,
    written: list[str],
    dirs: list[str],
    partitions: dict[str, dict[str, Any]],
) -> int:
    """Write a masked, verified copy of each of ``files`` beside it (``lh-<job>-mask/``), recording the paths
    written, their directories and partitions in the lists given (what a failure deletes); returns the rows."""
    rows = 0
    with Verifier(table.ctx, location=table.location) as verifier:
        for f in files:
            out_dir = f"{table.data_directory(f.partition)}/lh-{job}-mask"
            if out_dir not in dirs:
                dirs.append(out_dir)
            target = f"{out_dir}/{uuid.uuid4().hex}.parquet"
            rows += _mask_file(lh, table, verifier, f.path, target, masks, secret)
            written.append(target)
            partitions[target] = dict(f.partition)
    return rows


LATECOMER_ROUNDS = 5
"""Commits of files appended while a mask ran (each round masks what the round before found new) before the job
stops and says that a writer keeps adding unmasked rows."""


def _mask_latecomers(
    lh: Workspace,
    name: TableName,
    job: int,
    report: dict[str, Any],
    seen: set[str],
    masks: Mapping[str, MaskPolicy],
    secret: bytes | None,
) -> None:
    """After a mask's commit: mask the live files that were not there when the job listed the table (appended
    meanwhile, by lakehouse before the policy was stored or by another writer), round after round until a
    round finds none. Masking is idempotent, so a file lakehouse's ingestion masked already is unchanged by it.
    ``report`` gets ``latecomer_files`` / ``latecomer_rows`` and, when writers kept appending for
    :data:`LATECOMER_ROUNDS` rounds, a warning: rows committed since may be unmasked."""
    report.setdefault("latecomer_files", 0)
    report.setdefault("latecomer_rows", 0)
    for round_no in range(1, LATECOMER_ROUNDS + 1):
        properties = {"lakehouse.job": str(job), "lakehouse.operation": "mask", "lakehouse.round": str(round_no)}
        table = lh.table(name)
        new = [f for f in table.files() if f.path not in seen]
        if not new:
            return
        written: list[str] = []
        dirs: list[str] = []
        partitions: dict[str, dict[str, Any]] = {}
        committed = False
        try:
            _mask_files(lh, table, job, new, masks, secret, written, dirs, partitions)
            try:
                report["version"] = table.replace_files(
                    remove=[f.path for f in new], add=written, properties=properties, partitions=partitions
                ).version
            except CommitConflictError:  # a file of the round went meanwhile (another job): the next round lists
                continue
            except BaseException as e:
                landed = landed_version(table, properties, e)
                if landed is None:
                    raise
                report["version"] = landed
            committed = True
            with contextlib.suppress(LakehouseError):
                lh.catalog.follow_rewrites(
                    name, dict(zip([f.path for f in new], written, strict=True)), changed=list(masks)
                )
        finally:
            if not committed:
                with contextlib.suppress(Exception):  # the error that stopped the round is the one reported
                    table._discard(written)
        seen |= {f.path for f in new} | set(written)
        report["latecomer_files"] += len(new)
        report["latecomer_rows"] += sum(f.row_count for f in new)
        report["files_rewritten"] = report.get("files_rewritten", 0) + len(new)
    report["warning"] = (
        f"{name}: other writers kept committing unmasked files during the mask ({LATECOMER_ROUNDS} rounds); rows "
        "committed since may be unmasked: run the mask again once they stop"
    )


def _after_commit_failed(
    lh: Workspace,
    name: TableName,
    job: int,
    report: dict[str, Any],
    step: str,
    error: BaseException,
    to_finish: str,
    *,
    why: str | None = None,
) -> str:
    """Record a job whose commit landed (``report["version"]``) and a step after it that failed: the job is
    committed (that is its outcome), with the failure and what finishes it noted in the report and the job's
    error. Returns the warning."""
    why = why or " ".join((str(error) or type(error).__name__).split())
    if not isinstance(error, Exception):
        why = f"interrupted ({type(error).__name__})"
    warning = f"{name}: committed as version {report['version']}; {step} failed: {why}; to finish: {to_finish}"
    report.update(failed_step=step, error=why, to_finish=to_finish, warning=warning)
    lh.catalog.finish_job(job, state="committed", metrics=_flat(report), error=warning)
    with contextlib.suppress(Exception):  # the job is recorded; a catalog hiccup here changes nothing
        lh.catalog.update_table(name)
    return warning


def _mask_command(name: TableName, given: Mapping[str, str], purge: bool) -> str:
    """The command that finishes an in-place mask (every policy is idempotent: masking again is safe)."""
    pairs = "".join(f" --column {c} --policy {p}" for c, p in given.items())
    return f"lakehouse pii mask {name}{pairs}{' --purge' if purge else ''} --apply"


def _store_policy(lh: Workspace, table: LakehouseTable, given: Mapping[str, str]) -> None:
    """Store the masking policies once the commit landed. The catalog's copy of the definition is refreshed
    first: the policy is checked against it, and another tool may have renamed or added columns."""
    if given:
        lh.catalog.update_table(table.name, table.definition)
        lh.set_policy(table.name, {"masking": dict(given)})


MASK_PIECE_ROWS = 1 << 20
"""The most rows masking holds at a time: a source row group of more is masked in pieces of this many (each
written as a row group of its own); smaller ones are masked whole, so the file written keeps their layout."""


def _mask_file(
    lh: Workspace,
    table: LakehouseTable,
    verifier: Verifier,
    source: str,
    target: str,
    masks: Mapping[str, MaskPolicy],
    secret: bytes | None,
) -> int:
    """Rewrite one Parquet file with masked columns (field ids and other columns kept), verified before it counts
    (:func:`_verify_mask`); returns its rows.

    The file is read by the adapter (:meth:`LakehouseTable.read_data_file`), which matches its columns to the
    table's the way the format does (Iceberg: by field id, so a column renamed since is masked under its
    current name; Delta: by name, column mapping being refused by the plan). It is read, masked and written piece
    by piece (row group by row group, a group of more than :data:`MASK_PIECE_ROWS` rows in pieces of that many),
    so the job holds one piece at a time whatever the file's size, and the file written keeps the source's row
    groups; the fingerprint of the masked values computed is summed over the pieces."""
    schema = table.schema
    hidden = [c for c in table.file_columns() if c in masks]
    fs_out, path_out = split_location(target, table.ctx)
    if not target.startswith(("s3://", "s3a://")):
        fs_out.create_dir(path_out.rsplit("/", 1)[0], recursive=True)
    rows = 0
    present: set[str] = set()
    computed: tuple[Fingerprint, dict[str, int]] = (Fingerprint(0, 0), dict.fromkeys(hidden, 0))
    writer: pq.ParquetWriter | None = None
    with fs_out.open_output_stream(path_out) as out:
        try:
            # under the table's names, as the format matches columns
            for piece in table.read_data_file(source, rows=MASK_PIECE_ROWS):
                masked = apply_masks(piece, masks, secret)
                if writer is None:
                    writer = pq.ParquetWriter(out, masked.schema, compression="zstd", write_statistics=True)
                    present = set(masked.column_names)
                writer.write_table(masked, row_group_size=max(1, masked.num_rows))  # the piece is one row group
                rows += masked.num_rows
                if hidden:
                    fp, sums = _masked_fingerprint(verifier, masked, present, hidden, schema)
                    computed = (computed[0] + fp, {c: computed[1][c] + sums[c] for c in hidden})
        except BaseException:
            if writer is not None:
                with contextlib.suppress(Exception):  # the error that stopped the write is the one reported
                    writer.close()
            raise
        if writer is not None:
            writer.close()
    _verify_mask(table, verifier, source, target, present, hidden, computed)
    return rows


def _masked_fingerprint(
    verifier: Verifier, masked: pa.Table, present: set[str], hidden: Sequence[str], schema: pa.Schema
) -> tuple[Fingerprint, dict[str, int]]:
    """The fingerprint of the masked values computed for one piece (a column the file lacks, added since, stays
    NULL), as DuckDB reads them in the declared types."""
    con = verifier.con
    kept = [c for c in hidden if c in present]
    view = f"lh_masked_{uuid.uuid4().hex[:12]}"
    con.register(view, masked.select(kept) if kept else pa.table({"lh_row": pa.nulls(masked.num_rows, pa.int8())}))
    try:
        values = ", ".join(
            _q(c) if c in present else f"CAST(NULL AS {duck_type(schema.field(c).type)}) AS {_q(c)}" for c in hidden
        )
        return fingerprint_by_column(con, f"(SELECT {values} FROM {view})", schema, hidden)
    finally:
        con.unregister(view)


def _verify_mask(
    table: LakehouseTable,
    verifier: Verifier,
    source: str,
    target: str,
    present: set[str],
    hidden: Sequence[str],
    computed: tuple[Fingerprint, dict[str, int]],
) -> None:
    """Before anything is committed: the file written holds the source file's rows, value for value, in every
    column that is not masked, and the masked values computed (``computed``: their fingerprint) in the masked
    ones (same rows, any order).

    The unmasked columns are compared with what DuckDB reads from the *source* file in the declared types, as
    the table's rewrites read it (:meth:`LakehouseTable.rewrite_source`: by field id for Iceberg), not with the
    Arrow table in memory: a value the read changed (an INT96 timestamp that overflowed, a column matched to the
    wrong field) is caught, not copied. Raises :class:`ContentMismatchError` naming the columns."""
    schema = table.schema
    columns = table.file_columns()
    con = verifier.con
    what = f"masking {table.name} (rewriting {source})"
    read = table.rewrite_source(con, [source], columns)
    read = f"({read})" if read is not None else parquet_by_name([source], _stored_names(source, table), schema, columns)
    written = table.written_source(con, [target], columns)
    written = f"({written})" if written is not None else parquet_by_name([target], present, schema, columns)
    unmasked = [c for c in columns if c not in hidden]
    verifier.check(read=read, written=written, schema=schema, columns=unmasked, what=what)
    if hidden:
        verifier.check_against(computed, written=written, schema=schema, columns=hidden, what=what)


def _stored_names(path: str, table: LakehouseTable) -> set[str]:
    fs, inner = split_location(path, table.ctx)
    with fs.open_input_file(inner) as fh:
        return set(pq.ParquetFile(fh).schema_arrow.names)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _flat(report: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k != "purge_report"}
    for k, v in (report.get("purge_report") or {}).items():
        out[f"purge_{k}"] = v
    return out


# ---- commit outcome -----------------------------------------------------------------------------------------


def landed_version(table: LakehouseTable, properties: Mapping[str, str], error: BaseException) -> int | None:
    """After ``table.replace_files(..., properties=properties)`` raised ``error``: the version its commit landed
    as, or None when it did not land (so the files written for it are garbage).

    A :class:`CommitConflictError` means not committed: the adapters raise it only instead of their commit
    (an input removed meanwhile, or every attempt lost its compare-and-swap; Delta also checks that an earlier
    attempt did not land). Any other error may come from before the commit (validation: partitions, field ids,
    delete files) or from the commit call itself, so the table's history decides: a version carrying exactly
    these commit properties (a job id is unique) is our commit. When the history cannot be read either, that
    is raised (chained to ``error``): the caller must then keep the files."""
    if isinstance(error, CommitConflictError | UnsupportedOperationError | InvalidInputError):
        return None  # the adapters raise these instead of committing
    if isinstance(error, CommitOutcomeUnknownError):
        raise error
    try:
        snaps = table.snapshots()
    except Exception as e:  # noqa: BLE001 - any failure to read the history leaves the outcome unknown
        raise StorageError(
            f"{error}; whether the commit landed cannot be told ({e})",
            hint=f"see `lakehouse table history {table.name}`; if it did not land, `lakehouse orphans` removes the "
            "files written for it",
        ) from error
    for snap in reversed(snaps):
        if all(snap.summary.get(k) == v for k, v in properties.items()):
            return snap.version
    return None


# ---- purge --------------------------------------------------------------------------------------------------


def named_refs(lh: Workspace, table: LakehouseTable) -> dict[str, str]:
    """The table's named references other than the main branch: name -> ``"tag"`` or ``"branch"`` (Iceberg;
    Delta has none). Each keeps its snapshot, and the files that snapshot references, out of reach of
    retention, so a purge cannot remove the values they hold."""
    return {n: t for n, t in table.refs().items() if n != "main"}


def check_purge_possible(lh: Workspace, table: LakehouseTable, *, what: str, hint: str) -> None:
    """Refuse a purge that could not finish: a tag or branch protects its snapshot from expiry, so the purge
    would fail after the delete or mask had committed, leaving the raw rows in the tagged snapshot."""
    refs = named_refs(lh, table)
    if not refs:
        marker = "version-hint.text"
        held = table.ref_versions()
        if marker in held:  # a Hadoop catalog reads the version it names: retention keeps it
            raise UnsupportedOperationError(
                f"{what} cannot purge {table.name}: a Hadoop catalog's {marker} names version {held[marker]}, which "
                "retention keeps (that catalog loads the table by it), and the raw values in it; nothing was changed",
                hint=f"if no Hadoop catalog uses the table any more, remove metadata/{marker} and run again, {hint}",
            )
        return
    names = ", ".join(f"{kind} '{n}'" for n, kind in sorted(refs.items()))
    first = sorted(refs)[0]
    drop = "DROP TAG" if refs[first] == "tag" else "DROP BRANCH"
    raise UnsupportedOperationError(
        f"{what} cannot purge {table.name}: its {names} keep(s) older snapshots, and the raw values in them, "
        "out of reach of the purge; nothing was changed",
        hint=f"remove the reference first (Spark SQL: ALTER TABLE {table.name} {drop} `{first}`; pyiceberg: "
        f"table.manage_snapshots().remove_{refs[first]}('{first}').commit()) and run again, {hint}",
    )


def purge_history(lh: Workspace, name: str | TableName, *, job: int | None = None) -> dict[str, Any]:
    """Leave only the current version and the files it references under the table location."""
    from lakehouse.maintenance.retention import remove_orphans, vacuum

    table = lh.table(name)
    check_purge_possible(lh, table, what="purge", hint="or do not purge")
    sealed = table.seal_history()
    swept = vacuum(lh, str(table.name), retain=dt.timedelta(0), dry_run=False)
    fresh = lh.table(name)
    log_files = fresh.drop_old_log()
    orphans = remove_orphans(lh, str(table.name), older_than=dt.timedelta(0), dry_run=False)
    _remove_empty_directories(table.location)
    return {
        "sealed_version": sealed,
        "versions_expired": len(swept.plan.expired_versions),
        "files_deleted": swept.files_deleted + orphans.files_deleted,
        "bytes_deleted": swept.bytes_deleted + orphans.bytes_deleted,
        "log_files_deleted": log_files,
        "job": job,
    }


def _remove_empty_directories(location: str) -> None:
    """Local storage keeps a partition's directory (its name holds the partition value) after its last file is
    gone; remove the empty ones. Object stores have no directories."""
    import os

    if location.startswith(("s3://", "s3a://")) or not os.path.isdir(location):
        return
    for root, dirs, files in os.walk(location, topdown=False):
        if root != location and not dirs and not files:
            with contextlib.suppress(OSError):
                os.rmdir(root)


# ---- erasure ------------------------------------------------------------------------------------------------


def erase(
    lh: Workspace,
    where: str,
    *,
    tables: Sequence[str] | None = None,
    purge: bool = True,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Delete the rows matching ``where`` from the tables (default, ``tables=None``: every table that has all the
    predicate's columns), purge their history, and record a receipt. An empty ``tables`` is refused, never
    taken to mean every table; so is, with ``purge``, a table whose tags or branches would keep the rows."""
    expr = parse_filter(where)
    columns = sorted(expr.columns())
    unchecked: list[tuple[str, str]] = []
    if tables is not None:
        names = list(dict.fromkeys(str(TableName.parse(t)) for t in tables if str(t).strip()))
        if not names:
            raise InvalidInputError(
                "no table given to erase from",
                hint="name tables as ns.table[,ns.table], or leave --tables out for every table with the "
                "predicate's columns",
            )
    else:
        names, unchecked = _tables_with_columns(lh, columns)
        if not names:
            raise InvalidInputError(f"no table has the column(s) {', '.join(columns)}", hint="name them with --tables")
    per_table: dict[str, dict[str, Any]] = {}
    for n in names:
        table = lh.table(n)
        check_columns(expr, table.schema)
        table.check_delete()
        if purge:
            check_purge_possible(
                lh, table, what="erase", hint="or erase with --no-purge (the rows then stay in the tagged snapshots)"
            )
        per_table[n] = {"rows_matching": table.scan(filter=where, columns=[columns[0]]).num_rows}
    digest, kind = predicate_digest(lh, where)
    receipt: dict[str, Any] = {
        "receipt_id": uuid.uuid4().hex,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "actor": lh.actor,
        "predicate_digest": digest,
        "digest": kind,
        "columns": columns,
        "purge": purge,
        "dry_run": dry_run,
        "tables": per_table,
    }
    if unchecked:
        receipt["unchecked_tables"] = [n for n, _why in unchecked]
    if dry_run:
        return receipt
    properties = {"lakehouse.operation": "erase", **digest_properties(digest, kind)}
    texts = _predicate_texts(where, expr)
    stopped: tuple[str, BaseException] | None = None
    for n in names:
        table = lh.table(n)
        job = lh.catalog.start_job(
            "erase",
            table=table.name,
            params={"receipt_id": receipt["receipt_id"], "predicate_digest": digest},
            actor=lh.actor,
        )
        entry = per_table[n]
        entry["job_id"] = job
        try:
            result = table.delete_rows(where, properties={"lakehouse.job": str(job), **properties})
        except BaseException as e:  # noqa: BLE001 - recorded, and raised below (nothing committed on this table)
            entry.update(status="failed", error=_redact(e, texts))
            lh.catalog.finish_job(job, state="failed", metrics=_flat(entry), error=entry["error"])
            stopped = (n, e)
            break
        entry["rows_deleted"], entry["version"] = result.rows_deleted, result.version
        if result.version is not None:  # killed from here on, the job is closed as committed, not failed
            with contextlib.suppress(LakehouseError):
                lh.catalog.note_commit(job, _flat(entry))
            with contextlib.suppress(LakehouseError):
                lh.catalog.follow_rewrites(table.name, result.rewritten)
        step = "purge" if purge else "verification"
        try:
            if purge:
                entry["purge"] = purge_history(lh, n, job=job)
            step = "verification"
            entry["rows_matching_after"] = lh.table(n).scan(filter=where, columns=[columns[0]]).num_rows
            if entry["rows_matching_after"]:  # a writer added the subject again meanwhile
                raise StorageError(
                    f"{entry['rows_matching_after']} rows of {n} still match after the erasure (written meanwhile?)",
                    hint="stop writers that may carry the subject and run erase again",
                )
        except BaseException as e:  # noqa: BLE001 - recorded; raised below unless the delete committed
            why = _redact(e, texts)
            if result.version is None:  # no delete committed (nothing matched): the failure is the outcome
                entry.update(status="failed", failed_step=step, error=why)
                lh.catalog.finish_job(job, state="failed", metrics=_flat(entry), error=why)
                stopped = (n, e)
                break
            # the delete landed: that is the outcome, and the step that failed after it is reported with it
            entry["status"] = "committed"
            _after_commit_failed(lh, table.name, job, entry, step, e, erase_command([n], purge=purge), why=why)
            if not isinstance(e, Exception):  # interrupted: recorded as it is, and the interruption goes on
                stopped = (n, e)
                break
            continue
        entry["status"] = "erased"
        lh.catalog.finish_job(job, state="committed", metrics=_flat(entry))
        lh.catalog.update_table(table.name)
    done = [n for n in names if per_table[n].get("status") in ("erased", "committed")]
    left = names[names.index(stopped[0]) + 1 :] if stopped is not None else []
    for n in left:
        per_table[n]["status"] = "not run"
    receipt["warnings"] = [per_table[n]["warning"] for n in done if "warning" in per_table[n]]
    receipt["warnings"] += [f"{n} could not be opened to see whether it has the columns: {why}" for n, why in unchecked]
    receipt["complete"] = stopped is None and not receipt["warnings"]
    if done:
        lh.catalog.audit(
            "erase.receipt",
            table=None,
            actor=lh.actor,
            outcome="ok" if receipt["complete"] else "incomplete",
            details={k: v for k, v in receipt.items() if k != "dry_run"},
        )
    if stopped is None:
        return receipt
    failed, error = stopped
    if not done or not isinstance(error, Exception):
        raise error  # nothing was erased anywhere (or an interruption): the failure is the outcome
    erased = ", ".join(
        f"{n} (version {per_table[n]['version']})" if per_table[n]["version"] is not None else f"{n} (nothing matched)"
        for n in done
    )
    message = f"erase failed on {failed} before committing there: {error}; already erased: {erased}"
    if left:
        message += f"; not run: {', '.join(left)}"
    raise IncompleteError(
        message,
        hint=f"receipt {receipt['receipt_id']} is in the audit log; to finish: "
        f"{erase_command([failed, *left], purge=purge)}",
        http_status=error.http_status if isinstance(error, LakehouseError) else 500,
    ) from error


def _tables_with_columns(lh: Workspace, columns: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The tables that have every one of ``columns`` now (an erasure without --tables), and those that could not
    be opened to tell (name, why). The catalog's copy of a schema answers when it has the columns; otherwise the
    table's own schema does (another writer may have added a column since). A table that has them only under
    another case (``CustomerId`` for ``customerid``: the same column to SQL) is refused by name: an erasure
    must not pass it by."""
    names: list[str] = []
    unchecked: list[tuple[str, str]] = []
    other_case: dict[str, list[str]] = {}
    for r in lh.list_tables():
        schema = r.definition.schema
        if not all(schema.get_field_index(c) >= 0 for c in columns):
            try:
                schema = lh.table(r.name).schema
            except LakehouseError as e:
                unchecked.append((str(r.name), e.message))
                continue
        if all(schema.get_field_index(c) >= 0 for c in columns):
            names.append(str(r.name))
            continue
        folded = {n.lower(): n for n in schema.names}
        if all(c.lower() in folded for c in columns):
            other_case[str(r.name)] = [folded[c.lower()] for c in columns]
    if other_case:
        found = "; ".join(f"{n}: {', '.join(cs)}" for n, cs in other_case.items())
        raise InvalidInputError(
            f"the predicate's column(s) {', '.join(columns)} are spelt otherwise in some tables ({found})",
            hint="erase from those with a predicate in their spelling, and name the tables of each run with --tables",
        )
    return names, unchecked


def erase_command(tables: Sequence[str], *, purge: bool) -> str:
    """The command that finishes an erasure on ``tables`` (the predicate is never repeated in a message)."""
    return (
        f"lakehouse erase --where '<the same predicate>' --tables {','.join(tables)}"
        + ("" if purge else " --no-purge")
        + " --apply"
    )


def _predicate_texts(where: str, expr: Expr) -> list[str]:
    """Texts that give a predicate away, longest first: the predicate, and its literal values of three or more
    characters as written and URL-encoded (a partition directory in a file path holds them so)."""
    import urllib.parse

    texts = {where.strip(), " ".join(where.split())}

    def walk(e: Expr) -> None:
        if isinstance(e, And | Or):
            for item in e.items:
                walk(item)
        elif isinstance(e, Not):
            walk(e.item)
        elif isinstance(e, Compare | In):
            for v in [e.value] if isinstance(e, Compare) else list(e.values):
                text = "" if v is None or isinstance(v, bool) else str(v)
                if len(text) >= 3:
                    once = urllib.parse.quote(text, safe="")
                    texts.update((text, once, urllib.parse.quote(once, safe="")))

    walk(expr)
    return sorted((t for t in texts if t), key=len, reverse=True)


def _redact(error: BaseException, texts: Sequence[str]) -> str:
    """An error's message, on one line, for the records (job history, audit log): without the predicate or its
    values (a message may quote them, or name a partition's file path)."""
    message = " ".join((str(error) or type(error).__name__).split())
    for text in texts:
        message = message.replace(text, "<predicate value>")
    return message
