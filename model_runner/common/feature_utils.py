"""Read the image-space (pixel) geometry of a detection feature.

A feature may carry its pixel geometry in one of three properties, checked in this order:

* ``imageGeometry``: a GeoJSON geometry object whose coordinates are pixels;
* ``bounds_imcoords``: ``[minx, miny, maxx, maxy]``;
* ``geom_imcoords``: a list (usually a closed ring) of ``[x, y]`` points.

A property that is missing or ``None`` counts as absent. A property that is present but malformed raises
``ValueError`` naming the feature; it never falls through to the next source.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from shapely.errors import ShapelyError
from shapely.geometry import LineString, Point, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

#: (minx, miny, maxx, maxy) in pixels.
Bounds = tuple[float, float, float, float]

# How deeply positions are nested in the "coordinates" of each GeoJSON geometry type.
_COORDINATE_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
_GEOMETRY_COLLECTION = "GeometryCollection"
# Number types taken without further checks on the fast path (bool is its own type, so never among them).
_PLAIN_NUMBERS = (float, int)


def _name(feature: Mapping[str, Any]) -> str:
    """Name a feature for an error message.

    :param feature: Mapping[str, Any] = a GeoJSON feature
    :return: str = "Feature '<id>'", or "Feature (no id)" when it has none
    """
    feature_id = feature.get("id")
    return "Feature (no id)" if feature_id is None else f"Feature {feature_id!r}"


def _number(value: object, where: str, feature: Mapping[str, Any]) -> float:
    """Return a coordinate as a finite float.

    :param value: object = the coordinate as found in the feature
    :param where: str = where it was found, for the error message
    :param feature: Mapping[str, Any] = the feature, for the error message
    :return: float = the coordinate
    :raises ValueError: when it is not a real number (booleans and strings included) or is NaN or infinite
    """
    if type(value) is float and value - value == 0.0:  # the common case, finite: x - x is NaN for NaN and inf
        return value
    if isinstance(value, bool) or not isinstance(value, (float, int, numbers.Real)):
        raise ValueError(f"{_name(feature)}: {where} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{_name(feature)}: {where} must be finite, got {value!r}")
    return number


def _properties(feature: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the properties of a feature.

    :param feature: Mapping[str, Any] = a GeoJSON feature (a geojson.Feature or a plain dict)
    :return: Optional[Mapping[str, Any]] = its properties, or None when it has none
    :raises TypeError: when the feature is not a mapping
    :raises ValueError: when its properties are present but not a mapping
    """
    if not isinstance(feature, (dict, Mapping)):  # dict first: a cheap check for the usual case
        raise TypeError(f"expected a GeoJSON feature mapping, got {type(feature).__name__}")
    properties = feature.get("properties")
    if properties is None:
        return None
    if not isinstance(properties, (dict, Mapping)):
        raise ValueError(f"{_name(feature)}: properties must be an object, got {type(properties).__name__}")
    return properties


def _bounds_imcoords(value: object, feature: Mapping[str, Any]) -> Bounds:
    """Validate a ``bounds_imcoords`` property.

    :param value: object = the property value
    :param feature: Mapping[str, Any] = the feature, for error messages
    :return: Bounds = (minx, miny, maxx, maxy)
    :raises ValueError: when it is not 4 finite numbers with min <= max
    """
    if type(value) is list and len(value) == 4 and all(type(v) in _PLAIN_NUMBERS for v in value):
        try:  # the common case first: four plain numbers, finite, min <= max
            minx, miny, maxx, maxy = float(value[0]), float(value[1]), float(value[2]), float(value[3])
        except OverflowError:
            pass  # an int beyond floats: refused below
        else:
            if minx - minx + miny - miny + maxx - maxx + maxy - maxy == 0.0 and minx <= maxx and miny <= maxy:
                return minx, miny, maxx, maxy  # (x - x is NaN for NaN and infinity)
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else repr(value)
        raise ValueError(f"{_name(feature)}: bounds_imcoords must be [minx, miny, maxx, maxy], got {got}")
    minx, miny, maxx, maxy = (_number(v, f"bounds_imcoords[{i}]", feature) for i, v in enumerate(value))
    if minx > maxx or miny > maxy:
        raise ValueError(f"{_name(feature)}: bounds_imcoords has min > max: {list(value)!r}")
    return minx, miny, maxx, maxy


def _geom_imcoords(value: object, feature: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Validate a ``geom_imcoords`` property.

    :param value: object = the property value
    :param feature: Mapping[str, Any] = the feature, for error messages
    :return: List[Tuple[float, float]] = its points, at least one
    :raises ValueError: when it is not a non-empty list of [x, y] pairs of finite numbers
    """
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{_name(feature)}: geom_imcoords must be a non-empty list of [x, y] points, got {value!r}")
    points = []
    for i, point in enumerate(value):
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ValueError(f"{_name(feature)}: geom_imcoords[{i}] must be an [x, y] pair, got {point!r}")
        where = f"geom_imcoords[{i}]"
        points.append((_number(point[0], where, feature), _number(point[1], where, feature)))
    return points


def _check_coordinates(coordinates: object, depth: int, where: str, feature: Mapping[str, Any]) -> None:
    """Check that GeoJSON coordinates nest positions to the expected depth and that every number is finite.

    Shapely would otherwise quietly accept strings and booleans as numbers and NaN as a coordinate.

    :param coordinates: object = a position (depth 0) or a list of coordinates one level shallower
    :param depth: int = how many list levels are expected above the positions
    :param where: str = where the coordinates were found, for error messages
    :param feature: Mapping[str, Any] = the feature, for error messages
    :raises ValueError: when the nesting is wrong or a position is not 2 or 3 finite numbers
    """
    if not isinstance(coordinates, (list, tuple)):
        raise ValueError(f"{_name(feature)}: {where} must be a list, got {coordinates!r}")
    if depth == 0:
        if len(coordinates) not in (2, 3):
            raise ValueError(f"{_name(feature)}: {where} must be a position of 2 or 3 numbers, got {coordinates!r}")
        for value in coordinates:
            _number(value, where, feature)
        return
    for i, item in enumerate(coordinates):
        _check_coordinates(item, depth - 1, f"{where}[{i}]", feature)


def _check_geojson(value: object, where: str, feature: Mapping[str, Any]) -> None:
    """Check the structure and the numbers of a GeoJSON geometry object.

    :param value: object = the geometry object
    :param where: str = where it was found, for error messages
    :param feature: Mapping[str, Any] = the feature, for error messages
    :raises ValueError: when it is not a GeoJSON geometry object of a known type with well-formed coordinates
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{_name(feature)}: {where} must be a GeoJSON geometry object, got {value!r}")
    geometry_type = value.get("type")
    if geometry_type == _GEOMETRY_COLLECTION:
        geometries = value.get("geometries")
        if not isinstance(geometries, (list, tuple)):
            raise ValueError(f"{_name(feature)}: {where}.geometries must be a list, got {geometries!r}")
        for i, member in enumerate(geometries):
            _check_geojson(member, f"{where}.geometries[{i}]", feature)
        return
    depth = _COORDINATE_DEPTH.get(geometry_type) if isinstance(geometry_type, str) else None
    if depth is None:
        raise ValueError(f"{_name(feature)}: {where} has an unsupported GeoJSON type {geometry_type!r}")
    if "coordinates" not in value:
        raise ValueError(f"{_name(feature)}: {where} has no coordinates")
    _check_coordinates(value["coordinates"], depth, f"{where}.coordinates", feature)


def _image_geometry(value: object, feature: Mapping[str, Any]) -> BaseGeometry:
    """Validate an ``imageGeometry`` property and build its shapely geometry.

    :param value: object = the property value
    :param feature: Mapping[str, Any] = the feature, for error messages
    :return: BaseGeometry = the geometry, never empty
    :raises ValueError: when it is not a well-formed, non-empty GeoJSON geometry object
    """
    _check_geojson(value, "imageGeometry", feature)
    try:
        geometry = shape(value)
    except (ShapelyError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"{_name(feature)}: imageGeometry is not a valid GeoJSON geometry: {error}") from error
    if geometry.is_empty:
        raise ValueError(f"{_name(feature)}: imageGeometry is empty")
    return geometry


def _points_geometry(points: Sequence[tuple[float, float]]) -> BaseGeometry:
    """Build the geometry of a ``geom_imcoords`` point list.

    :param points: Sequence[Tuple[float, float]] = at least one point; a closing point equal to the first is optional
    :return: BaseGeometry = a Point for one distinct point, a LineString for two, otherwise a Polygon
    """
    if len(points) > 1 and points[0] == points[-1]:
        points = points[:-1]
    if len(points) == 1:
        return Point(points[0])
    if len(points) == 2:
        return LineString(points)
    return Polygon(points)


def get_feature_image_geometry(feature: Mapping[str, Any]) -> BaseGeometry | None:
    """Return the image-space (pixel) geometry of a feature.

    The first present property wins: ``imageGeometry``, then ``bounds_imcoords`` (as a box), then ``geom_imcoords``
    (a Point, LineString or Polygon depending on how many distinct points it has).

    :param feature: Feature = a GeoJSON feature (a geojson.Feature or a plain dict)
    :return: Optional[BaseGeometry] = the geometry, or None when the feature has no image geometry
    :raises ValueError: when the image geometry is present but malformed
    :raises TypeError: when the feature is not a mapping
    """
    properties = _properties(feature)
    if properties is None:
        return None
    value = properties.get("imageGeometry")
    if value is not None:
        return _image_geometry(value, feature)
    value = properties.get("bounds_imcoords")
    if value is not None:
        return box(*_bounds_imcoords(value, feature))
    value = properties.get("geom_imcoords")
    if value is not None:
        return _points_geometry(_geom_imcoords(value, feature))
    return None


def get_feature_image_bounds(feature: Mapping[str, Any]) -> Bounds | None:
    """Return the image-space bounds of a feature.

    The first present property wins: ``imageGeometry``, then ``bounds_imcoords``, then ``geom_imcoords``. Only
    ``imageGeometry`` goes through shapely; the other two are plain min/max over numbers.

    :param feature: Feature = a GeoJSON feature (a geojson.Feature or a plain dict)
    :return: Optional[Tuple[float, float, float, float]] = (minx, miny, maxx, maxy), or None without image geometry
    :raises ValueError: when the image geometry is present but malformed
    :raises TypeError: when the feature is not a mapping
    """
    properties = _properties(feature)
    if properties is None:
        return None
    value = properties.get("imageGeometry")
    if value is not None:
        minx, miny, maxx, maxy = _image_geometry(value, feature).bounds
        return float(minx), float(miny), float(maxx), float(maxy)
    value = properties.get("bounds_imcoords")
    if value is not None:
        return _bounds_imcoords(value, feature)
    value = properties.get("geom_imcoords")
    if value is not None:
        points = _geom_imcoords(value, feature)
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        return min(xs), min(ys), max(xs), max(ys)
    return None
