"""Compaction beside a fast writer: how many rewrites land, and how many bytes are rewritten for nothing.

For each writer commit interval, on a fresh local table (day partitions): a writer process appends a small batch
every interval seconds (at once when its previous append took longer: the achieved interval is reported), and
this process runs ``optimize`` in a loop beside it for ``--seconds``. A rewrite is one partition's rewrite and
commit (the job runs with ``commit_interval=0``: each partition commits on its own, the harder case; by default
a job's partitions share a commit); it lands, or is aborted (a conflict, or the job's ``commit_timeout``
spent). Reported per interval:

- rewrites landed / attempted, all while the writer ran;
- wasted bytes rewritten: the input bytes of rewrites that did not land (read and rewritten for nothing);
- commit attempts per landed rewrite (each attempt after the first rebases onto the writer's commits without
  rewriting anything), the longest a commit waited from its first lost race, and the longest ``optimize`` run;
- whether every appended row is in the table exactly once afterwards.

    .venv/bin/python benchmarks/compaction_contention_bench.py [--seconds 60] [--intervals 0.1,0.2,0.5,1,2]
        [--formats iceberg,delta]

Prints a Markdown table (and, with --json PATH, the raw numbers).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _events(start: int, n: int) -> Any:
    import datetime as dt

    import pyarrow as pa

    base = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array(
                [base + dt.timedelta(hours=(i * 7) % 72, minutes=i % 60) for i in ids], pa.timestamp("us", "UTC")
            ),
            "country": pa.array([("DE", "FR", "US", None)[i % 4] for i in ids]),
            "amount": pa.array([round(i * 1.25, 2) for i in ids], pa.float64()),
            "note": pa.array([f"note {i}" for i in ids]),
        }
    )


def _write_every(settings: Any, interval: float, ready: Any, stop: Any, out: str) -> None:
    """The writer process: a batch of 20 rows every ``interval`` seconds until ``stop``; its ids and commit times
    go to ``out`` as JSON."""
    from lakehouse.core import Lakehouse

    done: dict[str, Any] = {"ids": [], "times": [], "error": None}
    try:
        with Lakehouse(settings) as lh:
            table = lh.table("b.events")
            started, n = time.monotonic(), 0
            while not stop.is_set():
                batch = _events(1_000_000 + n * 20, 20)
                table.append(batch)
                done["ids"].extend(batch.column("id").to_pylist())
                done["times"].append(time.monotonic())
                ready.set()
                n += 1
                stop.wait(max(0.0, started + n * interval - time.monotonic()))
    except BaseException as e:
        done["error"] = repr(e)
    finally:
        ready.set()
        with open(out, "w") as fh:
            json.dump(done, fh)


def run_one(fmt: str, interval: float, seconds: float) -> dict[str, Any]:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.schema import parse_partitioning, parse_schema

    root = tempfile.mkdtemp(prefix="lh-contention-")
    schema = parse_schema("id:int64 not null, ts:timestamp not null, country:string, amount:float64, note:string")
    options = CompactionOptions(target_file_size=64 * 1024 * 1024, commit_interval=0)
    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        table = lh.create_table("b.events", schema=schema, format=fmt, partitioning=parse_partitioning("day(ts)"))
        seeded: list[int] = []
        for i in range(3):
            batch = _events(i * 100, 100)
            table.append(batch)
            seeded.extend(batch.column("id").to_pylist())
        spawn = multiprocessing.get_context("spawn")
        ready, stop = spawn.Event(), spawn.Event()
        out = f"{root}/writer.json"
        writer = spawn.Process(target=_write_every, args=(lh.settings, interval, ready, stop, out))
        writer.start()
        attempted = landed = wasted = 0
        attempts: list[int] = []
        waits: list[float] = [0.0]
        runs: list[float] = []
        try:
            if not ready.wait(120):
                raise RuntimeError("the writer did not start")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and writer.is_alive():
                started = time.monotonic()
                result = optimize(lh, "b.events", options)
                runs.append(time.monotonic() - started)
                for part, pr in zip(result.plan.picked, result.partitions, strict=True):
                    attempted += 1
                    if pr.status == "committed":
                        landed += 1
                        attempts.append(pr.commit_attempts)
                        waits.append(pr.commit_wait_seconds)
                    else:
                        wasted += part.input_bytes
        finally:
            stop.set()
            writer.join(timeout=120)
        with open(out) as fh:
            wrote = json.load(fh)
        if wrote["error"]:
            raise RuntimeError(f"the writer failed: {wrote['error']}")
        got = collections.Counter(lh.table("b.events").scan(columns=["id"]).column("id").to_pylist())
        exact = got == collections.Counter(seeded + wrote["ids"])
    shutil.rmtree(root, ignore_errors=True)
    times = wrote["times"]
    return {
        "format": fmt,
        "interval": interval,
        "writer_commits": len(times),
        "writer_mean_interval": (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None,
        "attempted": attempted,
        "landed": landed,
        "wasted_bytes": wasted,
        "attempts_mean": statistics.mean(attempts) if attempts else None,
        "attempts_max": max(attempts) if attempts else None,
        "longest_commit_wait": max(waits),
        "longest_optimize": max(runs) if runs else None,
        "optimize_runs": len(runs),
        "rows_exactly_once": exact,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| format | writer interval | writer commits (achieved interval) | rewrites landed / attempted "
        "| wasted bytes rewritten | commit attempts per landed rewrite (mean / max) | longest commit wait "
        "| longest optimize run | rows exactly once |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        achieved = f"{r['writer_mean_interval']:.2f} s" if r["writer_mean_interval"] else "-"
        share = f"{r['landed']} / {r['attempted']}" + (
            f" ({100 * r['landed'] / r['attempted']:.0f} %)" if r["attempted"] else ""
        )
        att = f"{r['attempts_mean']:.2f} / {r['attempts_max']}" if r["attempts_mean"] is not None else "-"
        longest = f"{r['longest_optimize']:.1f} s" if r["longest_optimize"] is not None else "-"
        lines.append(
            f"| {r['format']} | {r['interval']:g} s | {r['writer_commits']} ({achieved}) | {share} | "
            f"{r['wasted_bytes']:,} | {att} | {r['longest_commit_wait']:.2f} s | {longest} | "
            f"{'yes' if r['rows_exactly_once'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the writer runs per interval")
    parser.add_argument("--intervals", default="0.1,0.2,0.5,1,2", help="writer commit intervals, seconds")
    parser.add_argument("--formats", default="iceberg,delta")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    rows = []
    for fmt in args.formats.split(","):
        for interval in (float(x) for x in args.intervals.split(",")):
            row = run_one(fmt.strip(), interval, args.seconds)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if not all(r["rows_exactly_once"] for r in rows):
        sys.exit("rows were lost or doubled")


if __name__ == "__main__":
    main()
