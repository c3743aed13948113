"""The feature table: the model's detections, grouped by tile key, sharded and compressed (FeatureItem, FeatureTable).

Writing (``add_features``): the features of a call are grouped by tile key; each group is encoded and compressed by
:mod:`model_runner.database.feature_codec` into one or more items, each at most 350 KB as DynamoDB measures it, and
the items go out through the batch writer of :class:`~model_runner.database.ddb_helper.DDBHelper` (25 per request,
bounded backoff on throttling and unprocessed items). Every feature of the call is validated and every item built
before the first request, so a call refused for its input writes nothing.

Storage keys are derived from the data, never random:

* **With the source tile** (``add_features(features, source_tile=tile)``, exactly once): the call is one
  *generation* of that tile, named by a digest of its features. Its items are
  ``range_key = "<tile id>#<generation>#<tile key span>#<i>"`` for i in 0..m-1, all in the shard of the tile
  (``image_id + "-" + shard``, shard a BLAKE2b hash of image id and tile id, 1..hash_salt), and each records the
  generation and its item count m. A retry with the same features writes the same items again (idempotent); a retry
  with other features (a nondeterministic model, a rerun region) writes a new generation. Reading keeps, per source
  tile, the newest generation whose m items are all present, so the aggregate holds each tile's features once, a
  write cut off half way is never seen in part, and other tiles' items are never touched.
* **Without it** (the classic at-least-once behaviour): each key group is stored under
  ``"<tile key span>#<digest of the group>#<i>"``, each part in the shard of its own key. Repeating a call with the
  same features overwrites the same items; a call whose features differ in any byte adds items, so a retry that
  produces different features is stored twice.

Reading (``get_features``, ``iter_features``, ``write_feature_collection``): one strongly consistent query per shard,
all pages, in a bounded thread pool; items in the classic layout (``features``: a list of GeoJSON strings) are read
too. The streaming forms hold a bounded number of items at a time, whatever the number of features.
"""

from __future__ import annotations

import gc
import io
import logging
import numbers
import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import geojson
from pynamodb.attributes import BinaryAttribute, ListAttribute

from model_runner.common.feature_utils import get_feature_image_bounds
from model_runner.common.timer import Timer
from model_runner.common.typing import ImageDimensions, ImageRegion

from . import feature_codec as codec
from .attributes import EpochSecondsTTLAttribute, IntegerAttribute, UnicodeAttribute
from .ddb_helper import DDBHelper, DDBItem
from .exceptions import (
    AddFeaturesException,
    DatabaseError,
    DDBBatchWriteException,
    GetFeaturesException,
)

if TYPE_CHECKING:
    from aws_embedded_metrics.logger.metrics_logger import MetricsLogger

    from .job_table import JobItem

_LOGGER = logging.getLogger(__name__)

#: Operation dimension of the metrics of add_features.
FEATURE_STORAGE = "FeatureStorage"

#: Operation dimension of the metrics of get_features, aggregate_features and write_feature_collection.
FEATURE_AGGREGATION = "FeatureAggregation"

#: Threads that query shards in parallel, at most (and never more than the model's connection pool).
DEFAULT_READ_WORKERS = 16

#: DynamoDB's limits on key values, in UTF-8 bytes.
MAX_HASH_KEY_BYTES = 2048
MAX_RANGE_KEY_BYTES = 1024

# Stored attribute names, as the raw query answers use them.
_HASH = "hash_key"
_RANGE = "range_key"
_EXPIRE = "expire_time"
_CLASSIC = "features"
_PACKED = "p"
_COUNT = "n"
_SOURCE = "s"
_GENERATION = "g"
_GENERATION_ITEMS = "m"
_WRITTEN_AT = "t"

# Placeholders as large as any real value, to size an item before its part number and counts are known.
_MAX_PART = "#999999"
_MAX_COUNT = 10**9 - 1


class FeatureItem(DDBItem):
    """One group of features of an image, stored under one shard.

    hash_key: str = image_id + "-" + shard number in 1..hash_salt (hash key)
    range_key: str = what makes the item unique in its shard, derived from its data (see the module) (range key)
    expire_time: Optional[int] = time in epoch seconds when the item expires (the table's TTL attribute)
    features: Optional[List[str]] = the classic layout: one GeoJSON string per feature (read, never written)
    packed: Optional[bytes] = the features, encoded and compressed; the first byte names the codec (stored as ``p``)
    feature_count: Optional[int] = number of features in ``packed`` (stored as ``n``)
    source: Optional[str] = the source tile id, for items written with a source tile (stored as ``s``)
    generation: Optional[str] = digest of the features of the write the item belongs to (stored as ``g``)
    generation_items: Optional[int] = number of items of that write (stored as ``m``)
    written_at: Optional[int] = time in epoch milliseconds of the write (stored as ``t``)
    """

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    classic_fields: ClassVar[tuple[str, ...]] = ("hash_key", "range_key", "tile_id", "features", "expire_time")
    hash_key = UnicodeAttribute(hash_key=True)
    range_key = UnicodeAttribute(range_key=True)
    expire_time = EpochSecondsTTLAttribute(null=True)
    features = ListAttribute(of=UnicodeAttribute, null=True)
    packed = BinaryAttribute(null=True, legacy_encoding=False, attr_name=_PACKED)
    feature_count = IntegerAttribute(null=True, attr_name=_COUNT)
    source = UnicodeAttribute(null=True, attr_name=_SOURCE)
    generation = UnicodeAttribute(null=True, attr_name=_GENERATION)
    generation_items = IntegerAttribute(null=True, attr_name=_GENERATION_ITEMS)
    written_at = IntegerAttribute(null=True, attr_name=_WRITTEN_AT)


class Writable(Protocol):
    """A file-like object :meth:`FeatureTable.write_feature_collection` can write to: text or binary."""

    def write(self, data: Any, /) -> Any:
        """Write ``data`` (str for a text file, bytes otherwise).

        :param data: Any = the text or bytes to write
        :return: Any = whatever the file's ``write`` returns (ignored)
        """


@dataclass
class _Stored:
    """One item as read: where it is, what it holds and which write it belongs to."""

    hash_key: str
    range_key: str
    payload: bytes | None
    classic: list[str] | None
    source: str | None
    generation: str | None
    generation_items: int
    written_at: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _Stored:
        """Read a raw item of a query answer (attribute values as DynamoDB returns them).

        :param raw: Mapping[str, Any] = the item
        :return: _Stored = the item
        """

        def text(name: str) -> str | None:
            value = raw.get(name)
            return str(value["S"]) if value is not None and "S" in value else None

        def number(name: str) -> int:
            value = raw.get(name)
            return int(value["N"]) if value is not None and "N" in value else 0

        classic: list[str] | None = None
        if _CLASSIC in raw:
            value = raw[_CLASSIC]
            if "L" in value:
                classic = [str(element["S"]) for element in value["L"] if "S" in element]
            elif "SS" in value:
                classic = [str(element) for element in value["SS"]]
        packed = raw.get(_PACKED)
        return cls(
            hash_key=text(_HASH) or "",
            range_key=text(_RANGE) or "",
            payload=bytes(packed["B"]) if packed is not None and "B" in packed else None,
            classic=classic,
            source=text(_SOURCE),
            generation=text(_GENERATION),
            generation_items=number(_GENERATION_ITEMS),
            written_at=number(_WRITTEN_AT),
        )


def _feature_name(feature: Any) -> str:
    """Name a feature for an error message: its id when it has one."""
    if isinstance(feature, Mapping) and feature.get("id") is not None:
        return f"Feature {feature.get('id')!r}"
    return "Feature (no id)"


def _tile_id(tile: ImageRegion) -> str:
    """Return the id of a source tile, ``r<row>c<col>w<width>h<height>`` (no ``#``: it prefixes range keys).

    :param tile: ImageRegion = ((row, col), (width, height)), ints
    :return: str = the id
    :raises ValueError: when the tile is not two pairs of non-negative ints
    """
    try:
        (row, col), (width, height) = tile
    except (TypeError, ValueError) as err:
        raise ValueError(f"a source tile is ((row, col), (width, height)), got {tile!r}") from err
    values: list[int] = []
    for value in (row, col, width, height):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
            raise ValueError(f"a source tile holds non-negative ints, got {value!r} in {tile!r}")
        values.append(int(value))
    return "r{}c{}w{}h{}".format(*values)


def _select_generation(items: list[_Stored]) -> list[_Stored]:
    """Pick the items of one source tile to read: those of its newest complete generation.

    A generation is complete when all the items it declares are present. Two complete generations mean the tile was
    written twice with different features; the one written last (then the greater digest) wins. Incomplete ones
    (a write cut off, or partly overwritten by a concurrent write) are skipped.

    :param items: List[_Stored] = all items of one source tile in one shard
    :return: List[_Stored] = the items to read
    """
    generations: dict[str, list[_Stored]] = {}
    for item in items:
        generations.setdefault(item.generation or "", []).append(item)
    complete = [
        (max(item.written_at for item in members), generation, members)
        for generation, members in generations.items()
        if len({item.range_key for item in members}) == members[0].generation_items
        and all(item.generation_items == members[0].generation_items for item in members)
    ]
    if not complete:
        _LOGGER.warning(
            "source tile %s of %s has no complete write (%d items of %d generations): skipped",
            items[0].source,
            items[0].hash_key,
            len(items),
            len(generations),
        )
        return []
    return max(complete, key=lambda entry: (entry[0], entry[1]))[2]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large result is built, restoring its state afterwards.

    Building a million features creates tens of millions of containers; with the collector running, CPython 3.11
    spends most of the time in repeated full collections of the growing result (measured: 500,000 features decoded
    in 8.2 s with it, 1.3 s without). Nothing of the result is garbage, so pausing loses nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: Items per query page: bounds the memory of a streaming read (pages otherwise grow to 1 MB per reading thread).
QUERY_PAGE_ITEMS = 200


class FeatureTable(DDBHelper):
    """Stores the features (detections) of image jobs and aggregates them back.

    add_features may be called from many threads at once on the same FeatureTable.

    :param table_name: Optional[str] = the name of the table to interact with; FEATURE_TABLE when None
    :param tile_size: ImageDimensions = the tile size of the job, (width, height)
    :param overlap: ImageDimensions = the tile overlap of the job, (width, height)
    :param hash_salt: Optional[int] = number of shards per image (50 when None); readers must use the writers' value
    :param read_workers: Optional[int] = threads querying shards in parallel (16 when None), at most hash_salt and
        the connection pool size
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper` (host, region,
        max_pool_connections, retry_policy, expire_days: the same as the job table's, so that features never expire
        before their job)
    :raises ValueError: when a stride (tile size minus overlap) is not positive, an overlap is negative, or
        hash_salt or read_workers is below 1
    """

    item_class: ClassVar[type[DDBItem]] = FeatureItem
    table_env_var: ClassVar[str] = "FEATURE_TABLE"
    hash_salt: int = 50

    def __init__(
        self,
        table_name: str | None = None,
        tile_size: ImageDimensions = (1024, 1024),
        overlap: ImageDimensions = (50, 50),
        *,
        hash_salt: int | None = None,
        read_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        width, height = (int(v) for v in tile_size)
        overlap_x, overlap_y = (int(v) for v in overlap)
        if overlap_x < 0 or overlap_y < 0 or width - overlap_x <= 0 or height - overlap_y <= 0:
            raise ValueError(f"tile size {tile_size} and overlap {overlap} leave no positive stride")
        salt = self.hash_salt if hash_salt is None else int(hash_salt)
        workers = DEFAULT_READ_WORKERS if read_workers is None else int(read_workers)
        if salt < 1 or workers < 1:
            raise ValueError(f"hash_salt ({salt}) and read_workers ({workers}) must be at least 1")
        super().__init__(table_name, **kwargs)
        self.tile_size: ImageDimensions = (width, height)
        self.overlap: ImageDimensions = (overlap_x, overlap_y)
        self.hash_salt = salt
        self.read_workers = max(1, min(workers, salt, self.settings.max_pool_connections))

    # -- tile keys -------------------------------------------------------------------------------------------------

    def _locate(self, feature: Any) -> tuple[str, str]:
        """Return the image id of a feature and the span of tiles its image bounds cover.

        :param feature: Any = a GeoJSON feature
        :return: Tuple[str, str] = (image id, ``"<min_x>:<max_x>:<min_y>:<max_y>"`` tile indices)
        :raises ValueError: when the feature has no usable image geometry or image id
        """
        try:
            bounds = get_feature_image_bounds(feature)
        except TypeError as err:
            raise ValueError(f"{_feature_name(feature)}: {err}") from err
        if bounds is None:
            raise ValueError(
                f"{_feature_name(feature)} has no image geometry (imageGeometry, bounds_imcoords or geom_imcoords)"
            )
        image_id = feature["properties"].get("image_id")
        if not isinstance(image_id, str) or not image_id:
            raise ValueError(f"{_feature_name(feature)}: properties.image_id must be a non-empty string")
        min_x, min_y, max_x, max_y = bounds
        stride_x = self.tile_size[0] - self.overlap[0]
        stride_y = self.tile_size[1] - self.overlap[1]
        x0, x1 = self._indices(min_x, max_x, stride_x, self.overlap[0])
        y0, y1 = self._indices(min_y, max_y, stride_y, self.overlap[1])
        return image_id, f"{x0}:{x1}:{y0}:{y1}"

    @staticmethod
    def _indices(low: float, high: float, stride: int, overlap: int) -> tuple[int, int]:
        """Return the first and last tile index along one axis for a coordinate range.

        The index of a coordinate is ``int(coordinate / stride)``; the first index moves back by one when the low
        coordinate falls inside the overlap of the previous tile (which covers it too).
        """
        first = int(low / stride)
        last = int(high / stride)
        if first > 0 and low - first * stride < overlap:
            first -= 1
        return first, last

    def generate_tile_key(self, feature: geojson.Feature) -> str:
        """Generate the tile key based on the given feature.

        The key is ``"<image_id>-region-<min_x>:<max_x>:<min_y>:<max_y>"``: the range of tile indices that the
        feature's image bounds cover, with stride = tile_size - overlap per axis, index = int(coordinate / stride),
        and the minimum index moved back by one where the minimum coordinate falls inside the overlap of the
        previous tile.

        :param feature: geojson.Feature = a feature with an image geometry and ``properties.image_id``
        :return: str = The tile key associated with this list of features.
        :raises ValueError: naming the feature, when it has no image geometry, a malformed one, or no image id
        """
        image_id, span = self._locate(feature)
        return f"{image_id}-region-{span}"

    def group_features_by_key(self, features: Iterable[geojson.Feature]) -> dict[str, list[geojson.Feature]]:
        """Group all the feature items by key

        :param features: Iterable[geojson.Feature] = The list of features

        :return: Dict[str, List[geojson.Feature]] = tile key to its features, in the order given
        :raises ValueError: naming the feature, when one has no usable image geometry or image id
        """
        groups: dict[str, list[geojson.Feature]] = {}
        for feature in features:
            groups.setdefault(self.generate_tile_key(feature), []).append(feature)
        return groups

    # -- writing ---------------------------------------------------------------------------------------------------

    def add_features(
        self,
        features: Iterable[geojson.Feature],
        metrics: MetricsLogger | None = None,
        source_tile: ImageRegion | None = None,
    ) -> None:
        """Group all the features together and store them, compressed, in as few items as the size limit allows.

        With ``source_tile``, writing is exactly once per tile: writing the features of the same tile again (a
        retried tile or region) replaces that tile's earlier write in the aggregate, and never affects the features
        other tiles stored under the same key group; a write cut off half way is not seen at all until it is
        repeated. A call with no features writes nothing (an earlier write of the tile stays). Without
        ``source_tile`` the classic at-least-once behaviour applies: features are added, and repeating a call adds
        them again unless they are byte for byte the same.

        All features are validated and all items built before the first request: a call refused for its input
        writes nothing.

        :param features: Iterable[geojson.Feature] = The features to add to the table; each needs an image geometry
            (imageGeometry, bounds_imcoords or geom_imcoords) and ``properties.image_id``
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration, Operation=FeatureStorage
        :param source_tile: Optional[ImageRegion] = the tile the features were detected in, ((row, col), (width,
            height)): makes the write exactly once per tile
        :return: None
        :raises AddFeaturesException: chained from the cause, when a feature has no usable image geometry or image
            id, holds a value JSON cannot represent (NaN, infinity, an object), is too large to store even alone, or
            when the items cannot be written (``code`` then says why)
        """
        with self._measure(FEATURE_STORAGE, metrics):
            items = self._build_items(list(features), source_tile)
            if not items:
                return
            try:
                self.batch_write_items(items)
            except DDBBatchWriteException as err:
                key = {"items": len(items)}
                action = f"add features ({err.unprocessed} of {len(items)} items unwritten)"
                raise self.error(AddFeaturesException, action, key, err) from err

    def _build_items(self, features: Sequence[Any], source_tile: ImageRegion | None) -> list[DDBItem]:
        """Validate and encode the features and build the items that store them.

        :param features: Sequence[Any] = the features
        :param source_tile: Optional[ImageRegion] = the tile they come from
        :return: List[DDBItem] = the items, bound to the table
        :raises AddFeaturesException: for any feature or tile that cannot be stored
        """
        source = None
        if source_tile is not None:
            try:
                source = _tile_id(source_tile)
            except ValueError as err:
                raise self.error(AddFeaturesException, "add features", {"source_tile": repr(source_tile)}, err) from err
        images: dict[str, dict[str, list[tuple[bytes, int]]]] = {}
        for index, feature in enumerate(features):
            try:
                image_id, span = self._locate(feature)
                data = codec.encode_feature(feature)
            except (ValueError, TypeError) as err:
                key = {"feature": index, "name": _feature_name(feature)}
                raise self.error(AddFeaturesException, "add features (invalid feature)", key, err) from err
            images.setdefault(image_id, {}).setdefault(span, []).append((data, index))
        now = time.time()
        items: list[DDBItem] = []
        for image_id, groups in images.items():
            if len(f"{image_id}-{self.hash_salt}".encode()) > MAX_HASH_KEY_BYTES:
                too_long = ValueError(f"image id of {len(image_id.encode())} bytes: at most {MAX_HASH_KEY_BYTES - 4}")
                key = {"image_id": image_id[:64]}
                raise self.error(AddFeaturesException, "add features", key, too_long) from too_long
            ordered = [(span, sorted(groups[span])) for span in sorted(groups)]
            try:
                if source is None:
                    items.extend(self._plain_items(image_id, ordered, now))
                else:
                    items.extend(self._source_items(image_id, source, ordered, now))
            except codec.FeatureTooLargeError as err:
                key = {"feature": err.index, "name": _feature_name(features[err.index])}
                raise self.error(AddFeaturesException, "add features (feature too large)", key, err) from err
        return items

    def _pack(self, entries: list[tuple[bytes, int]], template: Mapping[str, Any]) -> list[codec.Packed]:
        """Pack one sorted key group into payloads that fit the size target, next to the item's other attributes.

        :param entries: List[Tuple[bytes, int]] = (encoded feature, its index in the call), sorted
        :param template: Mapping[str, Any] = the item's other attributes, at their largest
        :return: List[Packed] = the payloads
        :raises FeatureTooLargeError: naming the feature's index in the call
        """
        overhead = codec.item_size(template) + len(_PACKED)
        try:
            return codec.pack([data for data, _ in entries], overhead)
        except codec.FeatureTooLargeError as err:
            index = entries[err.index][1]
            raise codec.FeatureTooLargeError(index, err.size, err.limit) from err

    def _plain_items(self, image_id: str, groups: list[tuple[str, list[tuple[bytes, int]]]], now: float) -> list[Any]:
        """Build the items of an at-least-once write: per key group, keys from a digest of the group's features."""
        expire = self.expire_time(now)
        hash_template = f"{image_id}-{self.hash_salt}"
        items = []
        for span, entries in groups:
            base = f"{span}#{codec.digest([image_id.encode(), span.encode(), *(data for data, _ in entries)])}"
            template = {_HASH: hash_template, _RANGE: base + _MAX_PART, _EXPIRE: expire, _COUNT: _MAX_COUNT}
            for part, packed in enumerate(self._pack(entries, template)):
                range_key = f"{base}#{part}"
                shard = codec.shard_of(f"{image_id}#{range_key}", self.hash_salt)
                items.append(
                    self.model(
                        hash_key=f"{image_id}-{shard}",
                        range_key=range_key,
                        expire_time=expire,
                        packed=packed.payload,
                        feature_count=packed.count,
                    )
                )
        return items

    def _source_items(
        self, image_id: str, source: str, groups: list[tuple[str, list[tuple[bytes, int]]]], now: float
    ) -> list[Any]:
        """Build the items of an exactly-once write: one generation of the source tile, all in the tile's shard."""
        expire = self.expire_time(now)
        written_at = int(now * 1000)
        chunks = [image_id.encode(), source.encode()]
        for span, entries in groups:
            chunks.append(span.encode())
            chunks.extend(data for data, _ in entries)
        generation = codec.digest(chunks)
        hash_key = f"{image_id}-{codec.shard_of(f'{image_id}#{source}', self.hash_salt)}"
        parts: list[tuple[str, codec.Packed]] = []
        for span, entries in groups:
            template = {
                _HASH: hash_key,
                _RANGE: f"{source}#{generation}#{span}{_MAX_PART}",
                _EXPIRE: expire,
                _COUNT: _MAX_COUNT,
                _SOURCE: source,
                _GENERATION: generation,
                _GENERATION_ITEMS: _MAX_COUNT,
                _WRITTEN_AT: written_at,
            }
            parts.extend((span, packed) for packed in self._pack(entries, template))
        return [
            self.model(
                hash_key=hash_key,
                range_key=f"{source}#{generation}#{span}#{part}",
                expire_time=expire,
                packed=packed.payload,
                feature_count=packed.count,
                source=source,
                generation=generation,
                generation_items=len(parts),
                written_at=written_at,
            )
            for part, (span, packed) in enumerate(parts)
        ]

    # -- reading ---------------------------------------------------------------------------------------------------

    def _query_pages(
        self, hash_key: str, exc_class: type[DatabaseError], attributes: list[str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the raw items of one shard page by page: strongly consistent, every page, each page retried.

        :param hash_key: str = the shard's hash key
        :param exc_class: Type[DatabaseError] = the exception raised when a page cannot be read
        :param attributes: Optional[List[str]] = attributes to read (all when None)
        :return: Iterator[List[Dict[str, Any]]] = the items of each page, as DynamoDB returns them
        """
        connection = self.model._get_connection()
        start_key: dict[str, Any] | None = None
        while True:
            query = partial(
                connection.query,
                hash_key,
                consistent_read=True,
                exclusive_start_key=start_key,
                attributes_to_get=attributes,
                limit=QUERY_PAGE_ITEMS,
            )
            page = self._run(query, exc_class, "query features", {_HASH: hash_key})
            yield list(page.get("Items", []))
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return

    def _shard_items(self, image_id: str, shard: int) -> Iterator[_Stored]:
        """Yield the items of one shard to read, as the query returns them (payloads still compressed).

        Items written with a source tile are held back until the shard's next tile starts (range keys begin with the
        tile id, so a tile's items are contiguous), then only its newest complete generation is yielded.

        :param image_id: str = the image
        :param shard: int = the shard, 1..hash_salt
        :return: Iterator[_Stored] = the items
        """
        pending: list[_Stored] = []
        for page in self._query_pages(f"{image_id}-{shard}", GetFeaturesException):
            for raw in page:
                item = _Stored.parse(raw)
                if item.source is None:
                    yield item
                    continue
                if pending and pending[0].source != item.source:
                    yield from _select_generation(pending)
                    pending = []
                pending.append(item)
        if pending:
            yield from _select_generation(pending)

    def _lines(self, item: _Stored) -> bytes:
        """Return the features of an item as newline-delimited JSON (classic items are re-encoded).

        :param item: _Stored = the item
        :return: bytes = the features; empty when it holds none
        :raises GetFeaturesException: when the item cannot be decoded
        """
        try:
            if item.payload is not None:
                return codec.decompress(item.payload)
            if item.classic is not None:
                return codec.classic_lines(item.classic)
        except ValueError as err:
            raise self.error(
                GetFeaturesException, "decode features", {_HASH: item.hash_key, _RANGE: item.range_key}, err
            ) from err
        return b""

    def _stream(self, image_id: str) -> Iterator[bytes]:
        """Yield the features of an image, item by item, querying its shards in parallel.

        At most ``read_workers`` threads query and decompress (zstd releases the GIL, so they do it in parallel); they
        hand the decompressed items over through a queue of ``2 * read_workers`` entries, and pages hold at most
        ``QUERY_PAGE_ITEMS`` items, so the memory held is bounded by the workers' pages and the queue, never by the
        number of features. Leaving the iteration early stops the
        workers.

        :param image_id: str = the image
        :return: Iterator[bytes] = newline-delimited features, one chunk per item
        :raises GetFeaturesException: when a shard cannot be read or an item decoded
        """
        if not isinstance(image_id, str) or not image_id:
            raise GetFeaturesException(
                f"get features failed on table {self.table_name}: image_id must be a non-empty string, "
                f"got {image_id!r}",
                table_name=self.table_name,
            )
        done = object()
        handoff: queue.Queue[Any] = queue.Queue(maxsize=2 * self.read_workers)
        stop = threading.Event()

        def put(entry: Any) -> bool:
            while not stop.is_set():
                try:
                    handoff.put(entry, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce(shard: int) -> None:
            try:
                for item in self._shard_items(image_id, shard):
                    lines = self._lines(item)  # zstd releases the GIL: decompress here, in parallel
                    if lines and not put(lines):
                        return
            except BaseException as err:  # handed to the consumer, which raises it
                put(err)
            finally:
                put(done)

        shards = range(1, self.hash_salt + 1)
        pool = ThreadPoolExecutor(max_workers=self.read_workers, thread_name_prefix="feature-read")
        try:
            for shard in shards:
                pool.submit(produce, shard)
            remaining = len(shards)
            while remaining:
                entry = handoff.get()
                if entry is done:
                    remaining -= 1
                elif isinstance(entry, BaseException):
                    if isinstance(entry, DatabaseError):
                        raise entry
                    key = {"image_id": image_id}
                    raise self.error(GetFeaturesException, "get features", key, entry) from entry
                else:
                    yield entry
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def iter_features(self, image_id: str) -> Generator[dict[str, Any], None, None]:
        """Yield the features of an image one by one, as plain dictionaries, in memory that does not grow with their
        number.

        Features come in no particular order. Each is a dictionary equal to the feature written (decoded from JSON:
        tuples come back as lists). Shards are queried in parallel while features are consumed; stopping the
        iteration early stops the queries.

        :param image_id: str = the image whose features to read
        :return: Generator[Dict[str, Any], None, None] = the features; ``close()`` it to stop early
        :raises GetFeaturesException: when the table cannot be read or an item decoded
        """
        for lines in self._stream(image_id):
            yield from codec.decode_lines(lines)

    def write_feature_collection(self, image_id: str, fp: Writable, metrics: MetricsLogger | None = None) -> int:
        """Write the features of an image to a file as a GeoJSON FeatureCollection, in constant memory.

        The stored JSON of each feature is copied as it is, without decoding it (one feature per line). ``fp`` may be
        a text file (str is written) or a binary one (UTF-8 bytes are written).

        :param image_id: str = the image whose features to write
        :param fp: Writable = an open, writable file (text or binary), or any object with such a ``write``
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration,
            Operation=FeatureAggregation
        :return: int = the number of features written
        :raises GetFeaturesException: when the table cannot be read or an item decoded (the file is then incomplete)
        """
        text = isinstance(fp, io.TextIOBase) or "b" not in str(getattr(fp, "mode", "b"))

        def write(data: bytes) -> None:
            fp.write(data.decode("utf-8") if text else data)

        count = 0
        with self._measure(FEATURE_AGGREGATION, metrics):
            write(b'{"type": "FeatureCollection", "features": [')
            for lines in self._stream(image_id):
                write(b",\n" if count else b"\n")
                write(lines.replace(b"\n", b",\n"))
                count += lines.count(b"\n") + 1
            write(b"\n]}\n")
        return count

    def get_features(self, image_id: str, metrics: MetricsLogger | None = None) -> list[geojson.Feature]:
        """Query all the shards of an image in parallel and return its features.

        Each feature equals the feature written (decoded from JSON: tuples come back as lists); the geometry is a
        geojson geometry object with the coordinates exactly as written. The whole list is held in memory; for a
        large image prefer :meth:`iter_features` or :meth:`write_feature_collection`. The cyclic garbage collector is
        paused while the list is built (and restored afterwards): a million features otherwise cost several times
        longer in repeated full collections.

        :param image_id: str = The image_id to aggregate features from DDB for.
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration,
            Operation=FeatureAggregation
        :return: List[geojson.Feature] = the features, in no particular order
        :raises GetFeaturesException: when the table cannot be read or an item decoded
        """
        with self._measure(FEATURE_AGGREGATION, metrics):
            return self._collect(image_id)

    def _collect(self, image_id: str) -> list[geojson.Feature]:
        features: list[geojson.Feature] = []
        with _gc_paused():
            for lines in self._stream(image_id):
                features.extend(map(codec.to_geojson, codec.decode_lines(lines)))
        return features

    def aggregate_features(
        self, image_request_item: JobItem, metrics: MetricsLogger | None = None
    ) -> list[geojson.Feature]:
        """For a given image processing job - aggregate all the features that were collected for it.

        :param image_request_item: JobItem = the image request
        :param metrics: Optional[MetricsLogger] = the current metrics scope: Invocations, Errors and Duration,
            Operation=FeatureAggregation

        :return: List[geojson.Feature] = the list of features (see :meth:`get_features`)
        :raises GetFeaturesException: when the table cannot be read or an item decoded
        """
        with self._measure(FEATURE_AGGREGATION, metrics):
            return self._collect(image_request_item.image_id)

    # -- deleting --------------------------------------------------------------------------------------------------

    def delete_features(self, image_id: str) -> int:
        """Delete every item of an image, in all shards (the classic layout included).

        :param image_id: str = the image whose features to delete
        :return: int = the number of items deleted
        :raises GetFeaturesException: when a shard cannot be read
        :raises DDBBatchWriteException: when items cannot be deleted
        """
        keys = [_HASH, _RANGE]

        def delete_shard(shard: int) -> int:
            deleted = 0
            for page in self._query_pages(f"{image_id}-{shard}", GetFeaturesException, keys):
                self.batch_delete_keys([{name: raw[name] for name in keys} for raw in page])
                deleted += len(page)
            return deleted

        with ThreadPoolExecutor(max_workers=self.read_workers, thread_name_prefix="feature-delete") as pool:
            return sum(pool.map(delete_shard, range(1, self.hash_salt + 1)))

    # -- metrics ---------------------------------------------------------------------------------------------------

    @contextmanager
    def _measure(self, operation: str, metrics: MetricsLogger | None) -> Iterator[None]:
        """Report Invocations, Errors and Duration (ms) of an operation, with the Operation dimension.

        Nothing happens without a metrics logger: no logger is created, nothing is flushed.

        :param operation: str = FeatureStorage or FeatureAggregation
        :param metrics: Optional[MetricsLogger] = the caller's metrics logger
        """
        if metrics is None:
            yield
            return
        metrics.set_dimensions({"Operation": operation})
        metrics.put_metric("Invocations", 1, "Count")
        try:
            with Timer(f"{operation} on {self.table_name}", "Duration", _LOGGER, metrics):
                yield
        except Exception:
            metrics.put_metric("Errors", 1, "Count")
            raise
