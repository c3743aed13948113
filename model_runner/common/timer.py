"""A context manager that times a block of code and reports the duration to a log and to CloudWatch metrics."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_embedded_metrics.logger.metrics_logger import MetricsLogger

_LOGGER = logging.getLogger(__name__)


class Timer:
    """Time a block of code with ``time.perf_counter``.

    On leaving the block, also when it raises, the duration is stored in ``elapsed`` (seconds), logged at debug
    level and, when a metrics logger was given, recorded as ``metric_name`` in milliseconds. Exceptions raised by the
    block are never swallowed.

    Example::

        with Timer("Processing region", "RegionLatency", logger, metrics) as timer:
            process(region)
        print(timer.elapsed)
    """

    def __init__(
        self,
        task_str: str,
        metric_name: str,
        logger: logging.Logger | None = None,
        metrics_logger: MetricsLogger | None = None,
    ) -> None:
        """Prepare a timer; nothing is measured until the block is entered.

        :param task_str: str = a description of the timed work, used in the log message
        :param metric_name: str = the name of the metric recorded in the metrics logger
        :param logger: Optional[logging.Logger] = where to log the duration, this module's logger when None
        :param metrics_logger: Optional[MetricsLogger] = where to record the duration in milliseconds, if anywhere
        """
        self.task_str = task_str
        self.metric_name = metric_name
        self.logger = logger if logger is not None else _LOGGER
        self.metrics_logger = metrics_logger
        #: Seconds spent in the most recent block; 0.0 until a block has been left.
        self.elapsed: float = 0.0
        self._start: float | None = None

    def __enter__(self) -> Timer:
        """Start the clock.

        :return: Timer = this timer, so that ``elapsed`` can be read after the block
        """
        self.elapsed = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the clock, store the duration, log it and record it as a metric.

        :param exc_type: Optional[type[BaseException]] = the type of the exception leaving the block, if any
        :param exc_value: Optional[BaseException] = the exception leaving the block, if any
        :param traceback: Optional[TracebackType] = its traceback, if any
        :return: None = the exception, if any, propagates
        """
        if self._start is None:
            raise RuntimeError("Timer.__exit__ called without __enter__")
        self.elapsed = time.perf_counter() - self._start
        self._start = None
        outcome = "failed after" if exc_type is not None else "took"
        self.logger.debug("%s %s %.6f seconds", self.task_str, outcome, self.elapsed)
        if self.metrics_logger is not None:
            self.metrics_logger.put_metric(self.metric_name, self.elapsed * 1000.0, "Milliseconds")
