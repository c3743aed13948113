"""Unit tests of FeatureTable's tile keys: the formula on its edges, and the property that a key covers its feature."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runner.database import FeatureTable


def table(tile_size: tuple[int, int] = (512, 512), overlap: tuple[int, int] = (32, 32)) -> FeatureTable:
    """A FeatureTable that is never asked to send a request (no endpoint is contacted)."""
    return FeatureTable("features-unit", tile_size, overlap, host="http://127.0.0.1:9", region="us-east-1")


def feature(bounds: list[float], image_id: str = "img", feature_id: str = "f-1", **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": feature_id,
        "geometry": None,
        "properties": {"image_id": image_id, "bounds_imcoords": bounds, **properties},
    }


def span(key: str) -> tuple[int, int, int, int]:
    min_x, max_x, min_y, max_y = key.rsplit("-region-", 1)[1].split(":")
    return int(min_x), int(max_x), int(min_y), int(max_y)


# -- the formula ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ([10, 20, 50, 60], "0:0:0:0"),  # inside the first tile
        ([479, 0, 479.5, 1], "0:0:0:0"),  # just before the first stride boundary
        ([480, 0, 490, 1], "0:1:0:0"),  # on the boundary: inside the overlap of tile 0, so tile 0 starts the range
        ([511.9, 0, 515, 1], "0:1:0:0"),  # the last pixel of the overlap
        ([512, 0, 515, 1], "1:1:0:0"),  # past the overlap: tile 1 only
        ([960, 960, 970, 970], "1:2:1:2"),  # on the second boundary, both axes
        ([100, 100, 1000, 1500], "0:2:0:3"),  # a feature spanning several tiles
        ([0, 0, 0, 0], "0:0:0:0"),  # a point at the origin
        ([10, 10, 960, 10], "0:2:0:0"),  # max on a boundary: the tile starting there covers it
    ],
)
def test_the_span_of_a_feature(bounds: list[float], expected: str) -> None:
    assert table().generate_tile_key(feature(bounds)) == f"img-region-{expected}"


def test_zero_overlap_never_moves_the_first_index_back() -> None:
    no_overlap = table((512, 512), (0, 0))
    assert no_overlap.generate_tile_key(feature([512, 512, 513, 513])) == "img-region-1:1:1:1"
    assert no_overlap.generate_tile_key(feature([511.5, 0, 512, 1])) == "img-region-0:1:0:0"
    assert no_overlap.generate_tile_key(feature([1024, 0, 1535.9, 1])) == "img-region-2:2:0:0"


def test_each_axis_uses_its_own_tile_size_and_overlap() -> None:
    wide = table((1024, 512), (64, 32))  # strides 960 and 480
    assert wide.generate_tile_key(feature([960, 480, 970, 490])) == "img-region-0:1:0:1"
    assert wide.generate_tile_key(feature([1030, 520, 1040, 530])) == "img-region-1:1:1:1"


@pytest.mark.parametrize(
    "properties",
    [
        {"imageGeometry": {"type": "Polygon", "coordinates": [[[500, 10], [600, 10], [600, 20], [500, 10]]]}},
        {"geom_imcoords": [[500, 10], [600, 10], [600, 20], [500, 10]]},
    ],
    ids=["imageGeometry", "geom_imcoords"],
)
def test_every_source_of_image_geometry_gives_the_same_key(properties: dict[str, Any]) -> None:
    other = {"type": "Feature", "id": "g", "geometry": None, "properties": {"image_id": "img", **properties}}
    assert table().generate_tile_key(other) == table().generate_tile_key(feature([500, 10, 600, 20]))


def test_the_image_id_comes_from_the_properties() -> None:
    key = table().generate_tile_key(feature([1, 1, 2, 2], image_id="job:s3://bucket/a-b.ntf"))
    assert key == "job:s3://bucket/a-b.ntf-region-0:0:0:0"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"type": "Feature", "id": "f-9", "geometry": None, "properties": {"image_id": "img"}}, "no image geometry"),
        ({"type": "Feature", "id": "f-9", "geometry": None}, "no image geometry"),
        (feature([5, 5, 1, 1], feature_id="f-9"), "min > max"),
        (feature([1, 1, 2], feature_id="f-9"), "bounds_imcoords"),
        (feature([1, 1, 2, float("nan")], feature_id="f-9"), "finite"),
        (feature([1, 1, 2, 2], feature_id="f-9", image_id=""), "image_id"),
        ({"type": "Feature", "id": "f-9", "properties": {"bounds_imcoords": [1, 1, 2, 2]}}, "image_id"),
        ({"type": "Feature", "id": "f-9", "properties": {"image_id": 7, "bounds_imcoords": [1, 1, 2, 2]}}, "image_id"),
    ],
)
def test_a_feature_without_usable_geometry_or_image_id_raises_value_error_naming_it(
    bad: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words) as raised:
        table().generate_tile_key(bad)
    assert "f-9" in str(raised.value)


def test_a_feature_that_is_not_a_mapping_raises_value_error() -> None:
    with pytest.raises(ValueError, match="mapping"):
        table().generate_tile_key(["not", "a", "feature"])


def test_group_features_by_key_keeps_the_order_of_each_group() -> None:
    features = [
        feature([10, 10, 20, 20], feature_id="a"),
        feature([600, 10, 610, 20], feature_id="b"),
        feature([30, 30, 40, 40], feature_id="c"),
        feature([10, 10, 20, 20], image_id="other", feature_id="d"),
    ]
    groups = table().group_features_by_key(features)
    assert {key: [f["id"] for f in members] for key, members in groups.items()} == {
        "img-region-0:0:0:0": ["a", "c"],
        "img-region-1:1:0:0": ["b"],
        "other-region-0:0:0:0": ["d"],
    }


@pytest.mark.parametrize(
    ("tile_size", "overlap"), [((512, 512), (512, 0)), ((512, 512), (0, 600)), ((512, 512), (-1, 0))]
)
def test_a_tile_size_and_overlap_without_a_positive_stride_are_refused(
    tile_size: tuple[int, int], overlap: tuple[int, int]
) -> None:
    with pytest.raises(ValueError, match="stride"):
        table(tile_size, overlap)


# -- the property --------------------------------------------------------------------------------------------------

coordinates = st.floats(min_value=0, max_value=200_000, allow_nan=False, allow_infinity=False)


@st.composite
def tiling_and_bounds(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], list[float]]:
    width = draw(st.integers(min_value=2, max_value=4096))
    height = draw(st.integers(min_value=2, max_value=4096))
    overlap = (
        draw(st.integers(min_value=0, max_value=width - 1)),
        draw(st.integers(min_value=0, max_value=height - 1)),
    )
    x0, x1 = sorted((draw(coordinates), draw(coordinates)))
    y0, y1 = sorted((draw(coordinates), draw(coordinates)))
    return (width, height), overlap, [x0, y0, x1, y1]


@settings(max_examples=500, deadline=None)
@given(tiling_and_bounds())
def test_every_feature_lands_in_a_key_whose_tiles_cover_its_bounds(
    case: tuple[tuple[int, int], tuple[int, int], list[float]],
) -> None:
    tile_size, overlap, bounds = case
    min_x, max_x, min_y, max_y = span(table(tile_size, overlap).generate_tile_key(feature(bounds)))
    for low, high, first, last, size, lap in (
        (bounds[0], bounds[2], min_x, max_x, tile_size[0], overlap[0]),
        (bounds[1], bounds[3], min_y, max_y, tile_size[1], overlap[1]),
    ):
        stride = size - lap
        assert 0 <= first <= last
        # tile i covers [i * stride, i * stride + size): the key's tiles together cover the feature's bounds
        assert first * stride <= low
        assert high < last * stride + size
        # and the range is tight: the tile after the last one starts beyond the feature
        assert (last + 1) * stride > high
        if lap <= stride and first > 0:
            # the first tile is the first that contains the low coordinate (with overlaps up to a stride)
            assert (first - 1) * stride + size <= low


# -- the fast path of bounds_imcoords agrees with the full check -------------------------------------------------------

_ANY_COORDINATE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-5000, max_value=5000),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


def _reference_bounds(value: Any) -> tuple[float, ...] | str:
    """What bounds_imcoords must give: four finite real numbers (no booleans), min <= max, as floats; else refused."""
    import math
    import numbers

    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return "refused"
    numbers_: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            return "refused"
        try:
            number = float(item)
        except OverflowError:
            return "refused"
        if not math.isfinite(number):
            return "refused"
        numbers_.append(number)
    minx, miny, maxx, maxy = numbers_
    return "refused" if minx > maxx or miny > maxy else (minx, miny, maxx, maxy)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ANY_COORDINATE, min_size=3, max_size=5), st.booleans())
def test_bounds_imcoords_accepts_exactly_four_finite_ordered_numbers(value: list[Any], as_tuple: bool) -> None:
    from model_runner.common.feature_utils import get_feature_image_bounds

    given_value: Any = tuple(value) if as_tuple else value
    feature = {"type": "Feature", "id": "f", "properties": {"bounds_imcoords": given_value}}
    expected = _reference_bounds(given_value)
    try:
        bounds = get_feature_image_bounds(feature)
    except ValueError:
        assert expected == "refused"
    else:
        assert bounds == expected
        assert bounds is not None and all(type(v) is float for v in bounds)
