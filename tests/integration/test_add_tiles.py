"""RegionRequestTable.add_tiles on DynamoDB Local: many tiles in one request, each once, counts equal to the lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from model_runner.common.typing import TileState
from model_runner.database import (
    InvalidRegionRequestException,
    RegionRequestItem,
    RegionRequestTable,
    UpdateRegionException,
)
from model_runner.database.region_request_table import MAX_TILES_PER_REQUEST

pytestmark = pytest.mark.integration

IMAGE = "image-1"
REGION = "region-1"


def tiles(count: int, offset: int = 0) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    return [((row * 480, (col + offset) * 480), (512, 512)) for row in range(20) for col in range(20)][:count]


def stored_form(tile: Any) -> list[list[int]]:
    return [list(tile[0]), list(tile[1])]


@contextmanager
def requests_sent(table: RegionRequestTable) -> Iterator[Counter[str]]:
    """Count the DynamoDB operations the block sends."""
    sent: Counter[str] = Counter()

    def record(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    table.client.meta.events.register("before-parameter-build.dynamodb", record, unique_id="test-add-tiles")
    try:
        yield sent
    finally:
        table.client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="test-add-tiles")


@pytest.fixture
def region(region_request_table: RegionRequestTable) -> RegionRequestTable:
    region_request_table.start_region_request(RegionRequestItem(image_id=IMAGE, region_id=REGION))
    return region_request_table


def read(table: RegionRequestTable) -> RegionRequestItem:
    stored = table.get_region_request(REGION, IMAGE)
    assert stored is not None
    return stored


@pytest.mark.parametrize("state", [TileState.SUCCEEDED, TileState.FAILED, "succeeded"])
def test_add_tiles_records_all_tiles_in_one_request(region: RegionRequestTable, state: Any) -> None:
    batch = tiles(25)
    with requests_sent(region) as sent:
        returned = region.add_tiles(IMAGE, REGION, batch, state)
    assert sent == Counter({"UpdateItem": 1})
    stored = read(region)
    name = "succeeded" if state in (TileState.SUCCEEDED, "succeeded") else "failed"
    assert getattr(stored, f"{name}_tiles") == [stored_form(t) for t in batch]
    assert getattr(stored, f"{name}_tile_count") == 25
    assert getattr(returned, f"{name}_tiles") == getattr(stored, f"{name}_tiles")
    other = "failed" if name == "succeeded" else "succeeded"
    assert getattr(stored, f"{other}_tiles") == [] and getattr(stored, f"{other}_tile_count") == 0


def test_two_tiles_give_two_entries_and_list_shaped_tiles_are_accepted(region: RegionRequestTable) -> None:
    region.add_tiles(IMAGE, REGION, [((0, 0), (512, 512)), [[0, 480], [512, 512]]], TileState.SUCCEEDED)
    stored = read(region)
    assert stored.succeeded_tiles == [[[0, 0], [512, 512]], [[0, 480], [512, 512]]]
    assert stored.succeeded_tile_count == 2


def test_a_redelivered_batch_records_only_the_missing_tiles(region: RegionRequestTable) -> None:
    first = tiles(25)
    region.add_tiles(IMAGE, REGION, first[:10], TileState.SUCCEEDED)
    with requests_sent(region) as sent:
        region.add_tiles(IMAGE, REGION, first, TileState.SUCCEEDED)  # 10 recorded already, 15 new
    assert sent == Counter({"UpdateItem": 2, "GetItem": 1})
    with requests_sent(region) as again:
        returned = region.add_tiles(IMAGE, REGION, first, TileState.SUCCEEDED)  # all recorded: nothing written
    assert again == Counter({"UpdateItem": 1, "GetItem": 1})
    stored = read(region)
    assert stored.succeeded_tiles == [stored_form(t) for t in first]
    assert stored.succeeded_tile_count == 25 and returned.succeeded_tile_count == 25


def test_add_tiles_and_add_tile_share_the_once_per_state_rule(region: RegionRequestTable) -> None:
    batch = tiles(5)
    region.add_tile(IMAGE, REGION, batch[2], TileState.FAILED)
    region.add_tiles(IMAGE, REGION, batch, TileState.FAILED)
    region.add_tile(IMAGE, REGION, batch[4], TileState.FAILED)
    region.add_tiles(IMAGE, REGION, batch, TileState.SUCCEEDED)  # a tile may be in both lists, once each
    stored = read(region)
    assert sorted(stored.failed_tiles or []) == sorted(stored_form(t) for t in batch)
    assert stored.failed_tile_count == 5 and stored.succeeded_tile_count == 5


def test_a_tile_given_twice_in_one_call_counts_once(region: RegionRequestTable) -> None:
    tile = ((0, 0), (512, 512))
    region.add_tiles(IMAGE, REGION, [tile, tile, [[0, 0], [512, 512]]], TileState.SUCCEEDED)
    stored = read(region)
    assert stored.succeeded_tiles == [stored_form(tile)] and stored.succeeded_tile_count == 1


@pytest.mark.parametrize(
    "bad",
    [[], ["((0, 0), (512, 512))"], [((0, 0), (512, 512)), "tile"], [((0, 0), (512,))], [((0, -1), (512, 512))], "ab"],
)
def test_an_empty_list_or_a_non_tile_raises_and_writes_nothing(region: RegionRequestTable, bad: Any) -> None:
    before = read(region)
    with requests_sent(region) as sent, pytest.raises(UpdateRegionException) as caught:
        region.add_tiles(IMAGE, REGION, bad, TileState.SUCCEEDED)
    assert isinstance(caught.value, InvalidRegionRequestException)  # upstream's name for refused input
    assert sent == Counter()
    after = read(region)
    assert after.attribute_values == before.attribute_values


def test_a_bad_state_raises_and_writes_nothing(region: RegionRequestTable) -> None:
    with requests_sent(region) as sent, pytest.raises(UpdateRegionException):
        region.add_tiles(IMAGE, REGION, tiles(2), "done")
    assert sent == Counter()


def test_the_region_must_exist(region_request_table: RegionRequestTable) -> None:
    with pytest.raises(UpdateRegionException):
        region_request_table.add_tiles(IMAGE, "missing", tiles(3), TileState.SUCCEEDED)
    assert region_request_table.get_region_request("missing", IMAGE) is None


def test_a_long_list_goes_in_requests_of_the_bounded_size(region: RegionRequestTable) -> None:
    batch = tiles(400)
    with requests_sent(region) as sent:
        region.add_tiles(IMAGE, REGION, batch, TileState.SUCCEEDED)
    assert sent == Counter({"UpdateItem": -(-400 // MAX_TILES_PER_REQUEST)})
    stored = read(region)
    assert stored.succeeded_tiles == [stored_form(t) for t in batch] and stored.succeeded_tile_count == 400


def test_concurrent_overlapping_batches_record_each_tile_once(region: RegionRequestTable) -> None:
    from concurrent.futures import ThreadPoolExecutor

    every = tiles(400)
    # 8 workers, each sending 4 batches of 25 that overlap their neighbours' (a redelivery storm)
    batches = [every[start : start + 25] for worker in range(8) for start in range(worker * 40, worker * 40 + 100, 25)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda batch: region.add_tiles(IMAGE, REGION, batch, TileState.SUCCEEDED), batches))
    stored = read(region)
    expected = {str(stored_form(t)) for batch in batches for t in batch}
    assert len(stored.succeeded_tiles or []) == len(expected) == stored.succeeded_tile_count
    assert {str(t) for t in stored.succeeded_tiles or []} == expected
