"""FeatureTable on DynamoDB Local: round trip, item size, exactly-once writes per tile, bad input, the classic layout,
streaming aggregation and metrics."""

from __future__ import annotations

import base64
import gc
import io
import json
import random
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geojson
import pytest
from aws_embedded_metrics.logger.metrics_context import MetricsContext
from aws_embedded_metrics.logger.metrics_logger import MetricsLogger

from model_runner.common import ImageRegion
from model_runner.database import (
    AddFeaturesException,
    ConfigurationError,
    FeatureTable,
    GetFeaturesException,
    JobItem,
)

pytestmark = pytest.mark.integration

DYNAMODB_ITEM_LIMIT = 400 * 1024
LABELS = ["vehicle", "Straße", "車両", "bâtiment", "🚢 ship", "plain"]


# -- data ----------------------------------------------------------------------------------------------------------


def detection(image_id: str, tile: ImageRegion, number: int, rng: random.Random) -> geojson.Feature:
    """A detection as a model returns it: pixel bounds and polygon, a world polygon, types, score."""
    (row, col), (width, height) = tile
    w, h = rng.uniform(3, 40), rng.uniform(3, 40)
    x, y = col + rng.uniform(0, width - w), row + rng.uniform(0, height - h)
    lon, lat = -77.0 + x * 1e-6, 38.0 - y * 1e-6
    ring = [[lon, lat], [lon + w * 1e-6, lat], [lon + w * 1e-6, lat - h * 1e-6], [lon, lat - h * 1e-6], [lon, lat]]
    label = LABELS[number % len(LABELS)]
    return geojson.Feature(
        id=f"{image_id}:{row}:{col}:{number}",
        geometry=geojson.Polygon([ring]),
        properties={
            "image_id": image_id,
            "bounds_imcoords": [x, y, x + w, y + h],
            "geom_imcoords": [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]],
            "feature_types": {label: round(rng.random(), 6)},
            "detection_score": rng.random(),
            "label": label,
        },
    )


def tiles(count: int, size: int = 512, stride: int = 480) -> list[ImageRegion]:
    """``count`` tiles of a grid, as the model runner cuts an image (row-major)."""
    per_row = int(count**0.5) + 1
    return [((stride * (i // per_row), stride * (i % per_row)), (size, size)) for i in range(count)]


def box_feature(image_id: str, feature_id: str, bounds: list[float], **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": feature_id,
        "geometry": None,
        "properties": {"image_id": image_id, "bounds_imcoords": bounds, **properties},
    }


def random_text(size: int, rng: random.Random) -> str:
    """Text that zstd cannot compress much (base64 of random bytes)."""
    return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()


def by_id(features: list[Any]) -> dict[str, Any]:
    ids = [str(feature["id"]) for feature in features]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"features read more than once: {duplicates[:5]}"
    return {str(feature["id"]): feature for feature in features}


# -- raw access to the table ---------------------------------------------------------------------------------------


def scan(table: FeatureTable) -> list[dict[str, Any]]:
    """Every stored item as DynamoDB returns it (raw attribute values)."""
    items: list[dict[str, Any]] = []
    for page in table.client.get_paginator("scan").paginate(TableName=table.table_name, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def stored_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: UTF-8 names, UTF-8 strings, raw binary, numbers rounded up."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8"))
        ((kind, data),) = value.items()
        if kind == "S":
            size += len(data.encode("utf-8"))
        elif kind == "B":
            size += len(data)
        elif kind == "N":
            size += len(data) // 2 + 2
        elif kind == "L":
            size += 3 + sum(1 + len(element["S"].encode("utf-8")) for element in data)
        else:
            raise AssertionError(f"unexpected attribute type {kind} in {name}")
    return size


def put_classic(table: FeatureTable, image_id: str, shard: int, range_key: str, features: list[Any]) -> None:
    """Store an item the way the classic implementation did: a list of GeoJSON strings in ``features``."""
    table.client.put_item(
        TableName=table.table_name,
        Item={
            "hash_key": {"S": f"{image_id}-{shard}"},
            "range_key": {"S": range_key},
            "features": {"L": [{"S": geojson.dumps(feature)} for feature in features]},
        },
    )


class NullSink:
    """A binary file that counts what it is given and keeps nothing."""

    mode = "wb"

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)


# -- round trip ----------------------------------------------------------------------------------------------------


def test_round_trip_of_20000_detections_from_many_tiles_and_threads(feature_table: FeatureTable) -> None:
    rng = random.Random(7)
    image_id = f"job-{uuid.uuid4().hex[:6]}:s3://bucket/images/scène.ntf"
    grid = tiles(1000)
    per_tile = {tile: [detection(image_id, tile, n, rng) for n in range(20)] for tile in grid}
    written = by_id([feature for features in per_tile.values() for feature in features])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda tile: feature_table.add_features(per_tile[tile], source_tile=tile), grid))

    features = feature_table.get_features(image_id)
    assert len(features) == 20_000
    assert by_id(features) == written
    assert all(isinstance(feature, geojson.Feature) for feature in features)
    assert isinstance(features[0]["geometry"], geojson.Polygon)

    shards = {item["hash_key"]["S"].rsplit("-", 1)[1] for item in scan(feature_table)}
    assert shards == {str(shard) for shard in range(1, 51)}

    assert by_id(list(feature_table.iter_features(image_id))) == written
    out = io.StringIO()
    assert feature_table.write_feature_collection(image_id, out) == 20_000
    collection = json.loads(out.getvalue())
    assert collection["type"] == "FeatureCollection"
    assert by_id(collection["features"]) == written
    assert by_id(feature_table.aggregate_features(JobItem(image_id=image_id))) == written


def test_features_of_other_images_are_not_read(feature_table: FeatureTable) -> None:
    feature_table.add_features([box_feature("image-a", "a1", [1, 1, 5, 5])], source_tile=((0, 0), (512, 512)))
    feature_table.add_features([box_feature("image-ab", "b1", [1, 1, 5, 5])])

    assert [f["id"] for f in feature_table.get_features("image-a")] == ["a1"]
    assert [f["id"] for f in feature_table.get_features("image-ab")] == ["b1"]
    assert feature_table.get_features("image-none") == []


def test_values_come_back_exactly_as_written(feature_table: FeatureTable) -> None:
    feature = box_feature(
        "img-exact",
        "exact",
        [0.123456789, 1, 2.5, 3],
        big=2**62,
        tiny=1e-300,
        nested={"list": [None, True, "ünï©ødé \n newline", {"k": []}]},
        empty="",
    )
    feature["geometry"] = {"type": "Point", "coordinates": [12.123456789, -45.987654321]}
    feature_table.add_features([feature], source_tile=((0, 0), (512, 512)))

    [read] = feature_table.get_features("img-exact")
    assert read == feature
    assert read["geometry"]["coordinates"] == [12.123456789, -45.987654321]  # geojson would round to 6 decimals


def test_features_expire_with_the_table_expiry(dynamodb_local_endpoint: str, feature_table: FeatureTable) -> None:
    import time

    feature_table.add_features([box_feature("img-ttl", "t1", [1, 1, 2, 2])], source_tile=((0, 0), (512, 512)))
    feature_table.add_features([box_feature("img-ttl", "t2", [1, 1, 2, 2])])
    items = scan(feature_table)
    assert len(items) == 2
    for item in items:
        assert abs(int(item["expire_time"]["N"]) - (time.time() + 7 * 24 * 3600)) < 120

    longer = FeatureTable(feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, expire_days=30)
    longer.add_features([box_feature("img-ttl-30", "t3", [1, 1, 2, 2])])
    [item] = [item for item in scan(feature_table) if item["hash_key"]["S"].startswith("img-ttl-30-")]
    assert abs(int(item["expire_time"]["N"]) - (time.time() + 30 * 24 * 3600)) < 120


# -- item size -----------------------------------------------------------------------------------------------------


def test_a_key_group_over_the_item_limit_is_split_and_no_item_exceeds_400_kb(feature_table: FeatureTable) -> None:
    rng = random.Random(3)
    # 12 features of 60 KB of base64 text (6 bits of entropy a byte) in one key group: ~540 KB stored, 2+ items
    features = [box_feature("img-big", f"big-{i}", [10, 10, 20, 20], blob=random_text(60_000, rng)) for i in range(12)]
    feature_table.add_features(features, source_tile=((0, 0), (512, 512)))
    plain = [box_feature("img-big", f"plain-{i}", [10, 10, 20, 20], blob=random_text(60_000, rng)) for i in range(12)]
    feature_table.add_features(plain)

    items = scan(feature_table)
    assert len(items) >= 4
    sizes = [stored_size(item) for item in items]
    assert max(sizes) <= DYNAMODB_ITEM_LIMIT
    assert sum(sizes) > 2 * 12 * 60_000 * 0.74  # the features really are stored (not dropped or truncated)
    assert by_id(feature_table.get_features("img-big")) == by_id(features + plain)


def test_a_single_feature_over_the_limit_is_refused_and_nothing_of_the_call_is_written(
    feature_table: FeatureTable,
) -> None:
    rng = random.Random(5)
    good = [box_feature("img-huge", f"ok-{i}", [1, 1, 2, 2]) for i in range(50)]
    huge = box_feature("img-huge", "too-big", [600, 600, 700, 700], blob=random_text(600_000, rng))

    for source_tile in (((0, 0), (512, 512)), None):
        with pytest.raises(AddFeaturesException) as raised:
            feature_table.add_features([*good, huge], source_tile=source_tile)
        assert "too-big" in str(raised.value)
        assert isinstance(raised.value.__cause__, ValueError)
    assert scan(feature_table) == []


def test_a_large_feature_that_compresses_well_is_stored(feature_table: FeatureTable) -> None:
    feature = box_feature("img-text", "long", [1, 1, 2, 2], report="all quiet on the western front. " * 40_000)
    feature_table.add_features([feature], source_tile=((0, 0), (512, 512)))

    [item] = scan(feature_table)
    assert stored_size(item) < 100_000  # 1.3 MB of JSON, stored compressed
    assert feature_table.get_features("img-text") == [feature]


# -- exactly once --------------------------------------------------------------------------------------------------


def test_the_same_tile_written_twice_is_read_once(feature_table: FeatureTable) -> None:
    rng = random.Random(11)
    tile: ImageRegion = ((480, 960), (512, 512))
    features = [detection("img-retry", tile, n, rng) for n in range(300)]
    feature_table.add_features(features, source_tile=tile)
    first = scan(feature_table)
    assert len(first) == 1  # one call, one item

    # the retry produces the same detections in another order, as fresh dicts with another key order
    retried = [dict(reversed(list(json.loads(json.dumps(f)).items()))) for f in reversed(features)]
    feature_table.add_features(retried, source_tile=[[480, 960], [512, 512]])  # type: ignore[arg-type]

    stored = scan(feature_table)
    assert len(stored) == 2  # a write of its own (never a part of another write), the same payload
    assert {item["p"]["B"] for item in stored} == {first[0]["p"]["B"]}
    assert by_id(feature_table.get_features("img-retry")) == by_id(features)


def test_a_retry_cut_off_half_way_leaves_the_earlier_write_in_force(feature_table: FeatureTable) -> None:
    """A tile is never lost: a retry (other features, another split) that dies between its items is ignored."""
    rng = random.Random(37)
    tile: ImageRegion = ((0, 0), (512, 512))
    first = [box_feature("img-keep", f"a-{i}", [5, 5, 9, 9], blob=random_text(100_000, rng)) for i in range(6)]
    feature_table.add_features(first, source_tile=tile)
    before = {item["range_key"]["S"] for item in scan(feature_table)}
    second = [box_feature("img-keep", f"b-{i}", [5, 5, 9, 9], blob=random_text(90_000, rng)) for i in range(15)]
    feature_table.add_features(second, source_tile=tile)
    retry = [item for item in scan(feature_table) if item["range_key"]["S"] not in before]
    assert len(retry) >= 2 and len(before) >= 2 and len(retry) != len(before)

    lost = retry[0]  # as if the worker had died before sending this item of the retry
    feature_table.client.delete_item(
        TableName=feature_table.table_name, Key={"hash_key": lost["hash_key"], "range_key": lost["range_key"]}
    )
    assert by_id(feature_table.get_features("img-keep")).keys() == {f"a-{i}" for i in range(6)}


def test_two_tiles_sharing_a_key_group_are_both_kept(feature_table: FeatureTable) -> None:
    left: ImageRegion = ((0, 0), (512, 512))
    right: ImageRegion = ((0, 480), (512, 512))
    # both detections lie in the overlap of the two tiles: the same tile key
    from_left = box_feature("img-shared", "from-left", [490, 100, 505, 120])
    from_right = box_feature("img-shared", "from-right", [490, 100, 505, 120])
    assert feature_table.generate_tile_key(from_left) == feature_table.generate_tile_key(from_right)

    feature_table.add_features([from_left], source_tile=left)
    feature_table.add_features([from_right], source_tile=right)
    feature_table.add_features([from_left], source_tile=left)  # a retry of the left tile

    assert sorted(f["id"] for f in feature_table.get_features("img-shared")) == ["from-left", "from-right"]


def test_a_retry_with_other_and_fewer_features_replaces_the_first_write_entirely(feature_table: FeatureTable) -> None:
    rng = random.Random(13)
    tile: ImageRegion = ((0, 0), (512, 512))
    first = [box_feature("img-redo", f"first-{i}", [5, 5, 9, 9], blob=random_text(100_000, rng)) for i in range(8)]
    first.append(box_feature("img-redo", "first-far", [300, 300, 310, 310]))
    other_tile = [box_feature("img-redo", "other", [5, 5, 9, 9])]
    feature_table.add_features(first, source_tile=tile)
    feature_table.add_features(other_tile, source_tile=((0, 480), (512, 512)))
    assert len(scan(feature_table)) >= 4  # the first write needed several items

    second = [box_feature("img-redo", "second-0", [6, 6, 8, 8])]
    feature_table.add_features(second, source_tile=tile)

    assert sorted(f["id"] for f in feature_table.get_features("img-redo")) == ["other", "second-0"]
    assert sorted(f["id"] for f in feature_table.iter_features("img-redo")) == ["other", "second-0"]


def test_a_write_cut_off_half_way_is_not_seen_until_it_is_repeated(feature_table: FeatureTable) -> None:
    rng = random.Random(17)
    tile: ImageRegion = ((0, 0), (512, 512))
    features = [box_feature("img-cut", f"f-{i}", [5, 5, 9, 9], blob=random_text(100_000, rng)) for i in range(8)]
    feature_table.add_features([box_feature("img-cut", "other", [5, 5, 9, 9])], source_tile=((0, 480), (512, 512)))
    feature_table.add_features(features, source_tile=tile)
    items = [item for item in scan(feature_table) if item["range_key"]["S"].startswith("r0c0w512h512#")]
    assert len(items) >= 2

    # lose one item of the write, as if the batch writer had died before sending it
    lost = items[1]
    feature_table.client.delete_item(
        TableName=feature_table.table_name, Key={"hash_key": lost["hash_key"], "range_key": lost["range_key"]}
    )
    assert [f["id"] for f in feature_table.get_features("img-cut")] == ["other"]

    feature_table.add_features(features, source_tile=tile)
    assert by_id(feature_table.get_features("img-cut")).keys() == {"other", *(f"f-{i}" for i in range(8))}


def test_without_a_source_tile_an_identical_retry_overwrites_and_other_features_add(
    feature_table: FeatureTable,
) -> None:
    features = [box_feature("img-plain", f"p-{i}", [i * 50, 10, i * 50 + 20, 30]) for i in range(40)]
    feature_table.add_features(features)
    count = len(scan(feature_table))
    feature_table.add_features(list(reversed(features)))
    assert len(scan(feature_table)) == count
    assert len(feature_table.get_features("img-plain")) == 40

    changed = {**features[0], "properties": {**features[0]["properties"], "detection_score": 0.5}}
    feature_table.add_features([changed])  # at least once: a different feature is another feature
    assert len(feature_table.get_features("img-plain")) == 41


# -- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "cause"),
    [
        ({"type": "Feature", "id": "bad", "geometry": None, "properties": {"image_id": "img-bad"}}, ValueError),
        (box_feature("img-bad", "bad", [5, 5, 1, 1]), ValueError),
        (box_feature("img-bad", "bad", [1, 1, 2, float("nan")]), ValueError),
        (box_feature("img-bad", "bad", [1, 1, 2, 2], score=float("inf")), ValueError),
        (box_feature("img-bad", "bad", [1, 1, 2, 2], deep={"a": [1.0, float("-inf")]}), ValueError),
        (box_feature("img-bad", "bad", [1, 1, 2, 2], when=object()), TypeError),
        (box_feature("img-bad", "bad", [1, 1, 2, 2], keys={1: "x"}), TypeError),
        ({"type": "Feature", "id": "bad", "properties": {"bounds_imcoords": [1, 1, 2, 2]}}, ValueError),
    ],
    ids=["no-geometry", "min-over-max", "nan-bounds", "inf-property", "nested-inf", "object", "int-key", "no-image-id"],
)
def test_bad_input_is_refused_before_anything_is_written(
    feature_table: FeatureTable, bad: dict[str, Any], cause: type[Exception]
) -> None:
    good = [box_feature("img-bad", f"good-{i}", [i, i, i + 5, i + 5]) for i in range(30)]
    for source_tile in (((0, 0), (512, 512)), None):
        with pytest.raises(AddFeaturesException) as raised:
            feature_table.add_features([*good, bad, *good[:3]], source_tile=source_tile)
        assert isinstance(raised.value.__cause__, cause)
        assert "'bad'" in str(raised.value) and "feature': 30" in str(raised.value)
    assert scan(feature_table) == []


def test_a_malformed_source_tile_is_refused(feature_table: FeatureTable) -> None:
    for tile in ((0, 0), ((0, -1), (512, 512)), ((0, 0.5), (512, 512)), "tile"):
        with pytest.raises(AddFeaturesException):
            feature_table.add_features([box_feature("img-x", "x", [1, 1, 2, 2])], source_tile=tile)  # type: ignore[arg-type]
    assert scan(feature_table) == []


def test_an_empty_call_sends_nothing(feature_table: FeatureTable) -> None:
    feature_table.add_features([], source_tile=((0, 0), (512, 512)))
    feature_table.add_features([])
    assert scan(feature_table) == []


# -- the classic layout --------------------------------------------------------------------------------------------


def test_items_in_the_classic_layout_are_read(feature_table: FeatureTable) -> None:
    classic = [box_feature("img-old", f"old-{i}", [i, i, i + 3, i + 3], note="für") for i in range(30)]
    put_classic(feature_table, "img-old", 3, "img-old-region-0:0:0:0-1f0e", classic[:20])
    put_classic(feature_table, "img-old", 47, "img-old-region-0:0:0:0-77ab", classic[20:])
    new = [box_feature("img-old", "new-1", [1, 1, 2, 2])]
    feature_table.add_features(new, source_tile=((0, 0), (512, 512)))

    expected = by_id(classic + new)
    assert by_id(feature_table.get_features("img-old")) == expected
    assert by_id(list(feature_table.iter_features("img-old"))) == expected
    out = io.BytesIO()
    assert feature_table.write_feature_collection("img-old", out) == 31
    assert by_id(json.loads(out.getvalue())["features"]) == expected


def put_previous_layout(table: FeatureTable, image_id: str, features: list[Any], source: str | None) -> None:
    """Store items as the previous layout of this package did (one item per tile key span, ``g``/``m``/``t``)."""
    from model_runner.database import feature_codec as codec

    payload = codec.compress(sorted(codec.encode_feature(feature) for feature in features))
    if source is None:
        item = {"hash_key": {"S": f"{image_id}-7"}, "range_key": {"S": "0:0:0:0#5e1f0c#0"}}
    else:
        item = {
            "hash_key": {"S": f"{image_id}-9"},
            "range_key": {"S": f"{source}#9a8b7c#0:0:0:0#0"},
            "s": {"S": source},
            "g": {"S": "9a8b7c"},
            "m": {"N": "1"},
            "t": {"N": "1700000000000"},
        }
    table.client.put_item(
        TableName=table.table_name, Item={**item, "p": {"B": payload}, "n": {"N": str(len(features))}}
    )


def test_every_layout_is_read_mixed_in_one_image(dynamodb_local_endpoint: str, feature_table: FeatureTable) -> None:
    image = "img-mixed"
    made = {name: [box_feature(image, f"{name}-{i}", [i, i, i + 3, i + 3]) for i in range(4)] for name in
            ("classic", "previous-tile", "previous-plain", "compact-tile", "compact-plain", "classic-tile",
             "classic-plain")}  # fmt: skip
    put_classic(feature_table, image, 3, "img-mixed-region-0:0:0:0-1f0e", made["classic"])
    put_previous_layout(feature_table, image, made["previous-tile"], "r0c480w512h512")
    put_previous_layout(feature_table, image, made["previous-plain"], None)
    feature_table.add_features(made["compact-tile"], source_tile=((0, 0), (512, 512)))
    feature_table.add_features(made["compact-plain"])
    classic_writer = FeatureTable(
        feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, write_format="classic"
    )
    classic_writer.add_features(made["classic-tile"], source_tile=((480, 0), (512, 512)))
    classic_writer.add_features(made["classic-plain"])

    expected = by_id([feature for features in made.values() for feature in features])
    assert by_id(feature_table.get_features(image)) == expected
    assert by_id(classic_writer.get_features(image)) == expected
    assert by_id(list(feature_table.iter_features(image))) == expected
    out = io.StringIO()
    assert feature_table.write_feature_collection(image, out) == len(expected)
    assert by_id(json.loads(out.getvalue())["features"]) == expected


def test_the_classic_write_format_writes_lists_of_geojson_strings_only(
    dynamodb_local_endpoint: str, feature_table: FeatureTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURE_WRITE_FORMAT", "classic")
    from_env = FeatureTable(feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint)
    assert from_env.write_format == "classic"
    argument_first = FeatureTable(
        feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, write_format="compact"
    )
    assert argument_first.write_format == "compact"
    features = [box_feature("img-cf", f"c-{i}", [i * 100, 10, i * 100 + 20, 30]) for i in range(10)]
    from_env.add_features(features, source_tile=((0, 0), (512, 512)))
    from_env.add_features([box_feature("img-cf", "plain", [1, 1, 2, 2])])

    items = scan(feature_table)
    assert items and all("p" not in item and "features" in item for item in items)
    assert all(kind in ("S", "N", "L") for item in items for value in item.values() for kind in value)
    assert {item["tile_id"]["S"] for item in items} >= {"0:0:0:0", "1:1:0:0"}  # the classic tile key spans
    strings = [json.loads(text["S"]) for item in items for text in item["features"]["L"]]
    assert by_id(strings) == by_id([*features, box_feature("img-cf", "plain", [1, 1, 2, 2])])

    monkeypatch.setenv("FEATURE_WRITE_FORMAT", "gzip")
    with pytest.raises(ConfigurationError, match="FEATURE_WRITE_FORMAT"):
        FeatureTable(feature_table.table_name, host=dynamodb_local_endpoint)
    with pytest.raises(ConfigurationError, match="write_format"):
        FeatureTable(feature_table.table_name, host=dynamodb_local_endpoint, write_format="json")


def test_an_item_of_an_unknown_codec_fails_loudly(feature_table: FeatureTable) -> None:
    feature_table.client.put_item(
        TableName=feature_table.table_name,
        Item={"hash_key": {"S": "img-future-9"}, "range_key": {"S": "x"}, "p": {"B": b"\x7fnot ours"}},
    )
    with pytest.raises(GetFeaturesException, match="codec 0x7f"):
        feature_table.get_features("img-future")


# -- deleting ------------------------------------------------------------------------------------------------------


def test_delete_features_removes_every_item_of_the_image_only(feature_table: FeatureTable) -> None:
    rng = random.Random(19)
    for tile in tiles(30):
        feature_table.add_features([detection("img-del", tile, n, rng) for n in range(5)], source_tile=tile)
    put_classic(feature_table, "img-del", 1, "classic", [box_feature("img-del", "c", [1, 1, 2, 2])])
    feature_table.add_features([box_feature("img-keep", "k", [1, 1, 2, 2])])
    stored = len(scan(feature_table))

    assert feature_table.delete_features("img-del") == stored - 1
    assert feature_table.get_features("img-del") == []
    assert [f["id"] for f in feature_table.get_features("img-keep")] == ["k"]


# -- streaming -----------------------------------------------------------------------------------------------------


def test_streaming_200000_features_keeps_memory_flat(feature_table: FeatureTable) -> None:
    rng = random.Random(23)
    image_id = "img-stream"
    grid = tiles(100)
    json_bytes = 0
    for tile in grid:
        features = [detection(image_id, tile, n, rng) for n in range(2000)]
        json_bytes += sum(len(geojson.dumps(feature)) for feature in features)
        feature_table.add_features(features, source_tile=tile)
        del features
    gc.collect()
    assert json_bytes > 100_000_000

    def peak_while(work: Callable[[], int]) -> tuple[int, int]:
        tracemalloc.start()
        try:
            result = work()
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    count, streamed_peak = peak_while(lambda: sum(1 for _ in feature_table.iter_features(image_id)))
    assert count == 200_000
    sink = NullSink()
    written, written_peak = peak_while(lambda: feature_table.write_feature_collection(image_id, sink))
    assert written == 200_000 and sink.written > json_bytes * 0.9
    # the whole result is over 100 MB as JSON (several times that as Python objects); streaming holds what its 16
    # threads read (a query page each, at most 1 MB of compressed items, parsed) and 8 MB of decompressed features
    assert streamed_peak < json_bytes / 2.5, (streamed_peak, json_bytes)
    assert written_peak < json_bytes / 2.5, (written_peak, json_bytes)


def test_stopping_a_stream_early_stops_the_queries(feature_table: FeatureTable) -> None:
    rng = random.Random(29)
    for tile in tiles(60):
        feature_table.add_features([detection("img-early", tile, n, rng) for n in range(10)], source_tile=tile)
    stream = feature_table.iter_features("img-early")
    first = [next(stream) for _ in range(5)]
    stream.close()
    assert len(first) == 5
    assert len(feature_table.get_features("img-early")) == 600


# -- metrics -------------------------------------------------------------------------------------------------------


def new_metrics() -> MetricsLogger:
    """A real metrics logger that is never flushed (no agent, no output)."""

    async def no_environment() -> Any:
        raise AssertionError("metrics must not be flushed by the table")

    return MetricsLogger(no_environment, MetricsContext.empty())


def test_metrics_report_invocations_errors_and_duration_per_operation(
    feature_table: FeatureTable, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = new_metrics()
    feature_table.add_features([box_feature("img-m", "m1", [1, 1, 2, 2])], metrics=stored)
    assert stored.context.dimensions == [{"Operation": "FeatureStorage"}]
    assert stored.context.metrics["Invocations"].values == [1]
    assert "Errors" not in stored.context.metrics
    assert stored.context.metrics["Duration"].unit == "Milliseconds"
    assert stored.context.metrics["Duration"].values[0] > 0

    failed = new_metrics()
    with pytest.raises(AddFeaturesException):
        feature_table.add_features([box_feature("img-m", "m2", [2, 2, 1, 1])], metrics=failed)
    assert failed.context.metrics["Errors"].values == [1]
    assert failed.context.metrics["Invocations"].values == [1]

    reads: list[Callable[[MetricsLogger], list[geojson.Feature]]] = [
        lambda m: feature_table.get_features("img-m", metrics=m),
        lambda m: feature_table.aggregate_features(JobItem(image_id="img-m"), metrics=m),
    ]
    for read in reads:
        aggregated = new_metrics()
        assert len(read(aggregated)) == 1
        assert aggregated.context.dimensions == [{"Operation": "FeatureAggregation"}]
        assert aggregated.context.metrics["Invocations"].values == [1]
        assert len(aggregated.context.metrics["Duration"].values) == 1

    feature_table.add_features([box_feature("img-m", "m3", [1, 1, 2, 2])])
    feature_table.get_features("img-m")
    assert capsys.readouterr().out == ""


def test_read_failures_raise_get_features_exception(dynamodb_local_endpoint: str) -> None:
    missing = FeatureTable(f"missing-{uuid.uuid4().hex[:8]}", (512, 512), (32, 32), host=dynamodb_local_endpoint)
    with pytest.raises(GetFeaturesException) as raised:
        missing.get_features("img")
    assert raised.value.table_missing
    with pytest.raises(AddFeaturesException) as added:
        missing.add_features([box_feature("img", "a", [1, 1, 2, 2])])
    assert added.value.table_missing


def test_concurrent_writers_of_the_same_tile_leave_one_copy(feature_table: FeatureTable) -> None:
    rng = random.Random(31)
    tile: ImageRegion = ((0, 0), (512, 512))
    features = [detection("img-race", tile, n, rng) for n in range(200)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: feature_table.add_features(features, source_tile=tile), range(12)))
    assert by_id(feature_table.get_features("img-race")) == by_id(features)


# -- exporting to any stream (issue 14, item 6) --------------------------------------------------------------------


def _collection(data: bytes | str) -> dict[str, Any]:
    return dict(json.loads(data))


def test_write_feature_collection_writes_to_every_kind_of_stream(feature_table: FeatureTable, tmp_path: Any) -> None:
    import bz2
    import gzip
    import lzma
    import socket
    import threading

    features = [box_feature("img-out", f"o-{i}", [i, i, i + 3, i + 3], label="Straße") for i in range(30)]
    feature_table.add_features(features, source_tile=((0, 0), (512, 512)))
    expected = by_id(features)

    for opener, suffix in ((gzip.open, "gz"), (bz2.open, "bz2"), (lzma.open, "xz")):
        for mode in ("wb", "wt"):
            path = tmp_path / f"out-{mode}.{suffix}"
            with opener(path, mode) as out:
                assert feature_table.write_feature_collection("img-out", out) == 30
            with opener(path, "rb") as back:
                assert by_id(_collection(back.read())["features"]) == expected
    for mode in ("w", "wb"):
        with open(tmp_path / f"plain-{mode}.json", mode) as out:
            feature_table.write_feature_collection("img-out", out)
        assert by_id(_collection((tmp_path / f"plain-{mode}.json").read_bytes())["features"]) == expected
    text, binary = io.StringIO(), io.BytesIO()
    feature_table.write_feature_collection("img-out", text)
    feature_table.write_feature_collection("img-out", binary)
    assert by_id(_collection(text.getvalue())["features"]) == by_id(_collection(binary.getvalue())["features"])

    class Chunks:  # a file-like object outside io's classes, without a mode, that takes bytes
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    chunks = Chunks()
    feature_table.write_feature_collection("img-out", chunks)
    assert by_id(_collection(b"".join(chunks.chunks))["features"]) == expected

    for use_file in (False, True):  # a socket, and a socket's file
        sender, receiver = socket.socketpair()
        received: list[bytes] = []

        def receive(r: socket.socket = receiver, into: list[bytes] = received) -> None:
            into.extend(iter(lambda: r.recv(65536), b""))

        reader = threading.Thread(target=receive)
        reader.start()
        with sender:
            if use_file:
                with sender.makefile("wb") as out:
                    feature_table.write_feature_collection("img-out", out)
            else:
                feature_table.write_feature_collection("img-out", sender)
            sender.shutdown(socket.SHUT_WR)
        reader.join(10)
        receiver.close()
        assert by_id(_collection(b"".join(received))["features"]) == expected


# -- keys (issue 14, item 4) ---------------------------------------------------------------------------------------


def test_a_huge_finite_coordinate_is_stored_with_the_rest_of_the_call(feature_table: FeatureTable) -> None:
    """The tile key span is not part of any key, so a feature at 2.4e300 pixels makes no over-long key (it made a
    range key of over 1,024 bytes, refused after the call's first 25 items were written)."""
    good = [box_feature("img-far", f"g-{i}", [i * 600, 5, i * 600 + 5, 9]) for i in range(40)]
    far = box_feature("img-far", "far", [2.4e300, 1, 2.4e300, 2])
    for source_tile in (None, ((0, 0), (512, 512))):
        feature_table.add_features([*good, far], source_tile=source_tile)
    assert all(len(item["range_key"]["S"].encode()) <= 1024 for item in scan(feature_table))
    read = Counter(str(feature["id"]) for feature in feature_table.get_features("img-far"))
    assert read == Counter({str(feature["id"]): 2 for feature in [*good, far]})  # the plain write and the tile's


def test_keys_over_dynamodb_limits_are_refused_before_anything_is_written(
    feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    good = [box_feature("img-keys", f"k-{i}", [i, i, i + 1, i + 1]) for i in range(40)]
    with pytest.raises(AddFeaturesException, match=r"range key of \d+ bytes"):
        feature_table.add_features(good, source_tile=((10**1100, 0), (512, 512)))
    long_image = "i" * 2046
    with pytest.raises(AddFeaturesException, match=r"hash key of \d+ bytes"):
        feature_table.add_features([*good, box_feature(long_image, "long", [1, 1, 2, 2])])
    classic = FeatureTable(
        feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, write_format="classic"
    )
    with pytest.raises(AddFeaturesException, match="range key"):
        classic.add_features(good, source_tile=((0, 10**1100), (512, 512)))
    assert scan(feature_table) == []


def test_items_larger_than_the_decoded_budget_stream_one_after_another(
    feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    """Two items of 6 MB of JSON each (compressed to a few KB) in one shard: together over the 8 MiB the readers may
    hold decoded, each alone is let through, and the stream never waits for memory its own consumer holds."""
    from model_runner.database import feature_stream

    one_shard = FeatureTable(feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, hash_salt=1)

    text = "all quiet on the western front. " * 190_000  # 6 MB
    assert 2 * len(text) > feature_stream.DECODED_BYTES_IN_FLIGHT
    for n, tile in enumerate(tiles(2)):
        one_shard.add_features([box_feature("img-wide", f"wide-{n}", [5, 5, 9, 9], report=text)], source_tile=tile)
    read: list[str] = []
    reader = threading.Thread(
        target=lambda: read.extend(f["id"] for f in one_shard.iter_features("img-wide")), daemon=True
    )
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the stream waits for memory its consumer holds"
    assert sorted(read) == ["wide-0", "wide-1"]


# -- many tiles in one call ----------------------------------------------------------------------------------------


def test_the_features_of_many_tiles_are_stored_in_a_few_requests_each_tile_exactly_once(
    feature_table: FeatureTable,
) -> None:
    rng = random.Random(41)
    grid = tiles(60)
    per_tile = {tile: [detection("img-many", tile, n, rng) for n in range(20)] for tile in grid}
    sent: list[int] = []
    original = feature_table.send_batch

    def counting(requests: Any, policy: Any, on_retry: Any = None, **kwargs: Any) -> None:
        sent.append(len(requests))
        original(requests, policy, on_retry, **kwargs)

    feature_table.send_batch = counting  # type: ignore[method-assign]
    feature_table.add_features_of_tiles(per_tile.items())
    assert sent == [60]  # one item per tile, one call of the batch writer: 3 BatchWriteItem requests
    written = [feature for features in per_tile.values() for feature in features]
    assert by_id(feature_table.get_features("img-many")) == by_id(written)

    # a retried region: two tiles again with other detections, one tile as it was; each tile read once, the last write
    again = {grid[0]: [detection("img-many", grid[0], 100 + n, rng) for n in range(3)], grid[1]: per_tile[grid[1]]}
    feature_table.add_features_of_tiles(again.items())
    expected = [*again[grid[0]], *(f for tile in grid[1:] for f in per_tile[tile])]
    assert by_id(feature_table.get_features("img-many")) == by_id(expected)


def test_many_tiles_with_one_bad_feature_write_nothing(feature_table: FeatureTable) -> None:
    grid = tiles(4)
    good = [(tile, [box_feature("img-many-bad", f"g-{n}", [1, 1, 2, 2])]) for n, tile in enumerate(grid)]
    bad = (grid[3], [box_feature("img-many-bad", "bad", [5, 5, 1, 1])])
    with pytest.raises(AddFeaturesException, match="'bad'"):
        feature_table.add_features_of_tiles([*good, bad])
    with pytest.raises(AddFeaturesException):
        feature_table.add_features_of_tiles([(((0, -1), (512, 512)), [box_feature("img-many-bad", "x", [1, 1, 2, 2])])])
    assert scan(feature_table) == []


# -- concurrent calls share requests ---------------------------------------------------------------------------------


def test_concurrent_tile_writes_share_requests_and_every_tile_reads_back_once(
    feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    """8 threads store one tile per call; while a request is in flight the other calls queue and share the next."""
    table = FeatureTable(feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint)
    sent: list[int] = []
    real_send = table.send_chunk

    def slow_send(chunk: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(chunk))
        time.sleep(0.02)  # a DynamoDB farther away than DynamoDB Local
        return real_send(chunk, *args, **kwargs)

    table._coalescer._send = slow_send
    rng = random.Random(17)
    image_id = "img-shared"
    grid = tiles(160)
    per_tile = {tile: [detection(image_id, tile, n, rng) for n in range(rng.randint(1, 30))] for tile in grid}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda tile: table.add_features(per_tile[tile], source_tile=tile), grid))

    assert max(sent) > 1 and len(sent) < len(grid) / 2  # far fewer requests than calls
    assert sum(sent) == len(grid)  # one item per tile, each sent once
    written = by_id([feature for features in per_tile.values() for feature in features])
    assert by_id(feature_table.get_features(image_id)) == written


def test_write_concurrency_is_checked(dynamodb_local_endpoint: str) -> None:
    with pytest.raises(ValueError, match="write_concurrency"):
        FeatureTable("features", write_concurrency=0, host=dynamodb_local_endpoint)
    assert FeatureTable("features", write_concurrency=3, host=dynamodb_local_endpoint)._coalescer.concurrency == 3
