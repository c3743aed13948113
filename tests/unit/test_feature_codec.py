"""Unit tests of the feature codec: canonical encoding, refusal of what JSON cannot hold, the item size rule, packing,
the payload format and its decoding, keys and shards."""

from __future__ import annotations

import base64
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from typing import Any

import geojson
import numpy
import pytest
import zstandard

from model_runner.database import feature_codec as codec
from model_runner.database import feature_layout as layout


def detection(number: int, rng: random.Random, **extra: Any) -> dict[str, Any]:
    x, y = rng.uniform(0, 10_000), rng.uniform(0, 10_000)
    return {
        "type": "Feature",
        "id": f"d-{number}",
        "geometry": {"type": "Point", "coordinates": [-77 + x * 1e-6, 38 + y * 1e-6]},
        "properties": {
            "image_id": "img",
            "bounds_imcoords": [x, y, x + 10, y + 10],
            "feature_types": {"véhicule": rng.random()},
            "detection_score": rng.random(),
            **extra,
        },
    }


def random_text(size: int, rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()


# -- encoding ------------------------------------------------------------------------------------------------------


def test_encoding_is_canonical_whatever_the_key_order_and_types() -> None:
    feature = detection(1, random.Random(1))
    reordered = json.loads(json.dumps(feature))
    reordered = dict(reversed(list(reordered.items())))
    reordered["properties"] = dict(reversed(list(reordered["properties"].items())))
    as_geojson = geojson.Feature(**{k: v for k, v in feature.items() if k != "type"})
    with_tuples = {
        **feature,
        "properties": {**feature["properties"], "bounds_imcoords": tuple(feature["properties"]["bounds_imcoords"])},
    }

    encoded = codec.encode_feature(feature)
    assert codec.encode_feature(reordered) == encoded
    assert codec.encode_feature(with_tuples) == encoded
    assert codec.encode_feature(as_geojson) == codec.encode_feature(json.loads(json.dumps(as_geojson)))


def test_encoding_keeps_text_as_utf8_on_one_line() -> None:
    feature = detection(1, random.Random(1), label="Straße 🚗 車両", note="two\nlines\r\n and a \u2028 separator")
    encoded = codec.encode_feature(feature)
    assert b"\n" not in encoded
    assert "Straße 🚗 車両".encode() in encoded
    assert json.loads(encoded) == feature


def test_numbers_of_other_types_become_json_numbers() -> None:
    feature = detection(1, random.Random(1), a=Decimal("1.25"), b=Decimal("7"), c=numpy.float32(0.5), d=numpy.int64(3))
    properties = json.loads(codec.encode_feature(feature))["properties"]
    assert (properties["a"], properties["b"], properties["c"], properties["d"]) == (1.25, 7, 0.5, 3)
    assert isinstance(properties["b"], int)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (math.nan, "properties.bad"),
        (math.inf, "properties.bad"),
        ({"deep": [1.0, {"x": -math.inf}]}, "properties.bad.deep[1].x"),
        (Decimal("NaN"), None),
        (numpy.float64("nan"), None),
    ],
)
def test_non_finite_numbers_are_refused_and_located(value: Any, where: str | None) -> None:
    feature = detection(1, random.Random(1), bad=value, empty=None)
    with pytest.raises(ValueError, match="non-finite") as raised:
        codec.encode_feature(feature)
    if where is not None:
        assert where in str(raised.value)


def test_non_finite_coordinates_are_refused() -> None:
    feature = detection(1, random.Random(1))
    feature["geometry"]["coordinates"] = [1.0, math.nan]
    with pytest.raises(ValueError, match=r"geometry\.coordinates\[1\]"):
        codec.encode_feature(feature)


def test_none_and_the_word_null_are_not_mistaken_for_non_finite_numbers() -> None:
    feature = detection(1, random.Random(1), a=None, b=[None, {"c": None}], text="null nullable null")
    feature["geometry"] = None
    assert json.loads(codec.encode_feature(feature)) == feature


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (object(), TypeError, "object"),
        ({1: "x"}, TypeError, "str"),
        ({"a", "b"}, TypeError, "set"),
        (2**70, TypeError, "64-bit"),
        ("\ud800", ValueError, "UTF-8"),
    ],
)
def test_values_json_cannot_hold_are_refused(value: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        codec.encode_feature(detection(1, random.Random(1), bad=value))


def test_a_feature_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        codec.encode_feature(["not", "a", "feature"])  # type: ignore[arg-type]


# -- measuring -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "size"),
    [
        ({"a": "abc"}, 4),
        ({"é": "ü"}, 4),  # names and strings count UTF-8 bytes
        ({"b": b"\x00\x01\x02"}, 4),
        ({"n": 1}, 3),  # one significant digit: 1 + 1 byte
        ({"n": 12345}, 5),  # five digits: 3 + 1
        ({"n": 1000000}, 3),  # trailing zeros are not significant
        ({"n": -0.00125}, 4),  # neither are leading ones
        ({"l": ["ab", "c"]}, 1 + 3 + (1 + 2) + (1 + 1)),
        ({"a": "x", "b": None}, 2),  # None is not stored
        ({"hash_key": "img-1", "range_key": "r#0"}, 8 + 5 + 9 + 3),
    ],
)
def test_item_size_counts_as_dynamodb_does(attributes: dict[str, Any], size: int) -> None:
    assert codec.item_size(attributes) == size


# -- splitting a call into items (feature_layout.plan_items, the one user of the codec's compression) ---------------


def split(encoded: list[bytes], target: int = codec.ITEM_SIZE_TARGET) -> list[tuple[int, bytes, int]]:
    """The items of one call of these features: (features in it, payload, item size as DynamoDB counts it)."""
    entries = [layout.Entry(data, index, "0:0:0:0") for index, data in enumerate(encoded)]
    items = layout.plan_items(
        "img",
        entries,
        source="r0c0w512h512",
        hash_salt=50,
        now=1_700_000_000.0,
        expire_time=1_700_600_000,
        target=target,
    )
    sized = []
    for item in items:
        native = {
            name: int(value["N"]) if "N" in value else value.get("S", value.get("B")) for name, value in item.items()
        }
        sized.append((int(item["n"]["N"]), item["p"]["B"], codec.item_size(native)))
    return sized


def test_features_that_fit_are_one_item_that_decodes_to_them() -> None:
    rng = random.Random(2)
    features = [detection(n, rng) for n in range(500)]
    encoded = [codec.encode_feature(feature) for feature in features]
    [(count, payload, _)] = split(encoded)
    assert count == 500
    assert payload[0] == codec.CODEC_JSON_LINES_ZSTD
    assert len(payload) < sum(map(len, encoded)) / 3  # detections compress well
    assert sorted(codec.decode(payload), key=lambda f: f["id"]) == sorted(features, key=lambda f: f["id"])


def test_incompressible_features_are_split_and_every_item_stays_within_the_target() -> None:
    rng = random.Random(3)
    encoded = sorted(codec.encode_feature(detection(n, rng, blob=random_text(40_000, rng))) for n in range(40))
    parts = split(encoded)
    assert len(parts) >= 4
    assert all(size <= codec.ITEM_SIZE_TARGET for _, _, size in parts)
    assert sum(count for count, _, _ in parts) == 40
    decoded = [codec.encode_feature(feature) for _, payload, _ in parts for feature in codec.decode(payload)]
    assert decoded == encoded  # every feature once, in sorted order


def test_a_feature_too_large_even_alone_is_refused_with_its_position() -> None:
    rng = random.Random(5)
    encoded = [codec.encode_feature(detection(n, rng)) for n in range(3)]
    encoded.insert(2, codec.encode_feature(detection(99, rng, blob=random_text(500_000, rng))))
    with pytest.raises(codec.FeatureTooLargeError) as raised:
        split(encoded)
    assert raised.value.index == 2
    assert raised.value.size > codec.ITEM_SIZE_TARGET
    assert isinstance(raised.value, ValueError)


def test_a_large_feature_that_compresses_well_is_stored_with_the_others() -> None:
    rng = random.Random(6)
    small = [codec.encode_feature(detection(n, rng)) for n in range(3)]
    large = codec.encode_feature(detection(9, rng, report="nothing to report. " * 50_000))
    assert len(large) > codec.ITEM_SIZE_TARGET
    [(count, _, size)] = split([small[0], large, *small[1:]])
    assert count == 4 and size <= codec.ITEM_SIZE_TARGET


def test_a_smaller_target_gives_more_parts() -> None:
    rng = random.Random(7)
    encoded = [codec.encode_feature(detection(n, rng)) for n in range(2_000)]
    big = split(encoded)
    small = split(encoded, target=50_000)
    assert len(small) > len(big)
    assert all(size <= 50_000 for _, _, size in small)


def test_no_features_no_items() -> None:
    assert split([]) == []


# -- decoding ------------------------------------------------------------------------------------------------------


def test_an_unknown_codec_or_a_corrupt_payload_is_an_error() -> None:
    with pytest.raises(ValueError, match="codec 0x02"):
        codec.decompress(b"\x02whatever")
    with pytest.raises(ValueError, match="empty"):
        codec.decompress(b"")
    with pytest.raises(ValueError, match="corrupt"):
        codec.decompress(b"\x01" + b"\x00" * 20)


def test_a_payload_is_a_zstd_frame_of_one_feature_per_line() -> None:
    encoded = [b'{"id":1}', b'{"id":2}']
    payload = codec.compress(encoded)
    assert zstandard.ZstdDecompressor().decompress(payload[1:]) == b'{"id":1}\n{"id":2}'
    assert codec.decompress(payload) == b'{"id":1}\n{"id":2}'
    assert list(codec.iter_lines(codec.decompress(payload))) == encoded


def test_the_classic_layout_decodes_including_what_pythons_json_wrote() -> None:
    features = [detection(1, random.Random(1)), detection(2, random.Random(2), score=float("nan"))]
    strings = [geojson.dumps(features[0]), json.dumps(features[1])]  # json writes NaN
    decoded = codec.decode_classic(strings)
    assert decoded[0] == features[0]
    assert math.isnan(decoded[1]["properties"]["score"])
    lines = codec.classic_lines(strings)
    assert [json.loads(line)["id"] for line in lines.split(b"\n")] == ["d-1", "d-2"]  # strict JSON again


def test_to_geojson_keeps_values_exactly_and_gives_geojson_types() -> None:
    feature = detection(1, random.Random(1))
    feature["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[1.123456789, 2.0], [3.0, 4.987654321], [1.123456789, 2.0]]],
    }
    result = codec.to_geojson(json.loads(json.dumps(feature)))
    assert isinstance(result, geojson.Feature)
    assert isinstance(result["geometry"], geojson.Polygon)
    assert result == feature
    assert result.properties["image_id"] == "img"  # attribute access works as on any geojson object
    assert codec.to_geojson({"type": "Feature", "geometry": None, "properties": {}})["geometry"] is None


# -- keys ----------------------------------------------------------------------------------------------------------


def test_digest_depends_on_how_the_data_is_split() -> None:
    assert codec.digest([b"ab", b"c"]) != codec.digest([b"a", b"bc"])
    assert codec.digest([b"ab", b"c"]) == codec.digest([b"ab", b"c"])
    assert len(codec.digest([b"x"])) == 24


def test_shards_are_spread_evenly_over_1_to_salt() -> None:
    counts = Counter(codec.shard_of(f"img#r{i}c0w512h512", 50) for i in range(20_000))
    assert set(counts) == set(range(1, 51))
    assert max(counts.values()) < 1.25 * 400 and min(counts.values()) > 0.75 * 400


def test_shards_are_the_same_in_every_process() -> None:
    keys = [f"image-{i}#tile-{i * 7}" for i in range(50)]
    script = (
        "import json, sys; from model_runner.database.feature_codec import shard_of; "
        f"print(json.dumps([shard_of(k, 50) for k in {keys!r}]))"
    )
    answers = set()
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, check=True)
        answers.add(result.stdout)
    assert len(answers) == 1
    assert json.loads(answers.pop()) == [codec.shard_of(key, 50) for key in keys]
