"""The hardest fault, one operation at a time: the request reaches DynamoDB and is applied, but the answer is lost
(or comes after the client's timeout), so our retry sends an operation that already happened.

Exactly once, by design: JobTable.start_image_request, complete_region_request with region_id, end/update (they set
values), RegionRequestTable.start_region_request (the item; its retry count counts the retried start), add_tile,
FeatureTable.add_features, EndpointStatisticsTable.upsert_endpoint. At least once, by design: complete_region_request
without region_id, increment_region_count and decrement_region_count (which never goes below zero).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_runner.database import EndpointStatisticsTable, JobItem, JobTable, TableNames

from .conftest import RunReport
from .proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

READ_TIMEOUT = 0.5
APPLIED_TWICE_KINDS = ["lost", "slow"]


@pytest.fixture
def proxied(fault_proxy: FaultProxy, ddb_tables: TableNames) -> Iterator[tuple[JobTable, EndpointStatisticsTable]]:
    """Job and endpoint repositories talking through the proxy (short read timeout), on fresh tables."""
    fault_proxy.slow_seconds = READ_TIMEOUT * 2.5
    options = {"host": fault_proxy.url, "read_timeout_seconds": READ_TIMEOUT}
    yield JobTable(ddb_tables.job, **options), EndpointStatisticsTable(ddb_tables.endpoint, **options)


def _record(run_report: RunReport, name: str, proxy: FaultProxy, operations: int) -> None:
    assert proxy.drain(10)
    stats = proxy.snapshot()
    run_report.record(
        f"exactly-once[{name}]",
        operations=operations,
        requests=stats.total_requests,
        faults=stats.total_faults,
        retries=stats.total_faults,  # one retry per fault: none of these operations gives up
        items_checked=1,
        discrepancies=0,
    )


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_start_image_request_applied_twice_keeps_one_job(
    proxied: tuple[JobTable, EndpointStatisticsTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    fault_proxy.force(kind, operation="PutItem")
    started = jobs.start_image_request(JobItem(image_id="img", region_count=3))
    assert fault_proxy.drain(10)
    stored = jobs.get_image_request("img")
    assert (stored.region_count, stored.region_success, stored.region_error) == (3, 0, 0)
    assert stored.start_time == started.start_time
    assert fault_proxy.snapshot().forwarded["PutItem"] == 2  # both the lost attempt and the retry reached DynamoDB
    _record(run_report, f"start_image_request-{kind}", fault_proxy, operations=2)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
@pytest.mark.parametrize("error", [False, True])
def test_complete_region_with_region_id_counts_once_when_applied_twice(
    proxied: tuple[JobTable, EndpointStatisticsTable],
    fault_proxy: FaultProxy,
    kind: str,
    error: bool,
    run_report: RunReport,
) -> None:
    jobs, _ = proxied
    jobs.start_image_request(JobItem(image_id="img", region_count=2))
    fault_proxy.force(kind, operation="UpdateItem")
    returned = jobs.complete_region_request("img", error=error, region_id="r1")
    assert fault_proxy.drain(10)
    stored = jobs.get_image_request("img")
    counted = stored.region_error if error else stored.region_success
    other = stored.region_success if error else stored.region_error
    assert (counted, other) == (1, 0)
    assert (returned.region_success, returned.region_error) == (stored.region_success, stored.region_error)
    assert fault_proxy.snapshot().forwarded["UpdateItem"] == 2
    # and a redelivered completion of the same region, later, does not count either
    jobs.complete_region_request("img", error=error, region_id="r1")
    again = jobs.get_image_request("img")
    assert (again.region_success, again.region_error) == (stored.region_success, stored.region_error)
    _record(run_report, f"complete_region-{kind}-{'error' if error else 'success'}", fault_proxy, operations=4)


def test_complete_region_without_region_id_is_at_least_once(
    proxied: tuple[JobTable, EndpointStatisticsTable], fault_proxy: FaultProxy, run_report: RunReport
) -> None:
    jobs, _ = proxied
    jobs.start_image_request(JobItem(image_id="img", region_count=2))
    fault_proxy.force("lost", operation="UpdateItem")
    jobs.complete_region_request("img", error=False)
    stored = jobs.get_image_request("img")
    assert stored.region_success == 2  # documented: a lost answer and its retry count the region twice
    _record(run_report, "complete_region-no-region-id-lost", fault_proxy, operations=2)


@pytest.mark.parametrize("kind", APPLIED_TWICE_KINDS)
def test_update_and_end_image_request_applied_twice_change_nothing_more(
    proxied: tuple[JobTable, EndpointStatisticsTable], fault_proxy: FaultProxy, kind: str, run_report: RunReport
) -> None:
    jobs, _ = proxied
    jobs.start_image_request(JobItem(image_id="img"))
    jobs.complete_region_request("img", error=False, region_id="r0")
    fault_proxy.force(kind, operation="UpdateItem")
    jobs.update_image_request(JobItem(image_id="img", region_count=1, width=640))
    fault_proxy.force(kind, operation="UpdateItem")
    ended = jobs.end_image_request("img")
    assert fault_proxy.drain(10)
    stored = jobs.get_image_request("img")
    assert (stored.region_count, stored.width, stored.region_success, stored.region_error) == (1, 640, 1, 0)
    assert stored.end_time is not None and ended.end_time is not None
    assert JobTable.is_image_request_complete(stored)
    _record(run_report, f"update_end_image-{kind}", fault_proxy, operations=5)


def test_endpoint_counters_are_at_least_once_and_never_below_zero(
    proxied: tuple[JobTable, EndpointStatisticsTable], fault_proxy: FaultProxy, run_report: RunReport
) -> None:
    _, endpoints = proxied
    fault_proxy.force("lost", operation="UpdateItem")
    endpoints.upsert_endpoint("ep", 8)  # exactly once: a SET
    assert endpoints.current_in_progress_regions("ep") == 0
    fault_proxy.force("lost", operation="UpdateItem")
    endpoints.increment_region_count("ep")
    assert endpoints.current_in_progress_regions("ep") == 2  # documented: counted twice
    endpoints.decrement_region_count("ep")
    fault_proxy.force("lost", operation="UpdateItem")
    endpoints.decrement_region_count("ep")  # applied (1 -> 0), answer lost, retried: the condition stops it at 0
    assert endpoints.current_in_progress_regions("ep") == 0
    endpoints.decrement_region_count("ep")
    assert endpoints.current_in_progress_regions("ep") == 0
    fault_proxy.force("lost", operation="UpdateItem")
    endpoints.upsert_endpoint("ep", 4)
    assert endpoints.current_in_progress_regions("ep") == 0
    _record(run_report, "endpoint-counters-lost", fault_proxy, operations=8)
