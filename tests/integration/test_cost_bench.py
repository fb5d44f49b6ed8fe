"""The cost benchmark's simulated year, shortened: the simulated clock drives the policy's decisions, and the
ledgers account for what the listings and reads show (``benchmarks/cost_bench.py`` runs the full year)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.slow
def test_a_short_simulated_season(tmp_path: Any) -> None:
    import cost_bench

    chart = tmp_path / "chart.png"
    args = cost_bench.parser().parse_args(
        ["--days", "10", "--batches", "2", "--rows", "300", "--warm-after", "3d", "--cold-after", "6d",
         "--expire-after", "8d", "--repeat", "1", "--chart", str(chart),
         "--root", str(tmp_path / "sim")]
    )  # fmt: skip
    result = cost_bench.run(args)
    months = result["months"]
    assert set(months) == set(cost_bench.SCENARIOS) and not result["jobs_failed"]
    none, comp, full, it = (months[s][-1] for s in ("none", "compaction", "lakehouse", "intelligent-tiering"))
    # appends only: every micro-batch's file stays, in STANDARD
    assert none["data_files"] == 10 * 2 and set(none["bytes_by_class"]) == {"STANDARD"}
    # compaction leaves one file per day (today's too: it runs after the day's appends)
    assert comp["data_files"] == 10 and full["data_files"] == 10 - 2, "two days expired (older than 8 days)"
    # the policy decided by the simulated clock: days older than 3 days left STANDARD, older than 6 are cold
    assert {"STANDARD", "STANDARD_IA", "GLACIER_IR"} <= set(full["bytes_by_class"])
    # the reads of old days (the old-day query, the tier moves) hit the warm and cold classes: retrieval fees,
    # which neither the raw table nor Intelligent-Tiering pays
    assert sum(m["retrieval_bytes"] for m in months["lakehouse"]) > 0
    assert (
        sum(m["retrieval"] for m in months["none"]) == sum(m["retrieval"] for m in months["intelligent-tiering"]) == 0
    )
    # compaction needs fewer GETs for the same queries (one file a day instead of two)
    assert sum(m["gets"] for m in months["compaction"]) < sum(m["gets"] for m in months["none"])
    # Intelligent-Tiering holds (a)'s objects; these are far below 128 KB, so none is monitored or moved
    assert it["objects"] == none["objects"] and set(it["bytes_by_class"]) == {"IT_FREQUENT"}
    text = cost_bench.report(result)
    assert "targets: lakehouse 12-month cost <= 60 % of no maintenance" in text
    cost_bench.chart(result, str(chart))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
