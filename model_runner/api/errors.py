"""The error raised for an invalid request, and the field checks shared by the request classes that raise it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shapely import wkt
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry


class RequestValidationError(ValueError):
    """A request field holds a value the model runner cannot process.

    ``field`` names the offending field ("tile_size"); for unknown keys given to ``from_dict`` it lists them,
    comma-separated, and it is "" when the problem concerns the request as a whole.
    """

    def __init__(self, field: str, message: str) -> None:
        """Build the error.

        :param field: str = the name of the offending field
        :param message: str = the full message, e.g. "ImageRequest.tile_size: expected two positive ints, got (0, 5)"
        """
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[RequestValidationError], tuple[str, str]]:
        """Keep the field when the error is pickled (multiprocessing, queues).

        :return: Tuple[type, Tuple[str, str]] = how to rebuild the error
        """
        return type(self), (self.field, self.message)


def fail(owner: str, field: str, reason: str) -> RequestValidationError:
    """Build the error for one field.

    :param owner: str = the request class name, e.g. "ImageRequest"
    :param field: str = the field name
    :param reason: str = what is wrong, e.g. "expected two positive ints, got (0, 5)"
    :return: RequestValidationError = the error, to be raised by the caller
    """
    return RequestValidationError(field, f"{owner}.{field}: {reason}")


def check_str(owner: str, field: str, value: object, *, allow_empty: bool = False) -> str:
    """Check a string field.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given
    :param allow_empty: bool = whether "" is acceptable
    :return: str = the value
    :raises RequestValidationError: when it is not a string, is empty and that is not allowed, or is not valid
        UTF-8 text (a lone surrogate: DynamoDB could not store it)
    """
    if not isinstance(value, str) or (not value and not allow_empty):
        expected = "a string" if allow_empty else "a non-empty string"
        raise fail(owner, field, f"expected {expected}, got {value!r}")
    _check_utf8(owner, field, value)
    return value


def _check_utf8(owner: str, field: str, value: str) -> None:
    """Refuse text that cannot be encoded as UTF-8.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: str = the text
    :raises RequestValidationError: when it holds a lone surrogate
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise fail(owner, field, f"expected UTF-8 text, got a lone surrogate at index {error.start}") from error


def check_optional_str(owner: str, field: str, value: object) -> str | None:
    """Check an optional string field; "" counts as not given.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given
    :return: Optional[str] = the value, or None when it is None or ""
    :raises RequestValidationError: when it is neither None nor a string, or is not valid UTF-8 text
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(owner, field, f"expected a string or None, got {value!r}")
    _check_utf8(owner, field, value)
    return value


def _is_int(value: object) -> bool:
    """Tell whether a value is an int and not a bool.

    :param value: object = the value
    :return: bool = True for ints other than True/False
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_int_pair(owner: str, field: str, value: object, *, minimum: int) -> tuple[int, int]:
    """Check a pair of ints, each at least ``minimum``; a list is accepted and becomes a tuple.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given
    :param minimum: int = the smallest acceptable value (1 for sizes, 0 for offsets)
    :return: Tuple[int, int] = the pair
    :raises RequestValidationError: when it is not two ints, or one is below the minimum
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_int(v) and v >= minimum for v in value):
        kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise fail(owner, field, f"expected two {kind} ints, got {value!r}")
    return value[0], value[1]


def check_tile_overlap(owner: str, value: object, tile_size: tuple[int, int]) -> tuple[int, int]:
    """Check a tile overlap: two non-negative ints, each smaller than the matching tile dimension.

    :param owner: str = the request class name
    :param value: object = the value given
    :param tile_size: Tuple[int, int] = the already checked tile size
    :return: Tuple[int, int] = the overlap
    :raises RequestValidationError: when it is not two non-negative ints smaller than the tile size
    """
    overlap = check_int_pair(owner, "tile_overlap", value, minimum=0)
    if overlap[0] >= tile_size[0] or overlap[1] >= tile_size[1]:
        raise fail(owner, "tile_overlap", f"expected each value smaller than tile_size {tile_size}, got {overlap}")
    return overlap


def check_dict_list(owner: str, field: str, value: object) -> list[dict[str, Any]]:
    """Check a list of dicts; a tuple is accepted and becomes a list.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given
    :return: List[Dict[str, Any]] = the list
    :raises RequestValidationError: when it is not a list, or an item is not a dict
    """
    if not isinstance(value, (list, tuple)):
        raise fail(owner, field, f"expected a list of dicts, got {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise fail(owner, field, f"expected a list of dicts, item {i} is {item!r}")
    return list(value)


def check_optional_dict(owner: str, field: str, value: object) -> dict[str, Any] | None:
    """Check an optional dict field.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given
    :return: Optional[Dict[str, Any]] = the value
    :raises RequestValidationError: when it is neither None nor a dict
    """
    if value is not None and not isinstance(value, dict):
        raise fail(owner, field, f"expected a dict or None, got {value!r}")
    return value


def check_geometry(owner: str, field: str, value: object) -> BaseGeometry | None:
    """Check an optional, non-empty shapely geometry; a WKT string is parsed.

    :param owner: str = the request class name
    :param field: str = the field name
    :param value: object = the value given: None, a shapely geometry or a WKT string
    :return: Optional[BaseGeometry] = the geometry
    :raises RequestValidationError: when the WKT does not parse, the geometry is empty, or the type is wrong
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = wkt.loads(value)
        except (ShapelyError, ValueError, TypeError) as error:
            raise fail(owner, field, f"expected a WKT geometry, could not parse {value!r}: {error}") from error
    if not isinstance(value, BaseGeometry):
        raise fail(owner, field, f"expected a shapely geometry, a WKT string or None, got {value!r}")
    if value.is_empty:
        raise fail(owner, field, f"expected a non-empty geometry, got {value.wkt}")
    return value


def check_keys(cls: type[Any], data: object) -> dict[str, Any]:
    """Check the keys of a dict meant to build the dataclass ``cls``.

    :param cls: type = the request dataclass
    :param data: object = the dict, keyed by field name
    :return: Dict[str, Any] = keyword arguments for ``cls``
    :raises RequestValidationError: when data is not a mapping, has unknown keys, or lacks a required field
    """
    owner = cls.__name__
    if not isinstance(data, Mapping):
        raise RequestValidationError("", f"{owner}: expected a dict, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields if f.init}
    unknown = sorted(str(key) for key in data if key not in names)
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        raise RequestValidationError(", ".join(unknown), f"{owner}: unknown keys {listed}")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and required and f.name not in data:
            raise fail(owner, f.name, "required field is missing")
    return dict(data)
