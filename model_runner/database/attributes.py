"""Attribute types for the models: numbers that accept what callers have, expiry in plain epoch seconds.

PynamoDB's NumberAttribute refuses ``Decimal`` (what boto3 hands out) and its TTLAttribute reads back as a
``datetime``; the classic API stores and returns expiry as an int of epoch seconds. These attributes keep the
classic Python types while staying ordinary PynamoDB attributes (TTL is still found by ``create_table``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute, ListAttribute, NumberAttribute, TTLAttribute
from pynamodb.attributes import UnicodeAttribute as _PynamoUnicodeAttribute
from pynamodb.constants import MAP

Number = int | float


def to_native_number(value: Any) -> Number:
    """Return an int or float for a number given as int, float, Decimal or numeric string.

    :param value: Any = the number
    :return: Union[int, float] = an int when the value is whole, else a float
    :raises TypeError: when the value is not a number (bool included)
    :raises ValueError: when the value is NaN or infinite (DynamoDB cannot store them)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"expected a number, got {type(value).__name__}: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"DynamoDB cannot store the number {value}")
        return int(value) if value == value.to_integral_value() else float(value)
    if not math.isfinite(value):
        raise ValueError(f"DynamoDB cannot store the number {value}")
    return value


def to_native(data: Any) -> Any:
    """Convert Decimals anywhere inside lists, tuples and dicts to int or float.

    :param data: Any = the data to convert
    :return: Any = the same structure with native numbers (tuples become lists)
    """
    if isinstance(data, Decimal):
        return to_native_number(data)
    if isinstance(data, dict):
        return {key: to_native(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [to_native(value) for value in data]
    return data


class UnicodeAttribute(_PynamoUnicodeAttribute):
    """PynamoDB's string attribute, refusing what is not a string and text that is not valid UTF-8.

    PynamoDB's own serializes any value and its client skips botocore's parameter validation, so a number given for
    an id would be stored as its digits, a list would reach DynamoDB as a malformed request, and a lone surrogate
    would depend on the server; here each is refused before any request.
    """

    def serialize(self, value: Any) -> Any:
        """Encode a string for DynamoDB.

        :param value: Any = the string
        :return: Any = the value to send
        :raises TypeError: when the value is not a str
        :raises ValueError: when the text cannot be encoded as UTF-8 (lone surrogates)
        """
        if not isinstance(value, str):
            raise TypeError(f"{self.attr_name}: expected a string, got {type(value).__name__}: {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"{self.attr_name}: not valid UTF-8 text (lone surrogate at index {err.start})") from err
        return super().serialize(value)


class IntegerAttribute(NumberAttribute):
    """A number attribute holding an int; accepts int, whole float and Decimal."""

    def serialize(self, value: Any) -> str:
        """Encode an integer for DynamoDB.

        :param value: Any = the number
        :return: str = its DynamoDB number string
        :raises ValueError: when it is not whole
        """
        number = to_native_number(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError(f"{self.attr_name}: expected a whole number, got {value!r}")
            number = int(number)
        return str(number)

    def deserialize(self, value: str) -> int:
        """Decode an integer stored by DynamoDB.

        :param value: str = the DynamoDB number string
        :return: int = the number
        """
        return int(Decimal(value))


class FloatAttribute(NumberAttribute):
    """A number attribute holding an int or a float; accepts Decimal; refuses NaN and infinity."""

    def serialize(self, value: Any) -> str:
        """Encode a number for DynamoDB.

        :param value: Any = the number
        :return: str = its DynamoDB number string
        """
        return repr(to_native_number(value)) if not isinstance(value, int) else str(value)

    def deserialize(self, value: str) -> Number:
        """Decode a number stored by DynamoDB.

        :param value: str = the DynamoDB number string
        :return: Union[int, float] = the number
        """
        return to_native_number(Decimal(value))


def _number(text: str) -> Number:
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)  # the common case (tile coordinates, counts) without a Decimal
    return to_native_number(Decimal(text))


def deserialize_value(value: Mapping[str, Any]) -> Any:
    """Decode a DynamoDB attribute value into native Python (numbers as int or float).

    :param value: Mapping[str, Any] = the attribute value, such as ``{"N": "3"}``
    :return: Any = the Python value
    :raises TypeError: for a type DynamoDB does not have
    """
    ((kind, data),) = value.items()
    if kind == "N":
        return _number(data)
    if kind in ("S", "B", "BOOL"):
        return data
    if kind == "L":
        return [deserialize_value(v) for v in data]
    if kind == "M":
        return {k: deserialize_value(v) for k, v in data.items()}
    if kind == "NULL":
        return None
    if kind in ("SS", "BS"):
        return set(data)
    if kind == "NS":
        return {_number(v) for v in data}
    raise TypeError(f"unknown DynamoDB type {kind}")


def serialize_value(value: Any) -> dict[str, Any]:
    """Encode a Python value as a DynamoDB attribute value.

    :param value: Any = str, bytes, bool, int, float, Decimal, None, list/tuple, dict, or set of str/numbers/bytes
    :return: Dict[str, Any] = the attribute value, such as ``{"N": "3"}``
    :raises TypeError: for any other type
    :raises ValueError: for NaN or infinite numbers
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (int, float, Decimal)):
        return {"N": str(to_native_number(value))}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): serialize_value(v) for k, v in value.items()}}
    if isinstance(value, (set, frozenset)) and value:
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in value):
            return {"NS": [str(to_native_number(v)) for v in value]}
        if all(isinstance(v, (bytes, bytearray)) for v in value):
            return {"BS": [bytes(v) for v in value]}
    raise TypeError(f"cannot store a value of type {type(value).__name__} in DynamoDB: {value!r}")


class NativeMapAttribute(Attribute[dict[str, Any]]):
    """An untyped map attribute (a DynamoDB M) of native values: nested dicts, lists, strings, numbers, booleans.

    Numbers read back as int or float (never Decimal); Decimals and tuples are accepted when writing.
    """

    attr_type = MAP

    def serialize(self, value: Any) -> dict[str, Any]:
        """Encode a dict as the members of a DynamoDB map.

        :param value: Any = the dict
        :return: Dict[str, Any] = member name to DynamoDB attribute value
        :raises TypeError: when the value is not a dict, or holds a value DynamoDB cannot store
        """
        if not isinstance(value, dict):
            raise TypeError(f"{self.attr_name}: expected a dict, got {type(value).__name__}: {value!r}")
        return {str(k): serialize_value(v) for k, v in value.items()}

    def deserialize(self, value: Any) -> dict[str, Any]:
        """Decode the members of a stored map.

        :param value: Any = member name to DynamoDB attribute value
        :return: Dict[str, Any] = the dict, with native numbers
        """
        return {k: deserialize_value(v) for k, v in value.items()}


class NativeListAttribute(ListAttribute[Any]):
    """An untyped list attribute (lists of lists, maps, numbers, strings, None) that accepts Decimals and tuples."""

    def deserialize(self, values: Any) -> list[Any]:
        """Decode a stored list into native Python values (maps as dicts, numbers as int or float).

        :param values: Any = the DynamoDB list value
        :return: List[Any] = the list
        """
        return [deserialize_value(value) for value in values]

    def serialize(self, values: Any, *, null_check: bool = True) -> Any:
        """Encode a list, converting Decimals and tuples first.

        :param values: Any = the list
        :param null_check: bool = passed to PynamoDB
        :return: Any = the DynamoDB list value
        :raises TypeError: when the value is not a list or tuple (a string would become a list of its characters)
        """
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"{self.attr_name}: expected a list, got {type(values).__name__}: {values!r}")
        return super().serialize(to_native(values), null_check=null_check)


class EpochSecondsTTLAttribute(TTLAttribute):
    """The expiry attribute: an int of epoch seconds in Python, a DynamoDB number, and the table's TTL attribute.

    Accepts an int/float/Decimal of epoch seconds, a timezone-aware datetime, or a timedelta from now.
    """

    @staticmethod
    def _to_epoch(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, timedelta):
            return int(time.time() + value.total_seconds())
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("expire_time: a datetime must be timezone-aware")
            return int(value.timestamp())
        return int(to_native_number(value))

    def __set__(self, instance: Any, value: Any) -> None:
        """Store the value as int epoch seconds.

        :param instance: Any = the model instance
        :param value: Any = epoch seconds, datetime or timedelta
        """
        super(TTLAttribute, self).__set__(instance, self._to_epoch(value))  # type: ignore[arg-type]

    def serialize(self, value: Any) -> str | None:
        """Encode the expiry as a DynamoDB number of epoch seconds.

        :param value: Any = epoch seconds, datetime or timedelta
        :return: Optional[str] = the DynamoDB number string
        """
        epoch = self._to_epoch(value)
        return None if epoch is None else str(epoch)

    def deserialize(self, value: str) -> int:
        """Decode the expiry.

        :param value: str = the DynamoDB number string
        :return: int = epoch seconds
        """
        return int(Decimal(value))
