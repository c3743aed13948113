"""Bounded, jittered retries: what is retried, how often, and for how long."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from pynamodb.exceptions import PutError

from model_runner.database.retry import RetryPolicy, call_with_retry, is_retryable


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutItem")


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError", "503"]
)
def test_transient_errors_are_retryable_also_inside_pynamodb_wrappers(code: str) -> None:
    assert is_retryable(client_error(code))
    assert is_retryable(PutError("put failed", cause=client_error(code)))


def test_connection_errors_are_retryable() -> None:
    assert is_retryable(PutError("put failed", cause=ReadTimeoutError(endpoint_url="http://127.0.0.1:1")))


@pytest.mark.parametrize(
    "code", ["ValidationException", "ConditionalCheckFailedException", "ResourceNotFoundException"]
)
def test_permanent_errors_are_not_retried(code: str) -> None:
    calls = []

    def operation() -> None:
        calls.append(1)
        raise PutError("put failed", cause=client_error(code))

    with pytest.raises(PutError):
        call_with_retry(operation, RetryPolicy(max_attempts=5, base_delay=0, max_delay=0))
    assert len(calls) == 1


def test_transient_errors_are_retried_until_success() -> None:
    calls = []

    def operation() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise PutError("throttled", cause=client_error("ThrottlingException"))
        return "done"

    assert call_with_retry(operation, RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.001)) == "done"
    assert len(calls) == 4


def test_attempts_are_bounded() -> None:
    calls = []

    def operation() -> None:
        calls.append(1)
        raise PutError("throttled", cause=client_error("ThrottlingException"))

    with pytest.raises(PutError):
        call_with_retry(operation, RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001))
    assert len(calls) == 3


def test_delays_are_capped_jittered_and_bounded_in_total() -> None:
    policy = RetryPolicy(max_attempts=1000, base_delay=0.1, max_delay=1.0, max_total=5.0)
    delays = list(policy.delays())
    assert all(0 <= delay <= 1.0 for delay in delays)
    assert sum(delays) <= 5.0
    assert len(set(delays)) > 1
