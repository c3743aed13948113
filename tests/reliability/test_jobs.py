"""Whole jobs under faults: concurrent workers (threads, then spawned processes, one of them killed mid-region) run
image jobs through the public API behind the fault proxy, with messages redelivered as an at-least-once queue does;
afterwards the tables are checked directly: every job complete, region_success + region_error == region_count
exactly, every tile recorded once, the aggregated features equal to the features written, no region counted twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobTable,
    RegionRequestTable,
    RetryPolicy,
    TableNames,
)
from model_runner.demo.driver import Repositories, run_job

from .conftest import RunReport
from .harness import Check, RunResult, Scenario, Tables, check_tables, run_processes, run_threads
from .proxy import FAULT_KINDS, FaultMix, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

#: Read timeout of the workers' repositories; ``slow`` answers are held past it.
READ_TIMEOUT = 0.75

#: Each fault alone at 10% of the data-plane requests, and all of them together at 21% (3% each).
MIXES: dict[str, FaultMix] = {
    "throttle": FaultMix(throttle=0.05, throttling=0.05),
    "server-errors": FaultMix(error500=0.05, error503=0.05),
    "slow": FaultMix(slow=0.1),
    "reset": FaultMix(reset=0.1),
    "lost": FaultMix(lost=0.1),
    "all": FaultMix.spread(0.21),
}

#: Mixes under which no request is ever applied twice: the at-least-once endpoint counters must end exactly at 0.
NEVER_TWICE = {"throttle", "server-errors", "reset"}


def _scenario(scale: int, seed: int, **overrides: object) -> Scenario:
    base = Scenario(
        jobs=3 * scale,
        regions=4,
        workers=6,
        duplicate_rate=0.2,
        seed=seed,
        read_timeout=READ_TIMEOUT,
        retry_policy=RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, max_total=10.0),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def _report(run_report: RunReport, name: str, proxy: FaultProxy, result: RunResult, check: Check) -> None:
    stats = proxy.snapshot()
    gave_up = sum(result.failures.values())
    run_report.record(
        name,
        operations=result.operations,
        requests=stats.total_requests,
        faults=stats.total_faults,
        faults_by_kind=dict(sorted(stats.faults.items())),
        retries=stats.total_faults - gave_up,
        gave_up=gave_up,
        seconds=result.seconds,
        messages_handled=result.handled,
        redelivered_after_failure=result.redelivered_after_failure,
        duplicated=result.duplicated,
        killed=result.killed,
        redelivered_after_kill=result.redelivered_after_kill,
        items_checked=check.items_checked,
        discrepancies=len(check.discrepancies),
    )


@pytest.mark.parametrize("mix_name", list(MIXES))
def test_jobs_complete_exactly_under_faults(
    mix_name: str,
    ddb_tables: TableNames,
    dynamodb_local_endpoint: str,
    fault_proxy: FaultProxy,
    run_report: RunReport,
    reliability_scale: int,
    reliability_seed: int,
) -> None:
    mix = MIXES[mix_name]
    fault_proxy.slow_seconds = READ_TIMEOUT * 2
    fault_proxy.set_mix(mix)
    scenario = _scenario(reliability_scale, reliability_seed)
    result = run_threads(scenario, ddb_tables, fault_proxy.url)
    assert fault_proxy.drain(30)
    direct = Tables.connect(ddb_tables, dynamodb_local_endpoint)
    check = check_tables(scenario, direct, result, exact_endpoint=mix_name in NEVER_TWICE)
    _report(run_report, f"jobs[{mix_name}]", fault_proxy, result, check)
    assert check.discrepancies == []
    stats = fault_proxy.snapshot()
    kinds = [kind for kind in FAULT_KINDS if getattr(mix, kind)]
    assert all(stats.faults[kind] > 0 for kind in kinds), stats.faults  # every fault of the mix was injected
    if mix_name == "all":
        assert stats.total_faults / stats.total_requests >= 0.15


def test_processes_with_a_worker_killed_mid_region(
    ddb_tables: TableNames,
    dynamodb_local_endpoint: str,
    fault_proxy: FaultProxy,
    run_report: RunReport,
    reliability_scale: int,
    reliability_seed: int,
) -> None:
    """Two worker processes (two threads each) drive the same jobs under every fault at 21%; the process handling
    the first region is SIGKILLed after it recorded three tiles, and that region (with whatever else the process
    held) is delivered to the surviving and the replacement process."""
    fault_proxy.slow_seconds = READ_TIMEOUT * 2
    fault_proxy.set_mix(MIXES["all"])
    scenario = _scenario(reliability_scale, reliability_seed, processes=2, workers=2, kill_after_tiles=3)
    result = run_processes(scenario, ddb_tables, fault_proxy.url)
    assert fault_proxy.drain(30)
    direct = Tables.connect(ddb_tables, dynamodb_local_endpoint)
    check = check_tables(scenario, direct, result, exact_endpoint=False)
    _report(run_report, "processes[all+kill]", fault_proxy, result, check)
    assert check.discrepancies == []
    assert result.killed == 1
    assert result.redelivered_after_kill >= 1


def test_demo_job_driver_stays_exact_behind_every_fault(
    ddb_tables: TableNames,
    dynamodb_local_endpoint: str,
    fault_proxy: FaultProxy,
    run_report: RunReport,
    reliability_scale: int,
    reliability_seed: int,
) -> None:
    """The demo's own job driver (model_runner.demo.run_job: tile failures, region crashes, duplicated completions,
    one aggregation claimed by one worker) behind the proxy injecting every fault at 21%."""
    fault_proxy.slow_seconds = READ_TIMEOUT * 2
    fault_proxy.set_mix(MIXES["all"])
    options: dict[str, Any] = {
        "host": fault_proxy.url,
        "read_timeout_seconds": READ_TIMEOUT,
        "retry_policy": RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, max_total=10.0),
    }
    repositories = Repositories(
        job=JobTable(ddb_tables.job, **options),
        region=RegionRequestTable(ddb_tables.region, **options),
        endpoint=EndpointStatisticsTable(ddb_tables.endpoint, **options),
        feature=FeatureTable(ddb_tables.feature, (512, 512), (32, 32), **options),
    )
    report = run_job(
        repositories,
        image_id=f"demo-{reliability_seed}",
        image_size=(4096, 2048 * reliability_scale),
        region_size=(1024, 1024),
        workers=4,
        tile_workers=2,
        failure_rate=0.1,
        seed=reliability_seed,
        features_per_tile=4,
        max_deliveries=10,
    )
    assert fault_proxy.drain(30)
    job = JobTable(ddb_tables.job, host=dynamodb_local_endpoint).get_image_request(report.image_id)
    discrepancies = [
        name
        for name, ok in (
            ("features", report.features_match),
            ("counts", report.counts_match),
            ("one aggregation", report.aggregations == 1),
            ("job counts", (job.region_success or 0) + (job.region_error or 0) == job.region_count == report.regions),
            ("job ended", job.end_time is not None),
            ("in progress >= 0", report.regions_in_progress_after >= 0),
        )
        if not ok
    ]
    stats = fault_proxy.snapshot()
    run_report.record(
        "demo-driver[all]",
        operations=stats.total_requests - stats.total_faults,
        requests=stats.total_requests,
        faults=stats.total_faults,
        faults_by_kind=dict(sorted(stats.faults.items())),
        retries=stats.total_faults - sum(report.worker_errors.values()),
        gave_up=sum(report.worker_errors.values()),
        seconds=report.wall_seconds,
        messages_handled=report.region_deliveries,
        items_checked=report.regions + report.tiles + report.features_written,
        discrepancies=len(discrepancies),
    )
    assert discrepancies == [], report.to_json()
