"""Everything this package writes to the job, region and endpoint tables, read by a classic worker.

The reader (:mod:`model_runner.testing.classic_reader`) parses responses as the classic helper does after it replaced
botocore's JSON parser (binary values stay base64 text) and converts items to the classic dataclasses with dacite.
During a rolling upgrade classic workers read these items at any moment, so every state a job, a region or an
endpoint can be in is read here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from model_runner.common.typing import RequestStatus, TileState
from model_runner.database import (
    EndpointStatisticsTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
)
from model_runner.testing.classic_reader import ClassicReader


@pytest.fixture
def reader(dynamodb_local_endpoint: str) -> Iterator[ClassicReader]:
    yield ClassicReader(dynamodb_local_endpoint)


def test_the_reader_fails_on_binary_attributes_as_the_classic_worker_does(
    reader: ClassicReader, job_table: JobTable
) -> None:
    """The emulation is faithful: an item with a binary attribute cannot be read (the crash of the issue)."""
    job_table.client.put_item(
        TableName=job_table.table_name,
        Item={"image_id": {"S": "with-binary"}, "blob": {"B": base64.b64decode("AAEC")}},
    )
    with pytest.raises(TypeError, match="bytes"):
        reader.get_image_request(job_table.table_name, "with-binary")


def test_a_classic_worker_reads_every_state_of_a_job(reader: ClassicReader, job_table: JobTable) -> None:
    table = job_table.table_name
    job_table.start_image_request(JobItem("img-1", "job-1", "s3://b/i.tif", model_name="m", outputs="[]"))
    started = reader.get_image_request(table, "img-1")
    assert (started.job_id, started.image_url, started.region_success, started.region_error) == (
        "job-1",
        "s3://b/i.tif",
        0,
        0,
    )
    job_table.update_image_request(JobItem("img-1", region_count=3, width=640, height=480, extents="[0, 0, 640, 480]"))
    assert reader.get_image_request(table, "img-1").region_count == 3
    job_table.complete_region_request("img-1", error=False)
    job_table.complete_region_request("img-1", error=True, region_id="region-b")
    job_table.complete_region_request("img-1", error=False, region_id="region-c")
    job_table.complete_region_request("img-1", error=False, region_id="region-c")  # a redelivery
    assert job_table.claim_aggregation("img-1", "worker-1")
    job_table.end_image_request("img-1")
    ended = reader.get_image_request(table, "img-1")
    assert (ended.region_success, ended.region_error, ended.region_count) == (2, 1, 3)
    assert ended.end_time is not None and ended.processing_duration is not None


def test_a_classic_worker_reads_every_state_of_a_region(
    reader: ClassicReader, region_request_table: RegionRequestTable
) -> None:
    table = region_request_table.table_name
    region_request_table.start_region_request(
        RegionRequestItem("r-1", "img-1", "job-1", region_bounds=[[0, 0], [512, 512]], tile_size=[256, 256])
    )
    started = reader.get_region_request(table, "r-1", "img-1")
    assert (started.region_status, started.region_bounds, started.region_retry_count) == (
        RequestStatus.STARTED.value,
        [[0, 0], [512, 512]],
        0,
    )
    region_request_table.add_tile("img-1", "r-1", ((0, 0), (256, 256)), TileState.SUCCEEDED)
    region_request_table.add_tile("img-1", "r-1", ((0, 256), (256, 256)), TileState.FAILED)
    region_request_table.update_region_request(RegionRequestItem("r-1", "img-1", total_tiles=4, message="half"))
    region_request_table.start_region_request(RegionRequestItem("r-1", "img-1"))  # a restart
    region_request_table.complete_region_request(RegionRequestItem("r-1", "img-1"), RequestStatus.PARTIAL)
    done = reader.get_region_request(table, "r-1", "img-1")
    assert done.succeeded_tiles == [[[0, 0], [256, 256]]] and done.failed_tiles == [[[0, 256], [256, 256]]]
    assert (done.region_status, done.total_tiles, done.region_retry_count) == ("PARTIAL", 4, 1)
    assert done.processing_duration is not None


def test_a_classic_worker_reads_endpoint_statistics(
    reader: ClassicReader, endpoint_statistics_table: EndpointStatisticsTable
) -> None:
    table = endpoint_statistics_table.table_name
    endpoint_statistics_table.increment_region_count("never-upserted")
    assert reader.current_in_progress_regions(table, "never-upserted") == 1
    endpoint_statistics_table.upsert_endpoint("ep", 8)
    endpoint_statistics_table.increment_region_count("ep")
    endpoint_statistics_table.increment_region_count("ep")
    endpoint_statistics_table.decrement_region_count("ep")
    assert reader.current_in_progress_regions(table, "ep") == 1


def test_a_job_with_the_earlier_binary_counted_set_is_what_a_classic_worker_cannot_read(
    reader: ClassicReader, job_table: JobTable
) -> None:
    """The one job item it cannot read: one whose regions an earlier version of this package counted in ``crd``."""
    from model_runner.database.job_table import region_digest

    job_table.start_image_request(JobItem("img-old", region_count=2))
    job_table.client.update_item(
        TableName=job_table.table_name,
        Key={"image_id": {"S": "img-old"}},
        UpdateExpression="ADD crd :digest",
        ExpressionAttributeValues={":digest": {"BS": [region_digest("region-a")]}},
    )
    with pytest.raises(TypeError, match="bytes"):
        reader.get_image_request(job_table.table_name, "img-old")
    job_table.complete_region_request("img-old", error=False, region_id="region-b")  # adds to crs only
    assert job_table.get_image_request("img-old").completed_regions_binary == {region_digest("region-a")}
