"""RequestedJobsTable, the scheduler's table: every behaviour on DynamoDB Local and on moto.

The concurrency tests (16 threads, 4 processes) and the 10,000-region size measure run on DynamoDB Local only.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from shapely.geometry import box

from model_runner.api import ImageRequest
from model_runner.database import (
    ImageRequestStatusRecord,
    RequestedJobsException,
    RequestedJobsTable,
)
from model_runner.database.exceptions import CONDITION_FAILED
from model_runner.database.requested_jobs_table import region_key

pytestmark = pytest.mark.integration

BACKENDS = ["dynamodb-local", "moto"]


def request(job_id: str = "job-1", endpoint: str = "aircraft", **fields: Any) -> ImageRequest:
    url = f"s3://bucket/{job_id}.ntf"
    return ImageRequest(job_id=job_id, image_id=f"{job_id}:{url}", image_url=url, model_name=endpoint, **fields)


@pytest.fixture(params=BACKENDS)
def jobs(request: pytest.FixtureRequest) -> Iterator[RequestedJobsTable]:
    """A RequestedJobsTable on a fresh table, on DynamoDB Local or on moto."""
    if request.param == "dynamodb-local":
        yield request.getfixturevalue("requested_jobs_table")
        return
    from moto import mock_aws

    request.getfixturevalue("aws_test_env")
    with mock_aws():
        table = RequestedJobsTable(f"moto-{uuid.uuid4().hex[:10]}", region="us-east-1")
        table.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
        yield table


def raw_item(jobs: RequestedJobsTable, endpoint: str = "aircraft", job_id: str = "job-1") -> dict[str, Any]:
    """The stored item in DynamoDB's wire form ({"N": ...}), as a raw boto3 reader sees its types."""
    key = {"endpoint_id": {"S": endpoint}, "job_id": {"S": job_id}}
    return dict(jobs.client.get_item(TableName=jobs.table_name, Key=key, ConsistentRead=True).get("Item", {}))


def test_add_new_request_writes_the_shared_item_shape(jobs: RequestedJobsTable) -> None:
    record = jobs.add_new_request(request(outputs=[{"type": "S3", "bucket": "b", "prefix": "p/"}]))
    assert (record.endpoint_id, record.job_id, record.num_attempts, record.last_attempt) == ("aircraft", "job-1", 0, 0)
    assert record.regions_complete == [] and record.region_count is None
    item = raw_item(jobs)
    assert item["endpoint_id"] == {"S": "aircraft"} and item["job_id"] == {"S": "job-1"}
    assert set(item["request_time"]) == {"N"} and item["num_attempts"] == {"N": "0"}
    assert item["last_attempt"] == {"N": "0"} and item["regions_complete"] == {"L": []}
    assert "region_count" not in item  # absent, not NULL, when unknown
    payload = item["request_payload"]["M"]
    assert payload["job_id"] == {"S": "job-1"} and payload["model_name"] == {"S": "aircraft"}
    assert payload["tile_size"] == {"L": [{"N": "1024"}, {"N": "1024"}]}
    assert payload["outputs"] == {"L": [{"M": {"type": {"S": "S3"}, "bucket": {"S": "b"}, "prefix": {"S": "p/"}}}]}
    assert "image_read_role" not in payload  # None values are left out
    assert payload["post_processing"]["L"][0]["M"]["step"] == {"S": "FEATURE_DISTILLATION"}


def test_a_request_with_a_region_of_interest_is_stored_and_rebuilt(jobs: RequestedJobsTable) -> None:
    roi = box(10, 20, 30, 40)
    jobs.add_new_request(request(roi=roi, model_endpoint_parameters={"threshold": 0.5}), region_count=4)
    (record,) = jobs.get_outstanding_requests()
    assert record.request_payload.roi is not None and record.request_payload.roi.equals(roi)
    assert record.request_payload.model_endpoint_parameters == {"threshold": 0.5}
    assert record.region_count == 4
    assert raw_item(jobs)["request_payload"]["M"]["roi"] == {"S": roi.wkt}


def test_add_new_request_never_overwrites_and_returns_the_stored_record(jobs: RequestedJobsTable) -> None:
    first = jobs.add_new_request(request(), region_count=3)
    assert jobs.start_next_attempt(first)
    assert jobs.complete_region(request(), "r1")
    redelivered = jobs.add_new_request(request(tile_size=(512, 512), tile_overlap=(0, 0)))
    assert redelivered.num_attempts == 1 and redelivered.regions_complete == ["r1"]
    assert redelivered.region_count == 3 and redelivered.request_time == first.request_time
    assert redelivered.request_payload.tile_size == (1024, 1024)  # the stored request, not the redelivered one
    assert raw_item(jobs)["num_attempts"] == {"N": "1"}


def test_update_request_details_sets_region_count_on_an_existing_record_only(jobs: RequestedJobsTable) -> None:
    jobs.add_new_request(request())
    assert jobs.update_request_details(request(), 12) is None
    assert raw_item(jobs)["region_count"] == {"N": "12"}
    with pytest.raises(RequestedJobsException) as caught:
        jobs.update_request_details(request(job_id="unknown"), 3)
    assert caught.value.code == CONDITION_FAILED
    assert raw_item(jobs, job_id="unknown") == {}  # the update created nothing


def test_update_request_details_failure_is_a_client_error_with_the_code(jobs: RequestedJobsTable) -> None:
    with pytest.raises(ClientError) as caught:
        jobs.update_request_details(request(job_id="unknown"), 3)
    assert caught.value.response["Error"]["Code"] == CONDITION_FAILED


def test_start_next_attempt_is_an_optimistic_lock(jobs: RequestedJobsTable) -> None:
    record = jobs.add_new_request(request(), region_count=5)
    jobs.complete_region(request(), "r1")
    assert jobs.start_next_attempt(record) is True
    assert record.num_attempts == 0 and record.last_attempt == 0  # the caller's record is not changed
    assert jobs.start_next_attempt(record) is False  # stale: another attempt already started
    (fresh,) = jobs.get_outstanding_requests()
    assert fresh.num_attempts == 1 and fresh.last_attempt >= fresh.request_time
    assert fresh.region_count == 5 and fresh.regions_complete == ["r1"]  # everything else survives
    assert jobs.start_next_attempt(fresh) is True
    assert jobs.get_outstanding_requests()[0].num_attempts == 2


def test_start_next_attempt_of_a_missing_record_is_false_and_creates_nothing(jobs: RequestedJobsTable) -> None:
    ghost = ImageRequestStatusRecord.new_from_request(request(job_id="ghost"))
    assert jobs.start_next_attempt(ghost) is False
    assert jobs.get_outstanding_requests() == []


def test_complete_region_records_each_region_once(jobs: RequestedJobsTable) -> None:
    jobs.add_new_request(request(), region_count=3)
    assert jobs.complete_region(request(), "r1") is True
    assert jobs.complete_region(request(), "r1") is False
    long_id = "((0, 0), (2048, 2048))-" + str(uuid.uuid4())
    assert jobs.complete_region(request(), long_id) is True
    assert jobs.complete_region(request(), long_id) is False
    (record,) = jobs.get_outstanding_requests()
    assert record.regions_complete == ["r1", region_key(long_id)]
    assert record.is_region_complete(long_id) and record.is_region_complete("r1")
    assert not record.is_region_complete("r2")
    assert record.region_count == 3 and record.num_attempts == 0
    assert raw_item(jobs)["regions_complete"] == {"L": [{"S": "r1"}, {"S": region_key(long_id)}]}


def test_complete_region_without_a_record_is_false_and_creates_nothing(jobs: RequestedJobsTable) -> None:
    assert jobs.complete_region(request(job_id="gone"), "r1") is False
    assert raw_item(jobs, job_id="gone") == {}


def test_complete_region_creates_the_list_when_the_attribute_is_missing(jobs: RequestedJobsTable) -> None:
    jobs.add_new_request(request())
    key = {"endpoint_id": {"S": "aircraft"}, "job_id": {"S": "job-1"}}
    jobs.client.update_item(TableName=jobs.table_name, Key=key, UpdateExpression="REMOVE regions_complete")
    assert jobs.complete_region(request(), "r1") is True
    assert raw_item(jobs)["regions_complete"] == {"L": [{"S": "r1"}]}


def test_complete_region_refuses_a_non_string_region_id(jobs: RequestedJobsTable) -> None:
    jobs.add_new_request(request())
    with pytest.raises(RequestedJobsException):
        jobs.complete_region(request(), 7)  # type: ignore[arg-type]
    assert raw_item(jobs)["regions_complete"] == {"L": []}


def test_complete_request_deletes_and_a_missing_record_is_no_error(jobs: RequestedJobsTable) -> None:
    jobs.add_new_request(request())
    jobs.add_new_request(request(job_id="job-2"))
    jobs.complete_request(request())
    jobs.complete_request(request())
    assert [r.job_id for r in jobs.get_outstanding_requests()] == ["job-2"]


def test_get_outstanding_requests_reads_every_page(jobs: RequestedJobsTable) -> None:
    # 30 records of ~60 KB: about 1.8 MB, more than one 1 MB page of a Scan or a Query
    big = [{"note": "x" * 60_000}]
    for i in range(30):
        jobs.add_new_request(request(job_id=f"job-{i:02d}", feature_properties=big))
    jobs.add_new_request(request(job_id="other", endpoint="ships"))
    operations: list[str] = []

    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    jobs.client.meta.events.register("before-parameter-build.dynamodb", record, unique_id="test-pages")
    try:
        everything = jobs.get_outstanding_requests()
        scans = operations.count("Scan")
        operations.clear()
        aircraft = jobs.get_outstanding_requests("aircraft")
    finally:
        jobs.client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="test-pages")
    assert len(everything) == 31 and scans >= 2
    assert sorted(r.job_id for r in aircraft) == [f"job-{i:02d}" for i in range(30)]
    assert set(operations) == {"Query"} and len(operations) >= 2  # a Query, every page of it


def test_records_round_trip_through_boto3_items(jobs: RequestedJobsTable) -> None:
    record = jobs.add_new_request(request(roi="POLYGON ((0 0, 4 0, 4 4, 0 0))"), region_count=2)
    jobs.complete_region(request(), "r1")
    resource = boto3.resource(
        "dynamodb", endpoint_url=jobs.settings.host, region_name=jobs.settings.region or "us-east-1"
    )
    item = resource.Table(jobs.table_name).get_item(
        Key={"endpoint_id": "aircraft", "job_id": "job-1"}, ConsistentRead=True
    )["Item"]
    assert isinstance(item["num_attempts"], Decimal)
    rebuilt = ImageRequestStatusRecord.from_ddb_item(item)
    assert rebuilt.regions_complete == ["r1"] and rebuilt.region_count == 2
    assert isinstance(rebuilt.request_time, int) and rebuilt.request_time == record.request_time
    assert rebuilt.request_payload.roi is not None and rebuilt.request_payload.roi.equals(record.request_payload.roi)
    written = rebuilt.to_ddb_item()
    assert written["region_count"] == Decimal(2) and written["request_payload"]["tile_size"] == [1024, 1024]
    assert ImageRequestStatusRecord.from_ddb_item(written) == rebuilt


# -- concurrency, on DynamoDB Local ------------------------------------------------------------------------------


def test_sixteen_threads_holding_one_record_exactly_one_starts_the_attempt(
    requested_jobs_table: RequestedJobsTable,
) -> None:
    record = requested_jobs_table.add_new_request(request())
    barrier = threading.Barrier(16)
    wins: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=60)
        won = requested_jobs_table.start_next_attempt(record)
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(wins) == [False] * 15 + [True]
    assert requested_jobs_table.get_outstanding_requests()[0].num_attempts == 1


def attempt_in_process(endpoint: str, table_name: str, rounds: int, barrier: Any, results: Any) -> None:
    """Start attempts from a stale-or-fresh record, ``rounds`` times, all processes together each round."""
    try:
        table = RequestedJobsTable(table_name, host=endpoint)
        won = []
        for _ in range(rounds):
            barrier.wait(timeout=120)
            (record,) = table.get_outstanding_requests()
            barrier.wait(timeout=120)  # every process holds the same record before any starts the attempt
            won.append(table.start_next_attempt(record))
        results.put(won)
    except Exception as err:  # reported to the test, which fails with it
        results.put(f"{type(err).__name__}: {err}")


def test_four_processes_holding_one_record_exactly_one_wins_each_round(
    dynamodb_local_endpoint: str, requested_jobs_table: RequestedJobsTable
) -> None:
    requested_jobs_table.add_new_request(request())
    rounds = 10
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=attempt_in_process,
            args=(dynamodb_local_endpoint, requested_jobs_table.table_name, rounds, barrier, results),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [r for r in reports if isinstance(r, str)] == []
    for round_ in range(rounds):
        assert sum(report[round_] for report in reports) == 1
    assert requested_jobs_table.get_outstanding_requests()[0].num_attempts == rounds


def test_ten_thousand_completed_regions_stay_under_the_item_size_bound(
    requested_jobs_table: RequestedJobsTable,
) -> None:
    job_id = str(uuid.uuid4())
    req = request(job_id=job_id, roi=box(0, 0, 100_000, 100_000), feature_properties=[{"source": "x" * 2000}])
    requested_jobs_table.add_new_request(req, region_count=10_001)
    region_ids = [f"(({r * 2048}, {c * 2048}), (2048, 2048))-{job_id}" for r in range(100) for c in range(100)]
    keys = {"endpoint_id": {"S": "aircraft"}, "job_id": {"S": job_id}}
    # the 10,000 first completions written at once (what 10,000 complete_region calls leave), then one more call
    requested_jobs_table.client.update_item(
        TableName=requested_jobs_table.table_name,
        Key=keys,
        UpdateExpression="SET regions_complete = :ids",
        ExpressionAttributeValues={":ids": {"L": [{"S": region_key(r)} for r in region_ids]}},
    )
    assert requested_jobs_table.complete_region(req, "((0, 0), (1, 1))-last") is True
    assert requested_jobs_table.complete_region(req, region_ids[5000]) is False
    item = raw_item(requested_jobs_table, job_id=job_id)
    size = item_size(item)
    assert len(item["regions_complete"]["L"]) == 10_001
    assert size < 400 * 1024 * 0.5, size  # about 180 KB: room for the payload and for more regions
    print(f"record with 10,001 completed regions: {size} bytes")


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item in wire form: names and values, with its per-type overheads."""

    def value_size(value: dict[str, Any]) -> int:
        ((kind, data),) = value.items()
        if kind == "S":
            return len(data.encode("utf-8"))
        if kind == "N":
            return len(data.strip("-").lstrip("0").replace(".", "")) // 2 + 2
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "L":
            return 3 + sum(value_size(v) + 1 for v in data)
        if kind == "M":
            return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in data.items())
        raise AssertionError(kind)

    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())
