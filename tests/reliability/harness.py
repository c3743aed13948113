"""A job harness for the reliability suite: whole image jobs run through the public API by concurrent workers (threads
or spawned processes) that pull messages from an at-least-once queue, and the check of the tables afterwards.

The workflow is the one of docs (semantics.md, "The life of one image job"): an image message starts the job,
records its region count and queues one message per region; a region message starts the region, runs a synthetic,
deterministic model over its tiles (features, then the tile), records the tile counts, completes the region in the
job and in the region table, and when the job is complete aggregates its features and ends the job. Endpoint
statistics are incremented before and decremented after each region.

Like SQS, the queue delivers at least once: a message whose handler raised (a typed exception once retries ran out)
is delivered again, a message is sometimes delivered twice even when its handler succeeded, and a message held by a
worker that died is delivered again to another worker. Everything is deterministic from (image_id, tile) and the
scenario's seed, so the expected contents of every table are known in advance.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import multiprocessing
import multiprocessing.connection
import os
import queue
import random
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from model_runner.api import ImageRequest, RegionRequest
from model_runner.common import ImageRegion, RequestStatus, TileState
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

TILE_SIZE = (512, 512)
TILE_OVERLAP = (32, 32)
REGION_SIZE = 1024
ENDPOINT = "reliability-endpoint"
MODEL = "synthetic-model"


@dataclass(frozen=True)
class Scenario:
    """The size and behaviour of a run.

    :param jobs: int = image jobs
    :param regions: int = regions per image (a row of square regions)
    :param workers: int = worker threads (per process when ``processes`` > 0)
    :param processes: int = worker processes (spawned); 0 runs the workers as threads of this process
    :param duplicate_rate: float = probability that a handled message is delivered once more
    :param seed: int = seed of the queue's draws
    :param read_timeout: float = read timeout of the workers' repositories
    :param retry_policy: Optional[RetryPolicy] = retry policy of the workers' repositories (the default when None)
    :param kill_after_tiles: int = when > 0, kill (SIGKILL) the worker process handling the first region of the first
        job after it recorded this many tiles; the region is delivered again to another worker
    :param deadline: float = seconds after which the run gives up
    :param max_failures: int = deliveries of one message that may fail before the run gives up on it (a message
        failing that often is not facing transient faults)
    """

    jobs: int = 2
    regions: int = 3
    workers: int = 4
    processes: int = 0
    duplicate_rate: float = 0.1
    seed: int = 0
    read_timeout: float = 1.0
    retry_policy: RetryPolicy | None = None
    kill_after_tiles: int = 0
    deadline: float = 120.0
    max_failures: int = 12

    def image_ids(self) -> list[str]:
        return [f"img-{self.seed}-{n}" for n in range(self.jobs)]


# -- the synthetic image, its tiles and its model ------------------------------------------------------------------


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def regions_of(scenario: Scenario) -> list[ImageRegion]:
    """The regions of every image: a row of squares."""
    return [((0, n * REGION_SIZE), (REGION_SIZE, REGION_SIZE)) for n in range(scenario.regions)]


def tiles_of(region: ImageRegion) -> list[ImageRegion]:
    """The tiles of a region: tile_size steps less the overlap, clipped at the region's edge."""
    (row, col), (width, height) = region
    step_x, step_y = TILE_SIZE[0] - TILE_OVERLAP[0], TILE_SIZE[1] - TILE_OVERLAP[1]
    tiles: list[ImageRegion] = []
    for y in range(row, row + height, step_y):
        for x in range(col, col + width, step_x):
            w = min(TILE_SIZE[0], col + width - x)
            h = min(TILE_SIZE[1], row + height - y)
            if w > TILE_OVERLAP[0] and h > TILE_OVERLAP[1]:
                tiles.append(((y, x), (w, h)))
    return tiles


def tile_fails(image_id: str, tile: ImageRegion) -> bool:
    """Whether the model fails on a tile (deterministic: about one tile in eleven)."""
    return _digest("fail", image_id, tile) % 11 == 0


def tile_features(image_id: str, tile: ImageRegion) -> list[dict[str, Any]]:
    """The detections of the model on a tile (deterministic: 0 to 3, each inside the tile)."""
    (row, col), (width, height) = tile
    features = []
    for n in range(_digest("count", image_id, tile) % 4):
        seed = _digest("feature", image_id, tile, n)
        x = col + 1 + seed % max(1, width - 12)
        y = row + 1 + (seed >> 16) % max(1, height - 12)
        fid = f"{image_id}/{row}-{col}/{n}"
        features.append(
            {
                "type": "Feature",
                "id": fid,
                "geometry": {"type": "Point", "coordinates": [round(10 + x / 1e5, 7), round(20 + y / 1e5, 7)]},
                "properties": {
                    "fid": fid,
                    "image_id": image_id,
                    "imageGeometry": {
                        "type": "Polygon",
                        "coordinates": [[[x, y], [x + 10, y], [x + 10, y + 10], [x, y + 10], [x, y]]],
                    },
                    "featureClasses": [{"iri": "vehicle", "score": (seed % 1000) / 1000}],
                    "modelMetadata": {"modelName": MODEL, "tile": [[row, col], [width, height]]},
                },
            }
        )
    return features


@dataclass
class Expected:
    """What the tables must hold at the end of a run."""

    region_success: dict[str, int] = field(default_factory=dict)
    region_error: dict[str, int] = field(default_factory=dict)
    succeeded_tiles: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    failed_tiles: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)


def tile_key(tile: Any) -> str:
    """A canonical text for a tile as stored ([[row, col], [w, h]], numbers as ints)."""
    (row, col), (width, height) = tile
    return json.dumps([[int(row), int(col)], [int(width), int(height)]])


def region_id_of(image_id: str, region: ImageRegion) -> str:
    return f"{region}-{image_id}"


def expected_state(scenario: Scenario) -> Expected:
    expected = Expected()
    for image_id in scenario.image_ids():
        expected.region_success[image_id] = expected.region_error[image_id] = 0
        for region in regions_of(scenario):
            key = (image_id, region_id_of(image_id, region))
            tiles = tiles_of(region)
            failed = {tile_key(t) for t in tiles if tile_fails(image_id, t)}
            expected.failed_tiles[key] = failed
            expected.succeeded_tiles[key] = {tile_key(t) for t in tiles} - failed
            expected.region_error[image_id] += 1 if failed else 0
            expected.region_success[image_id] += 0 if failed else 1
            for tile in tiles:
                if not tile_fails(image_id, tile):
                    for feature in tile_features(image_id, tile):
                        expected.features[feature["properties"]["fid"]] = feature
    return expected


# -- the workers ---------------------------------------------------------------------------------------------------


@dataclass
class Tables:
    """The four repositories a worker uses."""

    job: JobTable
    region: RegionRequestTable
    feature: FeatureTable
    endpoint: EndpointStatisticsTable

    @classmethod
    def connect(
        cls, names: TableNames, host: str, read_timeout: float = 15.0, retry_policy: RetryPolicy | None = None
    ) -> Tables:
        options: dict[str, Any] = {"host": host, "read_timeout_seconds": read_timeout, "connect_timeout_seconds": 2.0}
        if retry_policy is not None:
            options["retry_policy"] = retry_policy
        return cls(
            job=JobTable(names.job, **options),
            region=RegionRequestTable(names.region, **options),
            feature=FeatureTable(names.feature, TILE_SIZE, TILE_OVERLAP, **options),
            endpoint=EndpointStatisticsTable(names.endpoint, **options),
        )

    def count_calls(self, counter: OperationCounter) -> Tables:
        """Count every call of the public API of the four repositories (the operations attempted) in ``counter``.

        :param counter: OperationCounter = where to count
        :return: Tables = self
        """
        for repository in (self.job, self.region, self.feature, self.endpoint):
            for name in PUBLIC_OPERATIONS:
                method = getattr(repository, name, None)
                if callable(method):
                    setattr(repository, name, counter.wrap(method))
        return self


#: The operations of the public API counted as "operations attempted".
PUBLIC_OPERATIONS = (
    "start_image_request",
    "update_image_request",
    "complete_region_request",
    "end_image_request",
    "get_image_request",
    "start_region_request",
    "update_region_request",
    "get_region_request",
    "add_tile",
    "add_features",
    "aggregate_features",
    "upsert_endpoint",
    "increment_region_count",
    "decrement_region_count",
    "current_in_progress_regions",
)


class OperationCounter:
    """A thread-safe count of calls."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.value += 1
            return method(*args, **kwargs)

        return counted


@dataclass(frozen=True)
class Message:
    """A queue message: ("image", image_id) or ("region", image_id, region index); ``serial`` tells copies apart."""

    kind: str
    image_id: str
    region: int = -1
    serial: int = 0


Progress = Callable[[int], None]


def _accepts(method: Callable[..., Any], parameter: str) -> bool:
    return parameter in inspect.signature(method).parameters


class Worker:
    """Handles messages with the public API of the tables."""

    def __init__(self, tables: Tables, scenario: Scenario) -> None:
        self.tables = tables
        self.scenario = scenario
        self.regions = regions_of(scenario)
        self.source_tile = _accepts(tables.feature.add_features, "source_tile")

    def handle(self, message: Message, progress: Progress | None = None) -> dict[str, Any]:
        """Handle one message.

        :return: Dict[str, Any] = what happened: new messages to queue, aggregated feature ids, ended jobs
        :raises DatabaseError: when a table operation fails for good (the message is then delivered again)
        """
        if message.kind == "image":
            return self.start_image(message.image_id)
        return self.process_region(message.image_id, message.region, progress)

    def start_image(self, image_id: str) -> dict[str, Any]:
        request = ImageRequest(
            job_id=f"job-{image_id}",
            image_id=image_id,
            image_url=f"s3://reliability/{image_id}.tif",
            model_name=MODEL,
            tile_size=TILE_SIZE,
            tile_overlap=TILE_OVERLAP,
            outputs=[{"type": "S3", "bucket": "out", "prefix": image_id}],
        )
        self.tables.job.start_image_request(JobItem.from_image_request(request))
        self.tables.job.update_image_request(
            JobItem(
                image_id=image_id,
                region_count=len(self.regions),
                width=REGION_SIZE * len(self.regions),
                height=REGION_SIZE,
                extents=json.dumps([0, 0, REGION_SIZE * len(self.regions), REGION_SIZE]),
            )
        )
        self.tables.endpoint.upsert_endpoint(ENDPOINT, 100)
        return {"queue": [Message("region", image_id, n) for n in range(len(self.regions))]}

    def process_region(self, image_id: str, index: int, progress: Progress | None) -> dict[str, Any]:
        region = self.regions[index]
        request = RegionRequest(
            image_id=image_id,
            job_id=f"job-{image_id}",
            region_bounds=region,
            region_id=region_id_of(image_id, region),
            image_url=f"s3://reliability/{image_id}.tif",
            model_name=MODEL,
            tile_size=TILE_SIZE,
            tile_overlap=TILE_OVERLAP,
        )
        item = RegionRequestItem.from_region_request(request)
        self.tables.endpoint.increment_region_count(ENDPOINT)
        try:
            stored = self.tables.region.start_region_request(item)
            done = {tile_key(t) for t in (stored.succeeded_tiles or [])}
            failed_any = False
            recorded = 0
            for tile in tiles_of(region):
                if tile_key(tile) in done:
                    continue
                if tile_fails(image_id, tile):
                    failed_any = True
                    self.tables.region.add_tile(image_id, request.region_id, tile, TileState.FAILED)
                else:
                    features = tile_features(image_id, tile)
                    if features:
                        if self.source_tile:
                            self.tables.feature.add_features(features, source_tile=tile)
                        else:
                            self.tables.feature.add_features(features)
                    self.tables.region.add_tile(image_id, request.region_id, tile, TileState.SUCCEEDED)
                recorded += 1
                if progress is not None:
                    progress(recorded)
            current = self.tables.region.get_region_request(request.region_id, image_id)
            assert current is not None
            failed_tiles = current.failed_tiles or []
            failed_any = failed_any or bool(failed_tiles)
            self.tables.region.update_region_request(
                RegionRequestItem(image_id=image_id, region_id=request.region_id, total_tiles=len(tiles_of(region)))
            )
            job = self.tables.job.complete_region_request(image_id, error=failed_any, region_id=request.region_id)
            status = RequestStatus.PARTIAL if failed_any else RequestStatus.SUCCESS
            self.tables.region.complete_region_request(item, status)
        finally:
            self.tables.endpoint.decrement_region_count(ENDPOINT)
        outcome: dict[str, Any] = {}
        if JobTable.is_image_request_complete(job):
            features = self.tables.feature.aggregate_features(job)
            outcome["aggregated"] = (image_id, sorted(_fid(f) for f in features))
            self.tables.job.end_image_request(image_id)
            outcome["ended"] = image_id
        return outcome


def _fid(feature: Any) -> str:
    properties = feature.get("properties") or {}
    return str(properties.get("fid"))


# -- the queue and the dispatcher ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a run did."""

    handled: int = 0
    operations: int = 0
    redelivered_after_failure: int = 0
    duplicated: int = 0
    killed: int = 0
    redelivered_after_kill: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)
    aggregations: list[tuple[str, list[str]]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    seconds: float = 0.0
    timed_out: bool = False

    def figures(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = dict(self.failures)
        data["aggregations"] = len(self.aggregations)
        data["ended"] = len(self.ended)
        return data


class Dispatcher:
    """The at-least-once queue: hands out messages, delivers them again after a failure, a duplicate draw or a dead
    worker, and stops when nothing is left."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.pending: list[Message] = [Message("image", image_id) for image_id in scenario.image_ids()]
        self.in_flight: dict[int, Message] = {}
        self.serial = 0
        self.result = RunResult()
        self.failures_of: Counter[tuple[str, str, int]] = Counter()

    def next_message(self) -> Message | None:
        if not self.pending:
            return None
        return self.pending.pop(self.rng.randrange(len(self.pending)))

    def copy(self, message: Message) -> Message:
        self.serial += 1
        return Message(message.kind, message.image_id, message.region, self.serial)

    def finished(self, message: Message, outcome: dict[str, Any] | None, error: str | None) -> None:
        self.result.handled += 1
        if error is not None:
            self.result.failures[error] += 1
            identity = (message.kind, message.image_id, message.region)
            self.failures_of[identity] += 1
            if self.failures_of[identity] >= self.scenario.max_failures:
                self.result.poisoned.append(f"{identity} failed {self.failures_of[identity]} times, last: {error}")
                return
            self.result.redelivered_after_failure += 1
            self.pending.append(self.copy(message))
            return
        assert outcome is not None
        self.pending.extend(outcome.get("queue", []))
        if "aggregated" in outcome:
            image_id, fids = outcome["aggregated"]
            self.result.aggregations.append((image_id, fids))
        if "ended" in outcome:
            self.result.ended.add(outcome["ended"])
        if self.rng.random() < self.scenario.duplicate_rate:
            self.result.duplicated += 1
            self.pending.append(self.copy(message))

    @property
    def idle(self) -> bool:
        return not self.pending and not self.in_flight


def _handle(worker: Worker, message: Message, progress: Progress | None) -> tuple[dict[str, Any] | None, str | None]:
    """Run a handler; a DatabaseError is a failure to redeliver, anything else a crash (a bug) reported as such."""
    try:
        return worker.handle(message, progress), None
    except DatabaseError as err:
        return None, f"{type(err).__name__}:{err.code}"


def run_threads(scenario: Scenario, names: TableNames, host: str) -> RunResult:
    """Run the scenario with worker threads in this process."""
    counter = OperationCounter()
    tables = Tables.connect(names, host, scenario.read_timeout, scenario.retry_policy).count_calls(counter)
    worker = Worker(tables, scenario)
    dispatcher = Dispatcher(scenario)
    lock = threading.Condition()
    started = time.monotonic()
    deadline = started + scenario.deadline

    def loop(wid: int) -> None:
        while True:
            with lock:
                while dispatcher.pending == [] and dispatcher.in_flight and time.monotonic() < deadline:
                    lock.wait(0.2)
                message = dispatcher.next_message() if time.monotonic() < deadline else None
                if message is None:
                    lock.notify_all()
                    return
                dispatcher.serial += 1
                token = dispatcher.serial
                dispatcher.in_flight[token] = message
            try:
                outcome, error = _handle(worker, message, None)
            except Exception:
                with lock:
                    dispatcher.result.crashes.append(traceback.format_exc())
                    del dispatcher.in_flight[token]
                    lock.notify_all()
                return
            with lock:
                del dispatcher.in_flight[token]
                dispatcher.finished(message, outcome, error)
                lock.notify_all()

    threads = [threading.Thread(target=loop, args=(n,), name=f"worker-{n}") for n in range(scenario.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = dispatcher.result
    result.seconds = round(time.monotonic() - started, 2)
    result.timed_out = not dispatcher.idle
    result.operations = counter.value
    return result


# -- worker processes ----------------------------------------------------------------------------------------------


def process_main(
    wid: int, scenario: Scenario, names: TableNames, host: str, tasks: Any, events: Any
) -> None:  # pragma: no cover - runs in a spawned process
    """A worker process: ``scenario.workers`` threads handling the messages the parent sends on ``tasks`` (a pipe of
    its own, so that killing this process corrupts no queue another worker uses), reporting on ``events``."""
    counter = OperationCounter()
    tables = Tables.connect(names, host, scenario.read_timeout, scenario.retry_policy).count_calls(counter)
    worker = Worker(tables, scenario)
    inbox: queue.Queue[Message | None] = queue.Queue()
    send_lock = threading.Lock()

    def send(*event: Any) -> None:
        with send_lock:
            events.send(event)

    def loop() -> None:
        while True:
            message = inbox.get()
            if message is None:
                return

            def progress(tiles: int, message: Message = message) -> None:
                send("progress", message, tiles)
                if message.serial < 0 and tiles >= scenario.kill_after_tiles:
                    time.sleep(60)  # the marked region waits here, mid-way, for its SIGKILL

            try:
                outcome, error = _handle(worker, message, progress)
            except Exception:
                send("crash", message, traceback.format_exc(), counter.value)
                continue
            send("done", message, outcome, error, counter.value)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(scenario.workers)]
    for thread in threads:
        thread.start()
    while True:
        try:
            message = tasks.recv()
        except EOFError:
            message = None
        if message is None:
            for _ in threads:
                inbox.put(None)
            break
        inbox.put(message)
    for thread in threads:
        thread.join()


@dataclass
class _Process:
    process: Any
    tasks: Any
    events: Any
    assigned: list[Message] = field(default_factory=list)
    operations: int = 0


def run_processes(scenario: Scenario, names: TableNames, host: str) -> RunResult:
    """Run the scenario with ``scenario.processes`` spawned worker processes; when ``kill_after_tiles`` is set, SIGKILL
    the process handling the first region of a job once it recorded that many tiles, and deliver every message it
    held to the others (and a replacement process)."""
    context = multiprocessing.get_context("spawn")
    dispatcher = Dispatcher(scenario)
    result = dispatcher.result
    started = time.monotonic()
    deadline = started + scenario.deadline
    workers: dict[int, _Process] = {}
    next_wid = 0
    victim_marked = False

    def spawn() -> None:
        nonlocal next_wid
        wid, next_wid = next_wid, next_wid + 1
        task_reader, task_writer = context.Pipe(duplex=False)
        event_reader, event_writer = context.Pipe(duplex=False)
        process = context.Process(
            target=process_main,
            args=(wid, scenario, names, host, task_reader, event_writer),
            name=f"reliability-worker-{wid}",
            daemon=True,
        )
        process.start()
        task_reader.close()
        event_writer.close()
        workers[wid] = _Process(process, task_writer, event_reader)

    def assign() -> None:
        nonlocal victim_marked
        for worker in workers.values():
            while dispatcher.pending and len(worker.assigned) < scenario.workers:
                message = dispatcher.next_message()
                assert message is not None
                if scenario.kill_after_tiles and not victim_marked and message.kind == "region":
                    message = Message(message.kind, message.image_id, message.region, -1)  # the one to kill
                    victim_marked = True
                worker.assigned.append(message)
                worker.tasks.send(message)

    def bury(wid: int) -> None:
        worker = workers.pop(wid)
        result.operations += worker.operations
        worker.process.join(timeout=10)
        for message in worker.assigned:
            result.redelivered_after_kill += 1
            dispatcher.pending.append(dispatcher.copy(message))
        with contextlib.suppress(OSError):
            worker.tasks.close()
        with contextlib.suppress(OSError):
            worker.events.close()
        spawn()

    for _ in range(scenario.processes):
        spawn()
    try:
        while True:
            assign()
            if not dispatcher.pending and not any(w.assigned for w in workers.values()):
                break
            if time.monotonic() > deadline:
                result.timed_out = True
                break
            by_conn: dict[Any, int] = {w.events: wid for wid, w in workers.items()}
            ready: list[Any] = multiprocessing.connection.wait(list(by_conn), timeout=0.5)
            for conn in ready:
                wid = by_conn[conn]
                if wid not in workers:
                    continue
                worker = workers[wid]
                try:
                    event: tuple[Any, ...] = conn.recv()
                except (EOFError, OSError):
                    bury(wid)
                    continue
                kind, message = event[0], event[1]
                if kind == "progress":
                    if message.serial < 0 and event[2] >= scenario.kill_after_tiles:
                        os.kill(worker.process.pid, signal.SIGKILL)
                        result.killed += 1
                elif kind == "done":
                    worker.assigned.remove(message)
                    worker.operations = event[4]
                    dispatcher.finished(message, event[2], event[3])
                elif kind == "crash":
                    worker.assigned.remove(message)
                    worker.operations = event[3]
                    result.crashes.append(event[2])
    finally:
        for worker in workers.values():
            with contextlib.suppress(OSError):
                worker.tasks.send(None)
        for worker in workers.values():
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            with contextlib.suppress(OSError):
                worker.tasks.close()
                worker.events.close()
    result.operations += sum(worker.operations for worker in workers.values())
    result.seconds = round(time.monotonic() - started, 2)
    return result


# -- the check -----------------------------------------------------------------------------------------------------


@dataclass
class Check:
    """The outcome of checking the tables against what the run must have produced."""

    items_checked: int = 0
    discrepancies: list[str] = field(default_factory=list)

    def expect(self, condition: bool, message: str) -> None:
        self.items_checked += 1
        if not condition:
            self.discrepancies.append(message)


def check_tables(scenario: Scenario, tables: Tables, result: RunResult, *, exact_endpoint: bool) -> Check:
    """Compare the tables (read directly, no faults) with the expected state of the scenario.

    :param exact_endpoint: bool = whether regions_in_progress must be back at exactly 0 (only when no request could
        be applied twice: increment/decrement are at-least-once by design)
    """
    expected = expected_state(scenario)
    check = Check()
    check.expect(not result.crashes, f"workers crashed: {result.crashes[:1]}")
    check.expect(not result.poisoned, f"messages kept failing: {result.poisoned[:3]}")
    check.expect(not result.timed_out, "the run did not finish before its deadline")
    for image_id in scenario.image_ids():
        try:
            job = tables.job.get_image_request(image_id)
        except DatabaseError as err:
            check.expect(False, f"{image_id}: job missing ({err})")
            continue
        check.expect(job.end_time is not None, f"{image_id}: job never ended")
        check.expect(job.region_count == scenario.regions, f"{image_id}: region_count {job.region_count}")
        check.expect(
            (job.region_success or 0) + (job.region_error or 0) == job.region_count,
            f"{image_id}: {job.region_success} + {job.region_error} != {job.region_count}",
        )
        check.expect(
            job.region_success == expected.region_success[image_id],
            f"{image_id}: region_success {job.region_success} != {expected.region_success[image_id]}",
        )
        check.expect(
            job.region_error == expected.region_error[image_id],
            f"{image_id}: region_error {job.region_error} != {expected.region_error[image_id]}",
        )
        expected_fids = sorted(fid for fid in expected.features if fid.startswith(image_id + "/"))
        stored = tables.feature.aggregate_features(job)
        stored_fids = sorted(_fid(f) for f in stored)
        duplicates = [fid for fid, n in Counter(stored_fids).items() if n > 1]
        check.expect(not duplicates, f"{image_id}: duplicated features {duplicates[:5]}")
        missing = sorted(set(expected_fids) - set(stored_fids))
        extra = sorted(set(stored_fids) - set(expected_fids))
        check.expect(not missing, f"{image_id}: {len(missing)} features lost, e.g. {missing[:3]}")
        check.expect(not extra, f"{image_id}: {len(extra)} unexpected features, e.g. {extra[:3]}")
        for feature in stored:
            want = expected.features.get(_fid(feature))
            if want is not None:
                check.expect(
                    _same_feature(feature, want), f"{image_id}: feature {_fid(feature)} changed: {dict(feature)}"
                )
        aggregations = [fids for aggregated, fids in result.aggregations if aggregated == image_id]
        check.expect(bool(aggregations), f"{image_id}: never aggregated")
        for fids in aggregations:
            check.expect(fids == expected_fids, f"{image_id}: an aggregation saw {len(fids)} of {len(expected_fids)}")
        for region in regions_of(scenario):
            region_id = region_id_of(image_id, region)
            item = tables.region.get_region_request(region_id, image_id)
            if item is None:
                check.expect(False, f"{region_id}: region missing")
                continue
            succeeded = [tile_key(t) for t in item.succeeded_tiles or []]
            failed = [tile_key(t) for t in item.failed_tiles or []]
            key = (image_id, region_id)
            check.expect(len(succeeded) == len(set(succeeded)), f"{region_id}: a succeeded tile recorded twice")
            check.expect(len(failed) == len(set(failed)), f"{region_id}: a failed tile recorded twice")
            check.expect(set(succeeded) == expected.succeeded_tiles[key], f"{region_id}: succeeded tiles {succeeded}")
            check.expect(set(failed) == expected.failed_tiles[key], f"{region_id}: failed tiles {failed}")
            check.expect(
                (item.succeeded_tile_count or 0) == len(expected.succeeded_tiles[key]),
                f"{region_id}: succeeded_tile_count {item.succeeded_tile_count}",
            )
            check.expect(
                (item.failed_tile_count or 0) == len(expected.failed_tiles[key]),
                f"{region_id}: failed_tile_count {item.failed_tile_count}",
            )
            want_status = RequestStatus.PARTIAL if expected.failed_tiles[key] else RequestStatus.SUCCESS
            check.expect(item.region_status == want_status.value, f"{region_id}: status {item.region_status}")
    in_progress = tables.endpoint.current_in_progress_regions(ENDPOINT)
    check.expect(in_progress >= 0, f"regions_in_progress below zero: {in_progress}")
    if exact_endpoint:
        check.expect(in_progress == 0, f"regions_in_progress {in_progress} after every region ended")
    return check


def _same_feature(stored: Any, want: dict[str, Any]) -> bool:
    got = json.loads(json.dumps(stored))
    return bool(
        got.get("geometry") == want["geometry"]
        and all(got.get("properties", {}).get(k) == v for k, v in want["properties"].items())
    )


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: round(time.monotonic() - started, 2)
