"""Recording a region's tiles: ``add_tiles`` in batches against one ``add_tile`` call per tile.

A region of 400 tiles (20 x 20 tiles of 512 px with 32 px overlap, a 9,632 px region) is recorded into a fresh region
item twice per repetition: once with ``RegionRequestTable.add_tiles`` in batches of 25 (16 calls), once with 400
``add_tile`` calls. The two alternate (batched first, then single, then single first...) so that drift of a noisy
machine hits both alike. For each we count the DynamoDB requests, the write capacity DynamoDB reports, and the time;
and check that the stored region holds the 400 tiles once with a count of 400.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from .capacity import RequestRecorder

TILES_PER_REGION = 400
BATCH = 25


def region_tiles(count: int = TILES_PER_REGION) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Return the tiles of one region, row by row.

    :param count: int = number of tiles (a square number gives a square region)
    :return: List[ImageRegion] = ((row, col), (512, 512)) tiles with a 480 px stride
    """
    side = int(count**0.5)
    return [((row * 480, col * 480), (512, 512)) for row in range(side) for col in range(side)][:count]


def _record(
    regions: Any, recorder: RequestRecorder, image_id: str, record: Callable[[str, str], None]
) -> dict[str, Any]:
    from model_runner.database import RegionRequestItem

    region_id = f"region-{uuid.uuid4().hex[:8]}"
    regions.start_region_request(RegionRequestItem(image_id=image_id, region_id=region_id))
    recorder.reset()
    started = time.perf_counter()
    record(image_id, region_id)
    seconds = time.perf_counter() - started
    totals = recorder.totals()
    stored = regions.get_region_request(region_id, image_id)
    tiles = stored.succeeded_tiles or []
    correct = len(tiles) == TILES_PER_REGION == stored.succeeded_tile_count and len({str(t) for t in tiles}) == len(
        tiles
    )
    return {
        "seconds": seconds,
        "requests": sum(totals.requests.values()),
        "write_units": totals.write_units,
        "correct": correct,
    }


def run_tiles(endpoint_url: str, region_table: str, repeat: int = 3) -> dict[str, Any]:
    """Measure both ways of recording a 400-tile region, ``repeat`` times each.

    :param endpoint_url: str = the DynamoDB endpoint
    :param region_table: str = an existing region table
    :param repeat: int = repetitions of each way
    :return: Dict[str, Any] = per way: median seconds, requests, write units, all correct; and the ratios
    """
    from model_runner.common.typing import TileState
    from model_runner.database import RegionRequestTable

    regions = RegionRequestTable(region_table, host=endpoint_url)
    tiles = region_tiles()
    image_id = f"bench-tiles-{uuid.uuid4().hex[:8]}"

    def batched(image: str, region: str) -> None:
        for start in range(0, len(tiles), BATCH):
            regions.add_tiles(image, region, tiles[start : start + BATCH], TileState.SUCCEEDED)

    def single(image: str, region: str) -> None:
        for tile in tiles:
            regions.add_tile(image, region, tile, TileState.SUCCEEDED)

    ways: dict[str, Callable[[str, str], None]] = {f"add_tiles x{len(tiles) // BATCH} (batches of {BATCH})": batched}
    ways[f"add_tile x{len(tiles)}"] = single
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ways}
    with RequestRecorder(size_items=False).attached(regions.client) as recorder:
        for index in range(max(1, repeat)):
            order = list(ways) if index % 2 == 0 else list(reversed(ways))
            for name in order:
                runs[name].append(_record(regions, recorder, image_id, ways[name]))
    summary = {
        name: {
            "calls": len(tiles) // BATCH if name.startswith("add_tiles") else len(tiles),
            "seconds_median": statistics.median(r["seconds"] for r in measured),
            "requests": statistics.median(r["requests"] for r in measured),
            "write_units": statistics.median(r["write_units"] for r in measured),
            "correct": all(r["correct"] for r in measured),
        }
        for name, measured in runs.items()
    }
    first, second = (summary[name] for name in ways)
    return {
        "tiles": len(tiles),
        "batch": BATCH,
        "repeat": max(1, repeat),
        "ways": summary,
        "speedup": second["seconds_median"] / first["seconds_median"] if first["seconds_median"] else None,
        "request_ratio": second["requests"] / first["requests"] if first["requests"] else None,
    }


def tile_rows(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows of the tile-recording table.

    :param results: Dict[str, Any] = the run's figures
    :return: Tuple[List[str], List[List[Any]]] = headers and rows
    """
    section = results.get("tiles") or {}
    rows = [
        [
            name,
            way["calls"],
            way["requests"],
            way["write_units"],
            way["seconds_median"],
            "yes" if way["correct"] else "NO",
        ]
        for name, way in section.get("ways", {}).items()
    ]
    return [
        "400 tiles of a region",
        "calls",
        "requests",
        "write units",
        "seconds (median)",
        "stored once, count 400",
    ], rows
