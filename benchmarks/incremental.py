"""P2, own process: one new page of 100 leads landed and processed — the warehouse work of an incremental sync —
into a warehouse that already holds N leads. Median of several pages; each page is one ``Warehouse.session`` (open,
land, parse and store with the cursor in one transaction, close), exactly as ``sync_distributor`` does it for a page
that arrives alone. Also without the session (the transaction opens the file itself), for comparison.

    python -m benchmarks.incremental WAREHOUSE_URL DISTRIBUTOR [RUNS]
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time


def _pages(n_pages: int, seed: int):
    from benchmarks import datagen

    rng = random.Random(f"incremental:{seed}")
    people = datagen._People(random.Random(f"incremental-people:{seed}"), size=300)
    forms = datagen._forms(rng)
    base = 800_000_000 + (os.getpid() % 1000) * 10_000 + seed * 1000  # ids no other run uses
    for p in range(n_pages):
        yield [datagen._lead(rng, base + p * 100 + i, people, forms, None) for i in range(100)]


def run(url: str, distributor: str, runs: int = 7) -> dict:
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.ingest.land import land_page
    from leads_pipeline.lib.ingest.runs import new_sync_id
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(url)
    region = distributors.get(wh, distributor).default_region
    with wh.transaction(read_only=True) as conn:
        stored = int(conn.scalar("SELECT count(*) FROM leads"))
    form = "333333333333300"

    def one(page: list, session: bool) -> float:
        sync_id = new_sync_id()
        t = time.perf_counter()
        if session:
            with wh.session():
                result = land_page(wh, sync_id=sync_id, distributor=distributor, default_region=region, page_id=None,
                                   form_id=form, leads=page, cursor=int(time.time()))
        else:
            result = land_page(wh, sync_id=sync_id, distributor=distributor, default_region=region, page_id=None,
                               form_id=form, leads=page, cursor=int(time.time()))
        elapsed = time.perf_counter() - t
        assert result.stored == len(page), result
        return elapsed * 1000

    pages = list(_pages(2 * runs + 2, seed=len(url) % 7))
    one(pages[0], True)  # warm: imports, first connection of the process
    with_session = [one(p, True) for p in pages[1: runs + 1]]
    without = [one(p, False) for p in pages[runs + 1: 2 * runs + 1]]
    return {"leads_stored_before": stored, "runs": runs,
            "page_ms_median": round(statistics.median(with_session), 2),
            "page_ms": [round(x, 2) for x in with_session],
            "page_ms_median_without_session": round(statistics.median(without), 2)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 7)))
