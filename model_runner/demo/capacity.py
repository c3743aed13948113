"""Measure what a piece of work costs in DynamoDB: requests per operation, errors, and capacity units consumed.

:class:`CapacityRecorder` hooks into botocore's public event API on the clients of the repositories (no
monkey-patching): a ``provide-client-params`` handler asks DynamoDB for ``ReturnConsumedCapacity=TOTAL`` on every
operation that accepts it, and an ``after-call`` handler adds up the ``ConsumedCapacity`` of each answer. The demo
and the benchmarks use it; it works with any botocore DynamoDB client, whoever built it.

Example::

    recorder = CapacityRecorder()
    recorder.attach(job_table.client, feature_table.client)
    ...  # work
    summary = recorder.summary()
    recorder.detach()
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The events the recorder listens to, for DynamoDB only.
PARAMS_EVENT = "provide-client-params.dynamodb"
AFTER_CALL_EVENT = "after-call.dynamodb"


@dataclass(frozen=True)
class CapacitySummary:
    """What the recorded requests cost.

    :param requests: Dict[str, int] = requests sent per operation (``UpdateItem``, ``Query`` ...), retries included
    :param errors: Dict[str, int] = answers that were errors, per error code (``ConditionalCheckFailedException`` ...)
    :param read_units: float = read capacity units consumed, all tables
    :param write_units: float = write capacity units consumed, all tables
    :param units_by_table: Dict[str, float] = capacity units consumed per table (reads and writes)
    """

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    read_units: float = 0.0
    write_units: float = 0.0
    units_by_table: dict[str, float] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        """Requests sent, all operations."""
        return sum(self.requests.values())

    @property
    def total_units(self) -> float:
        """Capacity units consumed, reads and writes."""
        return self.read_units + self.write_units

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-serialisable values.

        :return: Dict[str, Any] = the fields, plus total_requests and total_units
        """
        return {
            "requests": dict(sorted(self.requests.items())),
            "total_requests": self.total_requests,
            "errors": dict(sorted(self.errors.items())),
            "read_units": round(self.read_units, 3),
            "write_units": round(self.write_units, 3),
            "total_units": round(self.total_units, 3),
            "units_by_table": {name: round(units, 3) for name, units in sorted(self.units_by_table.items())},
        }


class CapacityRecorder:
    """Count requests and add up the capacity DynamoDB reports, on one or more botocore clients.

    Thread-safe: the handlers run in whatever thread sends the request. Attaching the same client twice has no
    effect; :meth:`detach` removes the handlers from every attached client.

    :param request_capacity: bool = ask for ``ReturnConsumedCapacity=TOTAL`` on operations that accept it (a
        request that already names a ReturnConsumedCapacity keeps it); when False, only what callers ask for is added
    """

    def __init__(self, request_capacity: bool = True) -> None:
        self.request_capacity = request_capacity
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._read = 0.0
        self._write = 0.0
        self._by_table: dict[str, float] = {}
        self._clients: list[Any] = []
        self._unique = f"model-runner-capacity-{id(self)}"

    # -- attaching -----------------------------------------------------------------------------------------------------

    def attach(self, *clients: Any) -> CapacityRecorder:
        """Register the handlers on botocore DynamoDB clients.

        :param clients: Any = botocore clients (``repository.client``)
        :return: CapacityRecorder = this recorder
        """
        for client in clients:
            if any(client is known for known in self._clients):
                continue
            events = client.meta.events
            events.register(PARAMS_EVENT, self._add_return_capacity, unique_id=f"{self._unique}-params")
            events.register(AFTER_CALL_EVENT, self._after_call, unique_id=f"{self._unique}-after")
            self._clients.append(client)
        return self

    def detach(self) -> None:
        """Remove the handlers from every attached client; what was recorded stays."""
        for client in self._clients:
            events = client.meta.events
            events.unregister(PARAMS_EVENT, unique_id=f"{self._unique}-params")
            events.unregister(AFTER_CALL_EVENT, unique_id=f"{self._unique}-after")
        self._clients.clear()

    def __enter__(self) -> CapacityRecorder:
        """Use the recorder in a ``with`` block that detaches it at the end.

        :return: CapacityRecorder = this recorder
        """
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Detach from every client."""
        self.detach()

    # -- botocore handlers ---------------------------------------------------------------------------------------------

    def _add_return_capacity(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        """``provide-client-params`` handler: ask for the capacity consumed, where the operation accepts it."""
        if not self.request_capacity or "ReturnConsumedCapacity" in params:
            return
        members = getattr(getattr(model, "input_shape", None), "members", {})
        if "ReturnConsumedCapacity" in members:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _after_call(self, parsed: Mapping[str, Any], model: Any, **kwargs: Any) -> None:
        """``after-call`` handler: count the request and add the capacity of its answer."""
        operation = str(getattr(model, "name", "Unknown"))
        error = parsed.get("Error", {}) if isinstance(parsed, Mapping) else {}
        consumed = parsed.get("ConsumedCapacity") if isinstance(parsed, Mapping) else None
        entries = consumed if isinstance(consumed, list) else [consumed] if isinstance(consumed, Mapping) else []
        with self._lock:
            self._requests[operation] += 1
            if isinstance(error, Mapping) and error.get("Code"):
                self._errors[str(error["Code"])] += 1
            for entry in entries:
                self._add_entry(operation, entry)

    def _add_entry(self, operation: str, entry: Mapping[str, Any]) -> None:
        """Add one ConsumedCapacity entry (the lock is held)."""
        units = float(entry.get("CapacityUnits") or 0.0)
        reads = float(entry.get("ReadCapacityUnits") or 0.0)
        writes = float(entry.get("WriteCapacityUnits") or 0.0)
        if not reads and not writes and units:  # TOTAL gives only CapacityUnits: tell reads from writes by operation
            if operation in READ_OPERATIONS:
                reads = units
            else:
                writes = units
        self._read += reads
        self._write += writes
        table = entry.get("TableName")
        if table:
            self._by_table[str(table)] = self._by_table.get(str(table), 0.0) + (units or reads + writes)

    # -- results -------------------------------------------------------------------------------------------------------

    def summary(self) -> CapacitySummary:
        """Return what was recorded so far.

        :return: CapacitySummary = requests, errors and capacity units
        """
        with self._lock:
            return CapacitySummary(
                requests=dict(self._requests),
                errors=dict(self._errors),
                read_units=self._read,
                write_units=self._write,
                units_by_table=dict(self._by_table),
            )

    def reset(self) -> None:
        """Forget what was recorded; the handlers stay attached."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
            self._read = 0.0
            self._write = 0.0
            self._by_table.clear()


#: Operations whose capacity is read capacity.
READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
