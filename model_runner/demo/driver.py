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

The parts, one concept per module: :mod:`.plan` (the spec and how the image is cut), :mod:`.workers` (the queue and
the threads), :mod:`.report` (the figures and the named checks); this module connects the repositories and runs a job.
Interrupted (Ctrl-C) or stopped by a failure, a run gives back the endpoint counts its workers hold and ends the job
it started as failed (abandoned) before the exception leaves :func:`run_job`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runner.common.typing import ImageDimensions
from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobTable,
    RegionRequestTable,
    RetryPolicy,
    TableNames,
)

from .capacity import CapacityRecorder
from .plan import DEMO_ENDPOINT, JobPlan, JobSpec, Progress, ProgressCallback, tile_key
from .report import JobReport, abandoned, job_state
from .workers import DemoError, EndpointUnreachable, JobRun, SimulatedCrash, unreachable_code, write_collection

__all__ = [
    "DEMO_ENDPOINT",
    "DemoError",
    "EndpointUnreachable",
    "JobPlan",
    "JobReport",
    "JobRun",
    "JobSpec",
    "Progress",
    "ProgressCallback",
    "Repositories",
    "SimulatedCrash",
    "abandoned",
    "job_state",
    "run_job",
    "tile_key",
    "unreachable_code",
    "write_collection",
]


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
        connect_timeout_seconds: float | None = None,
        read_timeout_seconds: float | None = None,
    ) -> Repositories:
        """Build the repositories on tables by name (no request is sent).

        :param names: TableNames = the table names
        :param endpoint_url: Optional[str] = the DynamoDB endpoint; the environment's when None
        :param region: Optional[str] = the AWS region; the environment's when None
        :param tile_size: ImageDimensions = tile size of the feature table, (width, height)
        :param overlap: ImageDimensions = tile overlap of the feature table, (width, height)
        :param max_pool_connections: Optional[int] = HTTP connections per table; at least the number of threads
        :param retry_policy: Optional[RetryPolicy] = retries of transient failures
        :param connect_timeout_seconds: Optional[float] = seconds to wait for a connection (the tables' default when
            None)
        :param read_timeout_seconds: Optional[float] = seconds to wait for an answer (the tables' default when None)
        :return: Repositories = the repositories
        """
        options: dict[str, Any] = {"host": endpoint_url, "region": region}
        if max_pool_connections is not None:
            options["max_pool_connections"] = max_pool_connections
        if retry_policy is not None:
            options["retry_policy"] = retry_policy
        if connect_timeout_seconds is not None:
            options["connect_timeout_seconds"] = connect_timeout_seconds
        if read_timeout_seconds is not None:
            options["read_timeout_seconds"] = read_timeout_seconds
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
    stop_when_unreachable: bool = False,
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
    :param stop_when_unreachable: bool = end the run (:class:`EndpointUnreachable`) at the first request that cannot
        reach DynamoDB once its retries ran out, instead of delivering its region again (the command line's demo)
    :return: JobReport = the figures of the run
    :raises ValueError: when a size, count or rate is out of range, or the feature table's tiling is not the job's
    :raises DatabaseError: when a table operation fails for good (a missing table, an unreachable endpoint)
    :raises DemoError: when a region keeps failing after ``max_deliveries`` deliveries
    :raises EndpointUnreachable: when ``stop_when_unreachable`` and DynamoDB cannot be reached
    :raises KeyboardInterrupt: when interrupted; the workers gave back their endpoint counts and the job was ended
        as failed (abandoned) first
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
    run = JobRun(
        repositories,
        spec,
        progress,
        Path(output) if output is not None else None,
        stop_when_unreachable=stop_when_unreachable,
    )
    try:
        started = time.perf_counter()
        run.start_job()
        run.notify()
        run.run()
        wall = time.perf_counter() - started
        return run.finish_report(wall, capacity.summary())
    except BaseException as err:
        run.stop()
        if not isinstance(err, EndpointUnreachable):  # a lost endpoint would only make the clean-up wait in vain
            run.abandon()
        raise
    finally:
        if own_recorder:
            capacity.detach()
