"""Checking and reporting a run: the figures of :class:`JobReport`, its named checks, and the state of a job.

A report judges only what its run did: the endpoint's regions in progress are compared with their value before the
run, so a count left raised by an earlier, interrupted run does not fail every later run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .capacity import CapacitySummary


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
    :param regions_in_progress_before: int = the endpoint's regions in progress before the run (a count that an
        earlier run or a crashed worker left raised is not this run's doing)
    :param regions_in_progress_after: int = the endpoint's regions in progress after the run (the count before the
        run when all is well)
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
    regions_in_progress_before: int = 0
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

    def checks(self) -> dict[str, bool]:
        """Return each check of the run by name, True when it holds.

        The endpoint check compares the count after the run with the count before it: the run judges only what it
        did, not a count that an interrupted run or a crashed worker left raised (reset that one with
        ``model-runner-db reset-endpoint``).

        :return: Dict[str, bool] = "features match", "counts match", "one aggregation", "endpoint count restored"
        """
        return {
            "features match": self.features_match,
            "counts match": self.counts_match,
            "one aggregation": self.aggregations == 1,
            "endpoint count restored": self.regions_in_progress_after == self.regions_in_progress_before,
        }

    @property
    def failed_checks(self) -> list[str]:
        """The names of the checks that do not hold (empty when all is well)."""
        return [name for name, holds in self.checks().items() if not holds]

    @property
    def ok(self) -> bool:
        """True when the job ended consistent: features match, counts match, one aggregation, and the endpoint's
        regions in progress are back where they were before the run."""
        return not self.failed_checks

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

        :return: Dict[str, Any] = every field, the checks (features_match, counts_match, checks, failed_checks, ok)
            and the throughput
        """
        data = asdict(self)
        data["capacity"] = self.capacity.to_json()
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data.update(self.throughput())
        data.update(
            region_redeliveries=self.region_redeliveries,
            features_match=self.features_match,
            counts_match=self.counts_match,
            checks=self.checks(),
            failed_checks=self.failed_checks,
            ok=self.ok,
        )
        return data


def job_state(region_count: Any, region_success: Any, region_error: Any, end_time: Any) -> str:
    """Say where a job is: running, complete, partial (some regions failed) or failed (all did, or it was abandoned).

    A job is running until it has ended (end_time set); an ended job is complete, partial or failed by its counts. A
    job that was ended before all its regions were counted (abandoned: see :func:`abandoned`) is failed.

    :param region_count: Optional[int] = regions of the job
    :param region_success: Optional[int] = regions that succeeded
    :param region_error: Optional[int] = regions that failed
    :param end_time: Optional[int] = when the job ended
    :return: str = running, complete, partial or failed
    """
    if end_time is None:
        return "running"
    if abandoned(region_count, region_success, region_error, end_time):
        return "failed"
    errors = int(region_error or 0)
    if errors == 0:
        return "complete"
    if region_count is not None and errors >= int(region_count) and not region_success:
        return "failed"
    return "partial"


def abandoned(region_count: Any, region_success: Any, region_error: Any, end_time: Any) -> bool:
    """Tell whether a job was ended before all its regions were counted (a run that gave up or was interrupted).

    :param region_count: Optional[int] = regions of the job
    :param region_success: Optional[int] = regions that succeeded
    :param region_error: Optional[int] = regions that failed
    :param end_time: Optional[int] = when the job ended
    :return: bool = True for an ended job with fewer regions done than its region count
    """
    if end_time is None or region_count is None:
        return False
    return int(region_success or 0) + int(region_error or 0) < int(region_count)
