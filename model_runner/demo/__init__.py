"""A whole image job, simulated through the public API of the tables: the demo of ``model-runner-db demo``, and the
job driver the reliability suite and the benchmarks reuse.

* :func:`run_job` runs one job with many worker threads and returns a :class:`JobReport`.
* :class:`CapacityRecorder` counts requests and the capacity DynamoDB reports (botocore events).
* :class:`SyntheticImage` and :class:`SyntheticDetector` stand in for the imagery and the model.
"""

from model_runner.demo.capacity import CapacityRecorder, CapacitySummary
from model_runner.demo.driver import (
    DemoError,
    JobReport,
    JobSpec,
    Progress,
    Repositories,
    job_state,
    run_job,
)
from model_runner.demo.synthetic import SyntheticDetector, SyntheticImage, TileFailure, generate_crops

__all__ = [
    "CapacityRecorder",
    "CapacitySummary",
    "DemoError",
    "JobReport",
    "JobSpec",
    "Progress",
    "Repositories",
    "SyntheticDetector",
    "SyntheticImage",
    "TileFailure",
    "generate_crops",
    "job_state",
    "run_job",
]
