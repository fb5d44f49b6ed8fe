"""Governance operations on tables: in-place masking, purging history, erasure (right to be forgotten).

* **mask** stores the masking policies in the table's policy (so ingestion masks new rows from then on),
  rewrites every live file with the masked columns, and swaps them in one commit.
* **purge** makes raw values physically gone: a new head that carries nothing of older versions
  (:meth:`LakehouseTable.seal_history`), a vacuum with zero retention (older versions and the files only they
  reference), the old log files (Delta's commit JSON holds column statistics and delete predicates), and every
  unreferenced file under the location whatever its age. Purge while no other writer is active: a file a
  writer has written but not yet committed is unreferenced and is deleted too (its commit then fails).
* **erase** deletes a data subject's rows from each listed table, purges, and records a receipt that names the
  tables, the columns of the predicate and the counts, but stores only a SHA-256 of the predicate itself.
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

from lakehouse.errors import CommitConflictError, InvalidInputError, StorageError
from lakehouse.expr import check_columns, parse_filter
from lakehouse.governance.masking import MaskPolicy, apply_masks, check_column, parse_mask
from lakehouse.storage import delete_tree, split_location
from lakehouse.tables.base import LakehouseTable, TableName

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse


def mask_secret(lh: Lakehouse) -> bytes | None:
    secret = lh.settings.governance.mask_secret
    return secret.get_secret_value().encode() if secret is not None else None


def table_masks(lh: Lakehouse, table: LakehouseTable) -> dict[str, MaskPolicy]:
    """The masking policies of a table (from its policy), checked against its columns."""
    masks = {c: parse_mask(p) for c, p in lh.policy(table.name).masking.items()}
    for column, policy in masks.items():
        if table.schema.get_field_index(column) < 0:
            raise InvalidInputError(f"masking policy names column {column}, which {table.name} does not have")
        check_column(policy, table.schema.field(column))
    return masks


def read_masks(lh: Lakehouse, table: LakehouseTable) -> dict[str, MaskPolicy]:
    """What a reader without the PII-read permission sees masked: the table's masking policies, and every
    column a PII scan tagged (redacted if text, NULL otherwise)."""
    masks = table_masks(lh, table)
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
    lh: Lakehouse,
    name: str,
    *,
    policies: Mapping[str, str] | None = None,
    purge: bool = False,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Mask columns of every live file in place (one commit); with ``purge`` also erase the history."""
    table = lh.table(name)
    given = {c: str(parse_mask(p)) for c, p in (policies or {}).items()}
    for column, spec in given.items():
        if table.schema.get_field_index(column) < 0:
            raise InvalidInputError(f"unknown column {column} in table {table.name}")
        check_column(parse_mask(spec), table.schema.field(column))
    effective = {**{c: str(p) for c, p in table_masks(lh, table).items()}, **given}
    if not effective:
        raise InvalidInputError(
            f"no masking policy for {table.name}", hint="give --column COL --policy hash|redact|partial|null|generalize"
        )
    outside = [c for c in effective if c not in table.file_columns()]
    if outside:
        raise InvalidInputError(f"cannot mask partition column(s) {', '.join(outside)} in place")
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
    if given:
        lh.set_policy(table.name, {"masking": given})  # ingestion masks from now on
    job = lh.catalog.start_job(
        "pii.mask", table=table.name, params={"masks": effective, "purge": purge}, actor=lh.actor
    )
    report["job_id"] = job
    written: list[str] = []
    dirs: list[str] = []
    committing = False
    try:
        partitions: dict[str, dict[str, Any]] = {}
        rows_out = 0
        for f in files:
            out_dir = f"{table.data_directory(f.partition)}/lh-{job}-mask"
            if out_dir not in dirs:
                dirs.append(out_dir)
            target = f"{out_dir}/{uuid.uuid4().hex}.parquet"
            rows_out += _mask_file(lh, f.path, target, masks, secret)
            written.append(target)
            partitions[target] = dict(f.partition)
        if rows_out != report["rows"]:
            raise StorageError(f"masking {table.name} produced {rows_out} rows from {report['rows']}")
        committing = True  # from here a failure may have committed: leave the files to `orphans`
        commit = (
            table.replace_files(
                remove=[f.path for f in files],
                add=written,
                properties={"lakehouse.job": str(job), "lakehouse.operation": "mask"},
                partitions=partitions,
            )
            if files
            else None
        )
        report["version"] = commit.version if commit else None
        report["files_rewritten"] = len(files)
        if purge:
            report["purge_report"] = purge_history(lh, table.name, job=job)
    except BaseException as e:
        if not committing or isinstance(e, CommitConflictError):  # nothing committed: what was written is garbage
            for d in dirs:
                delete_tree(d, lh.ctx)
        lh.catalog.finish_job(job, state="failed", metrics=_flat(report), error=str(e) or type(e).__name__)
        raise
    lh.catalog.finish_job(job, state="committed", metrics=_flat(report))
    lh.catalog.update_table(table.name)
    return report


def _mask_file(lh: Lakehouse, source: str, target: str, masks: Mapping[str, MaskPolicy], secret: bytes | None) -> int:
    """Rewrite one Parquet file with masked columns (field ids and other columns kept); returns its rows."""
    fs_in, path_in = split_location(source, lh.ctx)
    with fs_in.open_input_file(path_in) as fh:
        data = pq.read_table(fh)
    masked = apply_masks(data, masks, secret)
    fs_out, path_out = split_location(target, lh.ctx)
    if not target.startswith(("s3://", "s3a://")):
        fs_out.create_dir(path_out.rsplit("/", 1)[0], recursive=True)
    with fs_out.open_output_stream(path_out) as out:
        pq.write_table(masked, out, compression="zstd", write_statistics=True)
    return int(masked.num_rows)


def _flat(report: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k != "purge_report"}
    for k, v in (report.get("purge_report") or {}).items():
        out[f"purge_{k}"] = v
    return out


# ---- purge --------------------------------------------------------------------------------------------------


def purge_history(lh: Lakehouse, name: str | TableName, *, job: int | None = None) -> dict[str, Any]:
    """Leave only the current version and the files it references under the table location."""
    from lakehouse.maintenance.retention import remove_orphans, vacuum

    table = lh.table(name)
    sealed = table.seal_history()
    swept = vacuum(lh, str(table.name), retain=dt.timedelta(0), dry_run=False)
    log_files = lh.table(name).drop_old_log()
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
    lh: Lakehouse,
    where: str,
    *,
    tables: Sequence[str] | None = None,
    purge: bool = True,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Delete the rows matching ``where`` from the tables (default: every table that has all the predicate's
    columns), purge their history, and record a receipt."""
    expr = parse_filter(where)
    columns = sorted(expr.columns())
    if tables:
        names = [str(TableName.parse(t)) for t in tables]
    else:
        names = [
            str(r.name) for r in lh.list_tables() if all(r.definition.schema.get_field_index(c) >= 0 for c in columns)
        ]
        if not names:
            raise InvalidInputError(f"no table has the column(s) {', '.join(columns)}", hint="name them with --tables")
    per_table: dict[str, dict[str, Any]] = {}
    for n in names:
        table = lh.table(n)
        check_columns(expr, table.schema)
        per_table[n] = {"rows_matching": table.scan(filter=where, columns=[columns[0]]).num_rows}
    secret = mask_secret(lh)
    receipt: dict[str, Any] = {
        "receipt_id": uuid.uuid4().hex,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "actor": lh.actor,
        # keyed when a secret is set: a plain hash of "customer_id = 42" is easy to reverse by guessing
        "predicate_digest": (
            hmac.new(secret, where.encode(), hashlib.sha256).hexdigest()
            if secret
            else hashlib.sha256(where.encode()).hexdigest()
        ),
        "digest": "hmac-sha256" if secret else "sha256",
        "columns": columns,
        "purge": purge,
        "dry_run": dry_run,
        "tables": per_table,
    }
    if dry_run:
        return receipt
    for n in names:
        table = lh.table(n)
        job = lh.catalog.start_job(
            "erase",
            table=table.name,
            params={"receipt_id": receipt["receipt_id"], "predicate_digest": receipt["predicate_digest"]},
            actor=lh.actor,
        )
        entry = per_table[n]
        try:
            result = table.delete_rows(where, properties={"lakehouse.job": str(job), "lakehouse.operation": "erase"})
            entry["rows_deleted"] = result.rows_deleted
            entry["version"] = result.version
            if purge:
                entry["purge"] = purge_history(lh, n, job=job)
            entry["rows_matching_after"] = lh.table(n).scan(filter=where, columns=[columns[0]]).num_rows
            if entry["rows_matching_after"]:  # a writer added the subject again meanwhile
                raise StorageError(
                    f"{entry['rows_matching_after']} rows of {n} still match after the erasure (written meanwhile?)",
                    hint="stop writers that may carry the subject and run erase again",
                )
        except BaseException as e:
            lh.catalog.finish_job(job, state="failed", metrics=_flat(entry), error=str(e) or type(e).__name__)
            raise
        lh.catalog.finish_job(job, state="committed", metrics=_flat(entry))
        lh.catalog.update_table(table.name)
    lh.catalog.audit(
        "erase.receipt",
        table=None,
        actor=lh.actor,
        details={k: v for k, v in receipt.items() if k != "dry_run"},
    )
    return receipt
