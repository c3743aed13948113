"""Memory of the bound-model cache: what binding many table names adds to a process.

Each measurement runs in a fresh interpreter (``python -m benchmarks.binding N``) so that nothing else the benchmarks
allocated counts: it binds one table (the shared client is built), then N table names of each of the four
repositories, and reports the growth of the resident set; then it binds one table on :data:`ENDPOINTS` other
endpoints (one botocore client each) and reports what a client adds. Binding opens no connection, so no endpoint is
needed.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

#: The issue's target: binding this many table names adds less than ...
TABLE_NAMES = 300
#: ... this many MiB.
ADDED_MIB_MAX = 100.0
#: Endpoints bound to measure what one more botocore client costs.
ENDPOINTS = 20


def _rss_mib() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def measure(table_names: int) -> dict[str, Any]:
    """Bind ``table_names`` names of each repository in this process and return what it cost.

    :param table_names: int = table names per repository
    :return: Dict[str, Any] = ``added_mib``, ``clients`` and ``bound_models`` (the cache's sizes), ``repositories``,
        ``mib_per_client`` (what one more endpoint's client adds)
    """
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from model_runner.database import EndpointStatisticsTable, FeatureTable, JobTable, RegionRequestTable
    from model_runner.database.binding import cache_info

    where = {"host": "http://127.0.0.1:9", "region": "us-east-1"}
    kept = [JobTable("bench-binding-warm", **where)]  # imports done, the shared client built
    gc.collect()
    before = _rss_mib()
    for n in range(table_names):
        for repository in (JobTable, RegionRequestTable, EndpointStatisticsTable, FeatureTable):
            kept.append(repository(f"bench-binding-{n:04d}", **where))  # held, as a long-lived process would
    gc.collect()
    added = _rss_mib() - before
    cache = cache_info()
    before_endpoints = _rss_mib()
    for n in range(ENDPOINTS):  # a client each: the clients share botocore's parsed service model
        kept.append(JobTable("bench-binding-endpoint", host=f"http://127.0.0.1:{10 + n}", region="us-east-1"))
    gc.collect()
    per_client = (_rss_mib() - before_endpoints) / ENDPOINTS
    return {
        "table_names": table_names,
        "repositories": len(kept) - 1 - ENDPOINTS,
        "added_mib": round(added, 1),
        "distinct_clients": len({id(repository.client) for repository in kept[: len(kept) - ENDPOINTS]}),
        "endpoints": ENDPOINTS,
        "mib_per_client": round(per_client, 2),
        **cache,
    }


def run_binding(table_names: int = TABLE_NAMES) -> dict[str, Any]:
    """Measure the cache in a fresh interpreter.

    :param table_names: int = table names per repository
    :return: Dict[str, Any] = the figures of :func:`measure`, and the target
    """
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.binding", str(table_names)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["added_mib_max"] = ADDED_MIB_MAX
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else TABLE_NAMES)))
