"""The classic layout, the baseline of the feature path: one GeoJSON string per feature, random keys.

What the classic boto3 implementation of the feature table wrote and read, rebuilt here with a raw botocore client
(it is a baseline, not a product path):

* features are grouped by tile key (the classic formula), every feature becomes ``geojson.dumps(feature)``, and a
  group is cut into items of about 200,000 bytes of strings;
* an item's hash key is ``image_id + "-" + random shard in 1..50``, its range key 16 random bytes in hex, with the tile
  id and an expiry time; items are written with BatchWriteItem, 25 a request, unprocessed items sent again;
* aggregation queries the 50 shards from 5 threads (strongly consistent, every page) and parses each string with
  ``geojson.loads``.

The raw client skips the boto3 resource layer (type serializer and deserializer) the classic code went through, so
this baseline is faster than the real classic implementation: ratios against it understate our gain.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geojson

from model_runner.common.feature_utils import get_feature_image_bounds
from model_runner.common.typing import ImageDimensions

#: Shards of an image's features.
HASH_SALT = 50
#: Bytes of GeoJSON strings after which the classic code closed an item.
MAX_ITEM_BYTES = 200_000
#: Threads the classic aggregation queried shards with.
QUERY_THREADS = 5
#: Items in one BatchWriteItem request.
BATCH_SIZE = 25


def classic_tile_key(feature: Mapping[str, Any], tile_size: ImageDimensions, overlap: ImageDimensions) -> str:
    """Return the classic tile key of a feature: ``<image_id>-region-<minx>:<maxx>:<miny>:<maxy>`` tile indexes.

    :param feature: Mapping[str, Any] = the feature, with ``properties.image_id`` and pixel bounds
    :param tile_size: ImageDimensions = tile (width, height)
    :param overlap: ImageDimensions = tile overlap (width, height)
    :return: str = the tile key
    """
    bounds = get_feature_image_bounds(feature)
    if bounds is None:
        raise ValueError(f"feature {feature.get('id')!r} has no image geometry")
    minx, miny, maxx, maxy = bounds
    stride_x, stride_y = tile_size[0] - overlap[0], tile_size[1] - overlap[1]
    min_x_index, min_y_index = int(minx / stride_x), int(miny / stride_y)
    if int(minx) % stride_x < overlap[0] and min_x_index > 0:
        min_x_index -= 1
    if int(miny) % stride_y < overlap[1] and min_y_index > 0:
        min_y_index -= 1
    image_id = feature["properties"]["image_id"]
    return f"{image_id}-region-{min_x_index}:{int(maxx / stride_x)}:{min_y_index}:{int(maxy / stride_y)}"


class ClassicFeatureStore:
    """Writes and reads features in the classic layout through a raw botocore client.

    :param client: Any = the botocore DynamoDB client
    :param table_name: str = a table with the feature table's key schema (hash_key, range_key)
    :param tile_size: ImageDimensions = tile (width, height)
    :param overlap: ImageDimensions = tile overlap (width, height)
    :param seed: int = seed of the random shards and range keys, for a reproducible layout
    """

    def __init__(
        self, client: Any, table_name: str, tile_size: ImageDimensions, overlap: ImageDimensions, seed: int = 7
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.tile_size = tile_size
        self.overlap = overlap
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _random_key(self) -> tuple[int, str]:
        with self._rng_lock:
            return self._rng.randint(1, HASH_SALT), f"{self._rng.getrandbits(128):032x}"

    def items_for(self, features: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Return the DynamoDB items the classic code wrote for features.

        :param features: Iterable[Mapping[str, Any]] = the features of one tile
        :return: List[Dict[str, Any]] = items as DynamoDB attribute values
        """
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for feature in features:
            groups.setdefault(classic_tile_key(feature, self.tile_size, self.overlap), []).append(feature)
        expire_time = str(int(time.time()) + 2 * 3600)
        items: list[dict[str, Any]] = []
        for key, grouped in groups.items():
            image_id, tile_id = key.split("-region-", 1)
            encoded: list[str] = []
            length = 0
            for position, feature in enumerate(grouped, start=1):
                text = geojson.dumps(feature)
                encoded.append(text)
                length += len(text)
                if length > MAX_ITEM_BYTES or position == len(grouped):
                    shard, range_key = self._random_key()
                    items.append(
                        {
                            "hash_key": {"S": f"{image_id}-{shard}"},
                            "range_key": {"S": range_key},
                            "tile_id": {"S": tile_id},
                            "features": {"L": [{"S": value} for value in encoded]},
                            "expire_time": {"N": expire_time},
                        }
                    )
                    encoded, length = [], 0
        return items

    def add_features(self, features: Sequence[Mapping[str, Any]]) -> int:
        """Write the features of one tile, as the classic ``add_features`` did.

        :param features: Sequence[Mapping[str, Any]] = the features
        :return: int = items written
        """
        items = self.items_for(features)
        for start in range(0, len(items), BATCH_SIZE):
            self._batch_write([{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_SIZE]])
        return len(items)

    def _batch_write(self, requests: list[dict[str, Any]], max_retries: int = 500, max_delay: float = 8.0) -> None:
        pending = requests
        for retry in range(max_retries + 1):
            response = self.client.batch_write_item(RequestItems={self.table_name: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not pending:
                return
            time.sleep(random.uniform(0, min(max_delay, 0.125 * 2**retry)))
        raise RuntimeError(f"classic batch write left {len(pending)} items unprocessed")

    def _query_shard(self, image_id: str, shard: int) -> list[geojson.Feature]:
        features: list[geojson.Feature] = []
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "ConsistentRead": True,
            "KeyConditionExpression": "hash_key = :h",
            "ExpressionAttributeValues": {":h": {"S": f"{image_id}-{shard}"}},
        }
        while True:
            response = self.client.query(**params)
            for item in response.get("Items", []):
                for value in item.get("features", {}).get("L", []):
                    features.append(geojson.loads(value["S"]))
            last = response.get("LastEvaluatedKey")
            if not last:
                return features
            params["ExclusiveStartKey"] = last

    def get_features(self, image_id: str) -> list[geojson.Feature]:
        """Read back every feature of an image, as the classic ``get_features`` did.

        :param image_id: str = the image
        :return: List[geojson.Feature] = the features
        """
        features: list[geojson.Feature] = []
        with ThreadPoolExecutor(max_workers=QUERY_THREADS) as executor:
            for shard_features in executor.map(
                lambda shard: self._query_shard(image_id, shard), range(1, HASH_SALT + 1)
            ):
                features.extend(shard_features)
        return features
