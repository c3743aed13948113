"""A reader of the tables that behaves like a worker running the classic ``aws.osml.model_runner.database``.

A rolling upgrade has classic workers and ours share the tables for a while, so everything this package writes must
stay readable by the classic code. Two things make the classic reader stricter than ours:

- **Its JSON parser.** The classic feature module replaces the ``_handle_json_body`` method of botocore's ``json``
  protocol parser at import, so responses skip botocore's shape-driven parsing: binary values (``B``, ``BS``) reach
  boto3 as base64 text, and boto3's TypeDeserializer fails on them (``TypeError: Value must be of the following types:
  bytearray, bytes``). Here the same parser is installed only on the session of this reader (a parser factory
  component of its own botocore session), never globally.
- **Its dataclass conversion.** Items become the classic dataclasses through ``dacite.from_dict`` after the Decimals
  are converted to int or float; dacite checks the type of every field the dataclass declares (extra attributes are
  ignored).

:class:`ClassicReader` does what the classic repositories' read methods do, but lets the underlying error through
(the classic ``get_image_request`` wraps it in GetImageRequestItemException, ``get_region_request`` logs it and
returns None), so a test can tell "cannot read" from "not there". It needs ``boto3`` and ``dacite`` (test extras).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class ClassicJobItem:
    """The classic JobItem dataclass (field order and types of the classic API)."""

    image_id: str
    job_id: str | None = None
    image_url: str | None = None
    image_read_role: str | None = None
    model_invoke_mode: str | None = None
    start_time: int | None = None
    expire_time: int | None = None
    end_time: int | None = None
    region_success: int | None = None
    region_error: int | None = None
    region_count: int | None = None
    width: int | None = None
    height: int | None = None
    extents: str | None = None
    tile_size: str | None = None
    tile_overlap: str | None = None
    model_name: str | None = None
    outputs: str | None = None
    processing_duration: int | None = None
    feature_properties: str | None = None
    feature_distillation_option: str | None = None
    roi_wkt: str | None = None


@dataclass
class ClassicRegionRequestItem:
    """The classic RegionRequestItem dataclass (field order and types of the classic API)."""

    region_id: str
    image_id: str
    job_id: str | None = None
    start_time: int | None = None
    last_updated_time: int | None = None
    end_time: int | None = None
    expire_time: int | None = None
    image_read_role: str | None = None
    processing_duration: int | None = None
    message: str | None = None
    region_status: str | None = None
    total_tiles: int | None = None
    failed_tiles: list[Any] | None = None
    failed_tile_count: int | None = None
    succeeded_tiles: list[Any] | None = None
    succeeded_tile_count: int | None = None
    region_bounds: list[list[int]] | None = None
    region_retry_count: int | None = None
    tile_compression: str | None = None
    tile_format: str | None = None
    tile_overlap: list[int] | None = None
    tile_size: list[int] | None = None


@dataclass
class ClassicEndpointStatisticsItem:
    """The classic EndpointStatisticsItem dataclass."""

    endpoint: str
    regions_in_progress: int = 0
    max_regions: int = 0


@dataclass
class ClassicFeatureItem:
    """The classic FeatureItem dataclass: features as a list of GeoJSON strings."""

    hash_key: str
    range_key: str | None = None
    tile_id: str | None = None
    features: list[str] | None = field(default=None)
    expire_time: int | None = None


def convert_decimal(data: Any) -> Any:
    """Convert Decimals to int or float, as the classic ``DDBHelper.convert_decimal`` (sets are left as they are).

    :param data: Any = what boto3's resource returned
    :return: Any = the same structure with native numbers
    """
    if isinstance(data, list):
        return [convert_decimal(value) for value in data]
    if isinstance(data, dict):
        return {key: convert_decimal(value) for key, value in data.items()}
    if isinstance(data, Decimal):
        return int(data) if data % 1 == 0 else float(data)
    return data


def classic_from_dict(data_class: type[T], data: Mapping[str, Any]) -> T:
    """Build a classic dataclass from an item, as the classic code does (``dacite.from_dict``, types checked).

    :param data_class: Type[T] = one of the classic dataclasses above
    :param data: Mapping[str, Any] = the item, Decimals already converted
    :return: T = the dataclass
    :raises dacite.DaciteError: when a field has the wrong type or a required one is missing
    """
    from dacite import from_dict

    return from_dict(data_class, dict(data))


def classic_session(region: str = "us-east-1") -> Any:
    """Return a boto3 session whose DynamoDB clients parse responses as the classic helper's patched parser does.

    :param region: str = the AWS region
    :return: boto3.Session = the session (only its clients are affected)
    """
    import boto3
    import botocore.session
    from botocore.parsers import PROTOCOL_PARSERS, ResponseParserFactory

    json_parser: Any = PROTOCOL_PARSERS["json"]

    class UnshapedJSONParser(json_parser):
        """The classic patch: the body is parsed as plain JSON, without the shape (blobs stay base64 text)."""

        def _handle_json_body(self, raw_body: bytes, shape: Any) -> Any:
            return self._parse_body_as_json(raw_body)

    class ClassicParserFactory(ResponseParserFactory):
        def create_parser(self, protocol_name: str) -> Any:
            if protocol_name == "json":
                return UnshapedJSONParser(**self._defaults)
            return super().create_parser(protocol_name)

    core = botocore.session.Session()
    core.register_component("response_parser_factory", ClassicParserFactory())
    return boto3.Session(botocore_session=core, region_name=region)


class ClassicReader:
    """Reads the tables as a classic worker does: boto3 resource with the classic parser, then the classic dataclasses.

    :param endpoint_url: Optional[str] = the DynamoDB endpoint (DynamoDB Local); None for AWS
    :param region: str = the AWS region
    :param credentials: Optional[Mapping[str, str]] = aws_access_key_id / aws_secret_access_key for the resource
    """

    def __init__(
        self, endpoint_url: str | None = None, region: str = "us-east-1", credentials: Mapping[str, str] | None = None
    ) -> None:
        self.session = classic_session(region)
        self.resource = self.session.resource("dynamodb", endpoint_url=endpoint_url, **dict(credentials or {}))

    def get_item(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """Read one item as the classic ``DDBHelper.get_ddb_item`` does (get_item, then Decimals converted).

        :param table_name: str = the table
        :param key: Mapping[str, Any] = the item's key
        :return: Optional[Dict[str, Any]] = the item, or None when there is none
        :raises TypeError: when the item holds a binary attribute (the classic parser leaves it base64 text)
        """
        response = self.resource.Table(table_name).get_item(Key=dict(key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else dict(convert_decimal(item))

    def query(self, table_name: str, hash_key: str, hash_value: str) -> list[dict[str, Any]]:
        """Read every item of a hash key as the classic ``DDBHelper.query_items`` does (all pages, consistent).

        :param table_name: str = the table
        :param hash_key: str = the hash key's name
        :param hash_value: str = its value
        :return: List[Dict[str, Any]] = the items, Decimals converted
        :raises TypeError: when an item holds a binary attribute
        """
        from boto3.dynamodb.conditions import Key

        table = self.resource.Table(table_name)
        arguments: dict[str, Any] = {"ConsistentRead": True, "KeyConditionExpression": Key(hash_key).eq(hash_value)}
        items: list[dict[str, Any]] = []
        while True:
            response = table.query(**arguments)
            items.extend(convert_decimal(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_image_request(self, table_name: str, image_id: str) -> ClassicJobItem:
        """Read a job as the classic ``JobTable.get_image_request`` does.

        :param table_name: str = the job table
        :param image_id: str = the job's image id
        :return: ClassicJobItem = the job
        :raises Exception: what the classic code would wrap in GetImageRequestItemException (TypeError for a binary
            attribute, KeyError for a missing job, a dacite error for a field of the wrong type)
        """
        item = self.get_item(table_name, {"image_id": image_id})
        if item is None:
            raise KeyError("Item")
        return classic_from_dict(ClassicJobItem, item)

    def get_region_request(self, table_name: str, region_id: str, image_id: str) -> ClassicRegionRequestItem:
        """Read a region as the classic ``RegionRequestTable.get_region_request`` does.

        :param table_name: str = the region table
        :param region_id: str = the region id
        :param image_id: str = the image id
        :return: ClassicRegionRequestItem = the region
        :raises Exception: what the classic code would log before returning None
        """
        item = self.get_item(table_name, {"image_id": image_id, "region_id": region_id})
        if item is None:
            raise KeyError("Item")
        return classic_from_dict(ClassicRegionRequestItem, item)

    def current_in_progress_regions(self, table_name: str, endpoint: str) -> int:
        """Read an endpoint's count as the classic ``EndpointStatisticsTable.current_in_progress_regions`` does.

        :param table_name: str = the endpoint statistics table
        :param endpoint: str = the endpoint name
        :return: int = regions in progress
        :raises Exception: what the classic code would raise (KeyError for an endpoint never seen)
        """
        item = self.get_item(table_name, {"endpoint": endpoint})
        if item is None:
            raise KeyError("Item")
        return int(classic_from_dict(ClassicEndpointStatisticsItem, item).regions_in_progress)

    def get_features(self, table_name: str, image_id: str, hash_salt: int = 50) -> list[dict[str, Any]]:
        """Aggregate the features of an image as the classic ``FeatureTable.get_features`` does.

        Each shard ``image_id-1`` .. ``image_id-hash_salt`` is queried, each item becomes a ClassicFeatureItem, and
        each string of its ``features`` is parsed as GeoJSON; an item without ``features`` is skipped (the classic
        code logs a warning), so features stored in any other layout are not seen.

        :param table_name: str = the feature table
        :param image_id: str = the image id
        :param hash_salt: int = the number of shards
        :return: List[Dict[str, Any]] = the features
        :raises Exception: what the classic code would raise (TypeError for a binary attribute, a dacite error for a
            field of the wrong type)
        """
        import json

        def shard(index: int) -> list[ClassicFeatureItem]:
            rows = self.query(table_name, "hash_key", f"{image_id}-{index}")
            return [classic_from_dict(ClassicFeatureItem, row) for row in rows]

        features: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=10) as pool:
            for items in pool.map(shard, range(1, hash_salt + 1)):
                for item in items:
                    for text in item.features or []:
                        features.append(json.loads(text))
        return features
