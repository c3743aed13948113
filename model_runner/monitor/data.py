"""What the monitor reads: jobs, regions, tiles and a bounded overview of a job's features, as JSON-ready dicts.

Every read goes through the public repositories (:class:`JobTable`, :class:`RegionRequestTable`,
:class:`FeatureTable`) and their bound models; nothing here writes. The only read the repositories lack, a listing
of jobs, is a bounded scan of the job table's bound model (see :meth:`MonitorData.list_jobs`).
"""

from __future__ import annotations

import ast
import contextlib
import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from model_runner.common.feature_utils import get_feature_image_bounds
from model_runner.common.typing import RequestStatus
from model_runner.database import (
    DatabaseError,
    DDBException,
    FeatureTable,
    GetImageRequestItemException,
    JobItem,
    JobTable,
    RegionRequestTable,
)
from model_runner.database.ddb_helper import DDBHelper

#: Attributes of a job the jobs page shows (the scan's projection: the counted-region set, which grows with the
#: region count, is never sent back, though DynamoDB still bills the whole item, see list_jobs).
JOB_LIST_ATTRIBUTES = (
    "image_id",
    "job_id",
    "start_time",
    "end_time",
    "region_count",
    "region_success",
    "region_error",
    "processing_duration",
    "model_name",
    "width",
    "height",
)
#: Jobs one listing reads at most (the scan's bound) and items per scan page.
DEFAULT_SCAN_LIMIT = 1000
SCAN_PAGE_ITEMS = 250
#: Seconds a listing, and the feature overview of a running job, are reused by every viewer before being read again.
LIST_CACHE_SECONDS = 5.0
OVERVIEW_CACHE_SECONDS = 10.0
#: A running job's overview is read again no sooner than this many times the duration of its last reading (a job of
#: a million features takes tens of seconds to read: it is not read back to back).
OVERVIEW_COST_FACTOR = 10.0
#: Feature boxes an overview draws at most (a uniform sample beyond); the density grid counts every feature.
DEFAULT_BOX_CAP = 5000
#: Overviews kept in memory (one per job viewed recently).
OVERVIEW_CACHE_ENTRIES = 8
#: Density cells per side at most (a finer tile grid is coarsened to this).
MAX_DENSITY_CELLS = 256


class NotFound(Exception):
    """An image id (or region id) with no item, or a missing table: the monitor answers 404 with this message."""


class Unavailable(Exception):
    """DynamoDB could not be read (unreachable, throttled, denied): the monitor answers 503 with this message."""


def iso(millis: Any) -> str | None:
    """Return an epoch-milliseconds time as ISO 8601 UTC text.

    :param millis: Any = epoch milliseconds, or None
    :return: Optional[str] = the time, or None
    """
    if millis is None:
        return None
    return datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def pair(value: Any) -> list[int] | None:
    """Parse a (width, height) stored as a list or as text such as ``"(512, 512)"``.

    :param value: Any = the stored value
    :return: Optional[List[int]] = [width, height], or None when it is not a pair of numbers
    """
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return [int(value[0]), int(value[1])]
        except (TypeError, ValueError):
            return None
    return None


def job_state(job: Mapping[str, Any]) -> str:
    """Say where a job is: running, complete, partial (some regions failed) or failed (all did).

    :param job: Mapping[str, Any] = the job's attributes
    :return: str = the state
    """
    if job.get("end_time") is None:
        return "running"
    errors = int(job.get("region_error") or 0)
    if errors == 0:
        return "complete"
    count = job.get("region_count")
    if count is not None and errors >= int(count) and not job.get("region_success"):
        return "failed"
    return "partial"


def job_summary(job: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """Summarise a job for the pages: state, progress, failures, times and duration.

    :param job: Mapping[str, Any] = the job's attributes (a projection is enough)
    :param now: Optional[float] = the epoch time in seconds, for the duration of a running job
    :return: Dict[str, Any] = the summary
    """
    success = int(job.get("region_success") or 0)
    errors = int(job.get("region_error") or 0)
    count = int(job["region_count"]) if job.get("region_count") is not None else None
    start, end = job.get("start_time"), job.get("end_time")
    if end is not None and start is not None:
        seconds: float | None = (int(end) - int(start)) / 1000
    elif end is not None:
        seconds = float(job["processing_duration"]) if job.get("processing_duration") is not None else None
    elif start is not None:
        seconds = (time.time() if now is None else now) - int(start) / 1000
    else:
        seconds = None
    return {
        "image_id": job.get("image_id"),
        "job_id": job.get("job_id"),
        "state": job_state(job),
        "region_count": count,
        "regions_done": success + errors,
        "region_success": success,
        "region_error": errors,
        "start_time": iso(start),
        "end_time": iso(end),
        "start_millis": int(start) if start is not None else None,
        "duration_seconds": round(seconds, 3) if seconds is not None else None,
        "model_name": job.get("model_name"),
        "width": job.get("width"),
        "height": job.get("height"),
    }


def region_state(row: Mapping[str, Any]) -> str:
    """Colour of a region on the job page: failed, retried, succeeded or started.

    failed: ended FAILED or PARTIAL; retried: started more than once (running again, or succeeded after a retry);
    succeeded: ended SUCCESS at its first start; started: running at its first start.

    :param row: Mapping[str, Any] = the region's attributes
    :return: str = the state
    """
    status = row.get("region_status")
    if status in (RequestStatus.FAILED.value, RequestStatus.PARTIAL.value):
        return "failed"
    if int(row.get("region_retry_count") or 0) > 0:
        return "retried"
    if status == RequestStatus.SUCCESS.value:
        return "succeeded"
    return "started"


def _tile_key(tile: Any) -> str:
    return json.dumps(tile)


def tile_box(tile: Any) -> list[int] | None:
    """Return a stored tile or region bounds ``[[row, col], [width, height]]`` as ``[x, y, width, height]``.

    :param tile: Any = the stored bounds
    :return: Optional[List[int]] = the box in pixels, None when malformed
    """
    try:
        (row, col), (width, height) = tile
        return [int(col), int(row), int(width), int(height)]
    except (TypeError, ValueError):
        return None


def region_summary(row: Mapping[str, Any], now: float | None = None, tiles: bool = False) -> dict[str, Any]:
    """Summarise a region: state, tile counts, retries, duration, message and bounds (and its tiles when asked).

    A tile that failed and then succeeded on a retry of the region counts as succeeded, not failed.

    :param row: Mapping[str, Any] = the region's attributes
    :param now: Optional[float] = the epoch time in seconds, for the duration of a running region
    :param tiles: bool = include the tiles, each ``{"box": [x, y, w, h], "state": "succeeded" | "failed"}``
    :return: Dict[str, Any] = the summary
    """
    succeeded = {_tile_key(t): t for t in row.get("succeeded_tiles") or []}
    failed = {_tile_key(t): t for t in row.get("failed_tiles") or [] if _tile_key(t) not in succeeded}
    succeeded_count = len(succeeded) if succeeded else int(row.get("succeeded_tile_count") or 0)
    failed_count = len(failed) if row.get("failed_tiles") else int(row.get("failed_tile_count") or 0)
    start, end = row.get("start_time"), row.get("end_time")
    if end is not None and row.get("processing_duration") is not None:
        seconds: float | None = int(row["processing_duration"]) / 1000
    elif start is not None:
        stop = int(end) if end is not None else (time.time() if now is None else now) * 1000
        seconds = (stop - int(start)) / 1000
    else:
        seconds = None
    summary: dict[str, Any] = {
        "region_id": row.get("region_id"),
        "status": row.get("region_status"),
        "state": region_state(row),
        "tiles_succeeded": succeeded_count,
        "tiles_failed": failed_count,
        "tiles_total": row.get("total_tiles"),
        "retries": int(row.get("region_retry_count") or 0),
        "start_time": iso(start),
        "end_time": iso(end),
        "duration_seconds": round(seconds, 3) if seconds is not None else None,
        "message": row.get("message"),
        "box": tile_box(row.get("region_bounds")),
    }
    if tiles:
        listed = [(t, "succeeded") for t in succeeded.values()] + [(t, "failed") for t in failed.values()]
        summary["tiles"] = [{"box": box, "state": state} for t, state in listed if (box := tile_box(t)) is not None]
    return summary


def _region_order(summary: Mapping[str, Any]) -> tuple[int, int, str]:
    box = summary.get("box")
    if box is None:
        return (1 << 62, 1 << 62, str(summary.get("region_id")))
    return int(box[1]), int(box[0]), str(summary.get("region_id"))


def _fast_bounds(feature: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """Image bounds of a feature: ``bounds_imcoords`` or a polygon ``imageGeometry`` read directly (the common cases,
    without shapely), else :func:`get_feature_image_bounds`.
    """
    properties = feature.get("properties")
    if not isinstance(properties, Mapping):
        return None
    value = properties.get("bounds_imcoords")
    if value is None:
        geometry = properties.get("imageGeometry")
        if isinstance(geometry, Mapping) and geometry.get("type") == "Polygon":
            try:
                ring = geometry["coordinates"][0]
                xs = [float(point[0]) for point in ring]
                ys = [float(point[1]) for point in ring]
                return min(xs), min(ys), max(xs), max(ys)
            except (TypeError, ValueError, IndexError, KeyError):
                pass
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        try:
            minx, miny, maxx, maxy = (float(v) for v in value)
            return minx, miny, maxx, maxy
        except (TypeError, ValueError):
            pass
    try:
        return get_feature_image_bounds(feature)
    except (TypeError, ValueError):
        return None


@dataclass
class _Cached:
    at: float
    ended: bool
    value: dict[str, Any]
    took: float = 0.0

    def fresh(self, ended: bool, now: float) -> bool:
        """Whether this overview may be served: always once the job had ended when it was read; for a running job,
        for OVERVIEW_CACHE_SECONDS or ten times as long as reading it took, whichever is longer."""
        if self.ended:
            return True
        return not ended and now - self.at < max(OVERVIEW_CACHE_SECONDS, OVERVIEW_COST_FACTOR * self.took)


class MonitorData:
    """The monitor's reads, on the repositories of one set of tables.

    :param jobs: JobTable = the job repository
    :param regions: RegionRequestTable = the region repository
    :param features: FeatureTable = the feature repository
    :param scan_limit: int = jobs one listing reads at most
    :param box_cap: int = feature boxes one overview draws at most
    """

    def __init__(
        self,
        jobs: JobTable,
        regions: RegionRequestTable,
        features: FeatureTable,
        *,
        scan_limit: int = DEFAULT_SCAN_LIMIT,
        box_cap: int = DEFAULT_BOX_CAP,
    ) -> None:
        self.jobs = jobs
        self.regions = regions
        self.features = features
        for table in (jobs, regions, features):  # build each botocore client now, before request threads share it
            _ = table.client
        self.scan_limit = max(1, int(scan_limit))
        self.box_cap = max(0, int(box_cap))
        self._lock = threading.Lock()
        self._listing: _Cached | None = None
        self._overviews: OrderedDict[str, _Cached] = OrderedDict()
        self._overview_locks: dict[str, threading.Lock] = {}

    # -- failures ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _translate(err: DatabaseError) -> Exception:
        if err.table_missing:
            return NotFound(
                f"table {err.table_name} does not exist: check the table options, or create the tables with "
                "`model-runner-db create-tables`"
            )
        return Unavailable(f"DynamoDB could not be read: {err}")

    def _guard(self, table: DDBHelper, operation: Any, action: str, key: Mapping[str, Any]) -> Any:
        try:
            return table._run(operation, DDBException, action, key)
        except DatabaseError as err:
            raise self._translate(err) from err

    # -- jobs --------------------------------------------------------------------------------------------------------

    def list_jobs(self, limit: int = 50) -> dict[str, Any]:
        """List recent jobs, newest first, from a bounded scan of the job table (cached a few seconds for all viewers).

        The job table has no index on time, so "recent" is found by scanning at most ``scan_limit`` items (pages of
        ``SCAN_PAGE_ITEMS``, eventually consistent, projected to the shown attributes) and sorting them by start
        time. While the table holds no more than ``scan_limit`` jobs (jobs expire with the table's TTL, 7 days by
        default) that is every job; beyond, it is the newest of the first ``scan_limit`` in key order, and the answer
        says ``truncated``. A scan bills the whole size of each item read, projection or not: 0.5 read unit per
        4 KB read per page, reported as ``read_units``.

        :param limit: int = jobs returned at most
        :return: Dict[str, Any] = ``{"jobs": [...], "scan": {"items_read", "scan_limit", "truncated", "read_units",
            "read_at"}}``
        :raises NotFound: when the job table does not exist
        :raises Unavailable: when DynamoDB cannot be read
        """
        with self._lock:
            cached = self._listing
            if cached is None or time.time() - cached.at > LIST_CACHE_SECONDS:
                cached = _Cached(time.time(), False, self._scan_jobs())
                self._listing = cached
        listing = cached.value
        now = time.time()
        jobs = sorted(
            (job_summary(item, now) for item in listing["items"]),
            key=lambda job: (job["start_millis"] or 0, str(job["image_id"])),
            reverse=True,
        )
        return {"jobs": jobs[: max(0, int(limit))], "total_listed": len(jobs), "scan": listing["scan"]}

    def _scan_jobs(self) -> dict[str, Any]:
        model = self.jobs.model
        connection = model._get_connection()
        items: list[dict[str, Any]] = []
        units = 0.0
        start_key: Any = None
        truncated = False
        while True:
            page_size = min(SCAN_PAGE_ITEMS, self.scan_limit - len(items))

            def page(start: Any = start_key, size: int = page_size) -> Any:
                return connection.scan(
                    attributes_to_get=list(JOB_LIST_ATTRIBUTES),
                    limit=size,
                    exclusive_start_key=start,
                    return_consumed_capacity="TOTAL",
                )

            data = self._guard(self.jobs, page, "list jobs (scan)", {})
            units += float(data.get("ConsumedCapacity", {}).get("CapacityUnits", 0) or 0)
            for raw in data.get("Items", []):
                items.append(DDBHelper.as_dict(model.from_raw_data(raw)))
            start_key = data.get("LastEvaluatedKey")
            if not start_key:
                break
            if len(items) >= self.scan_limit:
                truncated = True
                break
        return {
            "items": items,
            "scan": {
                "items_read": len(items),
                "scan_limit": self.scan_limit,
                "truncated": truncated,
                "read_units": units,
                "read_at": datetime.now(tz=timezone.utc).isoformat(timespec="seconds"),
            },
        }

    def job_item(self, image_id: str) -> JobItem:
        """Read one job (strongly consistent).

        :param image_id: str = the image id
        :return: JobItem = the job
        :raises NotFound: when there is no such job or no job table
        :raises Unavailable: when DynamoDB cannot be read
        """
        try:
            return self.jobs.get_image_request(image_id)
        except GetImageRequestItemException as err:
            if err.code is None:
                raise NotFound(f"no job with image id {image_id!r} in table {self.jobs.table_name}") from err
            raise self._translate(err) from err
        except DatabaseError as err:
            raise self._translate(err) from err

    def job(self, image_id: str) -> dict[str, Any]:
        """Describe one job: its summary with the image size, tiling and extents.

        :param image_id: str = the image id
        :return: Dict[str, Any] = the job
        :raises NotFound: when there is no such job or no job table
        :raises Unavailable: when DynamoDB cannot be read
        """
        item = self.job_item(image_id)
        values = DDBHelper.as_dict(item)
        summary = job_summary(values)
        outputs: Any = values.get("outputs")
        if isinstance(outputs, str):
            with contextlib.suppress(ValueError):
                outputs = json.loads(outputs)
        summary.update(
            {
                "image_url": values.get("image_url"),
                "tile_size": pair(values.get("tile_size")),
                "tile_overlap": pair(values.get("tile_overlap")),
                "outputs": outputs,
                "aggregated_by": values.get("aggregated_by"),
            }
        )
        return summary

    # -- regions -----------------------------------------------------------------------------------------------------

    def _region_rows(self, image_id: str) -> list[dict[str, Any]]:
        model = self.regions.model

        def query() -> list[dict[str, Any]]:
            return [DDBHelper.as_dict(item) for item in model.query(image_id, consistent_read=True)]

        rows: list[dict[str, Any]] = self._guard(self.regions, query, "list regions (query)", {"image_id": image_id})
        return rows

    def region_list(self, image_id: str) -> list[dict[str, Any]]:
        """Summarise every region of a job, in image order (top to bottom, left to right).

        :param image_id: str = the image id (the job must exist)
        :return: List[Dict[str, Any]] = the regions, without their tiles
        :raises NotFound: when there is no such job or a table is missing
        :raises Unavailable: when DynamoDB cannot be read
        """
        self.job_item(image_id)
        now = time.time()
        return sorted((region_summary(row, now) for row in self._region_rows(image_id)), key=_region_order)

    def region(self, image_id: str, region_id: str) -> dict[str, Any]:
        """Describe one region with its tiles (failed ones marked).

        :param image_id: str = the image id
        :param region_id: str = the region id
        :return: Dict[str, Any] = the region
        :raises NotFound: when there is no such region or a table is missing
        :raises Unavailable: when DynamoDB cannot be read
        """
        try:
            item = self.regions.get_region_request(region_id, image_id)
        except DatabaseError as err:
            raise self._translate(err) from err
        if item is None:
            raise NotFound(f"no region {region_id!r} of image {image_id!r} in table {self.regions.table_name}")
        return region_summary(DDBHelper.as_dict(item), tiles=True)

    # -- features ----------------------------------------------------------------------------------------------------

    def feature_overview(self, image_id: str) -> dict[str, Any]:
        """Draw a job's features at any count: every feature counted in a density grid of tile cells, at most
        ``box_cap`` boxes (a uniform sample beyond), and the recorded tiles for the seam lines.

        The features are streamed with :meth:`FeatureTable.iter_features`: memory holds the grid and the sample,
        never the features. An ended job's overview is read once (after its end); a running job's at most every
        ``OVERVIEW_CACHE_SECONDS`` or ``OVERVIEW_COST_FACTOR`` times the last reading's duration, whoever asks.

        :param image_id: str = the image id
        :return: Dict[str, Any] = ``{"count", "without_image_bounds", "boxes", "box_cap", "sampled", "density": {...},
            "tiles": [...]}``
        :raises NotFound: when there is no such job or a table is missing
        :raises Unavailable: when DynamoDB cannot be read
        """
        with self._lock:
            lock = self._overview_locks.setdefault(image_id, threading.Lock())
        with lock:
            job = self.job(image_id)  # one GetItem: tells whether the job ended since the overview was read
            ended = job["end_time"] is not None
            with self._lock:
                cached = self._overviews.get(image_id)
            if cached is not None and cached.fresh(ended, time.time()):
                return cached.value
            started = time.monotonic()
            value = self._overview(image_id, job)
            took = time.monotonic() - started
            with self._lock:
                self._overviews[image_id] = _Cached(time.time(), ended, value, took)
                self._overviews.move_to_end(image_id)
                while len(self._overviews) > OVERVIEW_CACHE_ENTRIES:
                    old, _ = self._overviews.popitem(last=False)
                    self._overview_locks.pop(old, None)
            return value

    def _overview(self, image_id: str, job: Mapping[str, Any]) -> dict[str, Any]:
        tile = job.get("tile_size") or [512, 512]
        overlap = job.get("tile_overlap") or [0, 0]
        width, height = int(job.get("width") or 0), int(job.get("height") or 0)
        stride = [max(1, int(tile[0]) - int(overlap[0])), max(1, int(tile[1]) - int(overlap[1]))]
        if width and height:
            cols, rows = -(-width // stride[0]), -(-height // stride[1])
            scale = max(1, -(-max(cols, rows) // MAX_DENSITY_CELLS))
            cell = [stride[0] * scale, stride[1] * scale]
            cols, rows = -(-width // cell[0]), -(-height // cell[1])
        else:
            cell, cols, rows = stride, 0, 0
        counts = [0] * (cols * rows)
        sample: list[list[float]] = []
        rng = random.Random(0)
        count = 0
        extent = [0.0, 0.0, float(width), float(height)]
        unplaced = 0
        for bounds in self._feature_bounds(image_id):
            count += 1
            if bounds is None:
                unplaced += 1
                continue
            minx, miny, maxx, maxy = bounds
            extent = [min(extent[0], minx), min(extent[1], miny), max(extent[2], maxx), max(extent[3], maxy)]
            if cols:
                col = min(cols - 1, max(0, int((minx + maxx) / 2 // cell[0])))
                row = min(rows - 1, max(0, int((miny + maxy) / 2 // cell[1])))
                counts[row * cols + col] += 1
            box = [round(minx, 1), round(miny, 1), round(maxx, 1), round(maxy, 1)]
            if len(sample) < self.box_cap:
                sample.append(box)
            elif self.box_cap:
                slot = rng.randrange(count)  # reservoir sampling: every feature is kept with equal probability
                if slot < self.box_cap:
                    sample[slot] = box
        tiles = self._tile_boxes(image_id)
        return {
            "count": count,
            "without_image_bounds": unplaced,
            "boxes": sample,
            "box_cap": self.box_cap,
            "sampled": count - unplaced > len(sample),
            "extent": extent,
            "density": {"cell": cell, "cols": cols, "rows": rows, "counts": counts, "max": max(counts, default=0)},
            "tiles": tiles,
            "tile_size": tile,
            "tile_overlap": overlap,
        }

    def _feature_bounds(self, image_id: str) -> Iterable[tuple[float, float, float, float] | None]:
        stream = self.features.iter_features(image_id)
        try:
            for feature in stream:
                yield _fast_bounds(feature)
        except DatabaseError as err:
            raise self._translate(err) from err
        finally:
            stream.close()

    def _tile_boxes(self, image_id: str) -> list[list[int]]:
        seen: set[tuple[int, ...]] = set()
        for row in self._region_rows(image_id):
            for tile in _tiles(row):
                box = tile_box(tile)
                if box is not None:
                    seen.add(tuple(box))
        return [list(box) for box in sorted(seen)]


def _tiles(row: Mapping[str, Any]) -> Sequence[Any]:
    return [*(row.get("succeeded_tiles") or []), *(row.get("failed_tiles") or [])]
