"""Count what a botocore DynamoDB client sends: requests, capacity units, items and bytes written.

A :class:`RequestRecorder` listens to a client's public event hooks (no patching). Capacity is the job of
:class:`model_runner.demo.capacity.CapacityRecorder` (``provide-client-params`` asks DynamoDB for
``ReturnConsumedCapacity=TOTAL``, ``after-call`` adds up what it answers), which the recorder attaches alongside its
own handlers:

* ``before-parameter-build.dynamodb`` sees the request parameters (to size the items written, and, when asked, to
  keep every request: what the floor replays);
* ``before-call.dynamodb`` sees the serialized request (its body size);
* ``after-call.dynamodb`` sees the answer (its body size).

PynamoDB calls the client's ``_make_api_call``, which emits these events, so the recorder sees the requests of our
repositories as well as those of a raw client.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Return the size DynamoDB counts for one attribute value (its name not included).

    Strings count their UTF-8 bytes, binary its bytes, a number about one byte per two significant digits plus one,
    a list or map 3 bytes plus one byte per element plus the elements, booleans and nulls one byte.

    :param value: Mapping[str, Any] = a DynamoDB attribute value such as ``{"S": "x"}``
    :return: int = bytes
    """
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "B":
        return len(data) if isinstance(data, (bytes, bytearray)) else len(str(data).encode("utf-8"))
    if kind == "N":
        return number_size(str(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + attribute_value_size(element) for name, element in data.items())
    if kind == "SS":
        return sum(len(element.encode("utf-8")) for element in data)
    if kind == "NS":
        return sum(number_size(str(element)) for element in data)
    if kind == "BS":
        return sum(len(element) for element in data)
    raise ValueError(f"unknown DynamoDB type {kind}")


def number_size(text: str) -> int:
    """Return the size DynamoDB counts for a number: about one byte per two significant digits, plus one.

    :param text: str = the number as sent
    :return: int = bytes
    """
    digits = format(Decimal(text).normalize(), "f").lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Return the size DynamoDB counts for an item: UTF-8 attribute names plus values.

    :param item: Mapping[str, Mapping[str, Any]] = attribute name to DynamoDB attribute value
    :return: int = bytes
    """
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def _items_put(operation: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if operation == "PutItem":
        return [params["Item"]]
    if operation == "BatchWriteItem":
        return [
            request["PutRequest"]["Item"]
            for requests in params.get("RequestItems", {}).values()
            for request in requests
            if "PutRequest" in request
        ]
    return []


@dataclass
class Totals:
    """What a recorder counted.

    :param requests: Counter[str] = requests per operation name
    :param read_units: float = read capacity units consumed
    :param write_units: float = write capacity units consumed
    :param items_written: int = items sent by PutItem and BatchWriteItem (retries of unprocessed items included)
    :param item_bytes_written: int = their size as DynamoDB counts it
    :param request_bytes: int = HTTP request bodies sent
    :param response_bytes: int = HTTP response bodies received
    :param errors: Counter[str] = error codes answered
    """

    requests: Counter[str] = field(default_factory=Counter)
    read_units: float = 0.0
    write_units: float = 0.0
    items_written: int = 0
    item_bytes_written: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def request_count(self) -> int:
        """All requests.

        :return: int = the number of requests
        """
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the totals as plain JSON values.

        :return: Dict[str, Any] = the totals
        """
        return {
            "requests": self.request_count,
            "requests_by_operation": dict(sorted(self.requests.items())),
            "read_capacity_units": round(self.read_units, 3),
            "write_capacity_units": round(self.write_units, 3),
            "items_written": self.items_written,
            "item_bytes_written": self.item_bytes_written,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "errors": dict(sorted(self.errors.items())),
        }


class RequestRecorder:
    """Counts the DynamoDB requests of the clients it is attached to, thread-safely.

    Requests, errors and capacity units are counted by the demo's
    :class:`~model_runner.demo.capacity.CapacityRecorder`; this recorder adds the items and bytes written, the bytes
    on the wire, and (when asked) every request sent.

    :param capture: bool = keep every request's operation name and parameters (see :meth:`take_captured`); the
        parameters are kept as sent (not copied): neither PynamoDB nor botocore changes them after sending
    :param size_items: bool = size every item sent by PutItem and BatchWriteItem (costs CPU in the sending thread)
    """

    def __init__(self, capture: bool = False, size_items: bool = True) -> None:
        from model_runner.demo.capacity import CapacityRecorder

        self.capture = capture
        self.size_items = size_items
        self.capacity = CapacityRecorder(request_capacity=True)
        self._captured: list[tuple[str, dict[str, Any]]] = []
        self._items_written = 0
        self._item_bytes = 0
        self._request_bytes = 0
        self._response_bytes = 0
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._id = uuid.uuid4().hex

    # -- event handlers ------------------------------------------------------------------------------------------

    def _before_build(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        if self.size_items:
            items = _items_put(operation, params)
            count, size = len(items), sum(item_size(item) for item in items)
        else:
            count = size = 0
        with self._lock:
            self._items_written += count
            self._item_bytes += size
            if self.capture:
                self._captured.append((operation, params))

    def _before_call(self, params: Mapping[str, Any], **_: Any) -> None:
        body = params.get("body") or b""
        with self._lock:
            self._request_bytes += len(body)

    def _after_call(self, http_response: Any, **_: Any) -> None:
        content = getattr(http_response, "content", None) or b""
        with self._lock:
            self._response_bytes += len(content)

    def _handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-parameter-build.dynamodb", self._before_build),
            ("before-call.dynamodb", self._before_call),
            ("after-call.dynamodb", self._after_call),
        ]

    # -- attaching -----------------------------------------------------------------------------------------------

    def attach(self, *clients: Any) -> RequestRecorder:
        """Start counting the requests of botocore DynamoDB clients.

        :param clients: Any = the botocore clients
        :return: RequestRecorder = this recorder
        """
        self.capacity.attach(*clients)
        for client in clients:
            if any(client is known for known in self._clients):
                continue
            for event, handler in self._handlers():
                client.meta.events.register(event, handler, unique_id=f"{event}-{self._id}")
            self._clients.append(client)
        return self

    def detach(self) -> None:
        """Stop counting, on every attached client; what was counted stays.

        :return: None
        """
        self.capacity.detach()
        for client in self._clients:
            for event, _ in self._handlers():
                client.meta.events.unregister(event, unique_id=f"{event}-{self._id}")
        self._clients.clear()

    @contextmanager
    def attached(self, *clients: Any) -> Iterator[RequestRecorder]:
        """Count the requests of clients within a ``with`` block.

        :param clients: Any = botocore clients
        :return: Iterator[RequestRecorder] = this recorder
        """
        self.attach(*clients)
        try:
            yield self
        finally:
            self.detach()

    # -- reading -------------------------------------------------------------------------------------------------

    def totals(self) -> Totals:
        """Return what was counted so far.

        :return: Totals = the totals
        """
        summary = self.capacity.summary()
        with self._lock:
            return Totals(
                requests=Counter(summary.requests),
                read_units=summary.read_units,
                write_units=summary.write_units,
                items_written=self._items_written,
                item_bytes_written=self._item_bytes,
                request_bytes=self._request_bytes,
                response_bytes=self._response_bytes,
                errors=Counter(summary.errors),
            )

    def reset(self) -> None:
        """Forget what was counted and captured.

        :return: None
        """
        self.capacity.reset()
        with self._lock:
            self._captured = []
            self._items_written = self._item_bytes = self._request_bytes = self._response_bytes = 0

    def take_captured(self) -> list[tuple[str, dict[str, Any]]]:
        """Return the requests captured so far and forget them.

        :return: List[Tuple[str, Dict[str, Any]]] = (operation name, parameters) in the order they were sent
        """
        with self._lock:
            captured, self._captured = self._captured, []
            return captured
