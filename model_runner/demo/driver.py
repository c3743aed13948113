"""Run one whole image job against the four tables with many worker threads, the way the model runner does.

:func:`run_job` follows the workflow of the tables (docs: "The life of one image job"): start the job and record
its size and region count, then per region, on a pool of worker threads: count the region in on the endpoint, start
the region, run the synthetic detector on each tile not yet succeeded (features first, then the tile's state),
record the region's tile total, complete the region in the job (exactly once, by region id) and in the region table,
count the region out. The worker whose completion returns a complete job claims the aggregation, reads every
feature back, and ends the job.

With a failure rate ``p`` the messages behave like an at-least-once queue with flaky workers:

* each tile attempt fails with probability ``p`` (recorded as a failed tile); a region with failed tiles is
  delivered again (up to ``region_attempts`` deliveries), and only the tiles not yet succeeded run again;
* the first delivery of a region crashes with probability ``p``: it stops after a random number of tiles, one of them
  with its features written but its state not recorded, and the region is delivered again, to another worker;
* a region's completion is delivered a second time, concurrently, with probability ``p``.

Exactly one worker aggregates. The tables cannot say which completion made a job complete (a repeated completion
returns the complete job too), so the aggregation is claimed with :meth:`JobTable.claim_aggregation` (one conditional
UpdateItem on the job's ``aggregated_by``): the first claim wins, a retried claim of the same worker wins again.

Nothing here prints: progress goes to an optional callback, figures into the returned :class:`JobReport`.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model_runner.api import ImageRequest, RegionRequest
from model_runner.common.typing import ImageDimensions, ImageRegion, RequestStatus, TileState
from model_runner.database import (
    DatabaseError,
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    RetryPolicy,
    TableNames,
)

from .capacity import CapacityRecorder, CapacitySummary
from .synthetic import SyntheticDetector, SyntheticImage, TileFailure, generate_crops

#: The model endpoint whose regions in progress the demo tracks.
DEMO_ENDPOINT = "synthetic-detector-endpoint"


class SimulatedCrash(Exception):
    """A worker "died" half way through a region; the region is delivered again."""


class DemoError(Exception):
    """The demo job could not run to its end; the message says why."""


@dataclass(frozen=True)
class Repositories:
    """The four repositories a job uses.

    :param job: JobTable = the job table
    :param region: RegionRequestTable = the region table
    :param endpoint: EndpointStatisticsTable = the endpoint statistics table
    :param feature: FeatureTable = the feature table (its tile size and overlap must be the job's)
    """

    job: JobTable
    region: RegionRequestTable
    endpoint: EndpointStatisticsTable
    feature: FeatureTable

    @classmethod
    def connect(
        cls,
        names: TableNames,
        endpoint_url: str | None = None,
        region: str | None = None,
        tile_size: ImageDimensions = (512, 512),
        overlap: ImageDimensions = (32, 32),
        max_pool_connections: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> Repositories:
        """Build the repositories on tables by name (no request is sent).

        :param names: TableNames = the table names
        :param endpoint_url: Optional[str] = the DynamoDB endpoint; the environment's when None
        :param region: Optional[str] = the AWS region; the environment's when None
        :param tile_size: ImageDimensions = tile size of the feature table, (width, height)
        :param overlap: ImageDimensions = tile overlap of the feature table, (width, height)
        :param max_pool_connections: Optional[int] = HTTP connections per table; at least the number of threads
        :param retry_policy: Optional[RetryPolicy] = retries of transient failures
        :return: Repositories = the repositories
        """
        options: dict[str, Any] = {"host": endpoint_url, "region": region}
        if max_pool_connections is not None:
            options["max_pool_connections"] = max_pool_connections
        if retry_policy is not None:
            options["retry_policy"] = retry_policy
        return cls(
            job=JobTable(names.job, **options),
            region=RegionRequestTable(names.region, **options),
            endpoint=EndpointStatisticsTable(names.endpoint, **options),
            feature=FeatureTable(names.feature, tile_size, overlap, **options),
        )

    @property
    def clients(self) -> list[Any]:
        """The botocore clients of the four repositories (for a :class:`CapacityRecorder`)."""
        return [self.job.client, self.region.client, self.endpoint.client, self.feature.client]


@dataclass(frozen=True)
class JobSpec:
    """The image, its tiling, and how the workers behave.

    :param image_id: str = the image id of the job
    :param width: int = image width in pixels
    :param height: int = image height in pixels
    :param region_size: ImageDimensions = region size, (width, height)
    :param tile_size: ImageDimensions = tile size, (width, height)
    :param overlap: ImageDimensions = tile overlap, (width, height)
    :param workers: int = region workers (threads), each processing one region at a time
    :param tile_workers: int = threads per region worker processing the region's tiles
    :param failure_rate: float = probability of a tile failure, a region crash and a duplicated completion
    :param seed: int = seed of the detector and of the failures
    :param features_per_tile: int = mean detections per full tile
    :param region_attempts: int = deliveries of a region while some of its tiles fail (its failed tiles are tried
        again; the last delivery completes the region whatever the outcome)
    :param max_deliveries: int = deliveries of one message before the run gives up on it (crashes, errors)
    :param model_name: str = model name recorded in the job and the features
    :param endpoint_name: str = the endpoint tracked in the endpoint statistics table
    """

    image_id: str
    width: int = 8192
    height: int = 8192
    region_size: ImageDimensions = (2048, 2048)
    tile_size: ImageDimensions = (512, 512)
    overlap: ImageDimensions = (32, 32)
    workers: int = 8
    tile_workers: int = 4
    failure_rate: float = 0.0
    seed: int = 0
    features_per_tile: int = 20
    region_attempts: int = 2
    max_deliveries: int = 5
    model_name: str = "synthetic-detector"
    endpoint_name: str = DEMO_ENDPOINT

    def __post_init__(self) -> None:
        """Check the values.

        :raises ValueError: naming the first value out of range
        """
        for name in ("width", "height", "workers", "tile_workers", "region_attempts", "max_deliveries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("region_size", "tile_size"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"{name} must be two sizes of at least 1 pixel, got {size}")
        if len(self.overlap) != 2 or not all(0 <= o < t for o, t in zip(self.overlap, self.tile_size, strict=True)):
            raise ValueError(f"overlap must be at least 0 and smaller than the tile size {self.tile_size}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {self.failure_rate}")
        if self.features_per_tile < 0:
            raise ValueError(f"features_per_tile must be at least 0, got {self.features_per_tile}")
        if not self.image_id:
            raise ValueError("image_id must not be empty")


@dataclass(frozen=True)
class Progress:
    """Where a running job is.

    :param tiles_done: int = tiles with an outcome recorded (each tile counts once)
    :param tiles_total: int = tiles of the image
    :param regions_done: int = regions completed
    :param regions_total: int = regions of the image
    :param features_written: int = distinct features written so far
    :param phase: str = "processing", "aggregating" or "done"
    """

    tiles_done: int
    tiles_total: int
    regions_done: int
    regions_total: int
    features_written: int
    phase: str


ProgressCallback = Callable[[Progress], None]


@dataclass
class JobReport:
    """Everything a run did and measured.

    :param image_id: str = the job's image id
    :param spec: Dict[str, Any] = the run's :class:`JobSpec`, as a dictionary
    :param state: str = the job as stored at the end: complete, partial (some regions failed) or failed (all did)
    :param regions: int = regions of the image (the job's region_count)
    :param regions_succeeded: int = the job's region_success
    :param regions_failed: int = the job's region_error
    :param region_deliveries: int = region messages handled, first deliveries and redeliveries
    :param redeliveries: Dict[str, int] = regions delivered again: after a crash, to retry failed tiles, after an
        error (a typed exception once retries ran out)
    :param duplicate_completions: int = completions delivered a second time
    :param region_retries_recorded: int = sum of region_retry_count in the region table
    :param tiles: int = tiles of the image
    :param tile_attempts: int = tiles run through the detector, retries included
    :param tile_failures: int = failed tile attempts
    :param tiles_succeeded: int = tiles that succeeded in the end
    :param tiles_failed: int = tiles that never succeeded
    :param features_written: int = distinct features written (by id)
    :param feature_writes: int = features sent to the table, rewrites of retried tiles included
    :param features_aggregated: int = features read back by the aggregation
    :param distinct_features_aggregated: int = distinct ids among them
    :param missing_features: int = features written but not read back
    :param unexpected_features: int = features read back that were never written
    :param aggregations: int = workers that aggregated (exactly one when all is well)
    :param lost_claims: int = workers that saw the job complete but found the aggregation claimed
    :param worker_errors: Dict[str, int] = typed exceptions that made a message be delivered again, by class
    :param regions_in_progress_after: int = the endpoint's regions in progress after the run (0 when all is well)
    :param output_path: Optional[str] = where the FeatureCollection was written
    :param wall_seconds: float = from the start of the job to its end
    :param capacity: CapacitySummary = requests, errors and capacity units of the run
    """

    image_id: str
    spec: dict[str, Any]
    state: str = "running"
    regions: int = 0
    regions_succeeded: int = 0
    regions_failed: int = 0
    region_deliveries: int = 0
    redeliveries: dict[str, int] = field(default_factory=lambda: {"crash": 0, "failed_tiles": 0, "error": 0})
    duplicate_completions: int = 0
    region_retries_recorded: int = 0
    tiles: int = 0
    tile_attempts: int = 0
    tile_failures: int = 0
    tiles_succeeded: int = 0
    tiles_failed: int = 0
    features_written: int = 0
    feature_writes: int = 0
    features_aggregated: int = 0
    distinct_features_aggregated: int = 0
    missing_features: int = 0
    unexpected_features: int = 0
    aggregations: int = 0
    lost_claims: int = 0
    worker_errors: dict[str, int] = field(default_factory=dict)
    regions_in_progress_after: int = 0
    output_path: str | None = None
    wall_seconds: float = 0.0
    capacity: CapacitySummary = field(default_factory=CapacitySummary)

    @property
    def region_redeliveries(self) -> int:
        """Regions delivered again, for any reason."""
        return sum(self.redeliveries.values())

    @property
    def features_match(self) -> bool:
        """True when the aggregation read back exactly the distinct features written, each once."""
        same_count = self.features_aggregated == self.distinct_features_aggregated == self.features_written
        return same_count and not self.missing_features and not self.unexpected_features

    @property
    def counts_match(self) -> bool:
        """True when every region was counted once in the job and every tile is accounted for."""
        return (
            self.regions_succeeded + self.regions_failed == self.regions
            and self.tiles_succeeded + self.tiles_failed == self.tiles
        )

    @property
    def ok(self) -> bool:
        """True when the job ended consistent: features match, counts match, one aggregation, no region in progress."""
        return (
            self.features_match and self.counts_match and self.aggregations == 1 and not self.regions_in_progress_after
        )

    def throughput(self) -> dict[str, float]:
        """Return tiles, features and requests per second of wall time.

        :return: Dict[str, float] = tiles_per_second, features_per_second, requests_per_second
        """
        seconds = max(self.wall_seconds, 1e-9)
        return {
            "tiles_per_second": round(self.tiles / seconds, 1),
            "features_per_second": round(self.features_written / seconds, 1),
            "requests_per_second": round(self.capacity.total_requests / seconds, 1),
        }

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable values.

        :return: Dict[str, Any] = every field, the checks (features_match, counts_match, ok) and the throughput
        """
        data = asdict(self)
        data["capacity"] = self.capacity.to_json()
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data.update(self.throughput())
        data.update(
            region_redeliveries=self.region_redeliveries,
            features_match=self.features_match,
            counts_match=self.counts_match,
            ok=self.ok,
        )
        return data


@dataclass(frozen=True)
class _Outcome:
    """What processing a region found: whether any tile failed, and the region's final status."""

    error: bool
    status: RequestStatus
    start_time: int | None = None


@dataclass(frozen=True)
class _Message:
    """A message of the simulated queue: process a region, or complete it (a redelivered or duplicated completion)."""

    region: int
    delivery: int = 1
    outcome: _Outcome | None = None
    duplicate: bool = False


class _JobRun:
    """The state of one run: the plan (regions, tiles), the simulated queue, counters, and the workers."""

    def __init__(
        self,
        repositories: Repositories,
        spec: JobSpec,
        progress: ProgressCallback | None,
        output: Path | None,
    ) -> None:
        self.repos = repositories
        self.spec = spec
        self.progress = progress
        self.output = output
        self.image = SyntheticImage(spec.image_id, spec.width, spec.height)
        self.detector = SyntheticDetector(spec.seed, spec.features_per_tile, spec.failure_rate, spec.model_name)
        self.job_id = f"job-{spec.image_id}"
        self.regions = self.image.regions(spec.region_size)
        self.tiles = [generate_crops(region, spec.tile_size, spec.overlap) for region in self.regions]
        self.region_ids = [f"{region}-{self.job_id}" for region in self.regions]
        self.tiles_total = sum(len(tiles) for tiles in self.tiles)
        self.report = JobReport(image_id=spec.image_id, spec=asdict(spec))
        self.report.regions = len(self.regions)
        self.report.tiles = self.tiles_total
        self.lock = threading.Lock()
        self.queue: queue.Queue[_Message | None] = queue.Queue()
        self.outstanding = 0
        self.failure: BaseException | None = None
        self.written_ids: set[str] = set()
        self.tiles_recorded: set[tuple[int, ImageRegion]] = set()
        self.tiles_failed_final: dict[int, int] = {}
        self.regions_done: set[int] = set()
        self.duplicated: set[int] = set()
        self.aggregated_ids: set[str] = set()
        self.phase = "processing"

    # -- randomness of the failures (deterministic per seed, region and delivery) ------------------------------------

    def _draw(self, what: str, region: int, delivery: int = 1) -> random.Random:
        return random.Random(f"{what}/{self.spec.seed}/{region}/{delivery}")

    # -- the queue -------------------------------------------------------------------------------------------------

    def submit(self, message: _Message) -> None:
        with self.lock:
            self.outstanding += 1
        self.queue.put(message)

    def _finished(self) -> None:
        with self.lock:
            self.outstanding -= 1
            done = self.outstanding == 0
        if done:
            for _ in range(self.spec.workers):
                self.queue.put(None)

    def _notify(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            snapshot = Progress(
                tiles_done=len(self.tiles_recorded),
                tiles_total=self.tiles_total,
                regions_done=len(self.regions_done),
                regions_total=len(self.regions),
                features_written=len(self.written_ids),
                phase=self.phase,
            )
        self.progress(snapshot)

    # -- the job ---------------------------------------------------------------------------------------------------

    def start_job(self) -> None:
        """Start the job, record its size and region count, and register the endpoint."""
        spec = self.spec
        outputs: list[dict[str, Any]] = [{"type": "Demo", "path": str(self.output) if self.output else None}]
        request = ImageRequest(
            job_id=self.job_id,
            image_id=spec.image_id,
            image_url=f"synthetic://{spec.image_id}",
            model_name=spec.model_name,
            tile_size=spec.tile_size,
            tile_overlap=spec.overlap,
            outputs=outputs,
        )
        self.repos.job.start_image_request(JobItem.from_image_request(request))
        self.repos.job.update_image_request(
            JobItem(
                image_id=spec.image_id,
                region_count=len(self.regions),
                width=spec.width,
                height=spec.height,
                extents=json.dumps(self.image.extents),
            )
        )
        self.repos.endpoint.upsert_endpoint(spec.endpoint_name, spec.workers)

    def run(self) -> None:
        """Queue every region, run the workers until the queue is drained, and raise the first unexpected error."""
        for index in range(len(self.regions)):
            self.submit(_Message(index))
        threads = [
            threading.Thread(target=self._worker, args=(n,), name=f"demo-worker-{n}", daemon=True)
            for n in range(self.spec.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.failure is not None:
            raise self.failure

    def _worker(self, number: int) -> None:
        with ThreadPoolExecutor(self.spec.tile_workers, thread_name_prefix=f"demo-tiles-{number}") as pool:
            while True:
                message = self.queue.get()
                if message is None:
                    return
                try:
                    if self.failure is None:
                        self._handle(message, pool, number)
                except BaseException as err:  # a bug or an exhausted message: stop the run, report it
                    with self.lock:
                        if self.failure is None:
                            self.failure = err
                finally:
                    self._finished()

    def _handle(self, message: _Message, pool: ThreadPoolExecutor, worker: int) -> None:
        if message.outcome is not None:
            self._handle_completion(message, worker)
            return
        with self.lock:
            self.report.region_deliveries += 1
        endpoint = self.spec.endpoint_name
        self.repos.endpoint.increment_region_count(endpoint)
        try:
            outcome = self._process_region(message, pool)
        except (SimulatedCrash, DatabaseError) as err:
            self._deliver_again(message, err)
            return
        finally:
            self.repos.endpoint.decrement_region_count(endpoint)
        if outcome.error and message.delivery < self.spec.region_attempts:  # retry the failed tiles
            with self.lock:
                self.report.redeliveries["failed_tiles"] += 1
            self.submit(_Message(message.region, message.delivery + 1))
            return
        if self._draw("duplicate", message.region).random() < self.spec.failure_rate:
            with self.lock:
                first = message.region not in self.duplicated
                self.duplicated.add(message.region)
                if first:
                    self.report.duplicate_completions += 1
            if first:  # delivered again while this worker completes it
                self.submit(_Message(message.region, outcome=outcome, duplicate=True))
        self._handle_completion(_Message(message.region, message.delivery, outcome), worker)

    def _deliver_again(self, message: _Message, err: BaseException) -> None:
        if message.delivery >= self.spec.max_deliveries:
            raise DemoError(
                f"region {self.region_ids[message.region]} failed {message.delivery} times; last error: {err}"
            ) from err
        with self.lock:
            if not isinstance(err, SimulatedCrash):
                name = type(err).__name__
                self.report.worker_errors[name] = self.report.worker_errors.get(name, 0) + 1
            if message.outcome is None:
                self.report.redeliveries["crash" if isinstance(err, SimulatedCrash) else "error"] += 1
        self.submit(_Message(message.region, message.delivery + 1, message.outcome, message.duplicate))

    # -- one region ------------------------------------------------------------------------------------------------

    def _region_request(self, index: int) -> RegionRequest:
        return RegionRequest(
            image_id=self.spec.image_id,
            job_id=self.job_id,
            region_bounds=self.regions[index],
            region_id=self.region_ids[index],
            image_url=f"synthetic://{self.spec.image_id}",
            model_name=self.spec.model_name,
            tile_size=self.spec.tile_size,
            tile_overlap=self.spec.overlap,
        )

    def _process_region(self, message: _Message, pool: ThreadPoolExecutor) -> _Outcome:
        index = message.region
        item = RegionRequestItem.from_region_request(self._region_request(index))
        stored = self.repos.region.start_region_request(item)
        succeeded = {_tile_key(tile) for tile in (stored.succeeded_tiles or [])}
        todo = [tile for tile in self.tiles[index] if _tile_key(tile) not in succeeded]
        crash_at: int | None = None
        if message.delivery == 1 and todo:
            draw = self._draw("crash", index)
            if draw.random() < self.spec.failure_rate:
                crash_at = draw.randrange(len(todo))
        futures: list[Future[bool]] = [
            pool.submit(self._process_tile, index, tile, message.delivery, position == crash_at)
            for position, tile in enumerate(todo)
        ]
        wait(futures)
        results: list[bool] = []
        first_error: BaseException | None = None
        for future in futures:
            error = future.exception()
            if error is None:
                results.append(future.result())
            elif first_error is None or isinstance(error, SimulatedCrash):
                first_error = error
        if first_error is not None:
            raise first_error
        failed = sum(1 for ok in results if not ok)
        self.repos.region.update_region_request(
            RegionRequestItem(
                image_id=self.spec.image_id, region_id=self.region_ids[index], total_tiles=len(self.tiles[index])
            )
        )
        with self.lock:
            self.tiles_failed_final[index] = failed
        start_time = int(stored.start_time) if stored.start_time is not None else None
        if failed == 0:
            return _Outcome(False, RequestStatus.SUCCESS, start_time)
        if failed == len(self.tiles[index]):
            return _Outcome(True, RequestStatus.FAILED, start_time)
        return _Outcome(True, RequestStatus.PARTIAL, start_time)

    def _process_tile(self, index: int, tile: ImageRegion, attempt: int, crash: bool) -> bool:
        image_id, region_id = self.spec.image_id, self.region_ids[index]
        with self.lock:
            self.report.tile_attempts += 1
        try:
            features = self.detector.detect(self.image, tile, attempt)
        except TileFailure:
            self.repos.region.add_tile(image_id, region_id, tile, TileState.FAILED)
            with self.lock:
                self.report.tile_failures += 1
                self.tiles_recorded.add((index, tile))
            self._notify()
            return False
        if features:
            self.repos.feature.add_features(features, source_tile=tile)
        with self.lock:
            self.report.feature_writes += len(features)
            self.written_ids.update(str(feature["id"]) for feature in features)
        if crash:
            raise SimulatedCrash(f"worker died after writing the features of tile {tile} of region {region_id}")
        self.repos.region.add_tile(image_id, region_id, tile, TileState.SUCCEEDED)
        with self.lock:
            self.tiles_recorded.add((index, tile))
        self._notify()
        return True

    # -- completion and aggregation --------------------------------------------------------------------------------

    def _handle_completion(self, message: _Message, worker: int) -> None:
        outcome = message.outcome
        assert outcome is not None
        index = message.region
        try:
            job = self.repos.job.complete_region_request(
                self.spec.image_id, outcome.error, region_id=self.region_ids[index]
            )
            item = RegionRequestItem(
                image_id=self.spec.image_id, region_id=self.region_ids[index], start_time=outcome.start_time
            )
            self.repos.region.complete_region_request(item, outcome.status)
        except DatabaseError as err:
            self._deliver_again(message, err)
            return
        with self.lock:
            self.regions_done.add(index)
        self._notify()
        if JobTable.is_image_request_complete(job):
            self._aggregate(worker)

    def _aggregate(self, worker: int) -> None:
        claimant = f"worker-{worker}-{uuid.uuid4().hex[:12]}"
        if not self.repos.job.claim_aggregation(self.spec.image_id, claimant):
            with self.lock:
                self.report.lost_claims += 1
            return
        with self.lock:
            self.phase = "aggregating"
        self._notify()
        count = 0
        ids: set[str] = set()
        for feature in self.repos.feature.iter_features(self.spec.image_id):
            count += 1
            ids.add(str(feature.get("id")))
        if self.output is not None:
            written = _write_collection(self.repos.feature, self.spec.image_id, self.output)
            if written != count:
                raise DemoError(f"wrote {written} features to {self.output} but read {count} back")
            self.report.output_path = str(self.output)
        self.repos.job.end_image_request(self.spec.image_id)
        with self.lock:
            self.report.aggregations += 1
            self.report.features_aggregated = count
            self.report.distinct_features_aggregated = len(ids)
            self.aggregated_ids = ids
            self.phase = "done"
        self._notify()

    # -- the report ------------------------------------------------------------------------------------------------

    def finish_report(self, wall_seconds: float, capacity: CapacitySummary) -> JobReport:
        """Fill the report from the run's counters and the tables as stored.

        :param wall_seconds: float = seconds from the job's start to its end
        :param capacity: CapacitySummary = what the run cost
        :return: JobReport = the report
        """
        report = self.report
        job = self.repos.job.get_image_request(self.spec.image_id)
        report.regions_succeeded = int(job.region_success or 0)
        report.regions_failed = int(job.region_error or 0)
        report.state = job_state(job.region_count, job.region_success, job.region_error, job.end_time)
        rows = self.repos.region.query_items(RegionRequestItem(image_id=self.spec.image_id))
        report.region_retries_recorded = sum(int(row.get("region_retry_count") or 0) for row in rows)
        report.tiles_failed = sum(self.tiles_failed_final.values())
        report.tiles_succeeded = self.tiles_total - report.tiles_failed
        report.features_written = len(self.written_ids)
        report.missing_features = len(self.written_ids - self.aggregated_ids)
        report.unexpected_features = len(self.aggregated_ids - self.written_ids)
        report.regions_in_progress_after = self.repos.endpoint.current_in_progress_regions(self.spec.endpoint_name)
        report.wall_seconds = wall_seconds
        report.capacity = capacity
        return report


def _tile_key(tile: Iterable[Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return a tile as nested tuples of ints, however it was stored ([[r, c], [w, h]], tuples, Decimals)."""
    origin, size = tile
    row, col = origin
    width, height = size
    return (int(row), int(col)), (int(width), int(height))


def _write_collection(feature_table: FeatureTable, image_id: str, path: Path) -> int:
    """Write the job's FeatureCollection to a file, atomically (a temporary file renamed at the end).

    :param feature_table: FeatureTable = the feature table
    :param image_id: str = the job
    :param path: Path = the file to write
    :return: int = features written
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as fp:
            count = int(feature_table.write_feature_collection(image_id, fp))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return count


def job_state(region_count: Any, region_success: Any, region_error: Any, end_time: Any) -> str:
    """Say where a job is: running, complete, partial (some regions failed) or failed (all did).

    A job is running until it has ended (end_time set); an ended job is complete, partial or failed by its counts.

    :param region_count: Optional[int] = regions of the job
    :param region_success: Optional[int] = regions that succeeded
    :param region_error: Optional[int] = regions that failed
    :param end_time: Optional[int] = when the job ended
    :return: str = running, complete, partial or failed
    """
    if end_time is None:
        return "running"
    errors = int(region_error or 0)
    if errors == 0:
        return "complete"
    if region_count is not None and errors >= int(region_count) and not region_success:
        return "failed"
    return "partial"


def run_job(
    repositories: Repositories | None = None,
    *,
    names: TableNames | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    image_id: str | None = None,
    image_size: ImageDimensions = (8192, 8192),
    region_size: ImageDimensions = (2048, 2048),
    tile_size: ImageDimensions = (512, 512),
    overlap: ImageDimensions = (32, 32),
    workers: int = 8,
    tile_workers: int = 4,
    failure_rate: float = 0.0,
    seed: int = 0,
    features_per_tile: int = 20,
    region_attempts: int = 2,
    max_deliveries: int = 5,
    output: Path | str | None = None,
    progress: ProgressCallback | None = None,
    recorder: CapacityRecorder | None = None,
) -> JobReport:
    """Run one whole synthetic image job through the repositories and report what it did and cost.

    The tables must exist. Either give ``repositories`` (their feature table's tile size and overlap must be the
    job's) or ``names`` with ``endpoint_url`` and ``region`` (the environment's when None).

    :param repositories: Optional[Repositories] = the four repositories
    :param names: Optional[TableNames] = table names, when no repositories are given
    :param endpoint_url: Optional[str] = the DynamoDB endpoint, when no repositories are given
    :param region: Optional[str] = the AWS region, when no repositories are given
    :param image_id: Optional[str] = the job's image id; a new unique one when None
    :param image_size: ImageDimensions = image (width, height) in pixels
    :param region_size: ImageDimensions = region (width, height)
    :param tile_size: ImageDimensions = tile (width, height)
    :param overlap: ImageDimensions = tile overlap (width, height)
    :param workers: int = region worker threads
    :param tile_workers: int = tile threads per region worker
    :param failure_rate: float = probability of a tile failure, a region crash and a duplicated completion, in [0, 1]
    :param seed: int = seed of the detector and the failures (a run is reproducible from it)
    :param features_per_tile: int = mean detections per full tile
    :param region_attempts: int = deliveries of a region while some of its tiles fail (1: no retry of failed tiles)
    :param max_deliveries: int = deliveries of one message before the run gives up (crashes, errors)
    :param output: Optional[Union[Path, str]] = a file to write the aggregated FeatureCollection to
    :param progress: Optional[Callable[[Progress], None]] = called from the worker threads as tiles and regions finish
    :param recorder: Optional[CapacityRecorder] = records the run's requests and capacity; a new one when None
    :return: JobReport = the figures of the run
    :raises ValueError: when a size, count or rate is out of range, or the feature table's tiling is not the job's
    :raises DatabaseError: when a table operation fails for good (a missing table, an unreachable endpoint)
    :raises DemoError: when a region keeps failing after ``max_deliveries`` deliveries
    """
    spec = JobSpec(
        image_id=image_id or f"demo-{uuid.uuid4().hex[:12]}",
        width=image_size[0],
        height=image_size[1],
        region_size=region_size,
        tile_size=tile_size,
        overlap=overlap,
        workers=workers,
        tile_workers=tile_workers,
        failure_rate=failure_rate,
        seed=seed,
        features_per_tile=features_per_tile,
        region_attempts=region_attempts,
        max_deliveries=max_deliveries,
    )
    if repositories is None:
        if names is None:
            raise ValueError("give either repositories or table names")
        pool = spec.workers * (spec.tile_workers + 1) + 4
        repositories = Repositories.connect(names, endpoint_url, region, tile_size, overlap, max(pool, 10))
    if tuple(repositories.feature.tile_size) != tuple(tile_size) or tuple(repositories.feature.overlap) != tuple(
        overlap
    ):
        raise ValueError(
            f"the feature table tiles {tuple(repositories.feature.tile_size)} with overlap "
            f"{tuple(repositories.feature.overlap)}, the job {tuple(tile_size)} with {tuple(overlap)}"
        )
    own_recorder = recorder is None
    capacity = recorder if recorder is not None else CapacityRecorder()
    capacity.attach(*repositories.clients)
    try:
        run = _JobRun(repositories, spec, progress, Path(output) if output is not None else None)
        started = time.perf_counter()
        run.start_job()
        run._notify()
        run.run()
        wall = time.perf_counter() - started
        return run.finish_report(wall, capacity.summary())
    finally:
        if own_recorder:
            capacity.detach()
