"""Running the workers of one job: the simulated queue, the region and tile threads, completion and aggregation.

:class:`JobRun` holds the state of one run. :meth:`JobRun.run` queues every region and runs ``workers`` threads, each
with a pool of ``tile_workers`` threads, until the queue is drained. Failures behave like an at-least-once queue with
flaky workers (see :mod:`model_runner.demo.driver`).

Stopping: :meth:`JobRun.stop` (called on Ctrl-C, or when a worker hits a failure that ends the run) makes every
thread finish the request it is sending and then stop taking work; a worker always gives back the endpoint count it
holds on the way out. An endpoint that cannot be reached once a request's retries have run out ends the run at once
(:class:`EndpointUnreachable`) when the run is told so, instead of delivering the region again and again.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_runner.api import ImageRequest
from model_runner.common.files import atomic_output
from model_runner.common.typing import ImageRegion, RequestStatus, TileState
from model_runner.database import DatabaseError, FeatureTable, JobItem, JobTable, RegionRequestItem
from model_runner.database.retry import UNREACHABLE_ERROR_NAMES

from .capacity import CapacitySummary
from .plan import JobPlan, JobSpec, Progress, ProgressCallback, tile_key
from .report import JobReport, job_state
from .synthetic import TileFailure

if TYPE_CHECKING:
    from .driver import Repositories

#: Seconds :meth:`JobRun.run` waits for the threads to finish their requests after a stop.
STOP_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.1


class SimulatedCrash(Exception):
    """A worker "died" half way through a region; the region is delivered again."""


class DemoError(Exception):
    """The demo job could not run to its end; the message says why."""


class EndpointUnreachable(DemoError):
    """DynamoDB could not be reached once a request's retries had run out: the run stops instead of going on.

    :param message: str = what failed
    :param code: str = botocore's name of the connection error (``EndpointConnectionError``, ``ReadTimeoutError``)
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _Stopped(Exception):
    """The run was stopped: a thread leaves its work (and gives back what it holds)."""


def unreachable_code(err: BaseException) -> str | None:
    """Return botocore's name of the connection error behind an exception, None for any other failure.

    The exception, its causes and PynamoDB's ``cause`` are looked through; a class counts when it or one of its bases
    is one of botocore's connection errors.

    :param err: BaseException = the exception
    :return: Optional[str] = e.g. ``EndpointConnectionError``, or None
    """
    current: BaseException | None = err
    for _ in range(6):
        if current is None:
            return None
        for klass in type(current).__mro__:
            if klass.__name__ in UNREACHABLE_ERROR_NAMES and klass.__module__.startswith(("botocore", "urllib3")):
                return type(current).__name__
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return None


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


class JobRun:
    """The state of one run: the plan, the simulated queue, counters, and the workers.

    :param repositories: Repositories = the four repositories
    :param spec: JobSpec = what to run
    :param progress: Optional[ProgressCallback] = called as tiles and regions finish
    :param output: Optional[Path] = a file for the aggregated FeatureCollection (checked by the caller)
    :param stop_when_unreachable: bool = end the run at the first request that cannot reach DynamoDB once its retries
        ran out (:class:`EndpointUnreachable`), instead of delivering the region again
    """

    def __init__(
        self,
        repositories: Repositories,
        spec: JobSpec,
        progress: ProgressCallback | None,
        output: Path | None,
        stop_when_unreachable: bool = False,
    ) -> None:
        self.repos = repositories
        self.spec = spec
        self.progress = progress
        self.output = output
        self.stop_when_unreachable = stop_when_unreachable
        self.plan = JobPlan(spec)
        self.report = JobReport(image_id=spec.image_id, spec=asdict(spec))
        self.report.regions = len(self.plan.regions)
        self.report.tiles = self.plan.tiles_total
        self.lock = threading.Lock()
        self.queue: queue.Queue[_Message | None] = queue.Queue()
        self.stopping = threading.Event()
        self.outstanding = 0
        self.failure: BaseException | None = None
        self.started = False
        self.ended = False
        self.held = 0
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
        """Queue a message.

        :param message: _Message = the message
        """
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

    def notify(self) -> None:
        """Tell the progress callback where the run is."""
        if self.progress is None:
            return
        with self.lock:
            snapshot = Progress(
                tiles_done=len(self.tiles_recorded),
                tiles_total=self.plan.tiles_total,
                regions_done=len(self.regions_done),
                regions_total=len(self.plan.regions),
                features_written=len(self.written_ids),
                phase=self.phase,
            )
        self.progress(snapshot)

    def stop(self, failure: BaseException | None = None) -> None:
        """Stop the run: threads finish the request they send, give back what they hold and take no more work.

        :param failure: Optional[BaseException] = why, raised by :meth:`run` (the first one given wins)
        """
        with self.lock:
            if failure is not None and self.failure is None:
                self.failure = failure
        self.stopping.set()

    def _check_stopping(self) -> None:
        if self.stopping.is_set():
            raise _Stopped()

    # -- the job ---------------------------------------------------------------------------------------------------

    def start_job(self) -> None:
        """Start the job, record its size and region count, and register the endpoint."""
        spec, plan = self.spec, self.plan
        outputs: list[dict[str, Any]] = [{"type": "Demo", "path": str(self.output) if self.output else None}]
        request = ImageRequest(
            job_id=plan.job_id,
            image_id=spec.image_id,
            image_url=f"synthetic://{spec.image_id}",
            model_name=spec.model_name,
            tile_size=spec.tile_size,
            tile_overlap=spec.overlap,
            outputs=outputs,
        )
        self.repos.job.start_image_request(JobItem.from_image_request(request))
        self.started = True  # from here on, a run that stops early ends the job as failed (abandoned)
        self.report.regions_in_progress_before = self.repos.endpoint.current_in_progress_regions(spec.endpoint_name)
        self.repos.job.update_image_request(
            JobItem(
                image_id=spec.image_id,
                region_count=len(plan.regions),
                width=spec.width,
                height=spec.height,
                extents=json.dumps(plan.image.extents),
            )
        )
        self.repos.endpoint.upsert_endpoint(spec.endpoint_name, spec.workers)

    def abandon(self) -> None:
        """End a job this run started and could not finish, so that it shows as failed rather than running forever.

        Best effort: nothing happens when the job never started or has ended; a failure to end it is not raised (the
        run is already failing for a reason that matters more).
        """
        if not self.started or self.ended:
            return
        try:
            self.repos.job.end_image_request(self.spec.image_id)
            self.ended = True
        except DatabaseError:
            pass

    def run(self) -> None:
        """Queue every region, run the workers until the queue is drained, and raise the first unexpected error.

        On KeyboardInterrupt (in the calling thread), the run stops (:meth:`stop`), waits up to
        :data:`STOP_WAIT_SECONDS` for the threads to give back what they hold, and raises it again.

        :raises BaseException: the failure that stopped the run
        """
        for index in range(len(self.plan.regions)):
            self.submit(_Message(index))
        threads: list[threading.Thread] = []
        try:
            for number in range(self.spec.workers):  # inside the try: an interrupt while starting them stops them too
                thread = threading.Thread(
                    target=self._worker, args=(number,), name=f"demo-worker-{number}", daemon=True
                )
                threads.append(thread)
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(_POLL_SECONDS)
        except BaseException:
            self.stop()
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            raise
        if self.failure is not None:
            raise self.failure

    def _worker(self, number: int) -> None:
        with ThreadPoolExecutor(self.spec.tile_workers, thread_name_prefix=f"demo-tiles-{number}") as pool:
            while not self.stopping.is_set():
                try:
                    message = self.queue.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
                if message is None:
                    return
                try:
                    self._handle(message, pool, number)
                except _Stopped:
                    pass
                except BaseException as err:  # a bug, an exhausted message or a lost endpoint: stop the run
                    self.stop(err)
                finally:
                    self._finished()

    def _fail_if_unreachable(self, err: BaseException) -> None:
        code = unreachable_code(err) if self.stop_when_unreachable else None
        if code is not None:
            raise EndpointUnreachable(f"{code} once the retries had run out: {err}", code) from err

    def _handle(self, message: _Message, pool: ThreadPoolExecutor, worker: int) -> None:
        if message.outcome is not None:
            self._handle_completion(message, worker)
            return
        with self.lock:
            self.report.region_deliveries += 1
        endpoint = self.spec.endpoint_name
        self.repos.endpoint.increment_region_count(endpoint)
        with self.lock:
            self.held += 1
        try:
            outcome = self._process_region(message, pool)
        except (SimulatedCrash, DatabaseError) as err:
            self._fail_if_unreachable(err)
            self._deliver_again(message, err)
            return
        finally:
            self.repos.endpoint.decrement_region_count(endpoint)  # always given back, even when stopping
            with self.lock:
                self.held -= 1
        self._check_stopping()
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
                f"region {self.plan.region_ids[message.region]} failed {message.delivery} times; last error: {err}"
            ) from err
        with self.lock:
            if not isinstance(err, SimulatedCrash):
                name = type(err).__name__
                self.report.worker_errors[name] = self.report.worker_errors.get(name, 0) + 1
            if message.outcome is None:
                self.report.redeliveries["crash" if isinstance(err, SimulatedCrash) else "error"] += 1
        self.submit(_Message(message.region, message.delivery + 1, message.outcome, message.duplicate))

    # -- one region ------------------------------------------------------------------------------------------------

    def _process_region(self, message: _Message, pool: ThreadPoolExecutor) -> _Outcome:
        index = message.region
        plan = self.plan
        item = RegionRequestItem.from_region_request(plan.region_request(index))
        stored = self.repos.region.start_region_request(item)
        succeeded = {tile_key(tile) for tile in (stored.succeeded_tiles or [])}
        todo = [tile for tile in plan.tiles[index] if tile_key(tile) not in succeeded]
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
            elif first_error is None or isinstance(error, (SimulatedCrash, _Stopped)):
                first_error = error
        if first_error is not None:
            raise first_error
        self._check_stopping()
        failed = sum(1 for ok in results if not ok)
        self.repos.region.update_region_request(
            RegionRequestItem(
                image_id=self.spec.image_id, region_id=plan.region_ids[index], total_tiles=len(plan.tiles[index])
            )
        )
        with self.lock:
            self.tiles_failed_final[index] = failed
        start_time = int(stored.start_time) if stored.start_time is not None else None
        if failed == 0:
            return _Outcome(False, RequestStatus.SUCCESS, start_time)
        if failed == len(plan.tiles[index]):
            return _Outcome(True, RequestStatus.FAILED, start_time)
        return _Outcome(True, RequestStatus.PARTIAL, start_time)

    def _process_tile(self, index: int, tile: ImageRegion, attempt: int, crash: bool) -> bool:
        self._check_stopping()
        image_id, region_id = self.spec.image_id, self.plan.region_ids[index]
        with self.lock:
            self.report.tile_attempts += 1
        try:
            features = self.plan.detector.detect(self.plan.image, tile, attempt)
        except TileFailure:
            self.repos.region.add_tile(image_id, region_id, tile, TileState.FAILED)
            with self.lock:
                self.report.tile_failures += 1
                self.tiles_recorded.add((index, tile))
            self.notify()
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
        self.notify()
        return True

    # -- completion and aggregation --------------------------------------------------------------------------------

    def _handle_completion(self, message: _Message, worker: int) -> None:
        outcome = message.outcome
        assert outcome is not None
        index = message.region
        try:
            job = self.repos.job.complete_region_request(
                self.spec.image_id, outcome.error, region_id=self.plan.region_ids[index]
            )
            item = RegionRequestItem(
                image_id=self.spec.image_id, region_id=self.plan.region_ids[index], start_time=outcome.start_time
            )
            self.repos.region.complete_region_request(item, outcome.status)
        except DatabaseError as err:
            self._fail_if_unreachable(err)
            self._deliver_again(message, err)
            return
        with self.lock:
            self.regions_done.add(index)
        self.notify()
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
        self.notify()
        count = 0
        ids: set[str] = set()
        for feature in self.repos.feature.iter_features(self.spec.image_id):
            count += 1
            ids.add(str(feature.get("id")))
        if self.output is not None:
            written = write_collection(self.repos.feature, self.spec.image_id, self.output)
            if written != count:
                raise DemoError(f"wrote {written} features to {self.output} but read {count} back")
            self.report.output_path = str(self.output)
        self.repos.job.end_image_request(self.spec.image_id)
        with self.lock:
            self.ended = True
            self.report.aggregations += 1
            self.report.features_aggregated = count
            self.report.distinct_features_aggregated = len(ids)
            self.aggregated_ids = ids
            self.phase = "done"
        self.notify()

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
        report.tiles_succeeded = self.plan.tiles_total - report.tiles_failed
        report.features_written = len(self.written_ids)
        report.missing_features = len(self.written_ids - self.aggregated_ids)
        report.unexpected_features = len(self.aggregated_ids - self.written_ids)
        report.regions_in_progress_after = self.repos.endpoint.current_in_progress_regions(self.spec.endpoint_name)
        report.wall_seconds = wall_seconds
        report.capacity = capacity
        return report


def write_collection(feature_table: FeatureTable, image_id: str, path: Path) -> int:
    """Write the job's FeatureCollection to a file, atomically (see :func:`model_runner.common.files.atomic_output`).

    :param feature_table: FeatureTable = the feature table
    :param image_id: str = the job
    :param path: Path = the file to write
    :return: int = features written
    :raises OutputFileError: when the file cannot be written
    """
    with atomic_output(path) as fp:
        return int(feature_table.write_feature_collection(image_id, fp))
