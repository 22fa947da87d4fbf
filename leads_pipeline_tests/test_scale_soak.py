"""A short scale soak (``-m soak``, excluded from ``make test``): a real ``dagster-daemon`` syncing 50 distributors
on a 1-minute cadence for 3 minutes through batched runs (``benchmarks/soak_scale.py``; the full one is 200
distributors × 5 minutes × 15 minutes, figures in docs/scale.md). The backlog must not grow, no run may fail, and
after the final catch-up the warehouse holds exactly the simulator's manifest."""

from __future__ import annotations

import json

import pytest

from benchmarks import soak_scale

pytestmark = [pytest.mark.soak, pytest.mark.postgres]


def test_fifty_distributors_for_three_minutes_keep_up(postgres_available):
    report = soak_scale.run(distributors=50, minutes=3, interval=1, batch_size=20, sample_seconds=15,
                            arrival_rate=30.0, log=lambda m: print(m, flush=True))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2, default=str))
    assert report["runs_launched"].get("sync_batch_job", 0) >= 3
    assert report["runs_failed"] == 0 and report["distributor_syncs_failed"] == 0
    assert not report["backlog"]["growing"], report["backlog"]
    assert report["samples"][-1]["never_synced"] == 0
    assert report["leads"]["at_end_before_catch_up"]["unexpected"] == 0
    assert report["leads"]["after_catch_up"]["exact"], report["leads"]
