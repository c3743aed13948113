"""The late-start guard of ``start_region_request`` does not depend on the workers' clocks agreeing (DynamoDB Local).

A late start is a request held in the network past its client's read timeout and applied afterwards, when the region
has been started again and completed by another worker. Here it is reproduced exactly: the first ``UpdateItem`` of a
start is captured instead of sent (its client sees a read timeout), the region is restarted and completed, and then
the captured request is sent as it was built. Each worker's clock is simulated by what ``now_millis`` returns to the
repository while it acts, skewed by up to a day either way.

Before the guard was made clock-free it compared the late start's clock with the completing worker's: a late start
from a worker whose clock ran ahead got through and turned the completed region back to STARTED, and a restart sent
by a worker whose clock ran behind the completing one was refused.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from pynamodb.exceptions import UpdateError

import model_runner.database.region_request_table as region_module
from model_runner.common.typing import RequestStatus
from model_runner.database import RegionRequestItem, RegionRequestTable, StartRegionException
from model_runner.database.retry import RetryPolicy

pytestmark = pytest.mark.integration

SECOND = 1000
HOUR = 3600 * SECOND
TRUE_NOW = 1_800_000_000_000  # epoch ms of the simulated timeline


@contextlib.contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, reads: int) -> Iterator[None]:
    """Run the block on a worker whose clock reads ``reads`` (epoch ms)."""
    with monkeypatch.context() as patch:
        patch.setattr(region_module, "now_millis", lambda: reads)
        yield


def _item() -> RegionRequestItem:
    return RegionRequestItem(image_id=f"img-{uuid.uuid4().hex[:8]}", region_id=f"region-{uuid.uuid4().hex[:8]}")


def _status(table: RegionRequestTable, item: RegionRequestItem) -> str | None:
    region = table.get_region_request(item.region_id, item.image_id)
    assert region is not None
    return region.region_status


def _held_start(
    table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch, item: RegionRequestItem
) -> Callable[[], Any]:
    """Send a start whose request is held in the network: the caller times out; return what delivers it late."""
    single = RegionRequestTable(table.table_name, host=table.settings.host, retry_policy=RetryPolicy(max_attempts=1))
    held: list[Callable[[], Any]] = []
    original = single.model.update

    def hold(self: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(lambda: original(self, *args, **kwargs))
        raise ReadTimeoutError(endpoint_url=str(table.settings.host))

    with monkeypatch.context() as patch:
        patch.setattr(single.model, "update", hold)
        with pytest.raises(StartRegionException):
            single.start_region_request(item)
    assert len(held) == 1
    return held[0]


@pytest.mark.parametrize("late_worker_skew", [-24 * HOUR, -HOUR, 0, HOUR, 24 * HOUR], ids=lambda s: f"{s // HOUR:+}h")
def test_a_late_start_never_reopens_a_completed_region_whatever_the_skew(
    region_request_table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch, late_worker_skew: int
) -> None:
    table, item = region_request_table, _item()
    with clock(monkeypatch, TRUE_NOW + late_worker_skew):  # worker A sends the start; it is held
        deliver = _held_start(table, monkeypatch, item)
    with clock(monkeypatch, TRUE_NOW + 20 * SECOND):  # worker B (true clock) gets the redelivered message
        table.start_region_request(item)
    with clock(monkeypatch, TRUE_NOW + 80 * SECOND):
        table.complete_region_request(item, RequestStatus.SUCCESS)
    with pytest.raises(UpdateError):  # A's request arrives: its condition does not hold
        deliver()
    assert _status(table, item) == RequestStatus.SUCCESS.value


@pytest.mark.parametrize("restarting_worker_skew", [-24 * HOUR, -HOUR, 0, HOUR], ids=lambda s: f"{s // HOUR:+}h")
def test_a_start_sent_after_the_completion_restarts_the_region_whatever_the_skew(
    region_request_table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch, restarting_worker_skew: int
) -> None:
    table, item = region_request_table, _item()
    with clock(monkeypatch, TRUE_NOW):
        table.start_region_request(item)
    with clock(monkeypatch, TRUE_NOW + 60 * SECOND):
        table.complete_region_request(item, RequestStatus.FAILED)
    with clock(monkeypatch, TRUE_NOW + 61 * SECOND + restarting_worker_skew):  # 1 s after, on a skewed clock
        restarted = table.start_region_request(item)
    assert restarted.region_status == RequestStatus.STARTED.value
    assert restarted.region_retry_count == 1 and restarted.end_time is None
    assert _status(table, item) == RequestStatus.STARTED.value


def test_a_late_restart_of_a_completed_region_changes_nothing(
    region_request_table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the restart of an ended region is conditional on the region read: held and delivered after the region was
    # restarted and completed again, it changes nothing either
    table, item = region_request_table, _item()
    table.start_region_request(item)
    table.complete_region_request(item, RequestStatus.FAILED)
    single = RegionRequestTable(table.table_name, host=table.settings.host, retry_policy=RetryPolicy(max_attempts=1))
    original = single.model.update
    held: list[Callable[[], Any]] = []

    def hold_the_restart(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("condition") is not None and "region_retry_count" in str(kwargs["condition"]):
            held.append(lambda: original(self, *args, **kwargs))
            raise ReadTimeoutError(endpoint_url=str(table.settings.host))
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:  # the model class is shared with ``table``: patched for this call only
        patch.setattr(single.model, "update", hold_the_restart)
        with pytest.raises(StartRegionException):
            single.start_region_request(item)
    assert len(held) == 1
    table.start_region_request(item)  # another worker restarts it and completes it
    table.complete_region_request(item, RequestStatus.SUCCESS)
    with pytest.raises(UpdateError):
        held[0]()
    assert _status(table, item) == RequestStatus.SUCCESS.value


def test_a_start_racing_other_workers_returns_the_stored_region(
    region_request_table: RegionRequestTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, item = region_request_table, _item()
    table.start_region_request(item)
    table.complete_region_request(item, RequestStatus.SUCCESS)
    original = table.model.update
    sent: list[int] = []

    def others_end_it_each_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        # between our read and our update, another worker restarts and completes the region
        table.model.update = original  # type: ignore[method-assign]
        try:
            table.start_region_request(item)
            table.complete_region_request(item, RequestStatus.SUCCESS)
        finally:
            table.model.update = others_end_it_each_time  # type: ignore[method-assign]
        return original(self, *args, **kwargs)

    monkeypatch.setattr(table.model, "update", others_end_it_each_time)
    returned = table.start_region_request(item)
    assert len(sent) == region_module.START_ATTEMPTS
    assert returned.region_status == RequestStatus.SUCCESS.value
