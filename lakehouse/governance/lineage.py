"""Lineage as OpenLineage run events: emitted by every job and ingest commit, accepted from other tools, stored
in the catalog, optionally forwarded to an OpenLineage endpoint (Marquez), and walked as a graph.

A lakehouse table is the dataset ``{namespace: <warehouse URI>, name: <ns.table>}``; a Kafka source is
``{namespace: kafka://<topic's source>, name: <topic>}`` and a file ``{namespace: file, name: <path>}``.
Jobs are ``{namespace: <lineage.namespace>, name: lakehouse.<kind>}``.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.catalog.lineage import as_count
from lakehouse.errors import InvalidInputError
from lakehouse.tables.base import TableName

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.workspace import Workspace

PRODUCER = "https://github.com/lakehouse/lakehouse"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")


def table_dataset(
    lh: Workspace, name: str, *, schema: pa.Schema | None = None, rows: int | None = None
) -> dict[str, Any]:
    """The OpenLineage dataset of a table, with its schema facet (and row count when given)."""
    from lakehouse.schema import type_name

    ds: dict[str, Any] = {"namespace": lh.ctx.warehouse, "name": name, "facets": {}}
    if schema is not None:
        ds["facets"]["schema"] = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
            "fields": [{"name": f.name, "type": type_name(f.type)} for f in schema],
        }
    if rows is not None:
        ds["outputFacets"] = {
            "outputStatistics": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json",
                "rowCount": rows,
            }
        }
    return ds


def source_dataset(source: str) -> dict[str, Any]:
    """The dataset of an ingestion source id (``kafka:topic:partition``, ``file:/path``, ``stdin``, api ids)."""
    if source.startswith("kafka:"):
        topic = source.split(":")[1]
        return {"namespace": "kafka", "name": topic}
    if source.startswith("file:"):
        return {"namespace": "file", "name": source[len("file:") :]}
    return {"namespace": "lakehouse-api", "name": source}


def run_event(
    lh: Workspace,
    *,
    job: str,
    event_type: str,
    run_id: str,
    inputs: Sequence[Mapping[str, Any]] = (),
    outputs: Sequence[Mapping[str, Any]] = (),
    run_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id, "facets": dict(run_facets or {})},
        "job": {"namespace": lh.settings.lineage.namespace, "name": job, "facets": {}},
        "inputs": [dict(d) for d in inputs],
        "outputs": [dict(d) for d in outputs],
    }


def validate_event(event: Any, *, own_namespace: str | None = None) -> dict[str, Any]:
    """Check the parts of an OpenLineage run event that the graph and the metrics read (job, run, datasets and
    their schema and output-statistics facets); a clear error otherwise. With ``own_namespace`` (lakehouse's
    job namespace), an event for one of lakehouse's own jobs (``lakehouse.*`` there) is refused: only lakehouse
    emits those, and its metrics count them."""
    if not isinstance(event, dict):
        raise InvalidInputError("an OpenLineage event is a JSON object")
    job, run = event.get("job"), event.get("run")
    if not isinstance(job, dict) or not isinstance(job.get("namespace"), str) or not isinstance(job.get("name"), str):
        raise InvalidInputError("the event needs job.namespace and job.name (strings)")
    if own_namespace is not None and job["namespace"] == own_namespace and job["name"].startswith("lakehouse."):
        raise InvalidInputError(
            f"job {job['namespace']}/{job['name']} is one of lakehouse's own jobs: only lakehouse emits its events",
            hint="post under your tool's own job namespace (e.g. airflow)",
        )
    if not isinstance(run, dict) or not isinstance(run.get("runId"), str):
        raise InvalidInputError("the event needs run.runId (a string)")
    if str(event.get("eventType", "OTHER")) not in EVENT_TYPES:
        raise InvalidInputError(f"eventType must be one of {', '.join(EVENT_TYPES)}")
    for kind in ("inputs", "outputs"):
        items = event.get(kind, [])
        if not isinstance(items, list) or not all(
            isinstance(d, dict) and isinstance(d.get("namespace"), str) and isinstance(d.get("name"), str)
            for d in items
        ):
            raise InvalidInputError(f"{kind} must be a list of datasets with namespace and name")
        for i, d in enumerate(items):
            _check_facets(f"{kind}[{i}]", d)
    if event.get("eventTime") is not None:
        try:
            dt.datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError("eventTime must be an ISO-8601 time") from None
    return event


_STATISTICS = ("rowCount", "size", "fileCount")


def _check_facets(where: str, dataset: Mapping[str, Any]) -> None:
    """Facet groups are objects; a schema facet lists named fields; output statistics are counts."""
    for group in ("facets", "inputFacets", "outputFacets"):
        if dataset.get(group) is not None and not isinstance(dataset[group], dict):
            raise InvalidInputError(f"{where}.{group} must be an object")
    schema = (dataset.get("facets") or {}).get("schema")
    if schema is not None:
        fields = schema.get("fields") if isinstance(schema, dict) else None
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("type", ""), str)
            for f in fields
        ):
            raise InvalidInputError(f"{where}.facets.schema.fields must be a list of fields with a name and type")
    stats = (dataset.get("outputFacets") or {}).get("outputStatistics")
    if stats is not None:
        if not isinstance(stats, dict):
            raise InvalidInputError(f"{where}.outputFacets.outputStatistics must be an object")
        for key in _STATISTICS:
            if key in stats and as_count(stats[key]) is None:
                raise InvalidInputError(f"{where}.outputFacets.outputStatistics.{key} must be a count (integer >= 0)")


def emit(lh: Workspace, event: Mapping[str, Any]) -> int:
    """Store an event, and forward it to ``lineage.url`` when set (best effort: a failure there is counted
    in the audit log, never raised into the job)."""
    event_id = lh.catalog.add_lineage(event)
    url = lh.settings.lineage.url
    if url:
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own setting
            url.rstrip("/") + "/api/v1/lineage",
            data=json.dumps(event, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=lh.settings.lineage.timeout_seconds):  # noqa: S310
                pass
        except OSError as e:
            lh.catalog.audit(
                "lineage.forward", table=None, actor=lh.actor, outcome="failed", details={"url": url, "error": str(e)}
            )
    return event_id


def new_run_id() -> str:
    return str(uuid.uuid4())


def job_run_id(catalog_url: str, job_id: int) -> str:
    """A stable run id for a job of the job history."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{catalog_url}#job{job_id}"))


_OUTPUT_ROWS = ("rows_out", "rows_after", "rows")


def job_event(
    lh: Workspace, *, event_type: str, job_id: int, kind: str, table: str | None, metrics: Mapping[str, Any]
) -> dict[str, Any]:
    """The run event of a maintenance or governance job: it reads and writes its table."""
    schema = None
    if table:
        try:
            schema = lh.catalog.get_table(TableName.parse(table)).definition.schema
        except LookupError:
            schema = None
    rows = next((int(metrics[k]) for k in _OUTPUT_ROWS if isinstance(metrics.get(k), int)), None)
    datasets_in = [table_dataset(lh, table, schema=schema)] if table else []
    datasets_out = [table_dataset(lh, table, schema=schema, rows=rows)] if table else []
    counts = {k: v for k, v in metrics.items() if isinstance(v, int | float | bool)}
    facet = {
        "_producer": PRODUCER,
        "_schemaURL": "https://github.com/lakehouse/lakehouse/blob/main/docs/LakehouseJobRunFacet.json",
        "jobId": job_id,
        "kind": kind,
        "counts": counts,
    }
    return run_event(
        lh,
        job=f"lakehouse.{kind}",
        event_type=event_type,
        run_id=job_run_id(lh.ctx.catalog_url, job_id),
        inputs=datasets_in,
        outputs=datasets_out,
        run_facets={"lakehouse_job": facet},
    )


def graph(lh: Workspace, dataset: str, *, depth: int = 3) -> dict[str, Any]:
    """The upstream and downstream graph of a dataset (``ns.table``, or ``namespace::name``) up to ``depth``
    jobs away: nodes (datasets and jobs) and edges (dataset -> job -> dataset).

    A job node is one job *with one set of datasets*: the runs whose events together read exactly those inputs
    and wrote exactly those outputs (id ``job:<namespace>/<name>#<digest of the datasets>``). So an edge
    ``input -> job -> output`` exists only where runs connected them: ingesting a file into one table and a
    topic into another, or optimizing two tables, does not link them through the shared job name."""
    if depth < 1 or depth > 20:
        raise InvalidInputError("depth must be 1..20")
    runs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for ns, name, run_id, inputs, outputs, last in lh.catalog.lineage_runs():
        r = runs.setdefault((ns, name, run_id), {"inputs": set(), "outputs": set(), "last": last})
        r["inputs"] |= set(inputs)
        r["outputs"] |= set(outputs)
        r["last"] = max(r["last"], last)
    jobs: dict[str, dict[str, Any]] = {}
    for (ns, name, _), r in runs.items():
        reads, writes = frozenset(r["inputs"]), frozenset(r["outputs"])
        key = job_node_id(ns, name, reads, writes)
        j = jobs.setdefault(
            key, {"namespace": ns, "name": name, "inputs": reads, "outputs": writes, "last": r["last"], "runs": 0}
        )
        j["runs"] += 1
        j["last"] = max(j["last"], r["last"])
    datasets = {d for j in jobs.values() for d in j["inputs"] | j["outputs"]}
    if "::" in dataset:
        start = {dataset} & datasets
    else:
        start = {d for d in datasets if d.split("::", 1)[1] == dataset}
    if not start:
        raise_not_found(dataset)
    nodes: dict[str, dict[str, Any]] = {d: _dataset_node(d) for d in start}
    edges: set[tuple[str, str]] = set()
    frontier_up, frontier_down = set(start), set(start)
    for _ in range(depth):
        next_up: set[str] = set()
        next_down: set[str] = set()
        for key, j in jobs.items():
            if j["outputs"] & frontier_up:  # a job that wrote what we have: upstream
                _add_job(nodes, key, j)
                for d in j["outputs"] & frontier_up:
                    edges.add((key, d))
                for d in j["inputs"]:
                    edges.add((d, key))
                    if d not in nodes:
                        next_up.add(d)
                    nodes.setdefault(d, _dataset_node(d))
            if j["inputs"] & frontier_down:  # a job that read what we have: downstream
                _add_job(nodes, key, j)
                for d in j["inputs"] & frontier_down:
                    edges.add((d, key))
                for d in j["outputs"]:
                    edges.add((key, d))
                    if d not in nodes:
                        next_down.add(d)
                    nodes.setdefault(d, _dataset_node(d))
        frontier_up, frontier_down = next_up, next_down
    return {
        "dataset": dataset,
        "depth": depth,
        "nodes": sorted(nodes.values(), key=lambda n: (n["type"], n["id"])),
        "edges": [{"from": a, "to": b} for a, b in sorted(edges)],
    }


def job_node_id(namespace: str, name: str, inputs: frozenset[str], outputs: frozenset[str]) -> str:
    """The graph's id of a job with one set of datasets (stable: a digest of the sorted dataset ids).

    >>> job_node_id("lakehouse", "lakehouse.optimize", frozenset({"wh::a.b"}), frozenset({"wh::a.b"}))
    'job:lakehouse/lakehouse.optimize#ba69e1ec38'
    """
    import hashlib

    digest = hashlib.sha256(json.dumps([sorted(inputs), sorted(outputs)]).encode()).hexdigest()[:10]
    return f"job:{namespace}/{name}#{digest}"


def _dataset_node(d: str) -> dict[str, Any]:
    ns, _, name = d.partition("::")
    return {"id": d, "type": "dataset", "namespace": ns, "name": name}


def _add_job(nodes: dict[str, dict[str, Any]], key: str, j: Mapping[str, Any]) -> None:
    nodes.setdefault(
        key,
        {
            "id": key,
            "type": "job",
            "namespace": j["namespace"],
            "name": j["name"],
            "last_event": j["last"],
            "runs": j["runs"],
        },
    )


def raise_not_found(dataset: str) -> None:
    from lakehouse.errors import TableNotFoundError

    raise TableNotFoundError(f"no lineage recorded for dataset {dataset!r}")
