"""Unit tests for model_runner.common: the Timer and the image-geometry helpers for detection features."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any, cast

import geojson
import pytest
from aws_embedded_metrics.logger.metrics_logger import MetricsLogger
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon, box

import model_runner.common as common
from model_runner.common import Timer, get_feature_image_bounds, get_feature_image_geometry


class FakeMetricsLogger:
    """Records put_metric calls the way aws_embedded_metrics.MetricsLogger receives them."""

    def __init__(self) -> None:
        self.metrics: list[tuple[str, float, str]] = []

    def as_metrics_logger(self) -> MetricsLogger:
        """Hand this fake to code typed for the real logger."""
        return cast(MetricsLogger, self)

    def only_metric(self) -> tuple[str, float, str]:
        """Return the single recorded metric."""
        [metric] = self.metrics
        return metric

    def put_metric(self, key: str, value: float, unit: str = "None") -> FakeMetricsLogger:
        self.metrics.append((key, value, unit))
        return self


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make perf_counter return 10.0 then 10.25, so a timed block lasts exactly 0.25 s."""
    ticks: Iterator[float] = iter([10.0, 10.25])
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))


def feature(properties: dict[str, Any] | None, feature_id: str | None = "det-7") -> dict[str, Any]:
    """Build a plain-dict GeoJSON feature."""
    result: dict[str, Any] = {"type": "Feature", "geometry": None, "properties": properties}
    if feature_id is not None:
        result["id"] = feature_id
    return result


def polygon_geojson(minx: float, miny: float, maxx: float, maxy: float) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]],
    }


def ring(minx: float, miny: float, maxx: float, maxy: float) -> list[list[float]]:
    return [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]


# --- Timer -------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("fake_clock")
def test_timer_stores_elapsed_and_records_milliseconds() -> None:
    metrics = FakeMetricsLogger()
    with Timer("Processing region", "RegionLatency", metrics_logger=metrics.as_metrics_logger()) as timer:
        pass
    assert timer.elapsed == pytest.approx(0.25)
    name, value, unit = metrics.only_metric()
    assert (name, unit) == ("RegionLatency", "Milliseconds")
    assert value == pytest.approx(250.0)


@pytest.mark.usefixtures("fake_clock")
def test_timer_records_and_reraises_when_the_block_raises() -> None:
    metrics = FakeMetricsLogger()
    timer = Timer("Processing region", "RegionLatency", metrics_logger=metrics.as_metrics_logger())
    with pytest.raises(RuntimeError, match="model crashed"), timer:
        raise RuntimeError("model crashed")
    assert timer.elapsed == pytest.approx(0.25)
    name, value, unit = metrics.only_metric()
    assert (name, unit) == ("RegionLatency", "Milliseconds")
    assert value == pytest.approx(250.0)


@pytest.mark.usefixtures("fake_clock")
def test_timer_logs_task_and_duration_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.timer")
    with caplog.at_level(logging.DEBUG, logger="test.timer"), Timer("Tiling image", "TilingLatency", logger):
        pass
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.name == "test.timer"
    assert "Tiling image" in record.getMessage()
    assert "0.25" in record.getMessage()


def test_timer_without_loggers_measures_real_time(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="model_runner.common.timer"), Timer("Nothing", "NoMetric") as timer:
        pass
    assert 0.0 <= timer.elapsed < 1.0
    assert any("Nothing" in r.getMessage() for r in caplog.records)


# --- get_feature_image_bounds: the three sources ---------------------------------------------------------------------


def test_bounds_from_image_geometry_polygon() -> None:
    f = feature({"imageGeometry": polygon_geojson(10, 20, 30, 45)})
    assert get_feature_image_bounds(f) == (10.0, 20.0, 30.0, 45.0)


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        ({"type": "Point", "coordinates": [5, 6]}, (5.0, 6.0, 5.0, 6.0)),
        ({"type": "LineString", "coordinates": [[1, 9], [4, 2]]}, (1.0, 2.0, 4.0, 9.0)),
        ({"type": "MultiPoint", "coordinates": [[1, 9], [4, 2]]}, (1.0, 2.0, 4.0, 9.0)),
        (
            {"type": "MultiPolygon", "coordinates": [polygon_geojson(0, 0, 1, 1)["coordinates"]]},
            (0.0, 0.0, 1.0, 1.0),
        ),
        (
            {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [3, 3]}]},
            (3.0, 3.0, 3.0, 3.0),
        ),
    ],
)
def test_bounds_from_other_image_geometry_types(geometry: dict[str, Any], expected: tuple[float, ...]) -> None:
    assert get_feature_image_bounds(feature({"imageGeometry": geometry})) == expected


def test_bounds_from_bounds_imcoords() -> None:
    assert get_feature_image_bounds(feature({"bounds_imcoords": [1, 2, 3.5, 4]})) == (1.0, 2.0, 3.5, 4.0)


def test_bounds_imcoords_as_tuple_and_returned_as_floats() -> None:
    bounds = get_feature_image_bounds(feature({"bounds_imcoords": (1, 2, 3, 4)}))
    assert bounds == (1.0, 2.0, 3.0, 4.0)
    assert bounds is not None
    assert all(type(v) is float for v in bounds)


def test_bounds_from_geom_imcoords_ring() -> None:
    f = feature({"geom_imcoords": [[5, 1], [9, 3], [7, 8], [5, 1]]})
    assert get_feature_image_bounds(f) == (5.0, 1.0, 9.0, 8.0)


def test_bounds_from_single_point_geom_imcoords() -> None:
    assert get_feature_image_bounds(feature({"geom_imcoords": [[5, 1]]})) == (5.0, 1.0, 5.0, 1.0)


def test_image_geometry_wins_over_bounds_and_geom_imcoords() -> None:
    f = feature(
        {
            "geom_imcoords": ring(100, 100, 200, 200),
            "bounds_imcoords": [50, 50, 60, 60],
            "imageGeometry": polygon_geojson(1, 2, 3, 4),
        }
    )
    assert get_feature_image_bounds(f) == (1.0, 2.0, 3.0, 4.0)


def test_bounds_imcoords_wins_over_geom_imcoords() -> None:
    f = feature({"geom_imcoords": ring(100, 100, 200, 200), "bounds_imcoords": [50, 50, 60, 60]})
    assert get_feature_image_bounds(f) == (50.0, 50.0, 60.0, 60.0)


def test_none_valued_source_falls_through_to_the_next() -> None:
    f = feature({"imageGeometry": None, "bounds_imcoords": None, "geom_imcoords": ring(1, 1, 2, 2)})
    assert get_feature_image_bounds(f) == (1.0, 1.0, 2.0, 2.0)


def test_geojson_feature_objects_are_accepted() -> None:
    f = geojson.Feature(
        id="det-1",
        geometry=geojson.Point((-77.0, 38.9)),
        properties={"imageGeometry": geojson.Polygon([[(0, 0), (8, 0), (8, 6), (0, 0)]])},
    )
    assert get_feature_image_bounds(f) == (0.0, 0.0, 8.0, 6.0)
    f2 = geojson.Feature(id="det-2", geometry=None, properties={"bounds_imcoords": [1, 2, 3, 4]})
    assert get_feature_image_bounds(f2) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    "f",
    [
        {"type": "Feature", "geometry": None},
        feature(None),
        feature({}),
        feature({"score": 0.9, "label": "ship"}),
        feature({"imageGeometry": None, "bounds_imcoords": None, "geom_imcoords": None}),
        geojson.Feature(geometry=geojson.Point((1.0, 2.0))),
    ],
    ids=["no-properties-key", "properties-none", "empty-properties", "other-properties", "all-none", "geojson"],
)
def test_no_image_geometry_gives_none(f: dict[str, Any]) -> None:
    assert get_feature_image_bounds(f) is None
    assert get_feature_image_geometry(f) is None


# --- malformed values -------------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, Any, str]] = [
    ("bounds-3-values", {"bounds_imcoords": [1, 2, 3]}, "3 values"),
    ("bounds-5-values", {"bounds_imcoords": [1, 2, 3, 4, 5]}, "5 values"),
    ("bounds-not-list", {"bounds_imcoords": "1,2,3,4"}, "bounds_imcoords"),
    ("bounds-dict", {"bounds_imcoords": {"minx": 1}}, "bounds_imcoords"),
    ("bounds-string-number", {"bounds_imcoords": [1, "2", 3, 4]}, "number"),
    ("bounds-bool", {"bounds_imcoords": [True, 2, 3, 4]}, "number"),
    ("bounds-none-item", {"bounds_imcoords": [None, 2, 3, 4]}, "number"),
    ("bounds-nan", {"bounds_imcoords": [0, math.nan, 3, 4]}, "finite"),
    ("bounds-inf", {"bounds_imcoords": [0, 0, math.inf, 4]}, "finite"),
    ("bounds-minx-gt-maxx", {"bounds_imcoords": [5, 0, 3, 4]}, "min > max"),
    ("bounds-miny-gt-maxy", {"bounds_imcoords": [0, 5, 3, 4]}, "min > max"),
    ("geom-empty", {"geom_imcoords": []}, "non-empty"),
    ("geom-not-list", {"geom_imcoords": 7}, "geom_imcoords"),
    ("geom-flat", {"geom_imcoords": [1, 2, 3, 4]}, "geom_imcoords[0]"),
    ("geom-point-3-values", {"geom_imcoords": [[1, 2], [3, 4, 5]]}, "geom_imcoords[1]"),
    ("geom-string", {"geom_imcoords": [[1, 2], ["x", 4]]}, "number"),
    ("geom-nan", {"geom_imcoords": [[1, 2], [math.nan, 4]]}, "finite"),
    ("geom-inf", {"geom_imcoords": [[1, -math.inf]]}, "finite"),
    ("image-empty-polygon", {"imageGeometry": {"type": "Polygon", "coordinates": []}}, "empty"),
    ("image-empty-collection", {"imageGeometry": {"type": "GeometryCollection", "geometries": []}}, "empty"),
    ("image-unknown-type", {"imageGeometry": {"type": "Circle", "coordinates": [1, 2]}}, "Circle"),
    ("image-feature-type", {"imageGeometry": {"type": "Feature", "geometry": None}}, "Feature'"),
    ("image-no-type", {"imageGeometry": {"coordinates": [1, 2]}}, "type"),
    ("image-lowercase-type", {"imageGeometry": {"type": "point", "coordinates": [1, 2]}}, "type"),
    ("image-no-coordinates", {"imageGeometry": {"type": "Point"}}, "coordinates"),
    ("image-not-mapping", {"imageGeometry": [[0, 0], [1, 1]]}, "GeoJSON"),
    ("image-string", {"imageGeometry": "POINT (1 2)"}, "GeoJSON"),
    ("image-nan", {"imageGeometry": {"type": "LineString", "coordinates": [[0, 0], [math.nan, 1]]}}, "finite"),
    ("image-string-coord", {"imageGeometry": {"type": "Point", "coordinates": ["1", 2]}}, "number"),
    ("image-short-position", {"imageGeometry": {"type": "Point", "coordinates": [1]}}, "position"),
    ("image-wrong-nesting", {"imageGeometry": {"type": "Polygon", "coordinates": [[0, 0], [1, 1]]}}, "list"),
    ("image-short-ring", {"imageGeometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}}, "valid"),
    (
        "image-bad-member",
        {"imageGeometry": {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": []}]}},
        "geometries[0]",
    ),
    ("properties-list", [], "properties"),
]


@pytest.mark.parametrize("function", [get_feature_image_bounds, get_feature_image_geometry])
@pytest.mark.parametrize(("properties", "detail"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_image_geometry_raises_naming_the_feature(function: Any, properties: Any, detail: str) -> None:
    with pytest.raises(ValueError) as raised:
        function(feature(properties, feature_id="det-42"))
    message = str(raised.value)
    assert "'det-42'" in message
    assert detail in message


def test_malformed_feature_without_id_says_so() -> None:
    with pytest.raises(ValueError, match=r"no id.*bounds_imcoords"):
        get_feature_image_bounds(feature({"bounds_imcoords": [1, 2]}, feature_id=None))


def test_malformed_source_does_not_fall_through_to_a_valid_one() -> None:
    f = feature({"imageGeometry": {"type": "Polygon", "coordinates": []}, "bounds_imcoords": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match="imageGeometry"):
        get_feature_image_bounds(f)
    f = feature({"bounds_imcoords": [1, 2, 3], "geom_imcoords": ring(1, 2, 3, 4)})
    with pytest.raises(ValueError, match="bounds_imcoords"):
        get_feature_image_bounds(f)


def test_feature_that_is_not_a_mapping_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        get_feature_image_bounds([1, 2, 3, 4])  # type: ignore[arg-type]


def test_degenerate_bounds_are_accepted() -> None:
    assert get_feature_image_bounds(feature({"bounds_imcoords": [3, 4, 3, 4]})) == (3.0, 4.0, 3.0, 4.0)


# --- get_feature_image_geometry ---------------------------------------------------------------------------------------


def test_geometry_from_image_geometry() -> None:
    geometry = get_feature_image_geometry(feature({"imageGeometry": polygon_geojson(0, 0, 4, 2)}))
    assert geometry is not None
    assert geometry.equals(box(0, 0, 4, 2))


def test_geometry_from_bounds_imcoords_is_a_box() -> None:
    geometry = get_feature_image_geometry(feature({"bounds_imcoords": [1, 2, 5, 7]}))
    assert isinstance(geometry, Polygon)
    assert geometry.equals(box(1, 2, 5, 7))


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([[1, 2]], Point(1, 2)),
        ([[1, 2], [1, 2]], Point(1, 2)),
        ([[1, 2], [3, 4]], LineString([(1, 2), (3, 4)])),
        ([[1, 2], [3, 4], [1, 2]], LineString([(1, 2), (3, 4)])),
        ([[0, 0], [4, 0], [4, 3]], Polygon([(0, 0), (4, 0), (4, 3)])),
        (ring(0, 0, 4, 3), box(0, 0, 4, 3)),
    ],
    ids=["point", "closed-point", "line", "closed-line", "open-triangle", "closed-ring"],
)
def test_geometry_from_geom_imcoords(points: list[list[float]], expected: Any) -> None:
    geometry = get_feature_image_geometry(feature({"geom_imcoords": points}))
    assert geometry is not None
    assert geometry.geom_type == expected.geom_type
    assert geometry.equals(expected)


def test_geometry_precedence_matches_bounds_precedence() -> None:
    f = feature({"geom_imcoords": ring(100, 100, 200, 200), "bounds_imcoords": [50, 50, 60, 60]})
    geometry = get_feature_image_geometry(f)
    assert geometry is not None
    assert geometry.bounds == get_feature_image_bounds(f)


# --- property: the three sources agree --------------------------------------------------------------------------------

coordinate = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(x1=coordinate, y1=coordinate, x2=coordinate, y2=coordinate)
def test_all_three_sources_give_the_same_bounds(x1: float, y1: float, x2: float, y2: float) -> None:
    minx, maxx = sorted((x1, x2))
    miny, maxy = sorted((y1, y2))
    expected = (minx, miny, maxx, maxy)
    from_bounds = get_feature_image_bounds(feature({"bounds_imcoords": [minx, miny, maxx, maxy]}))
    from_polygon = get_feature_image_bounds(feature({"imageGeometry": polygon_geojson(minx, miny, maxx, maxy)}))
    from_ring = get_feature_image_bounds(feature({"geom_imcoords": ring(minx, miny, maxx, maxy)}))
    assert from_bounds == from_polygon == from_ring == expected


# --- package exports --------------------------------------------------------------------------------------------------


def test_common_exports() -> None:
    assert set(common.__all__) == {
        "ImageCoord",
        "ImageDimensions",
        "ImageRegion",
        "RequestStatus",
        "TileState",
        "Timer",
        "get_feature_image_bounds",
        "get_feature_image_geometry",
    }
    for name in common.__all__:
        assert hasattr(common, name)
    assert common.TileState.SUCCEEDED.value == "succeeded"
