"""The floor: the same DynamoDB requests as our layer's, sent straight through a botocore client.

The requests are recorded from our repositories (see :class:`benchmarks.capacity.RequestRecorder`), their parameters
built before the clock starts, and sent with the client's public methods (``client.update_item(**params)``). The
client is configured like the one PynamoDB builds for our bound models (no parameter validation, no botocore
retries, the same timeouts and pool), so the ratio ours / floor is what our layer adds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import botocore.config
import botocore.session
from botocore import xform_name
from botocore.exceptions import ClientError

#: One request: operation name (``UpdateItem``) and its parameters.
Request = tuple[str, dict[str, Any]]


def raw_client(endpoint_url: str, region: str = "us-east-1", max_pool_connections: int = 64) -> Any:
    """Build a botocore DynamoDB client configured like PynamoDB's for our bound models.

    :param endpoint_url: str = the DynamoDB endpoint
    :param region: str = the region
    :param max_pool_connections: int = HTTP connections kept (at least the number of threads using it)
    :return: Any = the botocore client
    """
    config = botocore.config.Config(
        parameter_validation=False,
        connect_timeout=5.0,
        read_timeout=15.0,
        max_pool_connections=max_pool_connections,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    session = botocore.session.get_session()
    return session.create_client("dynamodb", region, endpoint_url=endpoint_url, config=config)


def substitute(value: Any, old: str, new: str) -> Any:
    """Return a copy of request parameters with ``old`` replaced by ``new`` in every string value and map key.

    The benchmark puts a side marker in every key it uses (``-sR-`` while recording, ``-sB-`` for the floor), so one
    recorded request becomes the same request on the floor's own items.

    :param value: Any = parameters (dicts, lists, strings, bytes, numbers)
    :param old: str = the text to replace
    :param new: str = its replacement
    :return: Any = the copy
    """
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, Mapping):
        return {
            (key.replace(old, new) if isinstance(key, str) else key): substitute(item, old, new)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [substitute(item, old, new) for item in value]
    if isinstance(value, tuple):
        return tuple(substitute(item, old, new) for item in value)
    if isinstance(value, set):
        return {substitute(item, old, new) for item in value}
    return value


def rename_table(requests: Sequence[Request], old: str, new: str) -> list[Request]:
    """Return recorded requests sent to table ``new`` instead of ``old`` (TableName and RequestItems keys).

    :param requests: Sequence[Request] = recorded requests
    :param old: str = the table they were sent to
    :param new: str = the table to send them to
    :return: List[Request] = the requests, parameters copied at the top level only
    """
    renamed: list[Request] = []
    for operation, params in requests:
        copied = dict(params)
        if copied.get("TableName") == old:
            copied["TableName"] = new
        if "RequestItems" in copied:
            copied["RequestItems"] = {
                (new if name == old else name): value for name, value in copied["RequestItems"].items()
            }
        renamed.append((operation, copied))
    return renamed


class Replayer:
    """Sends pre-built requests through a raw client, as fast as botocore allows.

    :param client: Any = the botocore client
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._methods: dict[str, Callable[..., Any]] = {}

    def method(self, operation: str) -> Callable[..., Any]:
        """Return the client method of an operation (``UpdateItem`` -> ``client.update_item``).

        :param operation: str = the operation name
        :return: Callable[..., Any] = the bound method
        """
        found = self._methods.get(operation)
        if found is None:
            found = self._methods[operation] = getattr(self.client, xform_name(operation))
        return found

    def prepare(self, requests: Sequence[Request]) -> list[tuple[Callable[..., Any], dict[str, Any]]]:
        """Resolve the client methods of requests ahead of time.

        :param requests: Sequence[Request] = the requests
        :return: List[Tuple[Callable[..., Any], Dict[str, Any]]] = (method, parameters) pairs
        """
        return [(self.method(operation), params) for operation, params in requests]

    @staticmethod
    def send(prepared: Sequence[tuple[Callable[..., Any], dict[str, Any]]]) -> list[str]:
        """Send prepared requests one after the other; errors DynamoDB answers are collected, not raised.

        :param prepared: Sequence[Tuple[Callable[..., Any], Dict[str, Any]]] = from :meth:`prepare`
        :return: List[str] = the error codes answered (empty when every request succeeded)
        """
        errors: list[str] = []
        for method, params in prepared:
            try:
                method(**params)
            except ClientError as err:
                errors.append(str(err.response.get("Error", {}).get("Code", "ClientError")))
        return errors


def decode_feature_items(items: Sequence[Mapping[str, Any]]) -> Iterator[Any]:
    """Decode the features of raw feature-table items (as a Query answers them) with the table's codec.

    Packed items (binary attribute ``p``) go through :func:`model_runner.database.feature_codec.decode`, items in the
    classic layout (``features``: GeoJSON strings) through ``decode_classic``; no model, no attribute classes.

    :param items: Sequence[Mapping[str, Any]] = items as DynamoDB attribute values
    :return: Iterator[Any] = the features, as dictionaries
    """
    from model_runner.database import feature_codec

    for item in items:
        packed = item.get("p")
        if packed is not None:
            yield from feature_codec.decode(packed["B"])
        elif "features" in item:
            yield from feature_codec.decode_classic(value["S"] for value in item["features"]["L"])
