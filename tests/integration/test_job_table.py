"""JobTable on DynamoDB Local: starting, completing, ending, reading and updating image jobs."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from model_runner.database import (
    CompleteRegionException,
    DDBUpdateException,
    EndImageException,
    GetImageRequestItemException,
    IsImageCompleteException,
    JobItem,
    JobTable,
    StartImageException,
    TableNames,
    UpdateImageException,
)
from model_runner.database.job_table import region_digest, region_token

pytestmark = pytest.mark.integration

DAY_SECONDS = 24 * 3600


def new_job(image_id: str | None = None, **attributes: Any) -> JobItem:
    """Return an unbound JobItem, as a caller builds it."""
    return JobItem(image_id=image_id or f"image-{uuid.uuid4().hex[:8]}", **attributes)


def stored_attributes(job_table: JobTable, image_id: str) -> dict[str, Any]:
    """The stored item, read with the classic dictionary API."""
    return job_table.get_ddb_item(JobItem(image_id=image_id))


def millis() -> int:
    return int(time.time() * 1000)


# -- start_image_request -------------------------------------------------------------------------------------------


def test_start_image_request_records_start_expiry_and_zero_counters(job_table: JobTable) -> None:
    before = millis()
    started = job_table.start_image_request(new_job("img-1", job_id="job-1", model_name="m", region_count=None))
    after = millis()

    stored = job_table.get_image_request("img-1")
    assert before <= stored.start_time <= after
    assert abs(stored_attributes(job_table, "img-1")["expire_time"] - (time.time() + 7 * DAY_SECONDS)) < 60
    assert (stored.region_success, stored.region_error, stored.processing_duration) == (0, 0, 0)
    assert (stored.job_id, stored.model_name) == ("job-1", "m")
    assert stored.end_time is None and stored.region_count is None
    assert started.attribute_values == stored.attribute_values


def test_start_image_request_uses_the_configured_expiry(dynamodb_local_endpoint: str, job_table: JobTable) -> None:
    short_lived = JobTable(job_table.table_name, host=dynamodb_local_endpoint, expire_days=2)
    short_lived.start_image_request(new_job("img-exp"))
    assert abs(stored_attributes(job_table, "img-exp")["expire_time"] - (time.time() + 2 * DAY_SECONDS)) < 60


def test_start_image_request_does_not_change_the_callers_item(job_table: JobTable) -> None:
    item = new_job("img-caller", job_id="j")
    job_table.start_image_request(item)
    assert item.start_time is None and item.region_success is None


def test_start_twice_keeps_the_stored_job(job_table: JobTable) -> None:
    first = job_table.start_image_request(new_job("img-2", job_id="first", region_count=3))
    job_table.complete_region_request("img-2", error=False, region_id="r1")
    job_table.complete_region_request("img-2", error=True, region_id="r2")

    again = job_table.start_image_request(new_job("img-2", job_id="second", region_count=9))

    assert (again.region_success, again.region_error) == (1, 1)
    assert again.start_time == first.start_time
    assert (again.job_id, again.region_count) == ("first", 3)
    assert job_table.get_image_request("img-2").attribute_values == again.attribute_values
    # the stored set of completed regions survived: a redelivered completion still counts once
    job_table.complete_region_request("img-2", error=False, region_id="r1")
    assert job_table.get_image_request("img-2").region_success == 1


def test_start_on_a_missing_table_raises_start_image_exception(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    missing = JobTable(table_names.job + "-absent", host=dynamodb_local_endpoint)
    with pytest.raises(StartImageException) as raised:
        missing.start_image_request(new_job("img-3"))
    assert raised.value.table_missing
    assert "img-3" in str(raised.value)


# -- complete_region_request ---------------------------------------------------------------------------------------


def test_complete_region_without_id_counts_successes_and_errors(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-4", region_count=3))
    first = job_table.complete_region_request("img-4", error=False)
    second = job_table.complete_region_request("img-4", error=True)
    third = job_table.complete_region_request("img-4", error=False)

    assert (first.region_success, first.region_error) == (1, 0)
    assert (second.region_success, second.region_error) == (1, 1)
    assert (third.region_success, third.region_error) == (2, 1)
    assert third.region_count == 3 and third.job_id is None
    assert [JobTable.is_image_request_complete(j) for j in (first, second, third)] == [False, False, True]


def test_complete_region_with_id_counts_each_region_once(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-5", region_count=2))
    first = job_table.complete_region_request("img-5", error=False, region_id="region-a")
    duplicate = job_table.complete_region_request("img-5", error=False, region_id="region-a")
    duplicate_as_error = job_table.complete_region_request("img-5", error=True, region_id="region-a")
    other = job_table.complete_region_request("img-5", error=True, region_id="region-b")

    assert (first.region_success, first.region_error) == (1, 0)
    assert duplicate.attribute_values == first.attribute_values
    assert duplicate_as_error.attribute_values == first.attribute_values
    assert (other.region_success, other.region_error) == (1, 1)
    assert JobTable.is_image_request_complete(other)
    stored = job_table.get_image_request("img-5")
    assert (stored.region_success, stored.region_error) == (1, 1)
    assert stored.completed_regions is not None and len(stored.completed_regions) == 2


@pytest.mark.parametrize("region_id", [None, "region-x"])
def test_complete_region_of_a_missing_job_raises_and_creates_nothing(
    job_table: JobTable, region_id: str | None
) -> None:
    with pytest.raises(CompleteRegionException) as raised:
        job_table.complete_region_request("no-such-image", error=False, region_id=region_id)
    assert "no-such-image" in str(raised.value)
    assert raised.value.code == "ConditionalCheckFailedException"
    assert stored_attributes(job_table, "no-such-image") == {}


def test_ten_thousand_completions_stay_under_the_item_size_limit(job_table: JobTable) -> None:
    regions = 10_000
    job_table.start_image_request(new_job("img-big", region_count=regions, job_id="j" * 64))

    def complete(index: int) -> bool:
        job = job_table.complete_region_request("img-big", error=index % 10 == 0, region_id=f"{index:05d}-{'r' * 40}")
        return JobTable.is_image_request_complete(job)

    with ThreadPoolExecutor(max_workers=16) as pool:
        complete_flags = list(pool.map(complete, range(regions)))
        # redeliver a few: nothing changes
        again = list(pool.map(complete, range(0, regions, 1000)))

    stored = job_table.get_image_request("img-big")
    assert (stored.region_success, stored.region_error) == (9_000, 1_000)
    assert stored.completed_regions is not None and len(stored.completed_regions) == regions
    assert sum(complete_flags) == 1
    assert all(again)
    # one more attribute write still fits: the item is far from DynamoDB's 400 KB
    job_table.update_image_request(JobItem(image_id="img-big", extents="x" * 100_000))
    assert job_table.get_image_request("img-big").extents == "x" * 100_000


# -- is_image_request_complete -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("success", "errors", "count", "expected"),
    [(0, 0, 1, False), (2, 1, 4, False), (3, 1, 4, True), (0, 4, 4, True), (5, 0, 4, True), (0, 0, 0, True)],
)
def test_is_image_request_complete(success: int, errors: int, count: int, expected: bool) -> None:
    item = new_job(region_success=success, region_error=errors, region_count=count)
    assert JobTable.is_image_request_complete(item) is expected


@pytest.mark.parametrize("missing", ["region_count", "region_success", "region_error"])
def test_is_image_request_complete_needs_all_counts(missing: str) -> None:
    item = new_job("img-missing", region_success=1, region_error=1, region_count=2)
    setattr(item, missing, None)
    with pytest.raises(IsImageCompleteException, match=missing):
        JobTable.is_image_request_complete(item)


def test_is_image_request_complete_ignores_the_completed_region_set(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-6", region_count=3))
    for region in ("a", "b"):
        job = job_table.complete_region_request("img-6", error=False, region_id=region)
    assert not JobTable.is_image_request_complete(job)
    job.completed_regions = {"0" * 11, "1" * 11, "2" * 11}
    assert not JobTable.is_image_request_complete(job)


# -- end_image_request ---------------------------------------------------------------------------------------------


def test_end_image_request_sets_end_time_and_duration_and_keeps_counters(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-7", region_count=2))
    job_table.complete_region_request("img-7", error=False, region_id="a")
    ten_minutes_ago = millis() - 600_000
    job_table.update_image_request(JobItem(image_id="img-7", start_time=ten_minutes_ago))

    before = millis()
    ended = job_table.end_image_request("img-7")
    after = millis()

    assert before <= ended.end_time <= after
    assert 599 <= ended.processing_duration <= 601
    assert (ended.region_success, ended.region_error, ended.region_count) == (1, 0, 2)
    assert ended.start_time == ten_minutes_ago
    assert job_table.get_image_request("img-7").attribute_values == ended.attribute_values


def test_end_image_request_of_a_job_without_start_time_sets_end_time_only(job_table: JobTable) -> None:
    job_table.put_ddb_item(JobItem(image_id="img-8", region_count=1))
    ended = job_table.end_image_request("img-8")
    assert ended.end_time is not None
    assert ended.processing_duration is None
    assert ended.region_count == 1


def test_end_image_request_of_a_missing_job_raises_and_creates_nothing(job_table: JobTable) -> None:
    with pytest.raises(EndImageException, match="no-such-image"):
        job_table.end_image_request("no-such-image")
    assert stored_attributes(job_table, "no-such-image") == {}


# -- get_image_request ---------------------------------------------------------------------------------------------


def test_get_image_request_returns_the_stored_job(job_table: JobTable) -> None:
    started = job_table.start_image_request(new_job("img-9", image_url="s3://bucket/key", width=100, height=50))
    got = job_table.get_image_request("img-9")
    assert isinstance(got, JobItem)
    assert (got.image_url, got.width, got.height) == ("s3://bucket/key", 100, 50)
    assert got.attribute_values == started.attribute_values


def test_get_image_request_of_a_missing_job_raises(job_table: JobTable) -> None:
    with pytest.raises(GetImageRequestItemException, match="no-such-image"):
        job_table.get_image_request("no-such-image")


# -- update_image_request ------------------------------------------------------------------------------------------


def test_update_image_request_writes_only_set_attributes(job_table: JobTable) -> None:
    started = job_table.start_image_request(new_job("img-10", job_id="job", image_url="s3://a/b"))
    updated = job_table.update_image_request(
        JobItem(image_id="img-10", region_count=4, width=640, height=480, extents='{"x": 1}')
    )
    assert (updated.region_count, updated.width, updated.height, updated.extents) == (4, 640, 480, '{"x": 1}')
    assert (updated.job_id, updated.image_url, updated.start_time) == ("job", "s3://a/b", started.start_time)
    assert (updated.region_success, updated.region_error) == (0, 0)
    assert job_table.get_image_request("img-10").attribute_values == updated.attribute_values


def test_update_image_request_never_writes_counters_or_completed_regions(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-11", region_count=5))
    job_table.complete_region_request("img-11", error=False, region_id="a")
    forged = JobItem(image_id="img-11", region_success=99, region_error=99, completed_regions={"forged-digest"})
    forged.model_name = "renamed"
    updated = job_table.update_image_request(forged)
    assert (updated.region_success, updated.region_error, updated.model_name) == (1, 0, "renamed")
    assert updated.completed_regions is not None and "forged-digest" not in updated.completed_regions
    # region "a" is still known: its redelivery is not counted
    assert job_table.complete_region_request("img-11", error=False, region_id="a").region_success == 1


def test_update_image_request_with_nothing_to_write_returns_the_stored_job(job_table: JobTable) -> None:
    started = job_table.start_image_request(new_job("img-12", job_id="j"))
    assert job_table.update_image_request(JobItem(image_id="img-12")).attribute_values == started.attribute_values
    with pytest.raises(UpdateImageException):
        job_table.update_image_request(JobItem(image_id="no-such-image"))


def test_update_image_request_of_a_missing_job_raises_and_creates_nothing(job_table: JobTable) -> None:
    with pytest.raises(UpdateImageException) as raised:
        job_table.update_image_request(JobItem(image_id="no-such-image", region_count=3))
    assert isinstance(raised.value, DDBUpdateException)
    assert raised.value.code == "ConditionalCheckFailedException"
    assert stored_attributes(job_table, "no-such-image") == {}


def test_stale_item_written_back_keeps_the_counts(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-13", region_count=10))
    stale = job_table.get_image_request("img-13")
    for index in range(7):
        job_table.complete_region_request("img-13", error=index == 0, region_id=f"r{index}")

    stale.extents = "[0, 0, 10, 10]"
    written = job_table.update_image_request(stale)

    assert (written.region_success, written.region_error) == (6, 1)
    assert written.extents == "[0, 0, 10, 10]"
    assert written.completed_regions is not None and len(written.completed_regions) == 7
    assert job_table.complete_region_request("img-13", error=False, region_id="r3").region_success == 6


def test_stale_item_from_start_written_back_keeps_the_counts(job_table: JobTable) -> None:
    started = job_table.start_image_request(new_job("img-14", region_count=3))
    job_table.complete_region_request("img-14", error=False)
    job_table.complete_region_request("img-14", error=False)
    started.width = 10
    written = job_table.update_image_request(started)
    assert (written.region_success, written.width) == (2, 10)


# -- get_processing_duration ---------------------------------------------------------------------------------------


def test_get_processing_duration_is_seconds_since_a_start_in_milliseconds() -> None:
    assert 89 <= JobTable.get_processing_duration(millis() - 90_000) <= 91
    assert JobTable.get_processing_duration(millis()) in (0, 1)


# -- rolling upgrade: what the job item holds ------------------------------------------------------------------------


def test_counted_regions_are_stored_without_binary_values(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-text", region_count=2))
    job_table.complete_region_request("img-text", error=False, region_id="region-a")
    raw = job_table.client.get_item(TableName=job_table.table_name, Key={"image_id": {"S": "img-text"}})["Item"]
    assert raw["crs"] == {"SS": [region_token("region-a")]} and len(region_token("region-a")) == 11
    kinds = {kind for value in raw.values() for kind in value}
    assert not kinds & {"B", "BS"}


def test_regions_counted_in_the_earlier_binary_set_are_not_counted_again(job_table: JobTable) -> None:
    job_table.start_image_request(new_job("img-old", region_count=3))
    job_table.client.update_item(  # a job as the earlier version left it: one region counted in the binary crd
        TableName=job_table.table_name,
        Key={"image_id": {"S": "img-old"}},
        UpdateExpression="SET region_success = :one ADD crd :digest",
        ExpressionAttributeValues={":one": {"N": "1"}, ":digest": {"BS": [region_digest("region-a")]}},
    )
    again = job_table.complete_region_request("img-old", error=False, region_id="region-a")
    assert again.region_success == 1
    other = job_table.complete_region_request("img-old", error=False, region_id="region-b")
    assert other.region_success == 2
    assert other.completed_regions == {region_token("region-b")}
    assert other.completed_regions_binary == {region_digest("region-a")}
