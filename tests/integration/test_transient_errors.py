"""Transient errors of the HTTP layer are retried by the repositories, whatever their class name (DynamoDB Local).

The first request of an operation fails in botocore's HTTP layer with a subclass of the errors botocore's standard
retry mode retries (raised from a ``before-send`` handler, where a real TLS or streaming failure surfaces); the
repository retries it and the operation succeeds. Before issue 14 item 7 these failed at once: they were classified
by exact class name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.exceptions as bx
import pytest

from model_runner.database import JobItem, JobTable, StartImageException
from model_runner.database.retry import RetryPolicy

pytestmark = pytest.mark.integration

QUICK = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total=1.0)

FAILURES: dict[str, Callable[[], Exception]] = {
    "SSLError": lambda: bx.SSLError(endpoint_url="https://dynamodb", error="decryption failed or bad record mac"),
    "ResponseStreamingError": lambda: bx.ResponseStreamingError(error="Connection broken: IncompleteRead"),
    "ConnectionClosedError": lambda: bx.ConnectionClosedError(endpoint_url="http://127.0.0.1"),
    "ProxyConnectionError": lambda: bx.ProxyConnectionError(proxy_url="http://proxy", error="refused"),
}


@contextmanager
def failing_first(client: Any, operation: str, failure: Callable[[], Exception], times: int = 1) -> Iterator[list[str]]:
    """Make the first ``times`` requests of ``operation`` fail in the HTTP layer; yield the operations sent."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append(operation)
        if len(sent) <= times:
            raise failure()

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register(event, before_send, unique_id="test-transient")
    try:
        yield sent
    finally:
        client.meta.events.unregister(event, unique_id="test-transient")


@pytest.mark.parametrize("name", list(FAILURES))
def test_a_transient_failure_of_any_subclass_is_retried(
    dynamodb_local_endpoint: str, job_table: JobTable, name: str
) -> None:
    jobs = JobTable(job_table.table_name, host=dynamodb_local_endpoint, retry_policy=QUICK)
    with failing_first(jobs.client, "PutItem", FAILURES[name]) as sent:
        started = jobs.start_image_request(JobItem(image_id=f"img-{name}", job_id="j"))
    assert len(sent) == 2  # failed once, sent again
    assert started.image_id == f"img-{name}"
    assert jobs.get_image_request(f"img-{name}").job_id == "j"


def test_the_retries_stay_bounded_by_the_policy(dynamodb_local_endpoint: str, job_table: JobTable) -> None:
    jobs = JobTable(job_table.table_name, host=dynamodb_local_endpoint, retry_policy=QUICK)
    with (
        failing_first(jobs.client, "PutItem", FAILURES["SSLError"], times=99) as sent,
        pytest.raises(StartImageException) as raised,
    ):
        jobs.start_image_request(JobItem(image_id="img-bounded", job_id="j"))
    assert len(sent) <= QUICK.max_attempts
    assert len(sent) > 1
    assert "SSL validation failed" in str(raised.value)
