"""The rest of a table's bill beside its storage: what its maintenance jobs cost in requests and retrievals
lately, and the next 12 months projected under its policies against no maintenance at all.

Both are estimates, and say what they rest on:

* **Requests and retrievals of the last period** come from the job records (the clients lakehouse drives expose
  no request counts): each file a job read costs :data:`GETS_PER_INPUT_FILE` GET/HEAD requests (measured by
  ``benchmarks/requests_bench.py``: 4-5 GETs and 3-5 HEADs per input file of a compaction), each file it wrote a
  PUT, each job :data:`PUTS_PER_JOB` more (its log or metadata commit, listings); bytes read from warm or cold
  tiers pay their class's retrieval fee. Queries are not jobs and are not counted.
* **The projection** ages each partition month by month: its tier follows the tiering policy (``warm_after``,
  ``cold_after``; a move into a tier that rewrites, with tier directories or ``recompress``, leaves files of up to
  ``target_file_size``), its rows go when ``retention.expire_after`` says, and new partitions arrive at the rate
  and file count of the last 30 days' partitions; ``keep_read_hot`` is not modelled. Without maintenance the
  same data stays in STANDARD forever, nothing expires, and it keeps the size it was written with: the
  compaction jobs' records give the ratio of the bytes they wrote to the bytes they read (1 when none ran).
  Bytes beside the live data (older versions, metadata) are held where they are. Each read and write is
  priced in the class it touches: a tier job's reads in the class it read from, its writes in the target's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.units import parse_duration, parse_size

if TYPE_CHECKING:
    from lakehouse.maintenance.tiering import TableCost
    from lakehouse.pricing import Prices
    from lakehouse.workspace import Workspace

GETS_PER_INPUT_FILE = 9
PUTS_PER_JOB = 5
PERIOD_DAYS = 30
MONTH_DAYS = 365 / 12


@dataclass
class Activity:
    """Requests and retrievals of the table's jobs in the last ``days`` days (an estimate: see the module)."""

    days: int
    jobs: int = 0
    files_read: int = 0
    files_written: int = 0
    gets: int = 0
    puts: int = 0
    retrieved_bytes: dict[str, int] = field(default_factory=dict)
    request_cost: float = 0.0
    retrieval_cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if not k.endswith("_cost")},
            "request_cost": round(self.request_cost, 6),
            "retrieval_cost": round(self.retrieval_cost, 6),
            "basis": f"job records: {GETS_PER_INPUT_FILE} GET/HEAD per file read, 1 PUT per file written, "
            f"{PUTS_PER_JOB} per job; queries not counted",
        }


def activity(
    lh: Workspace, name: str, prices: Prices, classes: Mapping[str, str], *, days: int = PERIOD_DAYS
) -> Activity:
    """:class:`Activity` of table ``name``'s jobs finished in the last ``days`` days; ``classes``: the storage
    class of each tier (what a read from a tier is charged)."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    out = Activity(days)
    hot = classes.get("hot", "STANDARD")
    for job in lh.catalog.jobs(table=lh.table(name).name, limit=1000):
        if job.started_at < since or job.state not in ("committed", "failed"):
            continue
        reads, writes = _files(job.kind, job.metrics or {})
        if not (reads or writes or job.kind in ("vacuum", "orphans")):
            continue
        out.jobs += 1
        out.puts += PUTS_PER_JOB
        out.request_cost += prices.requests(hot, puts=PUTS_PER_JOB)
        for tier, (files, size) in reads.items():  # each read priced in the class it was read from
            cls = classes.get(tier, hot)
            gets = files * GETS_PER_INPUT_FILE
            out.files_read += files
            out.gets += gets
            out.request_cost += prices.requests(cls, gets=gets)
            if prices.retrieval_cost(cls, size):
                out.retrieved_bytes[cls] = out.retrieved_bytes.get(cls, 0) + size
                out.retrieval_cost += prices.retrieval_cost(cls, size)
        for tier, files in writes.items():  # and each write in the class it was written to
            out.files_written += files
            out.puts += files
            out.request_cost += prices.requests(classes.get(tier, hot), puts=files)
    return out


def _files(kind: str, m: Mapping[str, Any]) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """One job's reads (tier -> files, bytes) and writes (tier -> files) from its metrics; jobs that record no
    file counts (erase) count nothing."""
    if kind == "optimize":  # the rewritten partitions' files (the inputs, and files kept beside them: at most)
        parts = [p for p in m.get("partitions", []) if p.get("status") == "committed"]
        read = (sum(int(p.get("files_before", 0)) for p in parts), sum(int(p.get("bytes_before", 0)) for p in parts))
        return {"hot": read}, {"hot": sum(int(p.get("files_after", 0)) for p in parts)}
    if kind == "tier":
        reads: dict[str, tuple[int, int]] = {}
        writes: dict[str, int] = {}
        for g in m.get("groups", []):
            action, target = str(g.get("action", "")), str(g.get("target", "hot"))
            moving = int(g.get("files_to_move", 0))
            if "rewrite" in action:  # read from where the files were, about one file per partition written
                current = g.get("current") or ["hot"]
                tier = current[0] if len(current) == 1 else "hot"
                files, size = reads.get(tier, (0, 0))
                reads[tier] = (files + moving, size + int(g.get("bytes_to_move", 0)))
                writes[target] = writes.get(target, 0) + 1
            elif action == "set-class":  # one COPY per file, in the target class
                writes[target] = writes.get(target, 0) + moving
        return reads, writes
    if kind == "dedup":
        return {"hot": (int(m.get("files_removed", 0)), 0)}, {"hot": int(m.get("files_added", 0))}
    if kind in ("expire-data", "pii.mask"):  # files rewritten (expire-data drops whole old files unread)
        n = int(m.get("files_rewritten", 0) or 0)
        return {"hot": (n, 0)}, {"hot": n}
    return {}, {}


@dataclass
class Projection:
    """The next ``months`` months of a table's storage, under its policies and without maintenance."""

    months: list[dict[str, Any]]
    daily_bytes: float
    compaction_ratio: float
    basis: str

    @property
    def total(self) -> float:
        return sum(m["cost"] for m in self.months)

    @property
    def total_without_maintenance(self) -> float:
        return sum(m["cost_without_maintenance"] for m in self.months)

    def as_dict(self) -> dict[str, Any]:
        return {
            "months": self.months,
            "total": round(self.total, 6),
            "total_without_maintenance": round(self.total_without_maintenance, 6),
            "saving": round(self.total_without_maintenance - self.total, 6),
            "saving_pct": round(100 * (1 - self.total / self.total_without_maintenance), 1)
            if self.total_without_maintenance
            else 0.0,
            "daily_bytes": int(self.daily_bytes),
            "compaction_ratio": round(self.compaction_ratio, 3),
            "basis": self.basis,
        }


def projection(lh: Workspace, name: str, cost: TableCost, prices: Prices, *, months: int = 12) -> Projection:
    """Project table ``name``'s monthly storage cost for ``months`` months (see the module)."""
    from lakehouse.maintenance.tiering import plan_tiering

    pol = lh.policy(name)
    tiering = pol.tiering
    warm = parse_duration(tiering.warm_after).total_seconds() / 86400
    cold = parse_duration(tiering.cold_after).total_seconds() / 86400
    expire = parse_duration(pol.retention.expire_after).total_seconds() / 86400 if pol.retention.expire_after else None
    plan = plan_tiering(lh, name)
    parts = [(g.age_days, [f.size for f in g.files]) for g in plan.groups]
    dated = [(a, sizes) for a, sizes in parts if a is not None]
    undated = sum(sum(sizes) for a, sizes in parts if a is None)
    recent = [(a, sizes) for a, sizes in dated if a < PERIOD_DAYS]
    span = min(PERIOD_DAYS, max((a for a, _ in recent), default=0.0) + 1)
    daily = sum(sum(sizes) for _, sizes in recent) / span if recent else 0.0
    daily_files = max(1, round(sum(len(sizes) for _, sizes in recent) / span)) if recent else 1
    new_day = [daily / daily_files] * daily_files  # a new day's files: the recent days' count and size
    ratio = _compaction_ratio(lh, name)
    other = max(0, cost.bytes - cost.live_data_bytes)
    classes = tiering.storage_classes
    hot = classes["hot"]
    # a move into a tier that rewrites (tier directories, or a recompressed tier) leaves files up to the target size
    target = parse_size(tiering.target_file_size)
    rewrites = {t for t in ("warm", "cold") if plan.method == "prefix" or t in tiering.recompress}
    rows = []
    for m in range(1, months + 1):
        ahead = m * MONTH_DAYS
        month_cost = prices.object_month(hot, undated + other) if undated + other else 0.0
        by_class: dict[str, float] = {hot: float(undated + other)}
        raw = float(cost.live_data_bytes) / ratio + other
        days: list[tuple[float, list[float]]] = [(age + ahead, [float(x) for x in sizes]) for age, sizes in dated]
        days += [(ahead - d - 0.5, new_day) for d in range(int(ahead))]  # one new partition a day from now on
        raw += daily / ratio * int(ahead)
        for age, sizes in days:
            tier = _tier(age, warm, cold, expire)
            if tier is None:
                continue
            cls = classes[tier]
            if tier in rewrites:
                total = sum(sizes)
                sizes = [min(total, float(target))] * max(1, math.ceil(total / target))
                sizes[-1] = total - target * (len(sizes) - 1)
            by_class[cls] = by_class.get(cls, 0.0) + sum(sizes)
            month_cost += sum(prices.object_month(cls, int(size)) for size in sizes)
        rows.append(
            {
                "month": m,
                "bytes_by_class": {c: int(b) for c, b in by_class.items() if b},
                "cost": round(month_cost, 6),
                "bytes_without_maintenance": int(raw),
                "cost_without_maintenance": round(raw / 1024**3 * prices.storage_rate("STANDARD"), 6),
            }
        )
    basis = (
        f"partitions age month by month under tiering (warm after {tiering.warm_after}, cold after "
        f"{tiering.cold_after}) and expiry ({pol.retention.expire_after or 'none'}); new data at "
        f"{int(daily):,} bytes a day (the last {PERIOD_DAYS} days' partitions); without maintenance all of it in "
        f"STANDARD, nothing expired, at {1 / ratio:.2f}x the size (compaction jobs' bytes read / written); "
        "storage only, each file billed at least its class's minimum object size"
    )
    return Projection(rows, daily, ratio, basis)


def _tier(age: float, warm: float, cold: float, expire: float | None) -> str | None:
    """The tier of data ``age`` days old under the policy (None: expired)."""
    if expire is not None and age > expire:
        return None
    return "cold" if age >= cold else "warm" if age >= warm else "hot"


def _compaction_ratio(lh: Workspace, name: str) -> float:
    """Bytes written / bytes read by the table's committed compactions (1.0 when none ran)."""
    read = written = 0
    for job in lh.catalog.jobs(table=lh.table(name).name, limit=1000):
        if job.kind != "optimize" or job.state != "committed":
            continue
        for p in (job.metrics or {}).get("partitions", []):
            if p.get("status") == "committed":
                read += int(p.get("bytes_before", 0))
                written += int(p.get("bytes_after", 0))
    return written / read if read and written else 1.0
