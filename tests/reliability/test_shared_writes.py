"""Concurrent add_features calls that share requests, under a storm of faults: nothing lost, nothing doubled."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from model_runner.database import FeatureTable

from .conftest import RunReport
from .proxy import FaultMix, FaultProxy


def _feature(image_id: str, tile: int, number: int, rng: random.Random) -> dict[str, Any]:
    x, y = rng.uniform(0, 500), rng.uniform(0, 500)
    return {
        "type": "Feature",
        "id": f"{tile}:{number}",
        "geometry": None,
        "properties": {"image_id": image_id, "bounds_imcoords": [x, y, x + 5, y + 5], "score": rng.random()},
    }


def test_shared_tile_writes_under_faults_store_every_tile_exactly_once(
    feature_table: FeatureTable, fault_proxy: FaultProxy, run_report: RunReport, reliability_scale: int
) -> None:
    """A third of the requests fail (throttled, 500, reset before or after DynamoDB applied them) while 8 threads
    store one tile per call: calls share requests, and each sends its own failed items again under its policy."""
    fault_proxy.set_mix(FaultMix.spread(0.33, ["throttle", "error500", "reset", "lost"]))
    table = FeatureTable(feature_table.table_name, (512, 512), (32, 32), host=fault_proxy.url)
    rng = random.Random(23)
    image_id = "img-shared-storm"
    tiles = [((480 * (n // 20), 480 * (n % 20)), (512, 512)) for n in range(120 * reliability_scale)]
    per_tile = {
        tile: [_feature(image_id, n, k, rng) for k in range(rng.randint(1, 20))] for n, tile in enumerate(tiles)
    }

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda tile: table.add_features(per_tile[tile], source_tile=tile), tiles))

    stats = fault_proxy.snapshot()
    read = [feature["id"] for feature in feature_table.get_features(image_id)]
    written = [feature["id"] for features in per_tile.values() for feature in features]
    assert sorted(read) == sorted(written)  # every tile once: none lost, none doubled by a retry
    assert stats.total_faults > 0
    assert table._coalescer.requests_sent < len(tiles)  # requests were shared
    run_report.record(
        "shared-tile-writes-storm",
        operations=len(tiles),
        requests=stats.total_requests,
        faults=stats.total_faults,
        gave_up=0,
        retries=stats.total_requests - table._coalescer.requests_sent,
        items_checked=len(written),
        discrepancies=0,
    )
