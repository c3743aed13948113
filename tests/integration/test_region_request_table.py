"""RegionRequestTable on DynamoDB Local: starting, recording tiles, updating, completing and reading regions."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import pytest
from botocore.exceptions import ReadTimeoutError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_runner.api import RegionRequest
from model_runner.common.typing import RequestStatus, TileState
from model_runner.database import (
    CompleteRegionException,
    GetRegionRequestItemException,
    RegionRequestItem,
    RegionRequestTable,
    StartRegionException,
    TableNames,
    UpdateRegionException,
)
from model_runner.database.retry import RetryPolicy

pytestmark = pytest.mark.integration

DAY_SECONDS = 24 * 3600
IMAGE = "image-1"
TILE_A = ((0, 0), (512, 512))
TILE_B = ((0, 480), (512, 512))
TILE_C = ((480, 0), (512, 512))


def millis() -> int:
    return int(time.time() * 1000)


def new_region(region_id: str | None = None, **attributes: Any) -> RegionRequestItem:
    """Return an unbound RegionRequestItem, as a caller builds it."""
    return RegionRequestItem(image_id=IMAGE, region_id=region_id or f"region-{uuid.uuid4().hex[:8]}", **attributes)


def stored(table: RegionRequestTable, region_id: str) -> dict[str, Any]:
    """The stored item as a dictionary (empty when there is none), read with the classic API."""
    return table.get_ddb_item(RegionRequestItem(image_id=IMAGE, region_id=region_id))


def as_stored(tile: Any) -> list[list[int]]:
    """A tile as the table stores it."""
    return [list(tile[0]), list(tile[1])]


def read(table: RegionRequestTable, region_id: str) -> RegionRequestItem:
    """The stored region, which must exist."""
    region = table.get_region_request(region_id, IMAGE)
    assert region is not None
    return region


def item_count(table: RegionRequestTable) -> int:
    return int(table.client.scan(TableName=table.table_name, Select="COUNT", ConsistentRead=True)["Count"])


# -- start_region_request ------------------------------------------------------------------------------------------


def test_start_region_request_records_start_state(region_request_table: RegionRequestTable) -> None:
    before = millis()
    item = new_region("r1", job_id="job-1", total_tiles=16, region_bounds=[[0, 0], [2048, 2048]])
    started = region_request_table.start_region_request(item)
    after = millis()

    region = region_request_table.get_region_request("r1", IMAGE)
    assert region is not None
    assert region.region_status == "STARTED"
    assert before <= region.start_time <= after
    assert region.last_updated_time == region.start_time
    assert abs(cast(int, region.expire_time) - (time.time() + 7 * DAY_SECONDS)) < 60
    assert (region.succeeded_tiles, region.failed_tiles) == ([], [])
    assert (region.succeeded_tile_count, region.failed_tile_count, region.region_retry_count) == (0, 0, 0)
    assert (region.job_id, region.total_tiles, region.region_bounds) == ("job-1", 16, [[0, 0], [2048, 2048]])
    assert region.end_time is None and region.processing_duration is None
    assert started.attribute_values == region.attribute_values
    assert isinstance(started, RegionRequestItem)
    assert item.start_time is None and item.region_status is None  # the caller's item is left as it was


def test_start_region_request_from_a_region_request(region_request_table: RegionRequestTable) -> None:
    request = RegionRequest(
        image_id=IMAGE,
        job_id="job-7",
        region_bounds=((0, 0), (4096, 2048)),
        image_read_role="arn:aws:iam::123456789012:role/read",
        tile_size=(512, 512),
        tile_overlap=(32, 32),
        tile_format="GTIFF",
        tile_compression="LZW",
    )
    region_request_table.start_region_request(RegionRequestItem.from_region_request(request))

    region = region_request_table.get_region_request(request.region_id, IMAGE)
    assert region is not None
    assert region.region_bounds == [[0, 0], [4096, 2048]]
    assert (region.tile_size, region.tile_overlap) == ([512, 512], [32, 32])
    assert (region.tile_format, region.tile_compression) == ("GTIFF", "LZW")
    assert region.image_read_role == "arn:aws:iam::123456789012:role/read"
    assert region.job_id == "job-7"


def test_start_ignores_tiles_counters_and_times_set_on_the_item(region_request_table: RegionRequestTable) -> None:
    item = new_region(
        "r1",
        succeeded_tiles=[as_stored(TILE_A)],
        succeeded_tile_count=5,
        failed_tile_count=2,
        region_retry_count=9,
        region_status="SUCCESS",
        start_time=1,
        end_time=2,
        processing_duration=3,
    )
    region = region_request_table.start_region_request(item)

    assert (region.succeeded_tiles, region.succeeded_tile_count, region.failed_tile_count) == ([], 0, 0)
    assert (region.region_retry_count, region.region_status) == (0, "STARTED")
    assert region.start_time > 1 and region.end_time is None and region.processing_duration is None


def test_start_twice_counts_a_retry_and_keeps_tiles_and_start_time(region_request_table: RegionRequestTable) -> None:
    first = region_request_table.start_region_request(new_region("r1", job_id="job-1"))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.FAILED)
    time.sleep(0.005)

    again = region_request_table.start_region_request(new_region("r1", job_id="job-1", message="requeued"))

    assert again.region_retry_count == 1
    assert again.start_time == first.start_time
    assert again.last_updated_time > first.last_updated_time
    assert (again.succeeded_tiles, again.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert (again.failed_tiles, again.failed_tile_count) == ([as_stored(TILE_B)], 1)
    assert again.message == "requeued"
    third = region_request_table.start_region_request(new_region("r1"))
    assert third.region_retry_count == 2 and third.job_id == "job-1"
    assert stored(region_request_table, "r1")["region_retry_count"] == 2


def test_restart_of_a_completed_region_clears_its_end(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    region_request_table.complete_region_request(new_region("r1"), RequestStatus.FAILED)

    restarted = region_request_table.start_region_request(new_region("r1"))

    assert restarted.region_status == "STARTED"
    assert restarted.end_time is None and restarted.processing_duration is None
    assert restarted.region_retry_count == 1


def test_start_on_a_missing_table_raises_start_region_exception(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    table = RegionRequestTable(f"{table_names.region}-absent", host=dynamodb_local_endpoint)
    with pytest.raises(StartRegionException) as caught:
        table.start_region_request(new_region("r1"))
    assert caught.value.table_missing
    assert "r1" in str(caught.value)


# -- add_tile -------------------------------------------------------------------------------------------------------


def test_add_tile_records_succeeded_and_failed_tiles(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))

    after_a = region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    after_b = region_request_table.add_tile(IMAGE, "r1", [[0, 480], [512, 512]], "succeeded")
    after_c = region_request_table.add_tile(IMAGE, "r1", TILE_C, TileState.FAILED)

    assert (after_a.succeeded_tiles, after_a.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert (after_b.succeeded_tiles, after_b.succeeded_tile_count) == ([as_stored(TILE_A), as_stored(TILE_B)], 2)
    assert (after_c.failed_tiles, after_c.failed_tile_count) == ([as_stored(TILE_C)], 1)
    assert after_c.succeeded_tile_count == 2
    assert read(region_request_table, "r1").attribute_values == after_c.attribute_values


def test_add_tile_twice_counts_once(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    first = region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)

    second = region_request_table.add_tile(IMAGE, "r1", [list(TILE_A[0]), list(TILE_A[1])], TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.FAILED)
    failed_again = region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.FAILED)

    assert second.attribute_values == first.attribute_values  # unchanged, last_updated_time included
    assert (failed_again.succeeded_tiles, failed_again.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert (failed_again.failed_tiles, failed_again.failed_tile_count) == ([as_stored(TILE_B)], 1)


def test_a_tile_that_failed_then_succeeded_is_in_both_lists_once(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.FAILED)
    region_request_table.start_region_request(new_region("r1"))  # the region is retried
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    region = region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)

    assert (region.failed_tiles, region.failed_tile_count) == ([as_stored(TILE_A)], 1)
    assert (region.succeeded_tiles, region.succeeded_tile_count) == ([as_stored(TILE_A)], 1)


def test_add_tile_works_on_a_region_without_tile_lists(region_request_table: RegionRequestTable) -> None:
    # a region written by another writer (the classic code, a migration) without lists or counts
    region_request_table.put_ddb_item(new_region("bare", region_status="STARTED"))

    region = region_request_table.add_tile(IMAGE, "bare", TILE_A, TileState.FAILED)
    region = region_request_table.add_tile(IMAGE, "bare", TILE_A, TileState.FAILED)

    assert (region.failed_tiles, region.failed_tile_count) == ([as_stored(TILE_A)], 1)
    assert region.succeeded_tiles is None and region.succeeded_tile_count is None


def test_add_tile_on_a_missing_region_raises_and_creates_nothing(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("other"))
    with pytest.raises(UpdateRegionException) as caught:
        region_request_table.add_tile(IMAGE, "missing", TILE_A, TileState.SUCCEEDED)
    assert "missing" in str(caught.value)
    assert region_request_table.get_region_request("missing", IMAGE) is None
    assert item_count(region_request_table) == 1


MALFORMED_TILES = [
    pytest.param(((-1, 0), (512, 512)), id="negative-row"),
    pytest.param(((0, 0), (512, -512)), id="negative-height"),
    pytest.param(((0.0, 0), (512, 512)), id="float-row"),
    pytest.param(((0, 0), (512.5, 512)), id="fractional-width"),
    pytest.param(((True, 0), (512, 512)), id="bool"),
    pytest.param(((0, 0), (512, False)), id="bool-height"),
    pytest.param(((0, 0),), id="one-pair"),
    pytest.param(((0, 0), (512, 512), (1, 1)), id="three-pairs"),
    pytest.param(((0, 0, 0), (512, 512)), id="triple"),
    pytest.param(((0,), (512, 512)), id="single"),
    pytest.param((0, 0, 512, 512), id="flat"),
    pytest.param("((0, 0), (512, 512))", id="string"),
    pytest.param((("0", "0"), ("512", "512")), id="string-numbers"),
    pytest.param(("00", "51"), id="strings-of-two"),
    pytest.param({(0, 0): (512, 512)}, id="dict"),
    pytest.param(None, id="none"),
    pytest.param(((0, 0), None), id="none-pair"),
    pytest.param(((None, 0), (512, 512)), id="none-value"),
]


@pytest.mark.parametrize("tile", MALFORMED_TILES)
def test_malformed_tiles_raise_and_change_nothing(region_request_table: RegionRequestTable, tile: Any) -> None:
    region_request_table.start_region_request(new_region("r1"))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    before = stored(region_request_table, "r1")

    with pytest.raises(UpdateRegionException):
        region_request_table.add_tile(IMAGE, "r1", tile, TileState.SUCCEEDED)
    with pytest.raises(UpdateRegionException):
        region_request_table.add_tile(IMAGE, "r1", tile, TileState.FAILED)

    assert stored(region_request_table, "r1") == before


@pytest.mark.parametrize("state", ["SUCCEEDED", "success", "", None, 1, True, RequestStatus.SUCCESS])
def test_bad_tile_states_raise_and_change_nothing(region_request_table: RegionRequestTable, state: Any) -> None:
    region_request_table.start_region_request(new_region("r1"))
    before = stored(region_request_table, "r1")

    with pytest.raises(UpdateRegionException):
        region_request_table.add_tile(IMAGE, "r1", TILE_A, state)

    assert stored(region_request_table, "r1") == before


def test_add_tile_retried_after_a_lost_response_counts_once(
    dynamodb_local_endpoint: str, region_request_table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = RegionRequestTable(
        region_request_table.table_name,
        host=dynamodb_local_endpoint,
        retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total=1),
    )
    table.start_region_request(new_region("r1"))
    original = table.model.update
    lost: list[int] = []

    def update_losing_first_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if not lost:  # the request was applied, but its response never reaches us
            lost.append(1)
            raise ReadTimeoutError(endpoint_url=dynamodb_local_endpoint)
        return result

    monkeypatch.setattr(table.model, "update", update_losing_first_response)
    region = table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)

    assert lost == [1]
    assert (region.succeeded_tiles, region.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert stored(table, "r1")["succeeded_tile_count"] == 1


def test_add_tile_on_a_missing_table_raises_update_region_exception(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    table = RegionRequestTable(f"{table_names.region}-absent", host=dynamodb_local_endpoint)
    with pytest.raises(UpdateRegionException) as caught:
        table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    assert caught.value.table_missing


TILES = st.tuples(
    st.tuples(st.integers(0, 3).map(lambda i: i * 480), st.integers(0, 3).map(lambda i: i * 480)),
    st.tuples(st.sampled_from([512, 100]), st.just(512)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(st.tuples(TILES, st.sampled_from(list(TileState))), max_size=25))
def test_counts_equal_distinct_tiles_per_state(
    region_request_table: RegionRequestTable, sequence: list[tuple[Any, TileState]]
) -> None:
    region_id = f"prop-{uuid.uuid4().hex}"  # the table is shared by the examples: one region each
    region_request_table.start_region_request(new_region(region_id))
    for tile, state in sequence:
        region_request_table.add_tile(IMAGE, region_id, tile, state)

    region = region_request_table.get_region_request(region_id, IMAGE)
    assert region is not None
    for state, tiles, count in (
        (TileState.SUCCEEDED, region.succeeded_tiles, region.succeeded_tile_count),
        (TileState.FAILED, region.failed_tiles, region.failed_tile_count),
    ):
        expected = {tile for tile, s in sequence if s is state}
        assert count == len(tiles) == len(expected)
        assert sorted(tiles) == sorted(as_stored(tile) for tile in expected)


# -- update_region_request ------------------------------------------------------------------------------------------


def test_update_region_request_writes_set_attributes(region_request_table: RegionRequestTable) -> None:
    started = region_request_table.start_region_request(new_region("r1", job_id="job-1", total_tiles=4))
    time.sleep(0.005)

    updated = region_request_table.update_region_request(
        new_region("r1", total_tiles=9, message="reading image", region_status="IN_PROGRESS")
    )

    assert (updated.total_tiles, updated.message, updated.region_status) == (9, "reading image", "IN_PROGRESS")
    assert updated.job_id == "job-1" and updated.start_time == started.start_time  # not set on the item: kept
    assert updated.last_updated_time > started.last_updated_time
    assert read(region_request_table, "r1").attribute_values == updated.attribute_values


def test_update_never_writes_tiles_counts_or_retries(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    region_request_table.start_region_request(new_region("r1"))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)

    updated = region_request_table.update_region_request(
        new_region(
            "r1",
            succeeded_tiles=[],
            failed_tiles=[as_stored(TILE_C)],
            succeeded_tile_count=0,
            failed_tile_count=7,
            region_retry_count=0,
            total_tiles=2,
        )
    )

    assert (updated.succeeded_tiles, updated.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert (updated.failed_tiles, updated.failed_tile_count) == ([], 0)
    assert (updated.region_retry_count, updated.total_tiles) == (1, 2)


def test_stale_item_written_back_keeps_tiles_added_meanwhile(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    stale = region_request_table.get_region_request("r1", IMAGE)  # read before any tile
    assert stale is not None and stale.succeeded_tile_count == 0
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_C, TileState.FAILED)

    stale.message = "done"
    updated = region_request_table.update_region_request(stale)

    assert updated.message == "done"
    assert (updated.succeeded_tile_count, updated.failed_tile_count) == (2, 1)
    assert updated.succeeded_tiles == [as_stored(TILE_A), as_stored(TILE_B)]
    assert updated.failed_tiles == [as_stored(TILE_C)]


def test_update_of_a_missing_region_raises_and_creates_nothing(region_request_table: RegionRequestTable) -> None:
    with pytest.raises(UpdateRegionException) as caught:
        region_request_table.update_region_request(new_region("missing", message="x"))
    with pytest.raises(UpdateRegionException):
        region_request_table.update_region_request(new_region("missing"))  # only last_updated_time to write
    assert "missing" in str(caught.value)
    assert item_count(region_request_table) == 0


def test_update_with_only_the_key_touches_last_updated_time(region_request_table: RegionRequestTable) -> None:
    started = region_request_table.start_region_request(new_region("r1", job_id="job-1"))
    time.sleep(0.005)

    updated = region_request_table.update_region_request(new_region("r1"))

    assert updated.last_updated_time > started.last_updated_time
    assert {k: v for k, v in updated.attribute_values.items() if k != "last_updated_time"} == {
        k: v for k, v in started.attribute_values.items() if k != "last_updated_time"
    }


# -- complete_region_request ----------------------------------------------------------------------------------------


def test_complete_region_request_records_status_end_and_duration_in_ms(
    region_request_table: RegionRequestTable,
) -> None:
    started = region_request_table.start_region_request(new_region("r1"))
    time.sleep(0.05)
    before = millis()

    completed = region_request_table.complete_region_request(started, RequestStatus.SUCCESS)

    assert completed.region_status == "SUCCESS"
    assert before <= completed.end_time <= millis()
    assert completed.last_updated_time == completed.end_time
    assert completed.processing_duration == completed.end_time - started.start_time
    assert completed.processing_duration >= 50  # milliseconds, not seconds
    assert read(region_request_table, "r1").attribute_values == completed.attribute_values


def test_complete_without_start_time_on_the_item_uses_the_stored_one(
    region_request_table: RegionRequestTable,
) -> None:
    started = region_request_table.start_region_request(new_region("r1"))

    completed = region_request_table.complete_region_request(new_region("r1"), "PARTIAL")

    assert completed.region_status == "PARTIAL"
    assert completed.processing_duration == completed.end_time - started.start_time


def test_complete_uses_the_items_start_time(region_request_table: RegionRequestTable) -> None:
    region_request_table.start_region_request(new_region("r1"))
    start = millis() - 60_000

    completed = region_request_table.complete_region_request(new_region("r1", start_time=start), RequestStatus.FAILED)

    assert completed.processing_duration == completed.end_time - start
    assert completed.start_time != start  # the stored start time is not overwritten


def test_complete_of_a_region_without_start_time_sets_no_duration(region_request_table: RegionRequestTable) -> None:
    region_request_table.put_ddb_item(new_region("bare"))

    completed = region_request_table.complete_region_request(new_region("bare"), RequestStatus.SUCCESS)

    assert completed.region_status == "SUCCESS" and completed.end_time is not None
    assert completed.processing_duration is None


def test_complete_keeps_tiles_added_after_the_item_was_read(region_request_table: RegionRequestTable) -> None:
    started = region_request_table.start_region_request(new_region("r1"))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.FAILED)

    completed = region_request_table.complete_region_request(started, RequestStatus.PARTIAL)

    assert (completed.succeeded_tiles, completed.succeeded_tile_count) == ([as_stored(TILE_A)], 1)
    assert (completed.failed_tiles, completed.failed_tile_count) == ([as_stored(TILE_B)], 1)


@pytest.mark.parametrize("with_start_time", [True, False], ids=["item-start-time", "stored-start-time"])
def test_complete_of_a_missing_region_raises_and_creates_nothing(
    region_request_table: RegionRequestTable, with_start_time: bool
) -> None:
    item = new_region("missing", start_time=millis() if with_start_time else None)
    with pytest.raises(CompleteRegionException) as caught:
        region_request_table.complete_region_request(item, RequestStatus.SUCCESS)
    assert "missing" in str(caught.value)
    assert item_count(region_request_table) == 0


@pytest.mark.parametrize("status", ["DONE", "success", None, 3, TileState.SUCCEEDED])
def test_complete_with_a_bad_status_raises_and_changes_nothing(
    region_request_table: RegionRequestTable, status: Any
) -> None:
    started = region_request_table.start_region_request(new_region("r1"))
    before = stored(region_request_table, "r1")

    with pytest.raises(CompleteRegionException):
        region_request_table.complete_region_request(started, status)

    assert stored(region_request_table, "r1") == before


def test_complete_after_a_crash_and_restart(region_request_table: RegionRequestTable) -> None:
    first = region_request_table.start_region_request(new_region("r1", total_tiles=3))
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_B, TileState.FAILED)
    # the worker crashes; the region message is delivered again to another worker
    restarted = region_request_table.start_region_request(new_region("r1", total_tiles=3))
    done = {tuple(tuple(part) for part in tile) for tile in restarted.succeeded_tiles}
    for tile in (TILE_A, TILE_B, TILE_C):
        if tile not in done:
            region_request_table.add_tile(IMAGE, "r1", tile, TileState.SUCCEEDED)
    region_request_table.add_tile(IMAGE, "r1", TILE_A, TileState.SUCCEEDED)  # a redelivered tile

    completed = region_request_table.complete_region_request(restarted, RequestStatus.SUCCESS)

    assert completed.region_status == "SUCCESS"
    assert completed.region_retry_count == 1
    assert completed.start_time == first.start_time
    assert completed.processing_duration == completed.end_time - first.start_time
    assert completed.succeeded_tiles == [as_stored(TILE_A), as_stored(TILE_B), as_stored(TILE_C)]
    assert (completed.succeeded_tile_count, completed.failed_tile_count) == (3, 1)
    assert completed.failed_tiles == [as_stored(TILE_B)]


# -- get_region_request ---------------------------------------------------------------------------------------------


def test_get_region_request_returns_the_region_or_none(region_request_table: RegionRequestTable) -> None:
    started = region_request_table.start_region_request(new_region("r1", job_id="job-1"))

    region = region_request_table.get_region_request("r1", IMAGE)

    assert region is not None and region.attribute_values == started.attribute_values
    assert region_request_table.get_region_request("r2", IMAGE) is None
    assert region_request_table.get_region_request("r1", "other-image") is None


def test_get_region_request_on_a_missing_table_raises(dynamodb_local_endpoint: str, table_names: TableNames) -> None:
    table = RegionRequestTable(f"{table_names.region}-absent", host=dynamodb_local_endpoint)
    with pytest.raises(GetRegionRequestItemException) as caught:
        table.get_region_request("r1", IMAGE)
    assert caught.value.table_missing
