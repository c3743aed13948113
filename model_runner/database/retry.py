"""Bounded, jittered retries of DynamoDB requests.

botocore's own retries are switched off for the bound models (see :mod:`model_runner.database.binding`): its
standard mode stops retrying once its retry quota runs dry, which is exactly what happens in a throttling storm.
Instead every request goes through :func:`call_with_retry`, which retries only transient failures (throttling,
5xx, dropped connections, timeouts) with capped exponential backoff and full jitter, within a number of attempts and
a total time, and never retries permanent errors (validation, conditional check, missing table).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .exceptions import error_code

T = TypeVar("T")

#: Error codes of requests that may succeed when sent again.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
        "500",
        "502",
        "503",
        "504",
        # botocore connection errors, named by their class
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionError",
        "HTTPClientError",
        "ProxyConnectionError",
    }
)

#: Codes that mean "too much load": retried, and worth a longer backoff.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException"}
)


def is_retryable(err: BaseException) -> bool:
    """Tell whether a failed request may succeed when sent again.

    :param err: BaseException = the exception raised by PynamoDB or botocore
    :return: bool = True for throttling, 5xx and connection errors; False for everything else
    """
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
