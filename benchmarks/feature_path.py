"""The feature path: store N detections tile by tile from a pool of threads, then aggregate them back.

Storage (in this process, one fresh table per variant and repetition, the same tiles for all):

* ``ours``: ``FeatureTable.add_features(features, source_tile=tile)`` per tile, from ``workers`` threads, as the
  region workers call it;
* ``ours_region``: ``FeatureTable.add_features_of_tiles`` with the tiles of a region (25 per call), from the same
  threads, as a region worker that stores its tiles together before recording them with ``add_tiles``;
* ``floor``: the BatchWriteItem requests ``ours`` sent (recorded by the first repetition of ``ours``), sent again
  through a raw botocore client from the same number of threads, into a fresh table;
* ``classic``: the classic layout (:mod:`benchmarks.classic`), per tile, from the same number of threads.

Aggregation (each run in a fresh process started with ``spawn``, so that its peak RSS is its own):

* ``ours_stream``: ``FeatureTable.iter_features(image_id)``, features counted and dropped;
* ``ours_collection``: ``FeatureTable.write_feature_collection(image_id, sink)`` into a sink that drops the bytes;
* ``ours_list``: ``FeatureTable.get_features(image_id)``, the whole list in memory;
* ``floor``: the Query requests ``ours_stream`` sent, sent again through a raw client from as many threads, and the
  items decoded straight from the answers with the table's feature codec (no model layer);
* ``classic``: the classic aggregation, one ``geojson.loads`` per feature.

Every variant is repeated ``repeat`` times in rotating order; the figures are medians over the repetitions.
"""

from __future__ import annotations

import gc
import multiprocessing
import resource
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from model_runner.common.typing import ImageDimensions

from .capacity import RequestRecorder, item_size
from .classic import ClassicFeatureStore
from .data import Workload, generate
from .env import REGION, create_feature_table, delete_table
from .floor import Replayer, raw_client, rename_table

STORAGE_VARIANTS = ("ours", "ours_region", "floor", "classic")
#: Tiles per ``add_features_of_tiles`` call in the ``ours_region`` variant (a region of 5 x 5 tiles).
TILES_PER_REGION = 25
AGGREGATION_VARIANTS = ("ours_stream", "ours_collection", "ours_list", "floor", "classic")
MIB = 2**20


@dataclass(frozen=True)
class FeaturePathConfig:
    """What the feature path benchmark runs.

    :param endpoint_url: str = the DynamoDB endpoint
    :param sizes: Sequence[int] = the values of N
    :param workers: int = threads storing tiles
    :param repeat: int = repetitions of every variant (medians are reported)
    :param seed: int = seed of the synthetic detections
    :param tile_size: ImageDimensions = tile (width, height)
    :param overlap: ImageDimensions = tile overlap (width, height)
    :param features_per_tile: int = mean detections per tile
    :param warmup: bool = read the image once, untimed, before the timed aggregations (records the floor's queries)
    :param run_id: str = makes table names and image ids unique to the run
    :param variants: Sequence[str] = the storage and aggregation variants to run (all when empty)
    """

    endpoint_url: str
    sizes: Sequence[int]
    workers: int = 8
    repeat: int = 1
    seed: int = 1
    tile_size: ImageDimensions = (512, 512)
    overlap: ImageDimensions = (32, 32)
    features_per_tile: int = 25
    warmup: bool = True
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    variants: Sequence[str] = ()

    def runs(self, variants: Sequence[str]) -> list[str]:
        """The variants of a list that this run measures.

        :param variants: Sequence[str] = STORAGE_VARIANTS or AGGREGATION_VARIANTS
        :return: List[str] = those selected (all when no selection was given)
        """
        return [variant for variant in variants if not self.variants or variant in self.variants]


# -- storage -----------------------------------------------------------------------------------------------------------


def _timed_pool(workers: int, function: Callable[[Any], Any], tasks: Sequence[Any]) -> tuple[float, float]:
    """Run ``function`` over tasks from a pool of threads; return (wall seconds, process CPU seconds)."""
    with ThreadPoolExecutor(max_workers=workers) as executor:
        gc.collect()
        cpu, start = time.process_time(), time.perf_counter()
        for _ in executor.map(function, tasks):
            pass
        return time.perf_counter() - start, time.process_time() - cpu


def _written(captured: Iterable[tuple[str, dict[str, Any]]]) -> tuple[int, int]:
    """Items put and their DynamoDB size, from recorded requests."""
    items = size = 0
    for operation, params in captured:
        if operation == "BatchWriteItem":
            for requests in params.get("RequestItems", {}).values():
                for request in requests:
                    if "PutRequest" in request:
                        items += 1
                        size += item_size(request["PutRequest"]["Item"])
        elif operation == "PutItem":
            items += 1
            size += item_size(params["Item"])
    return items, size


class StorageBench:
    """Stores one workload's tiles with each variant; keeps the tables of the last repetition for aggregation.

    :param config: FeaturePathConfig = the run
    :param tiles: Sequence[Tuple[ImageRegion, List[Feature]]] = the tiles and their detections
    :param size: int = N
    """

    def __init__(self, config: FeaturePathConfig, tiles: Sequence[tuple[Any, list[Any]]], size: int) -> None:
        self.config = config
        self.tiles = tiles
        self.size = size
        self.client = raw_client(config.endpoint_url, REGION, max_pool_connections=max(16, config.workers * 2))
        self.recorded: list[tuple[str, dict[str, Any]]] | None = None
        self.recorded_table: str | None = None
        self.tables: dict[str, str] = {}

    def table_name(self, variant: str, repetition: int) -> str:
        """Name of the table a variant writes in one repetition.

        :param variant: str = ours, floor or classic
        :param repetition: int = the repetition
        :return: str = the table name
        """
        return f"bench-{self.config.run_id}-{variant}-{self.size}-{repetition}"

    def run(self, variant: str, repetition: int) -> dict[str, Any]:
        """Store the workload with one variant into a fresh table.

        :param variant: str = ours, floor or classic
        :param repetition: int = the repetition
        :return: Dict[str, Any] = seconds, features/s, requests, capacity units, items and bytes written
        """
        name = self.table_name(variant, repetition)
        create_feature_table(name, self.config.endpoint_url)
        previous = self.tables.get(variant)
        if previous is not None:
            delete_table(previous, self.client)
        self.tables[variant] = name
        recorder = RequestRecorder(capture=True, size_items=False)
        if variant == "ours":
            figures = self._ours(name, recorder)
        elif variant == "ours_region":
            figures = self._ours_region(name, recorder)
        elif variant == "floor":
            figures = self._floor(name, recorder)
        else:
            figures = self._classic(name, recorder)
        captured = recorder.take_captured()
        items, item_bytes = _written(captured)
        if variant == "ours" and self.recorded is None:
            self.recorded, self.recorded_table = captured, name
        del captured
        totals = recorder.totals()
        seconds = figures["seconds"]
        return {
            **figures,
            "features_per_second": round(self.size / seconds, 1),
            "requests": totals.request_count,
            "requests_by_operation": dict(totals.requests),
            "write_capacity_units": round(totals.write_units, 2),
            "read_capacity_units": round(totals.read_units, 2),
            "items_written": items,
            "item_bytes_written": item_bytes,
            "request_bytes": totals.request_bytes,
            "errors": dict(totals.errors),
        }

    def _timed_writes(
        self, name: str, recorder: RequestRecorder, store: Callable[[Any, Any], None], tasks: Sequence[Any]
    ) -> dict[str, Any]:
        """Time ``store(table, task)`` over the tasks from the writer pool, on a FeatureTable bound to ``name``."""
        from model_runner.database import FeatureTable

        table = FeatureTable(
            name,
            self.config.tile_size,
            self.config.overlap,
            host=self.config.endpoint_url,
            region=REGION,
            max_pool_connections=max(16, self.config.workers * 2),
        )
        with recorder.attached(table.client):
            seconds, cpu = _timed_pool(self.config.workers, lambda task: store(table, task), tasks)
        return {"seconds": round(seconds, 4), "cpu_seconds": round(cpu, 3)}

    def _ours(self, name: str, recorder: RequestRecorder) -> dict[str, Any]:
        def store(table: Any, tile: tuple[Any, list[Any]]) -> None:
            table.add_features(tile[1], source_tile=tile[0])

        return self._timed_writes(name, recorder, store, self.tiles)

    def _ours_region(self, name: str, recorder: RequestRecorder) -> dict[str, Any]:
        regions = [
            self.tiles[start : start + TILES_PER_REGION] for start in range(0, len(self.tiles), TILES_PER_REGION)
        ]

        def store(table: Any, region: Sequence[tuple[Any, list[Any]]]) -> None:
            table.add_features_of_tiles(region)

        return self._timed_writes(name, recorder, store, regions)

    def _floor(self, name: str, recorder: RequestRecorder) -> dict[str, Any]:
        if self.recorded is None or self.recorded_table is None:
            raise RuntimeError("the floor replays what ours sent: run ours first")
        replayer = Replayer(self.client)
        prepared = [replayer.prepare([request]) for request in rename_table(self.recorded, self.recorded_table, name)]
        errors: list[str] = []
        with recorder.attached(self.client):
            seconds, cpu = _timed_pool(self.config.workers, lambda p: errors.extend(Replayer.send(p)), prepared)
        if errors:
            raise RuntimeError(f"the floor's replayed writes failed: {sorted(set(errors))}")
        return {"seconds": round(seconds, 4), "cpu_seconds": round(cpu, 3)}

    def _classic(self, name: str, recorder: RequestRecorder) -> dict[str, Any]:
        store = ClassicFeatureStore(
            self.client, name, self.config.tile_size, self.config.overlap, seed=self.config.seed
        )
        with recorder.attached(self.client):
            seconds, cpu = _timed_pool(self.config.workers, lambda tile: store.add_features(tile[1]), self.tiles)
        return {"seconds": round(seconds, 4), "cpu_seconds": round(cpu, 3)}

    def drop_tables(self) -> None:
        """Delete the tables this benchmark still holds.

        :return: None
        """
        for name in self.tables.values():
            delete_table(name, self.client)
        self.tables.clear()


# -- aggregation (in a child process) ----------------------------------------------------------------------------------


class NullSink:
    """A file that drops what is written to it and counts it (text or bytes)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: str | bytes) -> int:
        """Count and drop ``data``.

        :param data: Union[str, bytes] = what is written
        :return: int = its length
        """
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush."""

    def writable(self) -> bool:
        """A sink is writable.

        :return: bool = True
        """
        return True


class PeakRss:
    """Samples this process's resident memory in a thread, to find the peak of a piece of work.

    :param interval: float = seconds between samples
    """

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._maxrss_before = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.baseline = self.peak = self._rss()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())
        maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss_after > self._maxrss_before:  # the kernel saw a higher peak than any sample
            self.peak = max(self.peak, maxrss_after)

    @property
    def delta_mib(self) -> float:
        """Peak resident memory above the baseline, in MiB.

        :return: float = MiB
        """
        return round((self.peak - self.baseline) / MIB, 2)


def _feature_table(spec: dict[str, Any]) -> Any:
    from model_runner.database import FeatureTable

    return FeatureTable(
        spec["table"], tuple(spec["tile_size"]), tuple(spec["overlap"]), host=spec["endpoint_url"], region=REGION
    )


def _floor_reader(spec: dict[str, Any]) -> tuple[Callable[[], int], Any]:
    """The floor's aggregation: replay the recorded queries from a pool and decode the items with the codec.

    :param spec: Dict[str, Any] = the child's spec, with ``queries`` and ``threads``
    :return: Tuple[Callable[[], int], Any] = the work (returns the number of features) and its client
    """
    from .floor import decode_feature_items

    client = raw_client(spec["endpoint_url"], REGION)
    replayer = Replayer(client)
    prepared = replayer.prepare([(operation, params) for operation, params in spec["queries"]])
    threads = int(spec["threads"])

    def read(request: tuple[Callable[..., Any], dict[str, Any]]) -> int:
        method, params = request
        return sum(1 for _ in decode_feature_items(method(**params).get("Items", [])))

    def run() -> int:
        with ThreadPoolExecutor(max_workers=threads) as executor:
            return sum(executor.map(read, prepared))

    return run, client


def aggregate_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Aggregate one image with one variant and measure it; runs in a fresh process.

    :param spec: Dict[str, Any] = variant, endpoint_url, table, image_id, tile_size, overlap, capture (and, for the
        floor, queries and threads)
    :return: Dict[str, Any] = seconds, features, features/s, peak RSS above baseline, requests, capacity units
        (and the captured Query requests when ``capture``)
    """
    from .env import use_fake_credentials

    use_fake_credentials()
    variant = spec["variant"]
    image_id = spec["image_id"]
    recorder = RequestRecorder(capture=bool(spec.get("capture")), size_items=False)
    work: Callable[[], int]
    if variant.startswith("ours"):
        table = _feature_table(spec)
        client = table.client
        if variant == "ours_stream":

            def work() -> int:
                return sum(1 for _ in table.iter_features(image_id))

        elif variant == "ours_collection":

            def work() -> int:
                sink = NullSink()
                written = table.write_feature_collection(image_id, sink)
                return int(written) if isinstance(written, int) else -1

        else:

            def work() -> int:
                return len(table.get_features(image_id))

    elif variant == "floor":
        work, client = _floor_reader(spec)
    else:
        client = raw_client(spec["endpoint_url"], REGION)
        store = ClassicFeatureStore(client, spec["table"], tuple(spec["tile_size"]), tuple(spec["overlap"]))

        def work() -> int:
            return len(store.get_features(image_id))

    with recorder.attached(client), PeakRss() as memory:
        cpu, start = time.process_time(), time.perf_counter()
        features = work()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    totals = recorder.totals()
    result: dict[str, Any] = {
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu, 3),
        "features": features,
        "features_per_second": round(features / seconds, 1) if seconds > 0 and features > 0 else None,
        "peak_rss_delta_mib": memory.delta_mib,
        "rss_baseline_mib": round(memory.baseline / MIB, 1),
        "requests": totals.request_count,
        "read_capacity_units": round(totals.read_units, 2),
        "response_bytes": totals.response_bytes,
    }
    if variant.startswith("ours"):
        result["read_workers"] = int(getattr(table, "read_workers", 0)) or None
    if spec.get("capture"):
        result["queries"] = [request for request in recorder.take_captured() if request[0] == "Query"]
    return result


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`aggregate_in_child` in a fresh process started with ``spawn``.

    :param spec: Dict[str, Any] = the child's spec
    :return: Dict[str, Any] = its figures
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=1, maxtasksperchild=1) as pool:
        return dict(pool.apply(aggregate_in_child, (spec,)))


# -- one size, all variants --------------------------------------------------------------------------------------------


def _rotated(variants: Sequence[str], repetition: int) -> list[str]:
    shift = repetition % len(variants)
    return [*variants[shift:], *variants[:shift]]


def _median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine the repetitions of a variant: numbers become their median, the rest is taken from the first run."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return {"error": runs[0].get("error", "no run") if runs else "no run"}
    combined: dict[str, Any] = {}
    for key, value in good[0].items():
        values = [run.get(key) for run in good]
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and all(isinstance(v, (int, float)) for v in values)
        ):
            middle = statistics.median(values)  # type: ignore[type-var]
            if isinstance(middle, float) and middle.is_integer() and all(isinstance(v, int) for v in values):
                middle = int(middle)
            combined[key] = round(middle, 4) if isinstance(middle, float) else middle
        else:
            combined[key] = value
    combined["repetitions"] = len(good)
    if "seconds" in combined:
        combined["seconds_all"] = [run["seconds"] for run in good]
    return combined


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not isinstance(numerator, (int, float)) or not isinstance(denominator, (int, float)) or not denominator:
        return None
    return round(numerator / denominator, 3)


def _guarded(function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return function()
    except Exception as err:  # a variant not written yet, or broken: report it, measure the others
        return {"error": f"{type(err).__name__}: {err}"}


def run_size(config: FeaturePathConfig, size: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every storage and aggregation variant for one N.

    :param config: FeaturePathConfig = the run
    :param size: int = N
    :param log: Callable[[str], None] = progress messages
    :return: Dict[str, Any] = the workload, storage and aggregation figures (medians) and their ratios
    """
    import orjson

    workload = Workload(
        image_id=f"bench-{config.run_id}-image-{size}",
        job_id=f"bench-{config.run_id}-job-{size}",
        feature_count=size,
        tile_size=config.tile_size,
        overlap=config.overlap,
        features_per_tile=config.features_per_tile,
        seed=config.seed,
    )
    start = time.perf_counter()
    tiles = generate(workload)
    generated = time.perf_counter() - start
    geojson_bytes = sum(len(orjson.dumps(feature)) for _, features in tiles for feature in features)
    log(f"N={size:,}: {len(tiles):,} tiles generated in {generated:.1f}s; storing")

    storage = StorageBench(config, tiles, size)
    storage_runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in STORAGE_VARIANTS}
    for repetition in range(config.repeat):
        for variant in _rotated(config.runs(STORAGE_VARIANTS), repetition):
            run = _guarded(lambda variant=variant, repetition=repetition: storage.run(variant, repetition))  # type: ignore[misc]
            storage_runs[variant].append(run)
            log(f"  store {variant:<8} rep {repetition + 1}: {run.get('seconds', run.get('error'))}")
    storage.tiles = []
    recorded_queries_table = storage.tables.get("ours")
    storage.recorded = None
    del tiles
    gc.collect()

    base = {
        "endpoint_url": config.endpoint_url,
        "image_id": workload.image_id,
        "tile_size": list(config.tile_size),
        "overlap": list(config.overlap),
    }
    aggregation_runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in AGGREGATION_VARIANTS}
    queries: list[Any] = []
    read_workers: int | None = None
    if recorded_queries_table is not None and config.warmup and "floor" in config.runs(AGGREGATION_VARIANTS):
        warm = _guarded(
            lambda: run_child({**base, "variant": "ours_stream", "table": recorded_queries_table, "capture": True})
        )
        queries = warm.pop("queries", [])
        read_workers = warm.get("read_workers") or read_workers
        log(f"  aggregate warm-up (recording queries): {warm.get('seconds', warm.get('error'))}")
    for repetition in range(config.repeat):
        for variant in _rotated(config.runs(AGGREGATION_VARIANTS), repetition):
            spec: dict[str, Any] = {**base, "variant": variant}
            if variant.startswith("ours"):
                spec["table"] = storage.tables.get("ours")
                spec["capture"] = variant == "ours_stream" and not queries
            elif variant == "classic":
                spec["table"] = storage.tables.get("classic")
            else:
                spec.update(queries=queries, threads=read_workers or _query_threads(queries))
            missing = not queries if variant == "floor" else not spec.get("table")
            if missing:
                figures: dict[str, Any] = {"error": "nothing stored to aggregate"}
            else:
                figures = _guarded(lambda spec=spec: run_child(spec))  # type: ignore[misc]
                queries = figures.pop("queries", None) or queries
                read_workers = figures.get("read_workers") or read_workers
            aggregation_runs[variant].append(figures)
            log(f"  aggregate {variant:<15} rep {repetition + 1}: {figures.get('seconds', figures.get('error'))}")
    storage.drop_tables()

    stored = {variant: _median_run(runs) for variant, runs in storage_runs.items()}
    aggregated = {variant: _median_run(runs) for variant, runs in aggregation_runs.items()}
    for figures in aggregated.values():
        if "features" in figures:
            figures["complete"] = figures["features"] in (size, -1)
    return {
        "n": size,
        "tiles": workload.tile_count,
        "features_per_tile": config.features_per_tile,
        "geojson_bytes": geojson_bytes,
        "generation_seconds": round(generated, 2),
        "storage": stored,
        "aggregation": aggregated,
        "ratios": _ratios(stored, aggregated),
    }


def _query_threads(queries: Sequence[Any]) -> int:
    """Threads the floor reads with: as many as the shards queried at once, at most 16."""
    shards = {str(params.get("ExpressionAttributeValues", {})) for _, params in queries}
    return max(1, min(16, len(shards)))


def _ratios(stored: dict[str, dict[str, Any]], aggregated: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    ours, floor, classic = stored["ours"], stored["floor"], stored["classic"]
    region = stored.get("ours_region", {})
    stream, collection, listed = aggregated["ours_stream"], aggregated["ours_collection"], aggregated["ours_list"]
    floor_read, classic_read = aggregated["floor"], aggregated["classic"]
    return {
        "storage_time_ours_over_floor": _ratio(ours.get("seconds"), floor.get("seconds")),
        "storage_time_ours_over_classic": _ratio(ours.get("seconds"), classic.get("seconds")),
        "storage_wcu_ours_over_classic": _ratio(ours.get("write_capacity_units"), classic.get("write_capacity_units")),
        "storage_time_ours_region_over_classic": _ratio(region.get("seconds"), classic.get("seconds")),
        "storage_wcu_ours_region_over_classic": _ratio(
            region.get("write_capacity_units"), classic.get("write_capacity_units")
        ),
        "storage_bytes_ours_over_classic": _ratio(ours.get("item_bytes_written"), classic.get("item_bytes_written")),
        "storage_items_ours_over_classic": _ratio(ours.get("items_written"), classic.get("items_written")),
        "aggregation_throughput_list_over_classic": _ratio(
            listed.get("features_per_second"), classic_read.get("features_per_second")
        ),
        "aggregation_throughput_stream_over_classic": _ratio(
            stream.get("features_per_second"), classic_read.get("features_per_second")
        ),
        "aggregation_throughput_collection_over_classic": _ratio(
            collection.get("features_per_second"), classic_read.get("features_per_second")
        ),
        "aggregation_throughput_stream_over_floor": _ratio(
            stream.get("features_per_second"), floor_read.get("features_per_second")
        ),
        "aggregation_rcu_ours_over_classic": _ratio(
            stream.get("read_capacity_units"), classic_read.get("read_capacity_units")
        ),
    }


def run_feature_path(config: FeaturePathConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the feature path for every N of the config.

    :param config: FeaturePathConfig = the run
    :param log: Callable[[str], None] = progress messages
    :return: Dict[str, Any] = settings and one entry per N
    """
    sizes = [run_size(config, size, log) for size in config.sizes]
    return {
        "workers": config.workers,
        "repeat": config.repeat,
        "tile_size": list(config.tile_size),
        "overlap": list(config.overlap),
        "features_per_tile": config.features_per_tile,
        "sizes": sizes,
        "memory": _memory_growth(sizes),
    }


def _memory_growth(sizes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS of each aggregation variant against N, and how it grows from the smallest N to the largest."""
    growth: dict[str, Any] = {}
    for variant in AGGREGATION_VARIANTS:
        points = [
            (entry["n"], entry["aggregation"][variant].get("peak_rss_delta_mib"))
            for entry in sizes
            if isinstance(entry["aggregation"][variant].get("peak_rss_delta_mib"), (int, float))
        ]
        growth[variant] = {
            "peak_rss_delta_mib_by_n": {str(n): mib for n, mib in points},
            "growth_mib": round(points[-1][1] - points[0][1], 2) if len(points) > 1 else None,
        }
    return growth
