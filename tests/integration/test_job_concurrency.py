"""Many workers completing the regions of one job at once, on DynamoDB Local: threads and processes."""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from model_runner.database import JobItem, JobTable

pytestmark = pytest.mark.integration

REGIONS = 2_000


def is_error(index: int) -> bool:
    """Every seventh region fails."""
    return index % 7 == 0


EXPECTED_ERRORS = sum(is_error(i) for i in range(REGIONS))


@pytest.mark.parametrize("with_region_ids", [True, False], ids=["region-ids", "no-region-ids"])
def test_sixteen_threads_complete_two_thousand_regions(job_table: JobTable, with_region_ids: bool) -> None:
    job_table.start_image_request(JobItem(image_id="threads", region_count=REGIONS))

    def complete(index: int) -> tuple[float, float, bool]:
        region_id = f"region-{index}" if with_region_ids else None
        job = job_table.complete_region_request("threads", error=is_error(index), region_id=region_id)
        return job.region_success, job.region_error, JobTable.is_image_request_complete(job)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(complete, range(REGIONS)))

    stored = job_table.get_image_request("threads")
    assert (stored.region_success, stored.region_error) == (REGIONS - EXPECTED_ERRORS, EXPECTED_ERRORS)
    assert sum(complete for _, _, complete in results) == 1
    # every caller saw its own increment: the totals returned are 1..2000, each once
    assert sorted(success + errors for success, errors, _ in results) == list(range(1, REGIONS + 1))


def complete_in_process(
    endpoint: str,
    table_name: str,
    image_id: str,
    deliveries: list[tuple[str, bool]],
    barrier: Any,
    results: Any,
) -> None:
    """Run in a spawned process: build a JobTable and complete the delivered regions, then report.

    :param endpoint: str = DynamoDB Local's URL
    :param table_name: str = the job table
    :param image_id: str = the job
    :param deliveries: List[Tuple[str, bool]] = (region id, error) per delivered message
    :param barrier: multiprocessing Barrier = all processes start together
    :param results: multiprocessing Queue = receives [(success + error seen, complete)] or an error string
    """
    try:
        table = JobTable(table_name, host=endpoint)
        barrier.wait(timeout=120)
        seen = []
        for region_id, error in deliveries:
            job = table.complete_region_request(image_id, error=error, region_id=region_id)
            seen.append((job.region_success + job.region_error, JobTable.is_image_request_complete(job)))
        results.put(seen)
    except Exception as err:  # reported to the test, which fails with it
        results.put(f"{type(err).__name__}: {err}")


def test_four_processes_complete_regions_with_duplicates_counted_once(
    dynamodb_local_endpoint: str, job_table: JobTable
) -> None:
    job_table.start_image_request(JobItem(image_id="processes", region_count=REGIONS))
    rng = random.Random(7)
    messages = [(f"region-{i}", is_error(i)) for i in range(REGIONS)]
    duplicated = rng.sample(range(REGIONS), 300)
    per_process: list[list[tuple[str, bool]]] = [[] for _ in range(4)]
    for index, message in enumerate(messages):
        per_process[index % 4].append(message)
    for index in duplicated:  # redelivered to another process than the first delivery
        per_process[(index % 4 + 1 + rng.randrange(3)) % 4].append(messages[index])
    for deliveries in per_process:
        rng.shuffle(deliveries)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=complete_in_process,
            args=(dynamodb_local_endpoint, job_table.table_name, "processes", deliveries, barrier, results),
        )
        for deliveries in per_process
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    failures = [report for report in reports if isinstance(report, str)]
    assert failures == []
    stored = job_table.get_image_request("processes")
    assert (stored.region_success, stored.region_error) == (REGIONS - EXPECTED_ERRORS, EXPECTED_ERRORS)
    assert stored.completed_regions is not None and len(stored.completed_regions) == REGIONS
    seen = [entry for report in reports for entry in report]
    assert len(seen) == REGIONS + len(duplicated)
    # the 2,000 first deliveries each raised the total by one; the 300 redeliveries returned a total already seen
    assert set(range(1, REGIONS + 1)) == {total for total, _ in seen}
    assert sum(complete for _, complete in seen) >= 1
    assert all(process.exitcode == 0 for process in processes)
