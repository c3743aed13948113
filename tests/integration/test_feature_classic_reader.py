"""What this package writes to the feature table, read by a classic worker, in both write formats.

The reader (:mod:`model_runner.testing.classic_reader`) parses responses as the classic helper does after it replaced
botocore's JSON parser (binary values stay base64 text) and converts items to the classic FeatureItem dataclass with
dacite. Each test shows, item by item, what a classic worker can read: every item written with
``FEATURE_WRITE_FORMAT=classic``, none written in ``compact``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from model_runner.database import FeatureTable
from model_runner.testing.classic_reader import ClassicFeatureItem, ClassicReader, classic_from_dict

pytestmark = pytest.mark.integration

TILE = ((0, 0), (512, 512))


@pytest.fixture
def reader(dynamodb_local_endpoint: str) -> Iterator[ClassicReader]:
    yield ClassicReader(dynamodb_local_endpoint)


def _writer(table: FeatureTable, endpoint: str, write_format: str) -> FeatureTable:
    return FeatureTable(table.table_name, (512, 512), (32, 32), host=endpoint, write_format=write_format)


def _features(image_id: str, count: int, prefix: str = "f") -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "id": f"{prefix}-{n}",
            "geometry": {"type": "Point", "coordinates": [-77.0 + n * 1e-5, 38.0]},
            "properties": {"image_id": image_id, "bounds_imcoords": [n * 9 % 500, 7, n * 9 % 500 + 20, 30], "s": 0.5},
        }
        for n in range(count)
    ]


def _item_by_item(reader: ClassicReader, table: FeatureTable) -> dict[str, str]:
    """Read every stored item as a classic worker does; range key -> "read N features" or the error it raises."""
    keys = [
        {"hash_key": item["hash_key"]["S"], "range_key": item["range_key"]["S"]}
        for page in table.client.get_paginator("scan").paginate(TableName=table.table_name)
        for item in page["Items"]
    ]
    outcome: dict[str, str] = {}
    for key in keys:
        try:
            raw = reader.get_item(table.table_name, key)
            assert raw is not None
            item = classic_from_dict(ClassicFeatureItem, raw)
            outcome[key["range_key"]] = f"read {len([json.loads(text) for text in item.features or []])} features"
        except Exception as err:  # what the classic worker would raise
            outcome[key["range_key"]] = f"cannot read: {type(err).__name__}"
    print("\n".join(f"{key}: {result}" for key, result in sorted(outcome.items())))
    return outcome


def test_a_classic_worker_reads_every_item_of_the_classic_write_format(
    reader: ClassicReader, feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    writer = _writer(feature_table, dynamodb_local_endpoint, "classic")
    tiled, plain = _features("img-c", 30, "tile"), _features("img-c", 5, "plain")
    writer.add_features(tiled, source_tile=TILE)
    writer.add_features(plain)

    outcome = _item_by_item(reader, feature_table)
    assert outcome and all(result.startswith("read ") for result in outcome.values())
    assert sum(int(result.split()[1]) for result in outcome.values()) == 35

    read = reader.get_features(feature_table.table_name, "img-c")
    assert Counter(feature["id"] for feature in read) == Counter(f["id"] for f in [*tiled, *plain])
    assert sorted(read, key=lambda f: f["id"]) == sorted([*tiled, *plain], key=lambda f: f["id"])
    assert len(writer.get_features("img-c")) == len(feature_table.get_features("img-c")) == 35


def test_a_classic_worker_cannot_read_the_compact_write_format(
    reader: ClassicReader, feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    writer = _writer(feature_table, dynamodb_local_endpoint, "compact")
    writer.add_features(_features("img-z", 30), source_tile=TILE)
    writer.add_features(_features("img-z", 5, "plain"))

    outcome = _item_by_item(reader, feature_table)
    assert outcome and all(result == "cannot read: TypeError" for result in outcome.values())
    with pytest.raises(TypeError, match="bytes"):
        reader.get_features(feature_table.table_name, "img-z")


def test_during_an_upgrade_a_classic_worker_reads_a_retried_tile_once_per_write(
    reader: ClassicReader, feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    """The documented window guarantee: this package reads each tile once (its last complete write); a classic
    worker reads every write of it (at least once), and every feature of an identical retry without a tile once."""
    writer = _writer(feature_table, dynamodb_local_endpoint, "classic")
    first, second = _features("img-w", 10, "first"), _features("img-w", 8, "second")
    writer.add_features(first, source_tile=TILE)
    writer.add_features(second, source_tile=TILE)  # a rerun tile with other detections
    plain = _features("img-w", 4, "plain")
    writer.add_features(plain)
    writer.add_features(plain)  # an identical retry without a tile: the same items

    ours = Counter(feature["id"] for feature in writer.get_features("img-w"))
    assert ours == Counter(f["id"] for f in [*second, *plain])
    classic = Counter(feature["id"] for feature in reader.get_features(feature_table.table_name, "img-w"))
    assert classic == Counter(f["id"] for f in [*first, *second, *plain])
