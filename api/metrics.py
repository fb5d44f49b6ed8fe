"""Prometheus metrics, computed from the catalog (job history, lineage) and each table's file list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.errors import LakehouseError

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render(lh: Lakehouse) -> str:
    from lakehouse.maintenance.health import file_health

    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            tags = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{tags}}} {value:g}" if tags else f"{name} {value:g}")

    stats = lh.catalog.job_stats()
    metric(
        "lakehouse_jobs_total",
        "counter",
        "Jobs in the history by kind and final state.",
        [({"kind": k, "state": s}, float(n)) for (k, s), (n, _, _) in sorted(stats.items())],
    )
    durations: dict[str, tuple[float, int]] = {}
    for (k, _s), (_n, seconds, finished) in stats.items():
        total, count = durations.get(k, (0.0, 0))
        durations[k] = (total + seconds, count + finished)
    metric(
        "lakehouse_job_duration_seconds_sum",
        "counter",
        "Total duration of finished jobs by kind.",
        [({"kind": k}, v[0]) for k, v in sorted(durations.items())],
    )
    metric(
        "lakehouse_job_duration_seconds_count",
        "counter",
        "Finished jobs by kind.",
        [({"kind": k}, float(v[1])) for k, v in sorted(durations.items())],
    )
    metric(
        "lakehouse_rows_ingested_total",
        "counter",
        "Rows committed by ingestion (from its lineage events).",
        [({}, float(lh.catalog.ingested_rows(namespace=lh.settings.lineage.namespace)))],
    )
    metric(
        "lakehouse_files_rewritten_total",
        "counter",
        "Input files replaced by compaction, tiering, dedup and masking jobs.",
        [({}, float(lh.catalog.files_rewritten()))],
    )
    metric(
        "lakehouse_table_lease",
        "gauge",
        "Tables leased right now by an autopilot or a running job (1 per lease).",
        [({"table": lease["table"], "holder": lease["holder"]}, 1.0) for lease in lh.catalog.leases()],
    )
    tables = {str(r.name) for r in lh.list_tables()}
    passes = {t: j for t, j in lh.catalog.latest_jobs("maintain").items() if t in tables}  # last autopilot pass
    metric(
        "lakehouse_table_health_score",
        "gauge",
        "Health score 0-100 per table after its last autopilot pass.",
        [
            ({"table": t}, float(j.metrics["score_after"]))
            for t, j in sorted(passes.items())
            if isinstance(j.metrics.get("score_after"), int | float)
        ],
    )
    metric(
        "lakehouse_autopilot_last_pass_timestamp_seconds",
        "gauge",
        "When the autopilot last finished a pass over the table (Unix time).",
        [({"table": t}, j.finished_at.timestamp()) for t, j in sorted(passes.items()) if j.finished_at is not None],
    )
    metric(
        "lakehouse_autopilot_last_pass_failed",
        "gauge",
        "1 when the table's last autopilot pass, or one of its jobs, failed (it backs off), else 0.",
        [
            ({"table": t}, float(j.state != "committed" or bool(j.metrics.get("job_errors"))))
            for t, j in sorted(passes.items())
        ],
    )
    files, size, small = [], [], []
    for record in lh.list_tables():
        try:
            h = file_health(lh.table(record.name), clustered=lh.catalog.clustered_paths(record.name))
        except LakehouseError:
            continue
        labels = {"table": str(record.name), "format": record.format}
        files.append((labels, float(h["files"])))
        size.append((labels, float(h["bytes"])))
        small.append((labels, float(h["small_file_ratio"])))
    metric("lakehouse_table_files", "gauge", "Live data files per table.", files)
    metric("lakehouse_table_bytes", "gauge", "Live data bytes per table.", size)
    metric("lakehouse_table_small_file_ratio", "gauge", "Share of small files per table.", small)
    return "\n".join(lines) + "\n"
