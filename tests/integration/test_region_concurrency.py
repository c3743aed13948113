"""Many workers recording the tiles of one region at once, on DynamoDB Local: threads and processes."""

from __future__ import annotations

import multiprocessing
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from model_runner.common.typing import ImageRegion, TileState
from model_runner.database import RegionRequestItem, RegionRequestTable

pytestmark = pytest.mark.integration

TILES = 300
IMAGE = "image-1"


def tile(index: int) -> ImageRegion:
    """The index-th tile of a 20-column grid of 512-pixel tiles with a 32-pixel overlap."""
    return ((index // 20) * 480, (index % 20) * 480), (512, 512)


def as_stored(region: ImageRegion) -> list[list[int]]:
    return [list(region[0]), list(region[1])]


ALL_TILES = sorted(as_stored(tile(i)) for i in range(TILES))


def test_sixteen_threads_add_three_hundred_tiles_each_twice(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(RegionRequestItem(image_id=IMAGE, region_id="threads"))
    deliveries = [index for index in range(TILES) for _ in range(2)]
    random.Random(3).shuffle(deliveries)

    def add(index: int) -> int:
        region = region_request_table.add_tile(IMAGE, "threads", tile(index), TileState.SUCCEEDED)
        assert region.succeeded_tile_count == len(region.succeeded_tiles)
        return int(region.succeeded_tile_count)

    with ThreadPoolExecutor(max_workers=16) as pool:
        seen = list(pool.map(add, deliveries))

    region = region_request_table.get_region_request("threads", IMAGE)
    assert region is not None
    assert region.succeeded_tile_count == len(region.succeeded_tiles) == TILES
    assert sorted(region.succeeded_tiles) == ALL_TILES
    assert (region.failed_tiles, region.failed_tile_count) == ([], 0)
    # each first delivery raised the count by one: every count 1..300 was returned at least once
    assert set(seen) == set(range(1, TILES + 1))


def test_restarts_and_stale_updates_during_tile_recording_lose_nothing(
    region_request_table: RegionRequestTable,
) -> None:
    region_request_table.start_region_request(RegionRequestItem(image_id=IMAGE, region_id="busy", total_tiles=TILES))
    stale = region_request_table.get_region_request("busy", IMAGE)
    assert stale is not None
    done = threading.Event()
    restarts: list[int] = []

    def disturb() -> None:
        # a redelivered start message and a worker writing back an item read before any tile, over and over
        while not done.is_set():
            region_request_table.start_region_request(RegionRequestItem(image_id=IMAGE, region_id="busy"))
            restarts.append(1)
            region_request_table.update_region_request(stale)

    def add(index: int) -> None:
        state = TileState.FAILED if index % 10 == 0 else TileState.SUCCEEDED
        region_request_table.add_tile(IMAGE, "busy", tile(index), state)

    with ThreadPoolExecutor(max_workers=16) as pool:
        disturbers = [pool.submit(disturb) for _ in range(2)]
        try:
            list(pool.map(add, [index for index in range(TILES) for _ in range(2)]))
        finally:
            done.set()
        for future in disturbers:
            future.result()

    region = region_request_table.get_region_request("busy", IMAGE)
    assert region is not None
    assert region.failed_tile_count == len(region.failed_tiles) == TILES // 10
    assert region.succeeded_tile_count == len(region.succeeded_tiles) == TILES - TILES // 10
    assert sorted(region.succeeded_tiles + region.failed_tiles) == ALL_TILES
    assert region.region_retry_count == len(restarts)


def add_tiles_in_process(
    endpoint: str, table_name: str, region_id: str, indexes: list[int], barrier: Any, results: Any
) -> None:
    """Run in a spawned process: build a RegionRequestTable, add the delivered tiles, then report.

    :param endpoint: str = DynamoDB Local's URL
    :param table_name: str = the region table
    :param region_id: str = the region
    :param indexes: List[int] = indexes of the tiles delivered to this process
    :param barrier: multiprocessing Barrier = all processes start together
    :param results: multiprocessing Queue = receives the counts seen, or an error string
    """
    try:
        table = RegionRequestTable(table_name, host=endpoint)
        barrier.wait(timeout=120)
        seen = []
        for index in indexes:
            region = table.add_tile(IMAGE, region_id, tile(index), TileState.SUCCEEDED)
            seen.append(int(region.succeeded_tile_count))
        results.put(seen)
    except Exception as err:  # reported to the test, which fails with it
        results.put(f"{type(err).__name__}: {err}")


def test_four_processes_add_three_hundred_tiles_each_twice(
    dynamodb_local_endpoint: str, region_request_table: RegionRequestTable
) -> None:
    region_request_table.start_region_request(RegionRequestItem(image_id=IMAGE, region_id="processes"))
    rng = random.Random(11)
    per_process: list[list[int]] = [[] for _ in range(4)]
    for index in range(TILES):
        first = index % 4
        per_process[first].append(index)
        per_process[(first + 1 + rng.randrange(3)) % 4].append(index)  # redelivered to another process
    for indexes in per_process:
        rng.shuffle(indexes)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=add_tiles_in_process,
            args=(dynamodb_local_endpoint, region_request_table.table_name, "processes", indexes, barrier, results),
        )
        for indexes in per_process
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    assert [report for report in reports if isinstance(report, str)] == []
    region = region_request_table.get_region_request("processes", IMAGE)
    assert region is not None
    assert region.succeeded_tile_count == len(region.succeeded_tiles) == TILES
    assert sorted(region.succeeded_tiles) == ALL_TILES
    assert {count for report in reports for count in report} == set(range(1, TILES + 1))
    assert all(process.exitcode == 0 for process in processes)
