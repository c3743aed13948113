"""Per-operation latency of the repositories, side by side with the floor (the same requests, raw botocore).

For every operation the benchmark prepares three sets of items, told apart by a marker in their keys:

* ``-sR-``: our method runs once per call with a recorder attached, which keeps every request it sends (the
  requests per call, and the parameters the floor replays); this pass also warms the server and the connections;
* ``-sA-``: our method runs again, timed;
* ``-sB-``: the recorded requests, with ``-sR-`` replaced by ``-sB-``, are sent straight through a raw client, timed.

The A and B calls alternate (A B, B A, A B, ...) so that drift of a noisy machine hits both alike; each call starts
from the same state on its side (a fresh job to start, a fresh region to complete, ...). The ratio of the medians is
the overhead of our layer.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .capacity import RequestRecorder
from .data import Workload, generate
from .floor import Replayer, substitute

#: One call of an operation, with its arguments bound.
Call = Callable[[], Any]

TILE = (512, 512)
OVERLAP = (32, 32)


@dataclass
class Repositories:
    """The repositories the operations run on, and a key prefix unique to the run.

    :param job: Any = JobTable
    :param region: Any = RegionRequestTable
    :param endpoint: Any = EndpointStatisticsTable
    :param feature: Any = FeatureTable
    :param prefix: str = prefix of every key the benchmark writes
    :param started_ms: int = a start time (epoch ms) the same on every side, where a condition reads one
    """

    job: Any
    region: Any
    endpoint: Any
    feature: Any
    prefix: str
    started_ms: int = 0

    def clients(self) -> list[Any]:
        """The botocore clients of the four repositories (one per bound model).

        :return: List[Any] = distinct clients
        """
        found: list[Any] = []
        for repository in (self.job, self.region, self.endpoint, self.feature):
            client = repository.client
            if all(client is not other for other in found):
                found.append(client)
        return found


@dataclass(frozen=True)
class OperationCase:
    """One operation to measure.

    :param name: str = ``Table.method``
    :param expected_requests: int = the fewest DynamoDB requests the operation can make
    :param build: Callable[[Repositories, str, int], List[Call]] = prepares the state of one side (``R``, ``A`` or
        ``B``) and returns its calls, one per index
    :param note: str = why the expected count is what it is
    :param in_target: bool = the issue's overhead target covers it (add_features is measured for information: its
        floor skips the encoding and compression the layer exists to do)
    """

    name: str
    expected_requests: int
    build: Callable[[Repositories, str, int], list[Call]]
    note: str = ""
    in_target: bool = True


def _key(repos: Repositories, case: str, side: str, index: int | None = None) -> str:
    """Return a key of one side: ``<prefix>-<case>-s<side>-<index>``; only the ``-s<side>-`` part differs by side."""
    return f"{repos.prefix}-{case}-s{side}-{'x' if index is None else index}"


def _job_item(image_id: str) -> Any:
    from model_runner.database import JobItem

    return JobItem(
        image_id=image_id,
        job_id=f"job-{image_id}",
        image_url="s3://bench-imagery/scenes/large-scene-0001.ntf",
        image_read_role="arn:aws:iam::123456789012:role/ImageryReadRole",
        model_name="centerpoint-detector-v2",
        model_invoke_mode="SM_ENDPOINT",
        tile_size="(512, 512)",
        tile_overlap="(32, 32)",
        outputs=json.dumps([{"type": "S3", "bucket": "bench-results", "prefix": "jobs/"}]),
        feature_properties=json.dumps([{"modelMetadata": {"modelName": "centerpoint-detector-v2"}}]),
        feature_distillation_option=json.dumps({"algorithm_type": "NMS", "iou_threshold": 0.75}),
    )


def _region_item(image_id: str, region_id: str) -> Any:
    from model_runner.database import RegionRequestItem

    return RegionRequestItem(
        image_id=image_id,
        region_id=region_id,
        job_id=f"job-{image_id}",
        image_read_role="arn:aws:iam::123456789012:role/ImageryReadRole",
        region_bounds=[[0, 0], [10240, 10240]],
        tile_size=list(TILE),
        tile_overlap=list(OVERLAP),
        tile_format="NITF",
        tile_compression="NONE",
    )


# -- the cases ---------------------------------------------------------------------------------------------------------


def _start_image(repos: Repositories, side: str, n: int) -> list[Call]:
    items = [_job_item(_key(repos, "start-image", side, i)) for i in range(n)]
    return [partial(repos.job.start_image_request, item) for item in items]


def _update_image(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.database import JobItem

    image_id = _key(repos, "update-image", side)
    repos.job.start_image_request(_job_item(image_id))
    extents = json.dumps({"north": 41.95, "south": 41.9, "east": 12.55, "west": 12.4})
    items = [
        JobItem(image_id=image_id, region_count=16 + i, width=40960, height=40960, extents=extents) for i in range(n)
    ]
    return [partial(repos.job.update_image_request, item) for item in items]


def _complete_region_job(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.database import JobItem

    image_id = _key(repos, "complete-region-job", side)
    repos.job.start_image_request(_job_item(image_id))
    repos.job.update_image_request(JobItem(image_id=image_id, region_count=n))
    return [
        partial(repos.job.complete_region_request, image_id, error=False, region_id=f"region-{i}") for i in range(n)
    ]


def _end_image(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.database import JobItem

    ids = [_key(repos, "end-image", side, i) for i in range(n)]
    started = repos.started_ms
    for index, image_id in enumerate(ids):
        repos.job.start_image_request(_job_item(image_id))
        # the same start time on every side: the update is conditional on the start time it read
        repos.job.update_image_request(JobItem(image_id=image_id, start_time=started + index))
    return [partial(repos.job.end_image_request, image_id) for image_id in ids]


def _get_image(repos: Repositories, side: str, n: int) -> list[Call]:
    image_id = _key(repos, "get-image", side)
    repos.job.start_image_request(_job_item(image_id))
    return [partial(repos.job.get_image_request, image_id) for _ in range(n)]


def _start_region(repos: Repositories, side: str, n: int) -> list[Call]:
    image_id = _key(repos, "start-region", side)
    items = [_region_item(image_id, f"region-{i}") for i in range(n)]
    return [partial(repos.region.start_region_request, item) for item in items]


def _update_region(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.database import RegionRequestItem

    image_id = _key(repos, "update-region", side)
    repos.region.start_region_request(_region_item(image_id, "region-0"))
    items = [
        RegionRequestItem(image_id=image_id, region_id="region-0", total_tiles=400 + i, message="tiling done")
        for i in range(n)
    ]
    return [partial(repos.region.update_region_request, item) for item in items]


def _add_tile(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.common.typing import TileState

    image_id = _key(repos, "add-tile", side)
    repos.region.start_region_request(_region_item(image_id, "region-0"))
    stride = TILE[0] - OVERLAP[0]
    tiles = [((stride * (i // 20), stride * (i % 20)), TILE) for i in range(n)]
    return [partial(repos.region.add_tile, image_id, "region-0", tile, TileState.SUCCEEDED) for tile in tiles]


def _complete_region(repos: Repositories, side: str, n: int) -> list[Call]:
    from model_runner.common.typing import RequestStatus

    image_id = _key(repos, "complete-region", side)
    started = [repos.region.start_region_request(_region_item(image_id, f"region-{i}")) for i in range(n)]
    return [partial(repos.region.complete_region_request, item, RequestStatus.SUCCESS) for item in started]


def _get_region(repos: Repositories, side: str, n: int) -> list[Call]:
    image_id = _key(repos, "get-region", side)
    repos.region.start_region_request(_region_item(image_id, "region-0"))
    return [partial(repos.region.get_region_request, "region-0", image_id) for _ in range(n)]


def _upsert_endpoint(repos: Repositories, side: str, n: int) -> list[Call]:
    endpoint = _key(repos, "upsert-endpoint", side)
    return [partial(repos.endpoint.upsert_endpoint, endpoint, 8 + i % 3) for i in range(n)]


def _increment(repos: Repositories, side: str, n: int) -> list[Call]:
    endpoint = _key(repos, "increment", side)
    repos.endpoint.upsert_endpoint(endpoint, 8)
    return [partial(repos.endpoint.increment_region_count, endpoint) for _ in range(n)]


def _decrement(repos: Repositories, side: str, n: int) -> list[Call]:
    endpoint = _key(repos, "decrement", side)
    repos.endpoint.upsert_endpoint(endpoint, 8)
    item = repos.endpoint.model(endpoint)
    item.update(actions=[type(item).regions_in_progress.set(10 * n + 10)])  # stays above zero for every call
    return [partial(repos.endpoint.decrement_region_count, endpoint) for _ in range(n)]


def _current_regions(repos: Repositories, side: str, n: int) -> list[Call]:
    endpoint = _key(repos, "current-regions", side)
    repos.endpoint.upsert_endpoint(endpoint, 8)
    repos.endpoint.increment_region_count(endpoint)
    return [partial(repos.endpoint.current_in_progress_regions, endpoint) for _ in range(n)]


def _add_features(repos: Repositories, side: str, n: int) -> list[Call]:
    image_id = _key(repos, "add-features", side)
    workload = Workload(image_id=image_id, job_id=f"job-{image_id}", feature_count=25 * n, seed=11)
    tiles = generate(workload)[:n]
    return [partial(repos.feature.add_features, features, source_tile=tile) for tile, features in tiles]


CASES: tuple[OperationCase, ...] = (
    OperationCase("JobTable.start_image_request", 1, _start_image),
    OperationCase("JobTable.update_image_request", 1, _update_image),
    OperationCase("JobTable.complete_region_request", 1, _complete_region_job, "with region_id: exactly once"),
    OperationCase(
        "JobTable.end_image_request",
        2,
        _end_image,
        "processing_duration is seconds since start_time (ms): an update expression cannot divide, so read first",
    ),
    OperationCase("JobTable.get_image_request", 1, _get_image),
    OperationCase("RegionRequestTable.start_region_request", 1, _start_region),
    OperationCase("RegionRequestTable.update_region_request", 1, _update_region),
    OperationCase("RegionRequestTable.add_tile", 1, _add_tile),
    OperationCase(
        "RegionRequestTable.complete_region_request", 1, _complete_region, "item as returned by start_region_request"
    ),
    OperationCase("RegionRequestTable.get_region_request", 1, _get_region),
    OperationCase("EndpointStatisticsTable.upsert_endpoint", 1, _upsert_endpoint),
    OperationCase("EndpointStatisticsTable.increment_region_count", 1, _increment),
    OperationCase("EndpointStatisticsTable.decrement_region_count", 1, _decrement),
    OperationCase("EndpointStatisticsTable.current_in_progress_regions", 1, _current_regions),
    OperationCase(
        "FeatureTable.add_features",
        1,
        _add_features,
        "one tile of about 25 detections; the floor sends the encoded items, so the ratio includes the encoding",
        in_target=False,
    ),
)


# -- measuring ---------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return a percentile by linear interpolation between closest ranks.

    :param values: Sequence[float] = the values (not empty)
    :param fraction: float = 0.5 for the median, 0.95 for p95
    :return: float = the percentile
    """
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Return median, p95 and mean of durations, in milliseconds.

    :param seconds: Sequence[float] = durations in seconds
    :return: Dict[str, float] = median_ms, p95_ms, mean_ms
    """
    millis = [s * 1000 for s in seconds]
    return {
        "median_ms": round(percentile(millis, 0.5), 4),
        "p95_ms": round(percentile(millis, 0.95), 4),
        "mean_ms": round(statistics.fmean(millis), 4),
    }


def measure_case(case: OperationCase, repos: Repositories, replayer: Replayer, calls: int) -> dict[str, Any]:
    """Measure one operation: requests per call, our latency and the floor's, interleaved.

    :param case: OperationCase = the operation
    :param repos: Repositories = the repositories
    :param replayer: Replayer = the raw client's replayer
    :param calls: int = timed calls on each side
    :return: Dict[str, Any] = the figures of the operation
    """
    recorder = RequestRecorder(capture=True)
    recorded_calls = case.build(repos, "R", calls)
    ours = case.build(repos, "A", calls)
    case.build(repos, "B", calls)  # the floor's items, in the same state as ours; its calls are the recorded requests
    per_call: list[list[tuple[str, dict[str, Any]]]] = []
    with recorder.attached(*repos.clients()):
        for call in recorded_calls:
            call()
            per_call.append(recorder.take_captured())
    recorded = recorder.totals()
    floor_calls = [replayer.prepare(substitute(requests, "-sR-", "-sB-")) for requests in per_call]

    ours_seconds: list[float] = []
    floor_seconds: list[float] = []
    ours_cpu: list[float] = []
    floor_cpu: list[float] = []
    floor_errors: list[str] = []
    clock, cpu_clock = time.perf_counter, time.process_time

    def timed(function: Callable[[], Any]) -> tuple[float, float]:
        cpu, start = cpu_clock(), clock()
        function()
        return clock() - start, cpu_clock() - cpu

    gc.collect()
    for index in range(calls):
        prepared = floor_calls[index]
        ours_call: Call = ours[index]
        floor_call: Call = partial(lambda p: floor_errors.extend(replayer.send(p)), prepared)
        if index % 2 == 0:  # alternate who goes first: drift of a noisy machine hits both alike
            ours_time, floor_time = timed(ours_call), timed(floor_call)
        else:
            floor_time, ours_time = timed(floor_call), timed(ours_call)
        ours_seconds.append(ours_time[0])
        ours_cpu.append(ours_time[1])
        floor_seconds.append(floor_time[0])
        floor_cpu.append(floor_time[1])

    counts = [len(requests) for requests in per_call]
    paired = [ours_time / floor_time for ours_time, floor_time in zip(ours_seconds, floor_seconds, strict=True)]
    ours_stats, floor_stats = summarize(ours_seconds), summarize(floor_seconds)
    middle = statistics.median(counts)
    requests_per_call = int(middle) if float(middle).is_integer() else middle
    return {
        "name": case.name,
        "calls": calls,
        "requests_per_call": requests_per_call,
        "requests_per_call_max": max(counts),
        "request_sequence": [operation for operation, _ in per_call[0]] if per_call else [],
        "expected_requests": case.expected_requests,
        "requests_target_met": requests_per_call <= case.expected_requests,
        "note": case.note,
        "in_overhead_target": case.in_target,
        "ours": ours_stats,
        "floor": floor_stats,
        "ratio_median": round(ours_stats["median_ms"] / floor_stats["median_ms"], 3),
        "ratio_p95": round(ours_stats["p95_ms"] / floor_stats["p95_ms"], 3),
        "ratio_paired_median": round(statistics.median(paired), 3),
        "ours_cpu_us_median": round(statistics.median(ours_cpu) * 1e6, 1),
        "floor_cpu_us_median": round(statistics.median(floor_cpu) * 1e6, 1),
        "recorded_errors": dict(recorded.errors),
        "floor_errors": len(floor_errors),
        "capacity_units_per_call": round((recorded.read_units + recorded.write_units) / max(1, calls), 3),
    }


def run_operations(endpoint_url: str, names: Any, calls: int, only: Sequence[str] = ()) -> dict[str, Any]:
    """Measure every operation of :data:`CASES` on tables that exist already.

    :param endpoint_url: str = the DynamoDB endpoint
    :param names: TableNames = the four tables
    :param calls: int = timed calls per operation and side
    :param only: Sequence[str] = substrings of operation names to keep (all when empty)
    :return: Dict[str, Any] = ``{"calls": ..., "operations": [...]}``
    """
    from model_runner.database import EndpointStatisticsTable, FeatureTable, JobTable, RegionRequestTable

    from .env import REGION
    from .floor import raw_client

    repos = Repositories(
        job=JobTable(names.job, host=endpoint_url, region=REGION),
        region=RegionRequestTable(names.region, host=endpoint_url, region=REGION),
        endpoint=EndpointStatisticsTable(names.endpoint, host=endpoint_url, region=REGION),
        feature=FeatureTable(names.feature, TILE, OVERLAP, host=endpoint_url, region=REGION),
        prefix=f"bench-{uuid.uuid4().hex[:8]}",
        started_ms=int(time.time() * 1000) - 60_000,
    )
    replayer = Replayer(raw_client(endpoint_url, REGION))
    results: list[dict[str, Any]] = []
    for case in CASES:
        if only and not any(part in case.name for part in only):
            continue
        try:
            results.append(measure_case(case, repos, replayer, calls))
        except Exception as err:  # an operation not written yet, or broken: report it, measure the others
            results.append({"name": case.name, "error": f"{type(err).__name__}: {err}"})
    return {"calls": calls, "operations": results}
