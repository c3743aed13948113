"""How features become feature-table payloads and back: encoding, compression, decoding and the item size rule.

This is the one feature codec of the package. A feature is encoded once, as canonical JSON (orjson, keys sorted, no
whitespace), so that the same feature always gives the same bytes: storage keys are digests of those bytes, and a
retried write produces the same items. The features of one item are stored as a binary attribute whose first byte
names the codec:

``0x01`` (:data:`CODEC_JSON_LINES_ZSTD`)
    a zstd frame of the features' JSON, one feature per line (``\\n`` between features; canonical JSON never contains
    a raw newline). Each feature's JSON is kept as written, so an export can copy the bytes without decoding them.

An item is measured the way DynamoDB bills and limits it (UTF-8 attribute names and values, binary values as raw
bytes, numbers by significant digits) and kept at or under :data:`ITEM_SIZE_TARGET` (350 KB), a margin under
DynamoDB's 400 KB limit. Which features go into which item is decided by :mod:`~model_runner.database.feature_layout`
(a call is compressed whole and split only where an item would pass the target).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import geojson
import orjson
import zstandard

#: Codec marker: a zstd frame of newline-delimited canonical JSON features.
CODEC_JSON_LINES_ZSTD = 0x01

#: DynamoDB's maximum item size, in bytes.
DYNAMODB_ITEM_LIMIT = 400 * 1024

#: The size every feature item is kept at or under: DynamoDB's limit minus a 50 KB margin.
ITEM_SIZE_TARGET = 350 * 1024

#: zstd level: level 3 (zstd's default) compresses detections about 6:1 at a few hundred MB/s.
COMPRESSION_LEVEL = 3

_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NULL = b"null"
_NEWLINE = b"\n"
_local = threading.local()


class FeatureTooLargeError(ValueError):
    """A feature that cannot be stored even alone in an item of :data:`ITEM_SIZE_TARGET` bytes.

    :param index: int = position of the feature in the call
    :param size: int = bytes of the item the feature alone would need
    :param limit: int = the size allowed
    """

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"feature too large to store: its item would take {size} bytes, {limit} are allowed")
        self.index = index
        self.size = size
        self.limit = limit


# -- encoding ------------------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """Convert what orjson does not serialize natively, or refuse it.

    :param value: Any = the value orjson met
    :return: Any = an int, float or dict orjson can serialize
    :raises ValueError: for a non-finite number
    :raises TypeError: for any other type
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite number {value}")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"non-finite number {value}")
        return number
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON: {value!r:.80}")


def _non_finite_path(value: Any, path: str) -> str | None:
    """Return where the first NaN or infinite float is inside a value, or None when there is none.

    :param value: Any = the value
    :param path: str = where the value is, for the answer
    :return: Optional[str] = a path such as ``properties.score``, or None
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, float):
            if not math.isfinite(current):
                return where
        elif isinstance(current, Mapping):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in current.items())
        elif isinstance(current, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(current))
    return None


def _shallow_nones(feature: Mapping[str, Any]) -> int:
    """Count the None values among a feature's members and its properties' members.

    :param feature: Mapping[str, Any] = the feature
    :return: int = how many ``null`` tokens its JSON has at those two levels
    """
    count = sum(1 for value in feature.values() if value is None)
    properties = feature.get("properties")
    if isinstance(properties, Mapping):
        count += sum(1 for value in properties.values() if value is None)
    return count


def encode_feature(feature: Mapping[str, Any]) -> bytes:
    """Encode a feature as canonical JSON: keys sorted, no whitespace, UTF-8.

    Decimals and numpy numbers become JSON numbers; tuples become arrays. orjson writes NaN and infinity as ``null``,
    which would silently change the feature, so a feature whose JSON has more ``null`` tokens than the None values
    at its top two levels is searched for non-finite numbers.

    :param feature: Mapping[str, Any] = a GeoJSON feature (geojson.Feature or dict)
    :return: bytes = its canonical JSON, without a newline
    :raises ValueError: when a number is NaN or infinite, or a string is not valid UTF-8
    :raises TypeError: when the feature is not a mapping, or holds a value JSON cannot represent (an object, a
        non-string key, an integer beyond 64 bits)
    """
    if not isinstance(feature, (dict, Mapping)):  # dict first: a cheap check for the usual case
        raise TypeError(f"a feature must be a mapping, got {type(feature).__name__}")
    try:
        data = orjson.dumps(feature, default=_default, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as err:
        cause = err.__cause__
        if isinstance(cause, ValueError):
            raise ValueError(str(cause)) from err
        if isinstance(cause, TypeError):
            raise TypeError(str(cause)) from err
        message = str(err)
        if "UTF-8" in message:
            raise ValueError(message) from err
        raise TypeError(message) from err
    if _NULL in data and data.count(_NULL) > _shallow_nones(feature):
        where = _non_finite_path(feature, "")
        if where is not None:
            raise ValueError(f"non-finite number at {where}")
    return data


# -- measuring items -----------------------------------------------------------------------------------------------


def number_size(value: int | float | Decimal) -> int:
    """Return the bytes DynamoDB counts for a number value: one per two significant digits, plus one.

    :param value: Union[int, float, Decimal] = the number
    :return: int = its size
    """
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    digits = str(number.normalize()).lstrip("-").replace(".", "").split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Any) -> int:
    """Return the bytes DynamoDB counts for an attribute value, given as a native Python value.

    str (S) counts its UTF-8 bytes; bytes (B) its length; int, float, Decimal (N) by significant digits; bool and
    None one byte; list and tuple (L) and dict (M) three bytes plus one per element plus the elements (and the keys).

    :param value: Any = the value
    :return: int = its size
    :raises TypeError: for a value DynamoDB cannot store
    """
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, Decimal)):
        return number_size(value)
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + value_size(v) for v in value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode("utf-8")) + value_size(v) for k, v in value.items())
    raise TypeError(f"cannot size a value of type {type(value).__name__}")


def item_size(attributes: Mapping[str, Any]) -> int:
    """Return the size of an item as DynamoDB counts it: the UTF-8 names of its attributes plus their values.

    :param attributes: Mapping[str, Any] = stored attribute name to native value (None values are left out)
    :return: int = bytes
    """
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in attributes.items() if value is not None)


# -- compression -------------------------------------------------------------------------------------------------


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_content_size=True)
        _local.compressor = compressor
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor()
        _local.decompressor = decompressor
    return decompressor


def compress(encoded: Sequence[bytes]) -> bytes:
    """Compress encoded features into a payload of codec :data:`CODEC_JSON_LINES_ZSTD`.

    :param encoded: Sequence[bytes] = features as returned by :func:`encode_feature`
    :return: bytes = the marker byte followed by a zstd frame of the newline-joined features
    """
    return bytes((CODEC_JSON_LINES_ZSTD,)) + _compressor().compress(_NEWLINE.join(encoded))


# -- decoding ------------------------------------------------------------------------------------------------------


def decompress(payload: bytes) -> bytes:
    """Return the newline-delimited JSON of a payload.

    :param payload: bytes = the value of an item's binary attribute
    :return: bytes = features' JSON, one per line, no trailing newline
    :raises ValueError: when the payload is empty, names an unknown codec or is corrupt
    """
    if not payload:
        raise ValueError("empty feature payload")
    if payload[0] != CODEC_JSON_LINES_ZSTD:
        raise ValueError(f"unknown feature codec 0x{payload[0]:02x} (this version reads 0x{CODEC_JSON_LINES_ZSTD:02x})")
    try:
        return bytes(_decompressor().decompress(payload[1:]))
    except zstandard.ZstdError as err:
        raise ValueError(f"corrupt feature payload: {err}") from err


def decoded_size(payload: bytes) -> int:
    """Return the bytes :func:`decompress` will return for a payload, as its zstd frame declares them.

    :param payload: bytes = the value of an item's binary attribute
    :return: int = bytes; an estimate (8 times the payload) when the frame does not say or the payload is not ours
    """
    if len(payload) > 1 and payload[0] == CODEC_JSON_LINES_ZSTD:
        try:
            size = zstandard.frame_content_size(payload[1:])
        except zstandard.ZstdError:
            size = -1
        if size >= 0:
            return int(size)
    return 8 * len(payload)


def decode_lines(lines: bytes) -> list[dict[str, Any]]:
    """Decode newline-delimited features into dictionaries (one orjson call for all of them).

    :param lines: bytes = as returned by :func:`decompress`
    :return: List[Dict[str, Any]] = the features
    """
    if not lines:
        return []
    decoded: list[dict[str, Any]] = orjson.loads(b"[" + lines.replace(_NEWLINE, b",") + b"]")
    return decoded


def decode(payload: bytes) -> list[dict[str, Any]]:
    """Decode a payload into feature dictionaries.

    :param payload: bytes = the value of an item's binary attribute
    :return: List[Dict[str, Any]] = the features
    :raises ValueError: when the payload cannot be decoded
    """
    return decode_lines(decompress(payload))


def decode_classic(features: Iterable[str]) -> list[dict[str, Any]]:
    """Decode the classic layout: a list of GeoJSON strings, one feature each.

    Classic writers used Python's json module, which writes NaN and Infinity; those are read as floats.

    :param features: Iterable[str] = the GeoJSON strings
    :return: List[Dict[str, Any]] = the features
    :raises ValueError: when a string is not JSON
    """
    decoded = []
    for text in features:
        try:
            decoded.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            import json

            decoded.append(json.loads(text))
    return decoded


def classic_lines(features: Iterable[str]) -> bytes:
    """Re-encode classic GeoJSON strings as canonical newline-delimited JSON, as :func:`decompress` returns.

    :param features: Iterable[str] = the GeoJSON strings
    :return: bytes = one feature per line (NaN and Infinity become null, as strict JSON requires)
    """
    return _NEWLINE.join(orjson.dumps(feature, option=orjson.OPT_SORT_KEYS) for feature in decode_classic(features))


_GEOMETRY_TYPES: dict[str, type[dict[str, Any]]] = {
    name: getattr(geojson, name)
    for name in (
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    )
}


def _as(cls: type[dict[str, Any]], values: Mapping[str, Any]) -> dict[str, Any]:
    """Make an instance of a geojson class holding exactly ``values``, without its constructor.

    geojson's constructors round coordinates to 6 decimals and validate them; the features read back must equal the
    features written, and rebuilding a million of them through the constructors is slow.
    """
    instance: dict[str, Any] = dict.__new__(cls)
    dict.update(instance, values)
    return instance


def to_geojson(feature: Mapping[str, Any]) -> geojson.Feature:
    """Return a decoded feature as a geojson.Feature, its geometry as the matching geojson geometry class.

    The values are kept exactly (no coordinate rounding): the result equals the dictionary it was made from.

    :param feature: Mapping[str, Any] = a decoded feature
    :return: geojson.Feature = the feature
    """
    result = _as(geojson.Feature, feature)
    geometry = feature.get("geometry")
    if isinstance(geometry, Mapping):
        cls = _GEOMETRY_TYPES.get(str(geometry.get("type")))
        if cls is not None:
            dict.__setitem__(result, "geometry", _as(cls, geometry))
    return result


# -- keys ----------------------------------------------------------------------------------------------------------


def digest(chunks: Iterable[bytes], size: int = 12) -> str:
    """Return a hex BLAKE2b digest of byte chunks, each length-prefixed so that different splits never collide.

    :param chunks: Iterable[bytes] = the data
    :param size: int = digest bytes
    :return: str = 2 * size hex characters
    """
    framed: list[bytes] = []
    for chunk in chunks:
        framed.append(len(chunk).to_bytes(8, "big"))
        framed.append(chunk)
    return hashlib.blake2b(b"".join(framed), digest_size=size).hexdigest()  # one call: cheaper than one per chunk


def shard_of(key: str, salt: int) -> int:
    """Return the shard, 1..salt, of a key: a stable hash (BLAKE2b, unlike ``hash()`` the same in every process).

    :param key: str = the key
    :param salt: int = number of shards
    :return: int = the shard
    """
    value = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
    return value % salt + 1


def iter_lines(lines: bytes) -> Iterator[bytes]:
    """Yield the JSON of each feature of :func:`decompress`'s output.

    :param lines: bytes = newline-delimited features
    :return: Iterator[bytes] = one JSON document per feature
    """
    if lines:
        yield from lines.split(_NEWLINE)
