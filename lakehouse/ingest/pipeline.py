"""The micro-batch pipeline every source shares (Kafka, files, and the REST API's HTTP records).

Exactly once: each flush commits the good rows *and* the next source position of every source stream in the
batch in one table commit (:meth:`LakehouseTable.append` ``checkpoints``). Bad records go first to the
quarantine table ``<namespace>.<table>__quarantine`` with their own checkpoints. On restart a source resumes
from the target table's checkpoint; records before the quarantine's checkpoint are not quarantined twice.
So a crash at any point (even SIGKILL between writing files and committing) neither loses nor duplicates:
uncommitted data files are orphans no version references.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import InvalidInputError, TableNotFoundError
from lakehouse.ingest.records import BadRecord, NewFields, ParseResult, RawRecord, RecordParser
from lakehouse.names import QUARANTINE_SUFFIX, is_quarantine, quarantine_name
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.tables.base import LakehouseTable, TableName

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

QUARANTINE_SCHEMA = parse_schema(
    "target:string not null, source:string not null, position:int64 not null, raw:string, "
    "error:string not null, quarantined_at:timestamp not null"
)


@dataclass(frozen=True)
class FlushPolicy:
    """A micro-batch is committed when any limit is reached."""

    max_rows: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 5.0


@dataclass
class FlushResult:
    records: int = 0
    rows: int = 0
    quarantined: int = 0
    skipped: int = 0
    version: int | None = None
    new_columns: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestStats:
    records: int = 0
    rows: int = 0
    quarantined: int = 0
    skipped: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    last_version: int | None = None
    new_columns: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.records / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, r: FlushResult) -> None:
        self.records += r.records
        self.rows += r.rows
        self.quarantined += r.quarantined
        self.skipped += r.skipped
        self.batches += 1 if r.records else 0
        if r.version is not None:
            self.last_version = r.version
        self.new_columns.extend(r.new_columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "skipped_already_committed": self.skipped,
            "batches": self.batches,
            "seconds": round(self.elapsed, 3),
            "records_per_second": round(self.rate, 1),
            "last_version": self.last_version,
            "new_columns": self.new_columns,
        }


def _checked(table: LakehouseTable, parsed: ParseResult, records: Sequence[RawRecord]) -> ParseResult:
    """``parsed`` with the good rows that break one of the table's CHECK constraints moved to the bad ones (the
    format would refuse the whole micro-batch for one such row, on every rerun). A constraint DuckDB cannot
    evaluate is left to the format's own check at the commit."""
    constraints = table.check_constraints()
    if not constraints or not parsed.good.num_rows:
        return parsed
    import duckdb

    con = duckdb.connect()
    con.register("lh_rows", parsed.good.append_column("lh_row", pa.array(range(parsed.good.num_rows), pa.int64())))
    broken: dict[int, str] = {}
    for name, expression in constraints.items():
        try:
            # a NULL result breaks it too, as delta-rs (and Spark) check it
            rows = con.execute(f"SELECT lh_row FROM lh_rows WHERE ({expression}) IS NOT TRUE").fetchall()
        except duckdb.Error:
            continue
        for (n,) in rows:
            broken.setdefault(int(n), f"breaks the table's CHECK constraint {name} ({expression})")
    con.close()
    if not broken:
        return parsed
    by_position = {(r.source, r.position): r for r in records}
    keep = [i for i in range(parsed.good.num_rows) if i not in broken]
    bad = [BadRecord(by_position[parsed.good_positions[i]], why) for i, why in sorted(broken.items())]
    return ParseResult(
        good=parsed.good.take(keep),
        good_positions=[parsed.good_positions[i] for i in keep],
        bad=[*parsed.bad, *bad],
        new_fields=parsed.new_fields,
    )


class Ingestor:
    """Buffers raw records and commits them as micro-batches into one table (and its quarantine)."""

    def __init__(
        self,
        lh: Workspace,
        table: str | TableName,
        *,
        policy: FlushPolicy | None = None,
        new_fields: NewFields = "ignore",
        properties: Mapping[str, str] | None = None,
    ) -> None:
        if is_quarantine(table):  # it would get a quarantine of its own; its rows come from the pipeline only
            target = TableName.parse(table)
            raise InvalidInputError(
                f"{target} is a quarantine table: records cannot be ingested into it",
                hint=f"ingest into {target.namespace}.{target.table.removesuffix(QUARANTINE_SUFFIX)}",
            )
        self.lh = lh
        self.table: LakehouseTable = lh.table(table)
        self.policy = policy or FlushPolicy()
        self.new_fields = new_fields
        self.properties = dict(properties or {})
        self.parser = RecordParser(self.table.schema, new_fields=new_fields)
        self._quarantine: LakehouseTable | None = None
        self._buffer: list[RawRecord] = []
        self._buffer_bytes = 0
        self._first_at: float | None = None
        self.stats = IngestStats()
        self._committed: dict[str, int] = {}
        self._quarantined_upto: dict[str, int] = {}

    # ---- positions -----------------------------------------------------------------------------------

    def resume_position(self, source: str) -> int | None:
        """Where ``source`` resumes: the next position after what the table has committed (None: never)."""
        pos = self.table.checkpoint(source)
        if pos is not None:
            self._committed[source] = pos
        return pos

    def _committed_upto(self, source: str) -> int:
        if source not in self._committed:
            self._committed[source] = self.table.checkpoint(source) or 0
        return self._committed[source]

    def _quarantine_upto(self, source: str) -> int:
        if source not in self._quarantined_upto:
            q = self._quarantine_table(create=False)
            self._quarantined_upto[source] = (q.checkpoint(source) or 0) if q is not None else 0
        return self._quarantined_upto[source]

    # ---- buffering -----------------------------------------------------------------------------------

    def add(self, records: Iterable[RawRecord]) -> None:
        for r in records:
            self._buffer.append(r)
            self._buffer_bytes += r.size()
        if self._buffer and self._first_at is None:
            self._first_at = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def due(self) -> bool:
        if not self._buffer:
            return False
        if len(self._buffer) >= self.policy.max_rows or self._buffer_bytes >= self.policy.max_bytes:
            return True
        return self._first_at is not None and time.monotonic() - self._first_at >= self.policy.max_seconds

    def flush(self) -> FlushResult:
        """Commit what is buffered: quarantine first, then the good rows with the checkpoints."""
        total = FlushResult()
        step = self.policy.max_rows
        while self._buffer:  # never more than max_rows in one commit; a chunk leaves the buffer once committed
            chunk = self._buffer[:step]
            result = self.commit_records(chunk)
            del self._buffer[: len(chunk)]
            self._buffer_bytes = sum(r.size() for r in self._buffer)
            self.stats.add(result)
            total.records += result.records
            total.rows += result.rows
            total.quarantined += result.quarantined
            total.skipped += result.skipped
            total.version = result.version if result.version is not None else total.version
            total.new_columns += result.new_columns
            total.errors += result.errors
            total.checkpoints.update(result.checkpoints)
        self._buffer_bytes, self._first_at = 0, None
        return total

    # ---- the commit ----------------------------------------------------------------------------------

    def commit_records(self, records: Sequence[RawRecord]) -> FlushResult:
        result = FlushResult(records=len(records))
        if not records:
            return result
        fresh = [r for r in records if r.position >= self._committed_upto(r.source)]
        result.skipped = len(records) - len(fresh)
        if not fresh:
            return result
        parsed = self.parser.parse(fresh)
        if parsed.bad and self._widened():  # a record refused by a type another writer has widened since
            parsed = self.parser.parse(fresh)
        parsed = _checked(self.table, parsed, fresh)
        if parsed.new_fields:
            self.table.add_columns(parsed.new_fields)
            self.lh.catalog.update_table(self.table.name, self.table.definition)
            self.parser = RecordParser(self.table.schema, new_fields=self.new_fields)
            result.new_columns = [f.name for f in parsed.new_fields]
        upto: dict[str, int] = defaultdict(int)
        for r in fresh:
            upto[r.source] = max(upto[r.source], r.position + 1)

        bad = [b for b in parsed.bad if b.record.position >= self._quarantine_upto(b.record.source)]
        if bad:
            self._write_quarantine(bad)
        # a record a replay finds in the quarantine already was skipped, not quarantined again
        result.quarantined = len(bad)
        result.skipped += len(parsed.bad) - len(bad)
        result.errors = [
            {"source": b.record.source, "position": b.record.position, "error": b.error} for b in bad[:100]
        ]
        if parsed.good.num_rows:
            good, keys = self._prepare(parsed.good)
            if keys:
                commit = self.table.upsert(good, keys=keys, properties=self.properties, checkpoints=dict(upto))
            else:
                commit = self.table.append(good, properties=self.properties, checkpoints=dict(upto))
            result.version = commit.version
            self._committed.update(upto)
            self.lh.catalog.update_table(self.table.name)
            self._lineage(fresh, good.num_rows, commit.version)
        result.rows = parsed.good.num_rows
        result.checkpoints = dict(upto)
        return result

    def _widened(self) -> bool:
        """True (and the table and parser taken anew) when another writer changed column types since the parser
        was made, names unchanged (a widening: int to long, float to double): records the old types refused may
        fit now. Renames and drops are not taken up here: the commit refuses them with a schema error."""
        fresh = self.lh.table(self.table.name)
        before = self.parser.schema
        if fresh.schema.names != before.names or fresh.schema.equals(before):
            return False
        self.table = fresh
        self.parser = RecordParser(fresh.schema, new_fields=self.new_fields)
        return True

    def _lineage(self, records: Sequence[RawRecord], rows: int, version: int) -> None:
        """One OpenLineage run per commit: the sources it read, the table it wrote, the rows."""
        from lakehouse.governance.lineage import emit, new_run_id, run_event, source_dataset, table_dataset

        sources: dict[str, dict[str, Any]] = {}
        for r in records:
            ds = source_dataset(r.source)
            sources[f"{ds['namespace']}::{ds['name']}"] = ds
        emit(
            self.lh,
            run_event(
                self.lh,
                job="lakehouse.ingest",
                event_type="COMPLETE",
                run_id=new_run_id(),
                inputs=list(sources.values()),
                outputs=[table_dataset(self.lh, str(self.table.name), schema=self.table.schema, rows=rows)],
                run_facets={"lakehouse_commit": {"_producer": "lakehouse", "version": version}},
            ),
        )

    def _prepare(self, good: pa.Table) -> tuple[pa.Table, list[str]]:
        """Apply the table's masking policies, and pick the upsert keys (none: append). The policy is read on
        every commit, so a mask or key set while ingesting applies from the next micro-batch."""
        from lakehouse.governance.ops import mask_secret, table_masks
        from lakehouse.masking import apply_masks

        masks = table_masks(self.lh, self.table)
        if masks:
            good = apply_masks(good, masks, mask_secret(self.lh))
        dedup = self.lh.policy(self.table.name).dedup
        keys = list(dedup.keys or self.table.definition.keys)
        if dedup.on_ingest == "append" or not keys:
            if dedup.on_ingest == "upsert" and not keys:
                from lakehouse.errors import ConfigError

                raise ConfigError(f"dedup.on_ingest=upsert for {self.table.name} needs keys (dedup.keys)")
            return good, []
        return good, keys

    def _quarantine_table(self, *, create: bool) -> LakehouseTable | None:
        if self._quarantine is not None:
            return self._quarantine
        name = quarantine_name(self.table.name)
        try:
            self._quarantine = self.lh.table(name)
        except TableNotFoundError:
            if not create:
                return None
            self._quarantine = self.lh.create_table(
                name,
                schema=QUARANTINE_SCHEMA,
                format=self.table.format,
                partitioning=parse_partitioning("day(quarantined_at)"),
                properties={},
            )
        return self._quarantine

    def _write_quarantine(self, bad: Sequence[BadRecord]) -> None:
        table = self._quarantine_table(create=True)
        assert table is not None
        now = dt.datetime.now(dt.UTC)
        upto: dict[str, int] = defaultdict(int)
        for b in bad:
            upto[b.record.source] = max(upto[b.record.source], b.record.position + 1)
        rows = pa.table(
            {
                "target": [str(self.table.name)] * len(bad),
                "source": [b.record.source for b in bad],
                "position": pa.array([b.record.position for b in bad], pa.int64()),
                "raw": [b.record.raw_text()[:1_000_000] for b in bad],
                "error": [b.error for b in bad],
                "quarantined_at": pa.array([now] * len(bad), pa.timestamp("us", tz="UTC")),
            },
            schema=QUARANTINE_SCHEMA,
        )
        table.append(rows, checkpoints=dict(upto))
        self._quarantined_upto.update(upto)


def ingest_records(
    lh: Workspace,
    table: str | TableName,
    records: Sequence[Mapping[str, Any] | bytes | str],
    *,
    source: str,
    start_position: int = 0,
    new_fields: NewFields = "ignore",
) -> FlushResult:
    """Ingest one batch of records (the REST API's entry point): one commit, with a quarantine report.

    ``source`` and ``start_position`` identify the batch (a client's request id makes retries idempotent:
    positions already committed for that source are skipped).
    """
    ingestor = Ingestor(lh, table, new_fields=new_fields)
    raw = [RawRecord(r, source, start_position + i) for i, r in enumerate(records)]
    return ingestor.commit_records(raw)
