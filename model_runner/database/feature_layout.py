"""Feature items: their keys, their attributes, and the rule that decides which items a reader takes.

THE WRITE INVARIANT (``add_features(features, source_tile=tile)``, exactly once per tile)

A *write* is one call for one tile of one image. It is stored as ``m >= 1`` items, all in the tile's shard, under

    range_key = "<tile id>#<write id>#<i>"      i = 0 .. m-1, every item recording m (attribute ``m``)
    write id  = "<written_at, epoch ms, 13 digits>.<digest>"

where the digest covers the image, the tile, the write format, the features (canonical JSON, sorted) **and how they
are split into the m items**. Hence:

1. Items of two different writes never share a key: another moment or other content gives another write id, so no
   write ever overwrites part of another one (two writes in the same millisecond with the same content and split are
   byte for byte the same items).
2. A write is complete when all m items under its write id are present.
3. A reader takes, per tile, the complete write with the greatest write id (the last one written, by the writer's
   clock) and ignores every other item of the tile.

So a reader sees exactly the last complete write of every tile: never parts of two writes, never nothing while a
complete write exists (a retry cut off half way leaves the earlier complete write in force), whatever the split.
The split depends on the features alone: items are sized with placeholders as large as any clock-dependent value
(``expire_time``, the write id), so the same features give the same items at any moment.

Without a source tile (the classic at-least-once behaviour) the items of a call are
``range_key = "<digest>#<i>"``, the digest covering the image, the format, the features and their split; each item is
read on its own. Writing the same features again writes the same items (nothing lost, nothing doubled); other
features are added.

Layouts read (all of them, mixed in one image): the compact items (``p``: a compressed payload, see
:mod:`~model_runner.database.feature_codec`), the classic items (``features``: a list of GeoJSON strings, written by
the classic implementation, or by this one with ``FEATURE_WRITE_FORMAT=classic``), and the items of the previous
layout of this package (``<tile id>#<generation>#<span>#<i>`` with attributes ``g``, ``m``, ``t``: one generation per
digest of the features, complete when its m items are present, the newest by ``t`` taken).
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from pynamodb.attributes import BinaryAttribute, ListAttribute

from . import feature_codec as codec
from .attributes import EpochSecondsTTLAttribute, IntegerAttribute, UnicodeAttribute
from .ddb_helper import DDBItem

_LOGGER = logging.getLogger(__name__)

#: Write formats: ``compact`` (compressed payloads) and ``classic`` (lists of GeoJSON strings a classic reader reads).
COMPACT = "compact"
CLASSIC = "classic"
WRITE_FORMATS = (COMPACT, CLASSIC)

#: DynamoDB's limits on key values, in UTF-8 bytes.
MAX_HASH_KEY_BYTES = 2048
MAX_RANGE_KEY_BYTES = 1024

# Stored attribute names, as raw requests and answers use them.
HASH = "hash_key"
RANGE = "range_key"
EXPIRE = "expire_time"
CLASSIC_FEATURES = "features"
TILE_ID = "tile_id"
PACKED = "p"
COUNT = "n"
SOURCE = "s"
GENERATION = "g"  # previous layout only
ITEMS = "m"
WRITTEN_AT = "t"  # previous layout only

#: Digest bytes of a write id (24 hex characters).
_DIGEST_SIZE = 12
# Placeholders as large as any real value, to size an item before its clock-dependent values are known.
_MAX_EXPIRE = 10**11 - 1  # epoch seconds: 11 digits (year 5138)
_MAX_PART = 999_999
_MAX_COUNT = 10**9 - 1
_MAX_WRITE_ID = "9" * 13 + "." + "f" * (2 * _DIGEST_SIZE)


class FeatureItem(DDBItem):
    """One item of an image's features, stored under one shard.

    hash_key: str = image_id + "-" + shard number in 1..hash_salt (hash key)
    range_key: str = what makes the item unique in its shard, derived from its data (see the module) (range key)
    tile_id: Optional[str] = the classic layout's tile key span, ``<min_x>:<max_x>:<min_y>:<max_y>``
    features: Optional[List[str]] = the classic layout: one GeoJSON string per feature
    expire_time: Optional[int] = time in epoch seconds when the item expires (the table's TTL attribute)
    packed: Optional[bytes] = the features, encoded and compressed; the first byte names the codec (stored as ``p``)
    feature_count: Optional[int] = number of features in ``packed`` (stored as ``n``)
    source: Optional[str] = the source tile id, for items written with a source tile (stored as ``s``)
    generation_items: Optional[int] = number of items of the write the item belongs to (stored as ``m``)
    generation: Optional[str] = previous layout: digest of the features of the write (stored as ``g``)
    written_at: Optional[int] = previous layout: time in epoch milliseconds of the write (stored as ``t``)
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    classic_fields: ClassVar[tuple[str, ...]] = ("hash_key", "range_key", "tile_id", "features", "expire_time")
    hash_key = UnicodeAttribute(hash_key=True)
    range_key = UnicodeAttribute(range_key=True)
    tile_id = UnicodeAttribute(null=True)
    features = ListAttribute(of=UnicodeAttribute, null=True)
    expire_time = EpochSecondsTTLAttribute(null=True)
    packed = BinaryAttribute(null=True, legacy_encoding=False, attr_name=PACKED)
    feature_count = IntegerAttribute(null=True, attr_name=COUNT)
    source = UnicodeAttribute(null=True, attr_name=SOURCE)
    generation_items = IntegerAttribute(null=True, attr_name=ITEMS)
    generation = UnicodeAttribute(null=True, attr_name=GENERATION)
    written_at = IntegerAttribute(null=True, attr_name=WRITTEN_AT)


class KeyTooLongError(ValueError):
    """A key value over DynamoDB's limit (2,048 bytes for a hash key, 1,024 for a range key)."""


# -- writing -------------------------------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One feature of a call, encoded (a named tuple: built once per feature, it is cheap to make).

    :param data: bytes = its canonical JSON
    :param position: int = its position in the call (for error messages)
    :param span: str = its tile key span, ``<min_x>:<max_x>:<min_y>:<max_y>`` (the classic items' ``tile_id``;
        empty for the compact format, which does not store it)
    """

    data: bytes
    position: int
    span: str


_BY_DATA = operator.attrgetter("data")
_BY_SPAN_AND_DATA = operator.attrgetter("span", "data")


def tile_id(row: int, col: int, width: int, height: int) -> str:
    """Return the id of a source tile: ``r<row>c<col>w<width>h<height>`` (no ``#``: it prefixes range keys).

    :param row: int = the tile's first row
    :param col: int = the tile's first column
    :param width: int = its width
    :param height: int = its height
    :return: str = the id
    """
    return f"r{row}c{col}w{width}h{height}"


def _split_compact(entries: Sequence[Entry], budget: int, overhead: int) -> list[tuple[Sequence[Entry], bytes]]:
    """Split entries into compressed payloads of at most ``budget`` bytes, in as few parts as it takes.

    The whole call is compressed first; only when it does not fit is it cut into enough runs of similar raw size,
    each split again while it does not fit. The result depends on the entries alone.

    :param entries: Sequence[Entry] = the features, in their stored order
    :param budget: int = bytes allowed for a payload
    :param overhead: int = bytes of the item besides the payload (for the error message)
    :return: List[Tuple[Sequence[Entry], bytes]] = each part's features and payload, in order
    :raises FeatureTooLargeError: when one feature alone does not fit (index: its position in the call)
    """
    payload = codec.compress([entry.data for entry in entries])
    if len(payload) <= budget:
        return [(entries, payload)]
    if len(entries) == 1:
        raise codec.FeatureTooLargeError(entries[0].position, overhead + len(payload), overhead + budget)
    runs = min(len(entries), max(2, math.ceil(len(payload) / (budget * 0.9))))
    total = sum(len(entry.data) + 1 for entry in entries)
    cuts = [0]
    filled = 0
    for position, entry in enumerate(entries[:-1], start=1):
        filled += len(entry.data) + 1
        if filled * runs >= total * len(cuts):
            cuts.append(position)
            if len(cuts) == runs:
                break
    if len(cuts) == 1:  # the last feature holds most of the bytes: it goes alone
        cuts.append(len(entries) - 1)
    cuts.append(len(entries))
    parts: list[tuple[Sequence[Entry], bytes]] = []
    for start, end in itertools.pairwise(cuts):
        parts.extend(_split_compact(entries[start:end], budget, overhead))
    return parts


def _split_classic(entries: Sequence[Entry], budget: int, overhead: int) -> list[tuple[Sequence[Entry], list[str]]]:
    """Split entries into lists of GeoJSON strings of at most ``budget`` bytes as DynamoDB counts a list.

    :param entries: Sequence[Entry] = the features, in their stored order
    :param budget: int = bytes allowed for the list
    :param overhead: int = bytes of the item besides the list (for the error message)
    :return: List[Tuple[Sequence[Entry], List[str]]] = each part's features and strings, in order
    :raises FeatureTooLargeError: when one feature alone does not fit
    """
    parts: list[tuple[Sequence[Entry], list[str]]] = []
    start, size = 0, 3
    for position, entry in enumerate(entries):
        cost = 1 + len(entry.data)
        if 3 + cost > budget:
            raise codec.FeatureTooLargeError(entry.position, overhead + 3 + cost, overhead + budget)
        if size + cost > budget:
            parts.append((entries[start:position], [e.data.decode("utf-8") for e in entries[start:position]]))
            start, size = position, 3
        size += cost
    if start < len(entries):
        parts.append((entries[start:], [e.data.decode("utf-8") for e in entries[start:]]))
    return parts


def plan_items(
    image_id: str,
    entries: Sequence[Entry],
    *,
    source: str | None,
    hash_salt: int,
    now: float,
    expire_time: int,
    write_format: str = COMPACT,
    target: int = codec.ITEM_SIZE_TARGET,
) -> list[dict[str, Any]]:
    """Build the items that store the features of one call for one image, as DynamoDB attribute values.

    :param image_id: str = the image
    :param entries: Sequence[Entry] = its features, in any order (they are sorted here)
    :param source: Optional[str] = the source tile id; None for an at-least-once write
    :param hash_salt: int = shards per image
    :param now: float = the time of the write, epoch seconds (only in the write id, never in the split)
    :param expire_time: int = the items' expiry, epoch seconds
    :param write_format: str = ``compact`` or ``classic``
    :param target: int = the largest item allowed, in bytes
    :return: List[Dict[str, Any]] = the items, ``{"hash_key": {"S": ...}, ...}``, ready for a PutRequest
    :raises FeatureTooLargeError: when a feature cannot be stored even alone
    :raises KeyTooLongError: when a key would pass DynamoDB's limit
    """
    if not entries:
        return []
    if write_format not in WRITE_FORMATS:
        raise ValueError(f"write format must be one of {WRITE_FORMATS}, got {write_format!r}")
    classic = write_format == CLASSIC
    ordered = sorted(entries, key=_BY_SPAN_AND_DATA if classic else _BY_DATA)
    longest_hash = f"{image_id}-{hash_salt}"
    if source is None:
        range_template = "f" * (2 * _DIGEST_SIZE) + f"#{_MAX_PART}"
    else:
        range_template = f"{source}#{_MAX_WRITE_ID}#{_MAX_PART}"
    template: dict[str, Any] = {HASH: longest_hash, RANGE: range_template, EXPIRE: _MAX_EXPIRE}
    if source is not None:
        template.update({SOURCE: source, ITEMS: _MAX_COUNT})
    _check_keys(longest_hash, range_template)

    # the split: a function of the entries, the format, the image, the tile and the salt (never of the clock)
    parts: list[tuple[Sequence[Entry], Any, str | None]] = []
    if classic:
        groups: dict[str, list[Entry]] = {}
        for entry in ordered:
            groups.setdefault(entry.span, []).append(entry)
        for span, members in groups.items():
            overhead = codec.item_size({**template, TILE_ID: span}) + len(CLASSIC_FEATURES)
            parts.extend((run, texts, span) for run, texts in _split_classic(members, target - overhead, overhead))
    else:
        overhead = codec.item_size({**template, COUNT: _MAX_COUNT}) + len(PACKED)
        parts.extend((run, payload, None) for run, payload in _split_compact(ordered, target - overhead, overhead))

    chunks = [image_id.encode(), (source or "").encode(), write_format.encode()]
    for run, _, _ in parts:
        chunks.append(len(run).to_bytes(8, "big"))
        chunks.extend(entry.data for entry in run)
    digest = codec.digest(chunks, _DIGEST_SIZE)
    expire = {"N": str(int(expire_time))}
    if source is not None:
        prefix = f"{source}#{int(now * 1000):013d}.{digest}#"
        hash_key = f"{image_id}-{codec.shard_of(f'{image_id}#{source}', hash_salt)}"
    else:
        prefix = f"{digest}#"
        hash_key = f"{image_id}-{codec.shard_of(f'{image_id}#{digest}', hash_salt)}"
    items: list[dict[str, Any]] = []
    for number, (run, stored, group_span) in enumerate(parts):
        item: dict[str, Any] = {HASH: {"S": hash_key}, RANGE: {"S": f"{prefix}{number}"}, EXPIRE: expire}
        if classic:
            item[TILE_ID] = {"S": group_span}
            item[CLASSIC_FEATURES] = {"L": [{"S": text} for text in stored]}
        else:
            item[PACKED] = {"B": stored}
            item[COUNT] = {"N": str(len(run))}
        if source is not None:
            item[SOURCE] = {"S": source}
            item[ITEMS] = {"N": str(len(parts))}
        items.append(item)
    return items


def _check_keys(hash_key: str, range_key: str) -> None:
    """Refuse keys over DynamoDB's limits (checked on the longest keys a call can produce, before any request).

    :raises KeyTooLongError: naming the key and its size
    """
    hash_bytes, range_bytes = len(hash_key.encode("utf-8")), len(range_key.encode("utf-8"))
    if hash_bytes > MAX_HASH_KEY_BYTES:
        raise KeyTooLongError(f"hash key of {hash_bytes} bytes (image id too long): at most {MAX_HASH_KEY_BYTES}")
    if range_bytes > MAX_RANGE_KEY_BYTES:
        raise KeyTooLongError(f"range key of {range_bytes} bytes (source tile too long): at most {MAX_RANGE_KEY_BYTES}")


# -- reading -------------------------------------------------------------------------------------------------------


@dataclass
class Stored:
    """One item as read: where it is, what it holds and which write it belongs to."""

    hash_key: str
    range_key: str
    payload: bytes | None
    classic: list[str] | None
    source: str | None
    items: int
    generation: str | None
    written_at: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Stored:
        """Read a raw item of a query answer (attribute values as DynamoDB returns them).

        :param raw: Mapping[str, Any] = the item
        :return: Stored = the item
        """

        def text(name: str) -> str | None:
            value = raw.get(name)
            return str(value["S"]) if value is not None and "S" in value else None

        def number(name: str) -> int:
            value = raw.get(name)
            return int(value["N"]) if value is not None and "N" in value else 0

        classic: list[str] | None = None
        if CLASSIC_FEATURES in raw:
            value = raw[CLASSIC_FEATURES]
            if "L" in value:
                classic = [str(element["S"]) for element in value["L"] if "S" in element]
            elif "SS" in value:
                classic = [str(element) for element in value["SS"]]
        packed = raw.get(PACKED)
        return cls(
            hash_key=text(HASH) or "",
            range_key=text(RANGE) or "",
            payload=bytes(packed["B"]) if packed is not None and "B" in packed else None,
            classic=classic,
            source=text(SOURCE),
            items=number(ITEMS),
            generation=text(GENERATION),
            written_at=number(WRITTEN_AT),
        )

    def decoded_size(self) -> int:
        """Return the bytes of the item's features once decompressed (their JSON), as the payload declares it.

        :return: int = bytes (an estimate for classic items and payloads that do not declare it)
        """
        if self.payload is not None:
            return codec.decoded_size(self.payload)
        return sum(len(text) for text in self.classic or ())

    def write(self) -> tuple[str, tuple[int, str]]:
        """Return the write the item belongs to and the write's place in time.

        :return: Tuple[str, Tuple[int, str]] = (write key, (epoch ms, tie breaker)); for the previous layout the
            time is this item's ``t`` (the write's is the greatest of its items')
        """
        if self.generation is not None:  # previous layout: one write per generation digest
            return f"g{self.generation}#{self.items}", (self.written_at, self.generation)
        write_key = self.range_key[: self.range_key.rfind("#")]
        write_id = write_key[write_key.rfind("#") + 1 :]
        millis, _, digest = write_id.partition(".")
        return write_key, (int(millis) if millis.isdigit() else 0, digest)


def select_write(items: Sequence[Stored]) -> list[Stored]:
    """Pick the items of one source tile to read: those of its last complete write (the invariant of the module).

    :param items: Sequence[Stored] = all items of one source tile in one shard
    :return: List[Stored] = the items to read; empty when no write of the tile is complete
    """
    writes: dict[str, list[Stored]] = {}
    order: dict[str, tuple[int, str]] = {}
    for item in items:
        key, when = item.write()
        writes.setdefault(key, []).append(item)
        order[key] = max(order.get(key, when), when)
    complete = [
        key
        for key, members in writes.items()
        if members[0].items > 0
        and len({member.range_key for member in members}) == members[0].items
        and all(member.items == members[0].items for member in members)
    ]
    if not complete:
        _LOGGER.warning(
            "source tile %s of %s has no complete write (%d items of %d writes): skipped",
            items[0].source,
            items[0].hash_key,
            len(items),
            len(writes),
        )
        return []
    return writes[max(complete, key=lambda key: order[key])]


def select_items(items: Iterable[Stored]) -> Iterator[Stored]:
    """Yield the items of one shard that a reader takes, given all of them in range key order.

    Items without a source tile are yielded as they come. Items of a source tile are held back until the shard's
    next tile starts (range keys begin with the tile id and ``#``, so a tile's items are contiguous), then only its
    last complete write is yielded (:func:`select_write`).

    :param items: Iterable[Stored] = the shard's items, in range key order (as a query returns them)
    :return: Iterator[Stored] = the items to read
    """
    pending: list[Stored] = []
    for item in items:
        if item.source is None:
            yield item
            continue
        if pending and pending[0].source != item.source:
            yield from select_write(pending)
            pending = []
        pending.append(item)
    if pending:
        yield from select_write(pending)
