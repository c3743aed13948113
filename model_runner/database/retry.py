"""Bounded, jittered retries of DynamoDB requests.

botocore's own retries are switched off for the bound models (see :mod:`model_runner.database.binding`): its
standard mode stops retrying once its retry quota runs dry, which is exactly what happens in a throttling storm.
Instead every request goes through :func:`call_with_retry`, which retries only transient failures (throttling,
5xx, dropped connections, timeouts) with capped exponential backoff and full jitter, within a number of attempts and
a total time, and never retries permanent errors (validation, conditional check, missing table). What is transient
is decided by class hierarchy and error code, and covers at least what botocore's standard mode retries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import botocore.exceptions

from .exceptions import error_code

T = TypeVar("T")

#: Codes that mean "too much load": retried, and worth a longer backoff.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
        "429",
    }
)

#: Error codes of requests that may succeed when sent again: every code botocore's standard retry mode retries
#: (``botocore/retries/standard.py``: transient and throttling codes), DynamoDB's own 5xx codes, and the HTTP status
#: DynamoDB gives as the code when its response has none.
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "PriorRequestNotComplete",
        # transient (botocore TransientRetryableChecker)
        "RequestTimeout",
        "RequestTimeoutException",
        # DynamoDB's server-side failures
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        # an HTTP status given as the code
        "500",
        "502",
        "503",
        "504",
    }
)

#: HTTP statuses botocore's standard mode retries whatever the code: 500, 502, 503, 504 (transient) and 429
#: (throttling).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: botocore's names of the errors of an endpoint that cannot be reached (the classes and, by name, their subclasses),
#: which is how the command line and the demo tell "no DynamoDB there" from other failures.
UNREACHABLE_ERROR_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ConnectionError",
        "ReadTimeoutError",
        "HTTPClientError",
        "ProxyConnectionError",
        "SSLError",
    }
)

#: Exceptions of the HTTP layer botocore's standard mode retries, matched with ``isinstance`` so that every subclass
#: counts (SSLError, EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError under ConnectionError;
#: ReadTimeoutError, ConnectionClosedError, ResponseStreamingError under HTTPClientError), plus the CRC32 mismatch of a
#: DynamoDB response (ChecksumError), which botocore retries for DynamoDB.
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ChecksumError,
)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """Yield an exception and its causes: PynamoDB's ``cause``, else Python's ``__cause__`` (``raise ... from``).

    ``__context__`` is not followed: an error raised while another was being handled was not caused by it.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        cause = getattr(current, "cause", None)
        if not isinstance(cause, BaseException) or cause is current:
            cause = current.__cause__
        current = cause


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def is_retryable(err: BaseException) -> bool:
    """Tell whether a failed request may succeed when sent again.

    An error is transient when, anywhere in its chain of causes, there is an exception of the HTTP layer
    (:data:`RETRYABLE_EXCEPTIONS` or a subclass), a DynamoDB error code of :data:`RETRYABLE_CODES`, or an HTTP status of
    :data:`RETRYABLE_STATUSES`: at least everything botocore's standard retry mode retries.

    :param err: BaseException = the exception raised by PynamoDB or botocore
    :return: bool = True for throttling, 5xx, timeouts and connection errors; False for everything else
    """
    for link in _chain(err):
        if isinstance(link, RETRYABLE_EXCEPTIONS):
            return True
        if _status(link) in RETRYABLE_STATUSES:
            return True
    code = error_code(err)
    if code is None:
        return False
    if code in RETRYABLE_CODES:
        return True
    # TransactionCanceledException caused only by conflicts or throttling is transient.
    if code == "TransactionCanceledException":
        reasons = getattr(err, "cancellation_reasons", None) or getattr(
            getattr(err, "cause", None), "cancellation_reasons", None
        )
        if reasons:
            codes = {r.code for r in reasons if r is not None}
            return bool(codes) and codes <= {"TransactionConflict", *THROTTLING_CODES}
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures.

    :param max_attempts: int = attempts in all, the first included
    :param base_delay: float = seconds of the first backoff
    :param max_delay: float = cap of one backoff, in seconds
    :param max_total: float = cap of the time spent sleeping over all attempts, in seconds
    """

    max_attempts: int = 10
    base_delay: float = 0.025
    max_delay: float = 2.0
    max_total: float = 30.0

    def delays(self) -> Iterator[float]:
        """Yield the sleeps between attempts: full-jitter exponential backoff, capped, bounded in total.

        :return: Iterator[float] = one delay per retry; the iterator ends when no retry is left
        """
        slept = 0.0
        for attempt in range(self.max_attempts - 1):
            ceiling = min(self.max_delay, self.base_delay * (2**attempt))
            delay = random.uniform(0, ceiling)
            if slept + delay > self.max_total:
                return
            slept += delay
            yield delay


#: The policy used when a repository is given none.
DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    operation: Callable[[], T],
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Run a DynamoDB request, retrying transient failures according to a policy.

    :param operation: Callable[[], T] = the request; it must be safe to send again (idempotent, or its repetition
        accepted by the caller)
    :param policy: RetryPolicy = attempts, delays and total time
    :param on_retry: Optional[Callable[[BaseException, int], None]] = called before each retry with the error and
        the retry number
    :return: T = what the operation returned
    :raises Exception: the last error, unchanged, when it is permanent or no retry is left
    """
    delays = policy.delays()
    retry = 0
    while True:
        try:
            return operation()
        except Exception as err:
            if not is_retryable(err):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            retry += 1
            if on_retry is not None:
                on_retry(err, retry)
            time.sleep(delay)
