"""The feature table's repository: the model's detections of an image, stored and aggregated back (FeatureTable).

The table is built from three modules, one concept each:

* :mod:`~model_runner.database.feature_layout`: the item model (FeatureItem), the keys and items of a write, and
  the rule that decides which items a reader takes (its invariant is written at its top);
* :mod:`~model_runner.database.feature_stream`: the parallel shard reader;
* this module: the repository that validates and encodes the features (:mod:`~model_runner.database.feature_codec`),
  writes each call as one item (more only where an item would pass 350 KB), and reads, exports and deletes.

Writing (``add_features``): every feature of the call is validated, every item built and every key checked before the
first request, so a call refused for its input writes nothing. The items go out through the batch writer of
:class:`~model_runner.database.ddb_helper.DDBHelper` under the repository's retry policy. With ``source_tile`` a write
is exactly once per tile (the reader takes each tile's last complete write); without it, at least once.

The write format (``write_format``, else ``FEATURE_WRITE_FORMAT``, else ``compact``) says how items hold features:
``compact`` (one zstd-compressed payload) or ``classic`` (a list of GeoJSON strings, what a classic reader reads).
Reading accepts both, the previous layout of this package, and items written by the classic implementation.
"""

from __future__ import annotations

import io
import logging
import numbers
import os
import socket
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import geojson

from model_runner.common.feature_utils import get_feature_image_bounds
from model_runner.common.timer import Timer
from model_runner.common.typing import ImageDimensions, ImageRegion

from . import feature_codec as codec
from . import feature_stream
from .coalescing import BATCH_LIMIT, BatchCoalescer
from .ddb_helper import DDBHelper, DDBItem
from .exceptions import AddFeaturesException, ConfigurationError, DDBBatchWriteException, GetFeaturesException
from .feature_layout import (
    CLASSIC,
    COMPACT,
    HASH,
    MAX_HASH_KEY_BYTES,
    MAX_RANGE_KEY_BYTES,
    RANGE,
    WRITE_FORMATS,
    Entry,
    FeatureItem,
    KeyTooLongError,
    plan_items,
    tile_id,
)
from .feature_stream import QUERY_PAGE_ITEMS

if TYPE_CHECKING:
    from aws_embedded_metrics.logger.metrics_logger import MetricsLogger

    from .job_table import JobItem

__all__ = [
    "CLASSIC",
    "COMPACT",
    "DEFAULT_READ_WORKERS",
    "DEFAULT_WRITE_CONCURRENCY",
    "FEATURE_AGGREGATION",
    "FEATURE_STORAGE",
    "MAX_HASH_KEY_BYTES",
    "MAX_RANGE_KEY_BYTES",
    "QUERY_PAGE_ITEMS",
    "WRITE_FORMAT_ENV_VAR",
    "FeatureItem",
    "FeatureTable",
    "Writable",
]

_LOGGER = logging.getLogger(__name__)

#: Operation dimension of the metrics of add_features.
FEATURE_STORAGE = "FeatureStorage"

#: Operation dimension of the metrics of get_features, aggregate_features and write_feature_collection.
FEATURE_AGGREGATION = "FeatureAggregation"

#: Threads that query shards in parallel, at most (and never more than the model's connection pool).
DEFAULT_READ_WORKERS = 16

#: Shared first requests of add_features calls in flight at once, at most, by default (more than one only while 25 items
#: wait to go out).
DEFAULT_WRITE_CONCURRENCY = 4

#: The environment variable read (at construction) when no write_format is given.
WRITE_FORMAT_ENV_VAR = "FEATURE_WRITE_FORMAT"


class Writable(Protocol):
    """A file-like object :meth:`FeatureTable.write_feature_collection` can write to: text or binary."""

    def write(self, data: Any, /) -> Any:
        """Write ``data`` (str for a text file, bytes otherwise).

        :param data: Any = the text or bytes to write
        :return: Any = whatever the file's ``write`` returns (ignored)
        """


def _feature_name(feature: Any) -> str:
    """Name a feature for an error message: its id when it has one."""
    if isinstance(feature, Mapping) and feature.get("id") is not None:
        return f"Feature {feature.get('id')!r}"
    return "Feature (no id)"


def _tile_id(tile: ImageRegion) -> str:
    """Return the id of a source tile, ``r<row>c<col>w<width>h<height>``.

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
    return tile_id(*values)


def _item_key(request: Mapping[str, Any]) -> tuple[str, str]:
    """Return the key of a feature item's put request: (hash key, range key)."""
    item = request["PutRequest"]["Item"]
    return str(item[HASH]["S"]), str(item[RANGE]["S"])


def _text_stream(fp: Any) -> bool:
    """Tell whether a file takes str (True) or bytes (False).

    io's class hierarchy answers for every stream of the standard library (text: TextIOBase; binary: RawIOBase and
    BufferedIOBase, which gzip, bz2, lzma, BytesIO and socket files derive from; a socket, which has no ``write``,
    takes bytes through ``sendall``); a ``mode`` string answers for
    file-like objects outside it; otherwise an empty bytes write is tried (a text stream refuses it, nothing is
    written either way).

    :param fp: Any = the file
    :return: bool = True for a text file
    """
    if isinstance(fp, io.TextIOBase):
        return True
    if not hasattr(fp, "write") or isinstance(fp, (io.RawIOBase, io.BufferedIOBase)):
        return False
    mode = getattr(fp, "mode", None)
    if isinstance(mode, str):
        return "b" not in mode
    try:
        fp.write(b"")
    except TypeError:
        return True
    return False


class FeatureTable(DDBHelper):
    """Stores the features (detections) of image jobs and aggregates them back.

    add_features may be called from many threads at once on the same FeatureTable.

    :param table_name: Optional[str] = the name of the table to interact with; FEATURE_TABLE when None
    :param tile_size: ImageDimensions = the tile size of the job, (width, height)
    :param overlap: ImageDimensions = the tile overlap of the job, (width, height)
    :param hash_salt: Optional[int] = number of shards per image (50 when None); readers must use the writers' value
    :param read_workers: Optional[int] = threads querying shards in parallel (16 when None), at most hash_salt and
        the connection pool size
    :param write_format: Optional[str] = ``compact`` (compressed items) or ``classic`` (lists of GeoJSON strings, read
        by classic workers); when None, the environment variable FEATURE_WRITE_FORMAT, read now, else ``compact``.
        Reading accepts both whatever the setting.
    :param write_concurrency: Optional[int] = shared first requests of add_features calls in flight at once, at most
        (4 when None); more than one only while 25 items wait. A call that finds a request in flight waits for it to
        end, then goes out with the calls that waited with it, up to 25 items per request (see
        :mod:`~model_runner.database.coalescing`); a lone call never waits
    :param kwargs: Any = connection options of :class:`~model_runner.database.ddb_helper.DDBHelper` (host, region,
        max_pool_connections, retry_policy, expire_days: the same as the job table's, so that features never expire
        before their job); retry_policy bounds every request of the table, batch writes included
    :raises ValueError: when a stride (tile size minus overlap) is not positive, an overlap is negative, or
        hash_salt, read_workers or write_concurrency is below 1
    :raises ConfigurationError: when the write format is neither ``compact`` nor ``classic``
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
        write_format: str | None = None,
        write_concurrency: int | None = None,
        **kwargs: Any,
    ) -> None:
        width, height = (int(v) for v in tile_size)
        overlap_x, overlap_y = (int(v) for v in overlap)
        if overlap_x < 0 or overlap_y < 0 or width - overlap_x <= 0 or height - overlap_y <= 0:
            raise ValueError(f"tile size {tile_size} and overlap {overlap} leave no positive stride")
        salt = self.hash_salt if hash_salt is None else int(hash_salt)
        workers = DEFAULT_READ_WORKERS if read_workers is None else int(read_workers)
        concurrency = DEFAULT_WRITE_CONCURRENCY if write_concurrency is None else int(write_concurrency)
        if salt < 1 or workers < 1 or concurrency < 1:
            raise ValueError(
                f"hash_salt ({salt}), read_workers ({workers}) and write_concurrency ({concurrency}) must be at least 1"
            )
        chosen = write_format if write_format is not None else os.environ.get(WRITE_FORMAT_ENV_VAR) or COMPACT
        chosen = chosen.strip().lower()
        if chosen not in WRITE_FORMATS:
            origin = "write_format" if write_format is not None else WRITE_FORMAT_ENV_VAR
            raise ConfigurationError(f"{origin} must be one of {', '.join(WRITE_FORMATS)}, got {chosen!r}")
        super().__init__(table_name, **kwargs)
        self.tile_size: ImageDimensions = (width, height)
        self.overlap: ImageDimensions = (overlap_x, overlap_y)
        self.hash_salt = salt
        self.read_workers = max(1, min(workers, salt, self.settings.max_pool_connections))
        self.write_format: str = chosen
        self._coalescer = BatchCoalescer(self.send_chunk, _item_key, concurrency)

    # -- tile keys -------------------------------------------------------------------------------------------------

    def _locate(self, feature: Any, span: bool = True) -> tuple[str, str]:
        """Return the image id of a feature and the span of tiles its image bounds cover.

        :param feature: Any = a GeoJSON feature
        :param span: bool = compute the span (else only validate the geometry and return an empty span)
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
        if not span:
            return image_id, ""
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
        """Group all the features together and store them, compressed, in one item (more only past 350 KB).

        With ``source_tile``, writing is exactly once per tile: readers take the tile's last complete write, so
        writing the tile again (a retried tile or region) replaces its earlier write in the aggregate, a write cut off
        half way is not seen at all (the earlier complete write stays in force), and other tiles are never affected.
        A call with no features writes nothing (an earlier write of the tile stays). Without ``source_tile`` the
        classic at-least-once behaviour applies: features are added; repeating a call with the same features writes
        the same items again, features that differ in any byte are added.

        All features are validated, all items built and all keys checked before the first request: a call refused
        for its input writes nothing. Requests are retried under the table's ``retry_policy``.

        :param features: Iterable[geojson.Feature] = The features to add to the table; each needs an image geometry
            (imageGeometry, bounds_imcoords or geom_imcoords) and ``properties.image_id``
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration, Operation=FeatureStorage
        :param source_tile: Optional[ImageRegion] = the tile the features were detected in, ((row, col), (width,
            height)): makes the write exactly once per tile
        :return: None
        :raises AddFeaturesException: chained from the cause, when a feature has no usable image geometry or image
            id, holds a value JSON cannot represent (NaN, infinity, an object), is too large to store even alone,
            when a key would pass DynamoDB's limits, or when the items cannot be written (``code`` then says why)
        """
        with self._measure(FEATURE_STORAGE, metrics):
            self._put_items(self._build_items(list(features), source_tile), "add features")

    def add_features_of_tiles(
        self,
        features_by_tile: Iterable[tuple[ImageRegion, Iterable[geojson.Feature]]],
        metrics: MetricsLogger | None = None,
    ) -> None:
        """Store the features of many tiles at once, each tile exactly as ``add_features(features, source_tile=tile)``.

        Each tile's features are one write of that tile (its own items, the same keys and the same reading rule), but
        the items of all tiles go out together, 25 per BatchWriteItem, instead of at least one request per tile: a
        region worker that stores its tiles' features here, then records the tiles (``add_tiles``), sends a fraction
        of the requests. Every feature of every tile is validated and every item built before the first request;
        a call refused for its input writes nothing. A call cut off half way (an error after some requests) leaves
        some tiles written completely and others not at all or in part: record no tile then, and write them all
        again (readers take each tile's last complete write). A tile with no features writes nothing.

        :param features_by_tile: Iterable[Tuple[ImageRegion, Iterable[geojson.Feature]]] = (tile, its features) pairs,
            each tile ((row, col), (width, height)); a tile given twice is written twice (the later write wins)
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration, Operation=FeatureStorage
        :return: None
        :raises AddFeaturesException: as :meth:`add_features`, for the whole call
        """
        with self._measure(FEATURE_STORAGE, metrics):
            items: list[dict[str, Any]] = []
            for tile, features in features_by_tile:
                items.extend(self._build_items(list(features), tile))
            self._put_items(items, "add features of tiles")

    def _put_items(self, items: list[dict[str, Any]], action: str) -> None:
        """Send built items with the one batch writer, under the table's retry policy.

        A call of at most 25 items shares its first request with concurrent calls (:mod:`~.coalescing`); the items
        that request leaves unwritten are sent again here, under the policy, that request counted as the first attempt.

        :param items: List[Dict[str, Any]] = items as DynamoDB attribute values; nothing is sent when empty
        :param action: str = what the caller does, for the error message
        :return: None
        :raises AddFeaturesException: chained from the batch writer's error, saying how many items stayed unwritten
        """
        if not items:
            return
        requests = [{"PutRequest": {"Item": item}} for item in items]
        try:
            first = self._coalescer.first_attempt(requests) if len(requests) <= BATCH_LIMIT else None
            self.send_batch(requests, self.retry_policy, first_attempt=first)
        except DDBBatchWriteException as err:
            detail = f"{action} ({err.unprocessed} of {len(items)} items unwritten)"
            raise self.error(AddFeaturesException, detail, {"items": len(items)}, err) from err

    def _build_items(self, features: Sequence[Any], source_tile: ImageRegion | None) -> list[dict[str, Any]]:
        """Validate and encode the features and build the items that store them, as DynamoDB attribute values.

        :param features: Sequence[Any] = the features
        :param source_tile: Optional[ImageRegion] = the tile they come from
        :return: List[Dict[str, Any]] = the items
        :raises AddFeaturesException: for any feature, tile or key that cannot be stored
        """
        source = None
        if source_tile is not None:
            try:
                source = _tile_id(source_tile)
            except ValueError as err:
                raise self.error(AddFeaturesException, "add features", {"source_tile": repr(source_tile)}, err) from err
        images: dict[str, list[Entry]] = {}
        spans = self.write_format == CLASSIC  # only classic items store the span
        for index, feature in enumerate(features):
            try:
                image_id, span = self._locate(feature, spans)
                data = codec.encode_feature(feature)
            except (ValueError, TypeError) as err:
                key = {"feature": index, "name": _feature_name(feature)}
                raise self.error(AddFeaturesException, "add features (invalid feature)", key, err) from err
            images.setdefault(image_id, []).append(Entry(data, index, span))
        now = time.time()
        expire = self.expire_time(now)
        items: list[dict[str, Any]] = []
        for image_id, entries in images.items():
            try:
                items.extend(
                    plan_items(
                        image_id,
                        entries,
                        source=source,
                        hash_salt=self.hash_salt,
                        now=now,
                        expire_time=expire,
                        write_format=self.write_format,
                    )
                )
            except KeyTooLongError as err:
                key = {"image_id": image_id[:64], "source_tile": source}
                raise self.error(AddFeaturesException, "add features (key too long)", key, err) from err
            except codec.FeatureTooLargeError as err:
                key = {"feature": err.index, "name": _feature_name(features[err.index])}
                raise self.error(AddFeaturesException, "add features (feature too large)", key, err) from err
        return items

    # -- reading ---------------------------------------------------------------------------------------------------

    def _stream(self, image_id: str) -> Iterator[bytes]:
        """Yield the features of an image as newline-delimited JSON, one chunk per item (see feature_stream)."""
        return feature_stream.stream(self, image_id, self.hash_salt, self.read_workers)

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

    def write_feature_collection(
        self, image_id: str, fp: Writable | socket.socket, metrics: MetricsLogger | None = None
    ) -> int:
        """Write the features of an image to a file as a GeoJSON FeatureCollection, in constant memory.

        The stored JSON of each feature is copied as it is, without decoding it (one feature per line). ``fp`` may be
        a text file (str is written) or a binary one (UTF-8 bytes are written): files opened with ``open``,
        ``gzip.open``, ``bz2.open`` or ``lzma.open`` in any mode, ``io.BytesIO``/``io.StringIO``, ``socket.makefile``
        files and sockets themselves.

        :param image_id: str = the image whose features to write
        :param fp: Union[Writable, socket.socket] = an open, writable file (text or binary), any object with such a
            ``write``, or a connected socket
        :param metrics: Optional[MetricsLogger] = receives Invocations, Errors and Duration,
            Operation=FeatureAggregation
        :return: int = the number of features written
        :raises GetFeaturesException: when the table cannot be read or an item decoded (the file is then incomplete)
        """
        text = _text_stream(fp)
        send: Callable[[Any], Any] = getattr(fp, "write", None) or fp.sendall  # type: ignore[union-attr]

        def write(data: bytes) -> None:
            send(data.decode("utf-8") if text else data)

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
        with feature_stream.gc_paused():
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
        """Delete every item of an image, in all shards (every layout), under the table's retry policy.

        :param image_id: str = the image whose features to delete
        :return: int = the number of items deleted
        :raises GetFeaturesException: when a shard cannot be read
        :raises DDBBatchWriteException: when items cannot be deleted
        """
        keys = [HASH, RANGE]

        def delete_shard(shard: int) -> int:
            deleted = 0
            pages = feature_stream.query_pages(self, f"{image_id}-{shard}", GetFeaturesException, keys)
            for page in pages:
                self.batch_delete_keys([{name: raw[name] for name in keys} for raw in page], self.retry_policy)
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
