"""A year of one streaming table's storage bill, simulated in minutes: four ways to keep it, in one run.

One day-partitioned table of events (:func:`codec_bench.events`: increasing ids and times, a Zipf-skewed user, low-
cardinality types and countries, URLs, user agents, e-mail addresses) receives ``--batches`` micro-batches of
``--rows`` rows a day for ``--days`` simulated days (a stream's small files). The same batches go to three real
tables on a local warehouse, each kept its own way, and a fourth way is priced on the first table's objects:

  (a) none                 appends only: every small file, every version, STANDARD forever;
  (b) compaction           lakehouse optimize every day and vacuum (retain 7 days) every 7 days, no tiering;
  (c) intelligent-tiering  (a)'s objects in S3 Intelligent-Tiering: an object of 128 KB or more moves to its
                           infrequent tier after 30 days without a read, to archive instant access after 90, back
                           on a read, and pays a monitoring fee a month; smaller objects are never monitored and
                           always cost the frequent tier's price (simulated from (a)'s objects and reads);
  (d) lakehouse            the policy of the README's example (compaction, vacuum retain 7d, tiering warm after
                           30d to STANDARD_IA and cold after 90d to GLACIER_IR rewritten with zstd 9 into 512 MB
                           files, expire rows after 365d), run by ``maintain`` every simulated day: the function the
                           autopilot runs for a due table, deciding from the table's health which jobs are due.

Time. Each simulated day runs with :func:`lakehouse.clock.simulated` set to the end of that day, so tiering, data
expiry, vacuum's window and the health findings decide by simulated age. Commit timestamps are the system's (a
year's commits land within minutes), so a vacuum would see every old version as older than its window, and
every log file as older than Delta's log retention: to keep the bill honest, a data file a vacuum deletes stays
billed for the window's 7 days (as if the version holding it had been kept that long), a log file for the log
retention's 30 days, then goes.

Reads (the same for every scenario, seeded): every day ``--recent-queries`` queries each read one of the last 7
days (yesterday most: weights 1/k) and ``--old-queries`` read one uniformly chosen older day. A query reads every
live data file of its day's partition: 3 GET-class requests per file (HEAD, footer, body; as DuckDB reads a
small file) and its bytes, which cost a retrieval fee in STANDARD_IA and GLACIER_IR. Maintenance reads are
priced the same way: each file a day's jobs removed from the table's live files was read once by the rewrite (9
GET-class requests per input file, from ``benchmarks/requests_bench.py``), and its bytes retrieved from its class.
Files that left the live set because expiry dropped their whole partition were not read. Writes: every new
object is one PUT in its class (listings after the day's appends and after its jobs; an object overwritten in
place, such as Delta's ``_last_checkpoint``, counts once). Storage: every object
listed, each day, priced per GB-month / 30.4 in its class (the tier prefix says the class on local storage, as
``lakehouse cost`` prices it), with the minimum billable object size (128 KB in IA and Glacier IR) and early-
deletion charges (30 / 90 days); prices from :mod:`lakehouse.pricing` (AWS S3 us-east-1 list prices).

At the end: a recent-day and an old-day query (count, sum, distinct users of one day) through ``lakehouse
query`` (DuckDB) on each scenario's table, median of ``--repeat`` runs; (c) reads (a)'s files (Intelligent-
Tiering keeps the same first-byte latency in its instant tiers).

Prints the month-by-month table (bytes by class, objects, requests, retrieval, cost) for each scenario, the
12-month totals with the targets (lakehouse <= 60 % of no maintenance, below Intelligent-Tiering; its recent-day
query no slower than on the raw table), and writes a chart (PNG: cost per month and cumulative cost):

    .venv/bin/python benchmarks/cost_bench.py [--days 365 --batches 4 --rows 500 --format delta]
        [--chart benchmarks/cost_bench.png] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lakehouse.maintenance.bill import GETS_PER_INPUT_FILE
from lakehouse.maintenance.bill import MONTH_DAYS as DAYS_PER_MONTH

SCENARIOS = ("none", "compaction", "intelligent-tiering", "lakehouse")
LABELS = {
    "none": "(a) no maintenance",
    "compaction": "(b) compaction only",
    "intelligent-tiering": "(c) S3 Intelligent-Tiering",
    "lakehouse": "(d) lakehouse policy",
}
TABLES = {"none": "sim.none", "compaction": "sim.compaction", "lakehouse": "sim.full"}
READ_GETS = 3
"""GET-class requests to read one small data file (HEAD, footer, body)."""
CLASS_OF_TIER = {"hot": "STANDARD", "warm": "STANDARD_IA", "cold": "GLACIER_IR"}
RETAIN_DAYS = 7
LOG_RETAIN_DAYS = 30


@dataclass
class Obj:
    size: int
    cls: str
    since: int  # the day it entered its class
    last_read: int


@dataclass
class Month:
    bytes_by_class: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    data_files: int = 0
    puts: int = 0
    gets: int = 0
    retrieval_bytes: int = 0
    storage: float = 0.0
    requests: float = 0.0
    retrieval: float = 0.0
    other: float = 0.0  # early deletion, monitoring (included in storage for Intelligent-Tiering)

    @property
    def cost(self) -> float:
        return self.storage + self.requests + self.retrieval + self.other

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "cost": self.cost}


class Ledger:
    """One scenario's bill, day by day."""

    def __init__(self, prices: Any, months: int) -> None:
        self.prices = prices
        self.objects: dict[str, Obj] = {}
        self.ghosts: list[tuple[int, str, int]] = []  # (billed until day, class, size): vacuumed, still retained
        self.months = [Month() for _ in range(months)]

    def month(self, day: int) -> Month:
        return self.months[min(len(self.months) - 1, int(day / DAYS_PER_MONTH))]

    def add_new(self, day: int, listed: dict[str, tuple[int, str]], cls: str | None = None) -> None:
        """Objects listed for the first time: one PUT each (in ``cls`` when given, else their own class)."""
        m = self.month(day)
        for path, (size, own) in listed.items():
            if path not in self.objects:
                self.objects[path] = Obj(size, cls or own, day, day)
                m.puts += 1
                m.requests += self.prices.requests(cls or own, puts=1)

    def remove_gone(self, day: int, listed: dict[str, tuple[int, str]] | dict[str, Obj], retain: bool) -> None:
        """Objects no longer listed were deleted: with ``retain``, billed for the retention window still (see the
        module's note on time), then early deletion charged for what is left of the class's minimum duration."""
        m = self.month(day)
        for path in [q for q in self.objects if q not in listed]:
            o = self.objects.pop(path)
            # a Delta log file by the log retention (30 days), anything else by the vacuum's window
            days = (LOG_RETAIN_DAYS if "/_delta_log/" in path else RETAIN_DAYS) if retain else 0
            if days:
                self.ghosts.append((day + days, o.cls, o.size))
            m.other += self.prices.early_deletion(o.cls, o.size, day + days - o.since)

    def read(self, day: int, path: str, gets: int) -> None:
        o = self.objects.get(path)
        if o is None:
            return
        m = self.month(day)
        o.last_read = day
        m.gets += gets
        m.requests += self.prices.requests(o.cls, gets=gets)
        if o.cls in self.prices.retrieval:
            m.retrieval_bytes += o.size
            m.retrieval += self.prices.retrieval_cost(o.cls, o.size)

    def bill_day(self, day: int, data_paths: set[str]) -> None:
        m = self.month(day)
        p = self.prices
        self.ghosts = [g for g in self.ghosts if g[0] > day]
        m.storage += (
            sum(p.object_month(o.cls, o.size) for o in self.objects.values())
            + sum(p.object_month(c, s) for _, c, s in self.ghosts)
        ) / DAYS_PER_MONTH
        self._snapshot(m, data_paths)

    def bill_day_intelligent_tiering(self, day: int, data_paths: set[str]) -> None:
        m = self.month(day)
        for o in self.objects.values():
            _, monthly = self.prices.intelligent_tiering_month(o.size, day - o.last_read)
            m.storage += monthly / DAYS_PER_MONTH
        self._snapshot(m, data_paths, intelligent=True, day=day)

    def _snapshot(self, m: Month, data_paths: set[str], *, intelligent: bool = False, day: int = 0) -> None:
        """The month's end state (overwritten each day: the last day of the month stays)."""
        by: dict[str, int] = {}
        for o in self.objects.values():
            cls = o.cls
            if intelligent:
                tier, _ = self.prices.intelligent_tiering_month(o.size, day - o.last_read)
                cls = "IT_" + tier.upper()
            by[cls] = by.get(cls, 0) + o.size
        m.bytes_by_class = by
        m.objects = len(self.objects)
        m.data_files = len(data_paths)


def _listing(table: Any, lh: Any) -> dict[str, tuple[int, str]]:
    from lakehouse.storage import list_objects

    out = {}
    for o in list_objects(table.location, lh.ctx):
        tier = "cold" if "/tier-cold/" in o.path else "warm" if "/tier-warm/" in o.path else "hot"
        out[o.path] = (o.size, CLASS_OF_TIER[tier])
    return out


def _expired(f: Any, today: dt.date, days: float) -> bool:
    day = f.partition.get("ts_day")
    return day is not None and (today - dt.date.fromisoformat(str(day))).days > days


def _config(root: Path, args: argparse.Namespace) -> Path:
    toml = root / "lakehouse.toml"
    toml.write_text(
        f"""warehouse = "{root / "wh"}"

[tables."sim.full".retention]
retain = "{RETAIN_DAYS}d"
orphan_age = "3d"
expire_after = "{args.expire_after}"

[tables."sim.full".tiering]
warm_after = "{args.warm_after}"
cold_after = "{args.cold_after}"
recompress = {{ cold = 9 }}

[tables."sim.full".autopilot]
enabled = true
"""
    )
    return toml


def _queries(rng: random.Random, day: int, recent: int, old: int) -> list[int]:
    """The days the day's queries read (0-based simulated days before ``day``)."""
    out = []
    back = list(range(1, min(7, day) + 1))
    if back:
        weights = [1 / k for k in back]
        out += [day - k for k in rng.choices(back, weights, k=recent)]
    if day > 8:
        out += [rng.randrange(0, day - 7) for _ in range(old)]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import codec_bench

    from lakehouse import clock
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.maintain import maintain
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.maintenance.retention import vacuum
    from lakehouse.schema import parse_partitioning
    from lakehouse.units import parse_duration

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="lakehouse-cost-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(config_file=_config(root, args))
    expire_days = parse_duration(args.expire_after).total_seconds() / 86400
    prices = settings.cost.price_table()
    months = max(1, round(args.days / DAYS_PER_MONTH))
    ledgers = {s: Ledger(prices, months) for s in SCENARIOS}
    # simulated days from today on: commits (stamped by the system clock) are as old as the simulated days since
    start = dt.datetime.now(dt.UTC).date()
    rng = random.Random(args.seed)
    sample = codec_bench.events(10, day=str(start))
    timings: dict[str, float] = {"append": 0.0, "compaction": 0.0, "lakehouse": 0.0, "ledger": 0.0}
    jobs_failed: list[str] = []
    with Lakehouse(settings) as lh:
        tables = {
            s: lh.create_table(
                name, schema=sample.schema, format=args.format, partitioning=parse_partitioning("day(ts)")
            )
            for s, name in TABLES.items()
        }
        ndjson = 0
        lives: dict[str, dict[str, Any]] = {}
        for day in range(args.days):
            date = start + dt.timedelta(days=day)
            at = dt.datetime.combine(date, dt.time(23, 59), tzinfo=dt.UTC)
            with clock.simulated(at):
                t0 = time.perf_counter()
                for b in range(args.batches):
                    batch = codec_bench.events(args.rows, seed=day * 1000 + b, day=str(date))
                    ids = batch.column("event_id").to_numpy() + (day * args.batches + b) * args.rows
                    import pyarrow as pa

                    batch = batch.set_column(0, "event_id", pa.array(ids))
                    if day == 0 and b == 0:
                        ndjson = codec_bench.ndjson_bytes(batch)
                    for t in tables.values():
                        t.append(batch)
                timings["append"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                for s, t in tables.items():  # the day's small files, before any job may rewrite them
                    ledgers[s].add_new(day, _listing(t, lh))
                    lives[s] = {f.path: f for f in t.files()}
                timings["ledger"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                optimize(lh, TABLES["compaction"], CompactionOptions())
                if day % RETAIN_DAYS == RETAIN_DAYS - 1:
                    vacuum(lh, TABLES["compaction"], retain=f"{RETAIN_DAYS}d", dry_run=False)
                timings["compaction"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                report = maintain(lh, TABLES["lakehouse"], dry_run=False)
                jobs_failed += [f"day {day}: {j['job']}: {j['error']}" for j in report["jobs"] if "error" in j]
                timings["lakehouse"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            reads = _queries(rng, day, args.recent_queries, args.old_queries)
            it = ledgers["intelligent-tiering"]
            for s, name in TABLES.items():
                table = lh.table(name)
                ledger = ledgers[s]
                listed = _listing(table, lh)
                ledger.add_new(day, listed)  # what the day's jobs wrote
                live = {f.path: f for f in table.files()}
                for path, f in lives.get(s, {}).items():  # what the day's rewrites read
                    if path in live or _expired(f, date, expire_days):  # expiry drops whole old files unread
                        continue
                    ledger.read(day, path, GETS_PER_INPUT_FILE)
                lives[s] = live
                by_day: dict[str, list[str]] = {}
                for f in live.values():
                    by_day.setdefault(str(f.partition.get("ts_day")), []).append(f.path)
                for d in reads:
                    for path in by_day.get(str(start + dt.timedelta(days=d)), []):
                        ledger.read(day, path, READ_GETS)
                        if s == "none":
                            it.read(day, path, READ_GETS)
                ledger.remove_gone(day, listed, retain=s != "none")
                ledger.bill_day(day, set(live))
                if s == "none":
                    it.add_new(day, {p: (o.size, o.cls) for p, o in ledger.objects.items()}, "INTELLIGENT_TIERING")
                    it.remove_gone(day, ledger.objects, retain=False)
                    it.bill_day_intelligent_tiering(day, set(live))
            timings["ledger"] += time.perf_counter() - t0
            if day % 30 == 29 or day == args.days - 1:
                print(
                    f"  day {day + 1}/{args.days}: appends {timings['append']:.0f} s, "
                    f"compaction {timings['compaction']:.0f} s, lakehouse {timings['lakehouse']:.0f} s, "
                    f"ledger {timings['ledger']:.0f} s",
                    file=sys.stderr,
                )
        queries = _query_times(lh, args, start)
    return {
        "args": vars(args),
        "root": str(root),
        "months": {s: [m.as_dict() for m in ledgers[s].months] for s in SCENARIOS},
        "queries": queries,
        "ndjson_bytes_per_batch": ndjson,
        "jobs_failed": jobs_failed,
        "timings": timings,
    }


def _query_times(lh: Any, args: argparse.Namespace, start: dt.date) -> dict[str, dict[str, float]]:
    recent = start + dt.timedelta(days=args.days - 2)
    old = start + dt.timedelta(days=max(0, args.days // 2 - 30))
    out: dict[str, dict[str, float]] = {}
    for s, name in TABLES.items():
        times = {}
        for label, day in (("recent", recent), ("old", old)):
            sql = (
                f"SELECT count(*), sum(amount), count(DISTINCT user_id) FROM {name} "
                f"WHERE ts >= TIMESTAMPTZ '{day} 00:00:00+00' "
                f"AND ts < TIMESTAMPTZ '{day + dt.timedelta(days=1)} 00:00:00+00'"
            )
            runs = []
            lh.query(sql)  # warm: the extension loads and the table's snapshot is read once
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                lh.query(sql)
                runs.append(time.perf_counter() - t0)
            times[label] = statistics.median(runs)
            times[f"{label}_day"] = str(day)  # type: ignore[assignment]
        out[s] = times
    out["intelligent-tiering"] = dict(out["none"])
    return out


def _gb(n: float) -> str:
    return f"{n / 1e9:.3f}"


def report(result: dict[str, Any]) -> str:
    lines = []
    months = result["months"]
    for s in SCENARIOS:
        lines.append(f"\n{LABELS[s]}")
        lines.append(
            "| month | GB by class | objects | live data files | PUT | GET | retrieved GB | storage $ | requests $ "
            "| retrieval $ | other $ | total $ |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for i, m in enumerate(months[s], 1):
            by = ", ".join(f"{k} {_gb(v)}" for k, v in sorted(m["bytes_by_class"].items()))
            lines.append(
                f"| {i} | {by} | {m['objects']:,} | {m['data_files']:,} | {m['puts']:,} | {m['gets']:,} | "
                f"{_gb(m['retrieval_bytes'])} | {m['storage']:.4f} | {m['requests']:.4f} | {m['retrieval']:.4f} | "
                f"{m['other']:.4f} | {m['cost']:.4f} |"
            )
    totals = {s: sum(m["cost"] for m in months[s]) for s in SCENARIOS}
    q = result["queries"]
    lines.append(
        "\n| scenario | 12-month cost $ | vs no maintenance | end: objects | end: GB | recent-day query "
        "| old-day query |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for s in SCENARIOS:
        last = months[s][-1]
        lines.append(
            f"| {LABELS[s]} | {totals[s]:.4f} | {totals[s] / totals['none']:.0%} | {last['objects']:,} | "
            f"{_gb(sum(last['bytes_by_class'].values()))} | {q[s]['recent'] * 1000:.0f} ms "
            f"| {q[s]['old'] * 1000:.0f} ms |"
        )
    share = totals["lakehouse"] / totals["none"]
    below_it = totals["lakehouse"] < totals["intelligent-tiering"]
    recent_ok = q["lakehouse"]["recent"] <= q["none"]["recent"]
    lines.append(
        f"\ntargets: lakehouse 12-month cost <= 60 % of no maintenance: {share:.0%} -> "
        f"{'met' if share <= 0.6 else 'NOT met'}; "
        f"below Intelligent-Tiering ({totals['intelligent-tiering']:.4f} $): {'met' if below_it else 'NOT met'}; "
        f"recent-day query no slower than on the raw table ({q['lakehouse']['recent'] * 1000:.0f} ms vs "
        f"{q['none']['recent'] * 1000:.0f} ms): {'met' if recent_ok else 'NOT met'}"
    )
    if result["jobs_failed"]:
        lines.append(f"jobs that failed: {len(result['jobs_failed'])}, first: {result['jobs_failed'][0]}")
    return "\n".join(lines)


def chart(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in SCENARIOS:
        costs = [m["cost"] for m in result["months"][s]]
        months = list(range(1, len(costs) + 1))
        left.plot(months, costs, marker="o", label=LABELS[s])
        cumulative = [sum(costs[: i + 1]) for i in range(len(costs))]
        right.plot(months, cumulative, marker="o", label=LABELS[s])
    left.set_title("cost per month (USD)")
    right.set_title("cumulative cost (USD)")
    for ax in (left, right):
        ax.set_xlabel("month")
        ax.grid(alpha=0.3)
    right.legend(fontsize=8)
    a = result["args"]
    fig.suptitle(
        f"one {a['format']} table, {a['days']} simulated days x {a['batches']} micro-batches x {a['rows']} rows "
        "(benchmarks/cost_bench.py)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--batches", type=int, default=4, help="micro-batches (small files) a day")
    p.add_argument("--rows", type=int, default=500, help="rows per micro-batch")
    p.add_argument("--format", choices=("delta", "iceberg"), default="delta")
    p.add_argument("--recent-queries", type=int, default=20)
    p.add_argument("--old-queries", type=int, default=1)
    p.add_argument("--warm-after", default="30d")
    p.add_argument("--cold-after", default="90d")
    p.add_argument("--expire-after", default="365d")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--chart", default=str(Path(__file__).with_name("cost_bench.png")))
    p.add_argument("--json", default=None)
    p.add_argument("--root", default=None, help="the warehouse's directory (default: a new temporary one, kept)")
    return p


def main(argv: list[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    started = time.perf_counter()
    result = run(args)
    print(report(result))
    if args.chart:
        chart(result, args.chart)
        print(f"chart: {args.chart}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(f"took {time.perf_counter() - started:.0f} s; the warehouse is left in {result['root']}")


if __name__ == "__main__":
    main()
