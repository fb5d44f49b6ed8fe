"""Planning a huge table from its metadata: 100,000 files in 1,000 versions, both formats, requests counted.

Builds, on the tests' S3 server (moto, started by ``tests/fixtures/s3_server.py``), a table per format the way a
streaming writer leaves it: ``--versions`` appends of ``--files / --versions`` tiny Parquet files each (a few
rows, real and readable), landing day after day in ``--partitions`` day partitions. The data files are uploaded
directly and the versions committed from their metadata only (no second pass over the files): Delta commits
assembled per the protocol (``add`` actions with stats, a checkpoint every 100 versions as Spark and delta-rs
writers leave them), Iceberg commits through pyiceberg's fast append (one manifest per commit, as writers
without manifest merging leave them).

Then it runs each planning command as the CLI (a fresh process: start-up included) through the counting proxy
of ``tests/faults/proxy.py`` and prints, per command, its wall time, peak RSS and the object-store requests it
made by kind (GET, HEAD, LIST, ...) and the bytes read:

* ``optimize --dry-run`` (whole table) and ``optimize --dry-run --partition "day = ..."`` (one partition: the
  Delta log's partition values and Iceberg's manifest partition summaries prune the rest);
* ``vacuum`` (its default dry run);
* ``health`` (it reconciles storage, which lists the table's prefix once, paged: orphan detection);
* ``cost`` (a storage bill prices every object's class: one paged listing).

With ``--repeat N`` each command (and the baseline listing) runs N times and the median time is printed, with
every run's time beside it (this machine's load moves a single run by a third); the request counts and peak
RSS are the last run's (the counts of every run must be the same, or the script says so). With ``--baseline
CHECKOUT`` (another commit's checkout, e.g. ``git worktree add /tmp/base <commit>``) each command runs with that
lakehouse too, before ours in every round, on the same tables, and the line below it gives its median and the
ratio: a before/after measured in one run.

The question: do they read metadata only (GETs of log/checkpoint/manifest objects, not of the 100,000 data
files), list at most once, and finish in seconds?

The tests' server pages a listing from the bucket's sorted key names, as S3 does; ``--server stock`` runs
moto's own launcher instead, which filters and sorts every key of the bucket for every page (one listing of
100,000 keys: 41-50 s here). With ``--local`` the same tables are built in a local warehouse directory (the
embedded default) and the commands timed there: no listing cost and no requests to count.

    .venv/bin/python benchmarks/planning_bench.py [--local | --server stock] [--repeat 3] [--files 100000]
        [--versions 1000] [--partitions 100] [--formats iceberg] [--baseline /tmp/base]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.schema import PartitionField
from tests.conftest import moto_server
from tests.faults.proxy import running_proxy

KINDS = ("GET", "HEAD", "LIST", "PUT", "POST", "DELETE", "OTHER")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("value", pa.float64()),
    ]
)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )


def _file_rows(file_no: int, day: dt.date, rows: int) -> pa.Table:
    ids = [file_no * rows + i for i in range(rows)]
    base = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=file_no % 86_000)
    return pa.table(
        {
            "id": ids,
            "ts": [base + dt.timedelta(milliseconds=i) for i in range(rows)],
            "day": [day] * rows,
            "value": [i * 0.25 for i in ids],
        },
        schema=SCHEMA,
    )


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class Store:
    """Where the built table's objects go: a bucket of the S3 server, or (``--local``) the local warehouse."""

    def __init__(self, client: Any | None, bucket: str, pool: cf.Executor) -> None:
        self.client, self.bucket, self.pool = client, bucket, pool

    def key(self, location: str) -> str:
        """``location`` (a table's, or a path under it) as a key of this store."""
        return location.removeprefix(f"s3://{self.bucket}/") if self.client is not None else location

    def put_many(self, objects: list[tuple[str, bytes]]) -> None:
        if self.client is None:
            for key, body in objects:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                Path(key).write_bytes(body)
            return
        client, bucket = self.client, self.bucket
        list(self.pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}" if self.client is not None else key


def _day_of(version: int, args: argparse.Namespace) -> dt.date:
    per_day = max(1, args.versions // args.partitions)
    return (START + dt.timedelta(days=min(version // per_day, args.partitions - 1))).date()


def _ts_iso(v: dt.datetime) -> str:
    return v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_delta(lh: Lakehouse, store: Store, args: argparse.Namespace) -> None:
    from deltalake import DeltaTable

    table = lh.create_table("b.big", schema=SCHEMA, format="delta", partitioning=[PartitionField("day")])
    prefix = store.key(table.location).rstrip("/")
    per_version = args.files // args.versions
    data_schema = SCHEMA.remove(SCHEMA.get_field_index("day"))  # Delta keeps partition values out of the files
    now = dt.datetime.now(dt.UTC)
    storage: dict[str, str] = {}
    if store.client is not None:
        storage = {"AWS_ENDPOINT_URL": store.client.meta.endpoint_url, "AWS_ACCESS_KEY_ID": "k"}
        storage |= {"AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        storage |= {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    for v in range(1, args.versions + 1):
        day = _day_of(v - 1, args)
        # versions spread over the last 60 days: the old ones are older than any retention window
        stamp = now - dt.timedelta(seconds=(args.versions - v) * 60 * 86_400 / args.versions)
        ms = int(stamp.timestamp() * 1000)
        objects, adds = [], []
        for i in range(per_version):
            file_no = (v - 1) * per_version + i
            rows = _file_rows(file_no, day, args.rows)
            body = _parquet(rows.select(data_schema.names))
            rel = f"day={day.isoformat()}/part-{file_no:06d}-{uuid.uuid4()}.zstd.parquet"
            objects.append((f"{prefix}/{rel}", body))
            stats = {
                "numRecords": rows.num_rows,
                "minValues": {
                    "id": rows["id"][0].as_py(),
                    "ts": _ts_iso(rows["ts"][0].as_py()),
                    "value": rows["value"][0].as_py(),
                },
                "maxValues": {
                    "id": rows["id"][-1].as_py(),
                    "ts": _ts_iso(rows["ts"][-1].as_py()),
                    "value": rows["value"][-1].as_py(),
                },
                "nullCount": {"id": 0, "ts": 0, "value": 0},
            }
            adds.append(
                {
                    "add": {
                        "path": rel,
                        "partitionValues": {"day": day.isoformat()},
                        "size": len(body),
                        "modificationTime": ms,
                        "dataChange": True,
                        "stats": json.dumps(stats),
                    }
                }
            )
        store.put_many(objects)
        info = {"commitInfo": {"timestamp": ms, "operation": "WRITE", "operationParameters": {"mode": "Append"}}}
        log = "\n".join(json.dumps(a) for a in [info, *adds]) + "\n"
        store.put_many([(f"{prefix}/_delta_log/{v:020d}.json", log.encode())])
        if v % 100 == 0:
            DeltaTable(table.location, version=v, storage_options=storage).create_checkpoint()
        _progress("delta", v, args.versions)


def build_iceberg(lh: Lakehouse, store: Store, args: argparse.Namespace) -> None:
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
        schema_to_pyarrow,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    from lakehouse.tables.iceberg import catalog_for

    table = lh.create_table("b.big", schema=SCHEMA, format="iceberg", partitioning=[PartitionField("day")])
    native = catalog_for(table.ctx).load_table(table.identifier)  # type: ignore[attr-defined]
    meta = native.metadata
    arrow_schema = schema_to_pyarrow(meta.schema())  # with the field ids
    stats_plan = compute_statistics_plan(meta.schema(), meta.properties)
    mapping = parquet_path_to_id_mapping(meta.schema())
    prefix = store.key(table.location).rstrip("/")
    per_version = args.files // args.versions
    for v in range(1, args.versions + 1):
        day = _day_of(v - 1, args)
        objects, files = [], []
        for i in range(per_version):
            file_no = (v - 1) * per_version + i
            body = _parquet(_file_rows(file_no, day, args.rows).cast(arrow_schema))
            key = f"{prefix}/data/day={day.isoformat()}/{file_no:06d}-{uuid.uuid4()}.parquet"
            objects.append((key, body))
            st = data_file_statistics_from_parquet_metadata(pq.read_metadata(io.BytesIO(body)), stats_plan, mapping)
            files.append(
                DataFile.from_args(
                    content=DataFileContent.DATA,
                    file_path=store.uri(key),
                    file_format=FileFormat.PARQUET,
                    partition=st.partition(meta.spec(), meta.schema()),
                    file_size_in_bytes=len(body),
                    sort_order_id=None,
                    spec_id=meta.default_spec_id,
                    equality_ids=None,
                    key_metadata=None,
                    **st.to_serialized_dict(),
                )
            )
        store.put_many(objects)
        with native.transaction() as tx, tx.update_snapshot().fast_append() as append:
            for f in files:
                append.append_data_file(f)
        _progress("iceberg", v, args.versions)


def _progress(fmt: str, v: int, n: int) -> None:
    if v % max(1, n // 20) == 0 or v == n:
        print(f"  building {fmt}: {v}/{n} versions", file=sys.stderr, flush=True)


WRAPPER = (
    "import atexit, sys\n"
    "def _hwm():\n"
    "    with open('/proc/self/status') as f:\n"
    "        kb = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
    "    sys.stderr.write(f'\\n__VMHWM__ {kb}\\n')\n"
    "atexit.register(_hwm)\n"
    "from lakehouse.cli import main\n"
    "sys.argv = ['lakehouse', *sys.argv[1:]]\n"
    "main()\n"
)


def run_cli(argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    hwm = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("__VMHWM__")), 0)
    if proc.returncode != 0:
        raise RuntimeError(f"lakehouse {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"seconds": seconds, "rss_mb": hwm / 1024, "stdout": proc.stdout}


def measure(
    proxy: Any | None, env: dict[str, str], cwd: str, fmt: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Each planning command as the CLI, after the floor of anything that lists (one paged listing of the table's
    prefix with boto3 in this process; ``--local``: one walk of the table's directory). Without a proxy (a local
    warehouse) there are no requests to count."""
    one_day = _day_of(args.versions // 2, args).isoformat()
    commands = [
        ("optimize --dry-run", ["optimize", "b.big", "--dry-run", "--json"]),
        (f"optimize --dry-run --partition day={one_day}",
         ["optimize", "b.big", "--dry-run", "--json", "--partition", f"day = DATE '{one_day}'"]),
        ("vacuum (dry run)", ["vacuum", "b.big", "--json"]),
        ("health", ["health", "b.big", "--json"]),
        ("cost", ["cost", "b.big", "--json"]),
    ]  # fmt: skip
    rows = []
    times, counts = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        if proxy is None:
            listed = sum(len(files) for _d, _s, files in os.walk(Path(env["LAKEHOUSE_WAREHOUSE"]) / "b" / "big"))
            baseline, stats = "baseline: one walk of the directory (os.walk)", None
        else:
            proxy.reset()
            client = _s3(proxy.url)
            listed = sum(
                len(page.get("Contents", []))
                for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=f"lh-plan-{fmt}", Prefix="warehouse/b/big/"
                )
            )
            baseline, stats = "baseline: one paged listing (boto3)", proxy.stats()
        times.append(time.perf_counter() - started)
        counts.append(_requests(stats))
    rows.append(
        {"format": fmt, "command": baseline, "rss_mb": 0.0} | _timed(times, counts) | {"summary": f"{listed} objects"}
    )
    print(_line(rows[-1]), flush=True)
    for label, argv in commands:
        times, counts, base = [], [], []
        for _ in range(args.repeat):
            if args.baseline:  # the other lakehouse first, then ours: interleaved, so drift spreads over both
                if proxy is not None:
                    proxy.reset()
                b = run_cli(argv, env | {"PYTHONPATH": args.baseline}, cwd)
                base.append(b["seconds"])
            if proxy is not None:
                proxy.reset()
            r = run_cli(argv, env, cwd)
            times.append(r["seconds"])
            counts.append(_requests(proxy.stats() if proxy is not None else None))
        rows.append(
            {"format": fmt, "command": label, "rss_mb": r["rss_mb"]}
            | _timed(times, counts)
            | {"summary": _summary(label, r["stdout"])}
        )
        if base:
            rows[-1] |= {"baseline_seconds": statistics.median(base), "baseline_runs": [round(t, 2) for t in base]}
            rows[-1] |= {"baseline_rss_mb": b["rss_mb"]}
        print(_line(rows[-1]), flush=True)
    return rows


def _timed(times: list[float], counts: list[dict[str, Any]]) -> dict[str, Any]:
    """The median time of a command's runs, every run's time, and the last run's request counts (which every
    run must have made alike)."""
    kinds = [{k: c[k] for k in KINDS} for c in counts]
    if any(k != kinds[-1] for k in kinds):
        print(f"  note: the runs made different requests: {kinds}", file=sys.stderr, flush=True)
    return {"seconds": statistics.median(times), "runs": [round(t, 2) for t in times]} | counts[-1]


def _requests(stats: dict[str, Any] | None) -> dict[str, Any]:
    """The request columns of a row from the proxy's counts (none for a local warehouse)."""
    if stats is None:
        return {**dict.fromkeys(KINDS, None), "mb_in": None, "data_reads": None, "log": []}
    return {
        **{k: stats["requests"].get(k, 0) for k in KINDS},
        "mb_in": sum(stats["bytes_received"].values()) / 1e6,
        "data_reads": sum(1 for kind, _m, path, _s in stats["log"] if kind in ("GET", "HEAD") and _is_data(path)),
        "log": stats["log"],
    }


def _is_data(path: str) -> bool:
    """A request for a data file (not the Delta log, its checkpoints, or Iceberg metadata and manifests)."""
    path = path.split("?")[0]
    return path.endswith(".parquet") and "/_delta_log/" not in path and "/metadata/" not in path


def _summary(label: str, stdout: str) -> str:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return ""
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if label.startswith("optimize"):
        plan = doc.get("plan", doc)
        return f"{plan.get('partitions_picked')} partitions, {plan.get('input_files')} files to compact"
    if label == "health":
        return f"score {doc.get('score')}"
    if label == "cost":
        return f"{doc.get('objects')} objects"
    if label.startswith("vacuum"):
        return f"{len(doc.get('expire', doc.get('expired_versions', [])) or [])} versions to expire"
    return ""


HEADER = (
    f"{'format':<8} {'command':<46} {'s':>6} {'RSS MB':>7} {'GET':>5} {'HEAD':>5} {'LIST':>5} {'PUT':>4}"
    f" {'MB in':>7} {'data GET/HEAD':>13}  result"
)


def _line(r: dict[str, Any]) -> str:
    def n(key: str, width: int, fmt: str = "") -> str:
        return f"{'-' if r[key] is None else format(r[key], fmt):>{width}}"

    return (
        f"{r['format']:<8} {r['command']:<46} {r['seconds']:>6.2f} {r['rss_mb']:>7.0f} {n('GET', 5)} {n('HEAD', 5)}"
        f" {n('LIST', 5)} {n('PUT', 4)} {n('mb_in', 7, '.2f')} {n('data_reads', 13)}  {r['summary']}"
        + (f"  (runs: {', '.join(f'{t:.2f}' for t in r['runs'])} s)" if len(r.get("runs", ())) > 1 else "")
        + (
            f"\n{'':<8} {'  the baseline (--baseline)':<46} {r['baseline_seconds']:>6.2f} {r['baseline_rss_mb']:>7.0f}"
            f"  ours = {r['seconds'] / r['baseline_seconds']:.2f}x its time"
            f" (runs: {', '.join(f'{t:.2f}' for t in r['baseline_runs'])} s)"
            if "baseline_seconds" in r
            else ""
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=1_000)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--rows", type=int, default=4, help="rows per file")
    ap.add_argument("--formats", nargs="+", default=["delta", "iceberg"])
    ap.add_argument(
        "--local",
        action="store_true",
        help="build the tables in a local warehouse directory (the embedded default) instead of on moto's S3 "
        "server: times without the server's listing cost, no requests to count",
    )
    ap.add_argument(
        "--server",
        choices=("tests", "stock"),
        default="tests",
        help="the S3 server: the tests' (moto without its per-page scan of the bucket) or moto's stock launcher",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command; the median time is printed")
    ap.add_argument("--log", action="store_true", help="print every request, grouped by command")
    ap.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="a checkout of another lakehouse commit (git worktree add /tmp/base <commit>): each command also runs "
        "with its lakehouse, interleaved with ours on the same tables, and the ratio of the medians is printed",
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="lh-planning-")
    launcher = (
        [sys.executable, "-m", "moto.server"]
        if args.server == "stock"
        else [sys.executable, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "s3_server.py")]
    )
    moto = None if args.local else moto_server(launcher)
    try:
        upstream = moto.__enter__() if moto is not None else None
        with contextlib.ExitStack() as stack:
            proxy = stack.enter_context(running_proxy(upstream)) if upstream is not None else None
            pool = stack.enter_context(cf.ThreadPoolExecutor(16))
            where = "a local warehouse" if args.local else f"on S3 (moto, the {args.server} server)"
            print(
                f"{args.files} files in {args.versions} versions over {args.partitions} day partitions, "
                f"{args.rows} rows per file, {where}; "
                f"{os.cpu_count()} cores"
            )
            print(HEADER, flush=True)
            results = []
            for fmt in args.formats:
                bucket = f"lh-plan-{fmt}"
                catalog_url = f"sqlite:///{tmp}/{fmt}.db"
                env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
                env |= {"LAKEHOUSE_CATALOG_URL": catalog_url, "NO_COLOR": "1"}
                if upstream is None:
                    warehouse = f"{tmp}/{fmt}-warehouse"
                    settings = load_settings(config_file=False, warehouse=warehouse, catalog_url=catalog_url)
                    store = Store(None, bucket, pool)
                else:
                    assert proxy is not None
                    _s3(upstream).create_bucket(Bucket=bucket)
                    s3 = {"access_key_id": "k", "secret_access_key": "s", "region": "us-east-1"}
                    warehouse = f"s3://{bucket}/warehouse"
                    settings = load_settings(
                        config_file=False, warehouse=warehouse, catalog_url=catalog_url, s3={"endpoint": upstream, **s3}
                    )
                    store = Store(_s3(upstream), bucket, pool)
                    env |= {
                        "LAKEHOUSE_S3__ENDPOINT": proxy.url,
                        "LAKEHOUSE_S3__ACCESS_KEY_ID": "k",
                        "LAKEHOUSE_S3__SECRET_ACCESS_KEY": "s",
                        "LAKEHOUSE_S3__REGION": "us-east-1",
                    }
                env["LAKEHOUSE_WAREHOUSE"] = warehouse
                started = time.perf_counter()
                with Lakehouse(settings) as lh:
                    (build_delta if fmt == "delta" else build_iceberg)(lh, store, args)
                print(f"  built {fmt} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
                results += measure(proxy, env, tmp, fmt, args)
            if args.log:
                for r in results:
                    print(f"-- {r['format']} {r['command']}")
                    for kind, method, path, status in r["log"]:
                        print(f"  {kind:<6} {method:<6} {status} {path[:160]}")
    finally:
        if moto is not None:
            moto.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
