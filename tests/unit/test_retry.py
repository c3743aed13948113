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


# -- what botocore's standard retry mode retries is retried here too (by class hierarchy, not by class name) ----------


def connection_errors() -> list[BaseException]:
    """One instance of every subclass of the HTTP-layer errors botocore's standard mode retries."""
    import botocore.exceptions as bx

    found: list[BaseException] = [
        bx.SSLError(endpoint_url="https://dynamodb", error="bad record mac"),
        bx.ResponseStreamingError(error="connection broken: IncompleteRead"),
        bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        bx.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        bx.ProxyConnectionError(proxy_url="http://proxy"),
        bx.HTTPClientError(error="reset"),
        bx.ConnectionError(error="reset"),
    ]

    def subclasses(cls: type) -> list[type]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]

    names = {type(err) for err in found}
    for base in (bx.ConnectionError, bx.HTTPClientError):
        for cls in subclasses(base):
            if cls not in names and cls.__module__.startswith("botocore"):
                found.append(cls.__new__(cls))
    return found


@pytest.mark.parametrize("err", connection_errors(), ids=lambda err: type(err).__name__)
def test_every_connection_error_botocore_retries_is_retryable(err: BaseException) -> None:
    from botocore.retries.standard import TransientRetryableChecker

    assert isinstance(err, TransientRetryableChecker._TRANSIENT_EXCEPTION_CLS)  # botocore retries it ...
    assert is_retryable(err)  # ... and so do we, bare or wrapped
    assert is_retryable(PutError("put failed", cause=err))


class CustomTimeout(ReadTimeoutError):
    """A subclass a library might raise (named unlike any botocore class)."""


def test_subclasses_of_connection_errors_are_retryable_whatever_their_name() -> None:
    assert is_retryable(CustomTimeout(endpoint_url="http://127.0.0.1:1"))


def test_every_code_botocore_standard_mode_retries_is_retryable() -> None:
    from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

    codes = [*ThrottledRetryableChecker._THROTTLED_ERROR_CODES, *TransientRetryableChecker._TRANSIENT_ERROR_CODES]
    assert len(codes) > 10
    for code in codes:
        assert is_retryable(client_error(code)), code


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_http_statuses_are_retryable_whatever_the_code(status: int) -> None:
    err = ClientError(
        {"Error": {"Code": "SomethingNew", "Message": "?"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetItem"
    )
    assert is_retryable(err)
    assert is_retryable(PutError("put failed", cause=err))


def test_a_permanent_error_raised_while_handling_a_transient_one_is_not_retried() -> None:
    try:
        try:
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1")
        except ReadTimeoutError:
            raise client_error("ValidationException")  # noqa: B904  # context, not cause
    except ClientError as err:
        assert not is_retryable(err)


def test_errors_outside_the_http_layer_are_not_retried() -> None:
    from botocore.exceptions import NoCredentialsError, NoRegionError, ParamValidationError

    for err in (NoCredentialsError(), NoRegionError(), ParamValidationError(report="bad"), ValueError("x")):
        assert not is_retryable(err)
