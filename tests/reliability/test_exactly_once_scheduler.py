"""Lost answers for the newer upstream operations: the request reaches DynamoDB and is applied, the answer is lost
(or late), and our retry sends it again.

Exactly once, by design: RequestedJobsTable.add_new_request (never overwrites), start_next_attempt (the attempt
token tells our own applied attempt from another worker's: True, counted once), complete_region (the region is in
the list once; the retry reports True), RegionRequestTable.add_tiles (each tile once, counts equal to the lists).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_runner.api import ImageRequest
from model_runner.common.typing import TileState
from model_runner.database import RegionRequestItem, RegionRequestTable, RequestedJobsTable, TableNames

from .conftest import RunReport
from .proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

READ_TIMEOUT = 0.5
APPLIED_TWICE_KINDS = ["lost", "slow"]
REQUEST = ImageRequest(job_id="job", image_id="job:s3://b/i.ntf", image_url="s3://b/i.ntf", model_name="ep")


@pytest.fixture
def proxied(fault_proxy: FaultProxy, ddb_tables: TableNames) -> Iterator[tuple[RequestedJobsTable, RegionRequestTable]]:
    """Requested-jobs and region repositories talking through the proxy (short read timeout), on fresh tables."""
    fault_proxy.slow_seconds = READ_TIMEOUT * 2.5
    options = {"host": fault_proxy.url, "read_timeout_seconds": READ_TIMEOUT}
    yield RequestedJobsTable(ddb_tables.requested, **options), RegionRequestTable(ddb_tables.region, **options)


def _record(run_report: RunReport, name: str, proxy: FaultProxy, operations: int) -> None:
    assert proxy.drain(10)
    stats = proxy.snapshot()
    run_report.record(
        f"exactly-once[{name}]",
        operations=operations,
        requests=stats.total_requests,
        faults=stats.total_faults,
        retries=stats.total_faults,
        items_checked=1,
        discrepancies=0,
    )


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_add_new_request_applied_twice_keeps_one_record(
    proxied: tuple[RequestedJobsTable, RegionRequestTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    fault_proxy.force(kind, operation="PutItem")
    record = jobs.add_new_request(REQUEST, region_count=2)
    assert fault_proxy.drain(10)
    (stored,) = jobs.get_outstanding_requests()
    assert stored == record and stored.num_attempts == 0 and stored.region_count == 2
    assert fault_proxy.snapshot().forwarded["PutItem"] == 2
    _record(run_report, f"requested-add_new_request-{kind}", fault_proxy, operations=2)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_start_next_attempt_applied_twice_wins_once(
    proxied: tuple[RequestedJobsTable, RegionRequestTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    record = jobs.add_new_request(REQUEST)
    fault_proxy.force(kind, operation="UpdateItem")
    assert jobs.start_next_attempt(record) is True  # our own attempt, applied before its answer was lost
    assert fault_proxy.drain(10)
    assert fault_proxy.snapshot().forwarded["UpdateItem"] == 2
    (stored,) = jobs.get_outstanding_requests()
    assert stored.num_attempts == 1
    assert jobs.start_next_attempt(record) is False  # and another worker with the same record loses
    _record(run_report, f"requested-start_next_attempt-{kind}", fault_proxy, operations=3)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_complete_region_applied_twice_records_the_region_once(
    proxied: tuple[RequestedJobsTable, RegionRequestTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    jobs.add_new_request(REQUEST, region_count=2)
    fault_proxy.force(kind, operation="UpdateItem")
    assert jobs.complete_region(REQUEST, "r1") is True
    assert fault_proxy.drain(10)
    assert fault_proxy.snapshot().forwarded["UpdateItem"] == 2
    (stored,) = jobs.get_outstanding_requests()
    assert stored.regions_complete == ["r1"]
    assert jobs.complete_region(REQUEST, "r1") is False  # a later redelivery is not counted
    _record(run_report, f"requested-complete_region-{kind}", fault_proxy, operations=3)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_add_tiles_applied_twice_records_each_tile_once(
    proxied: tuple[RequestedJobsTable, RegionRequestTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    _, regions = proxied
    regions.start_region_request(RegionRequestItem(image_id="img", region_id="r1"))
    batch = [((0, col * 480), (512, 512)) for col in range(25)]
    fault_proxy.force(kind, operation="UpdateItem")
    returned = regions.add_tiles("img", "r1", batch, TileState.SUCCEEDED)
    assert fault_proxy.drain(10)
    stored = regions.get_region_request("r1", "img")
    assert stored is not None
    assert stored.succeeded_tiles == [[list(t[0]), list(t[1])] for t in batch]
    assert stored.succeeded_tile_count == 25 and returned.succeeded_tile_count == 25
    _record(run_report, f"add_tiles-{kind}", fault_proxy, operations=2)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_update_request_details_and_complete_request_applied_twice_change_nothing_more(
    proxied: tuple[RequestedJobsTable, RegionRequestTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    jobs.add_new_request(REQUEST)
    fault_proxy.force(kind, operation="UpdateItem")
    jobs.update_request_details(REQUEST, 7)  # a SET of the same value, on an existing record: no error on the retry
    assert fault_proxy.drain(10)
    (stored,) = jobs.get_outstanding_requests()
    assert stored.region_count == 7 and stored.num_attempts == 0
    fault_proxy.force(kind, operation="DeleteItem")
    jobs.complete_request(REQUEST)  # deleting what the first attempt deleted is no error
    assert fault_proxy.drain(10)
    assert fault_proxy.snapshot().forwarded["DeleteItem"] == 2
    assert jobs.get_outstanding_requests() == []
    _record(run_report, f"requested-details-and-complete-{kind}", fault_proxy, operations=4)
