"""EndpointStatisticsTable on DynamoDB Local: regions in progress per endpoint, shared by many workers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from model_runner.database import (
    EndpointStatisticsException,
    EndpointStatisticsItem,
    EndpointStatisticsTable,
    TableNames,
)

pytestmark = pytest.mark.integration


def stored(table: EndpointStatisticsTable, endpoint: str) -> dict[str, object]:
    return table.get_ddb_item(EndpointStatisticsItem(endpoint=endpoint))


def test_upsert_creates_an_endpoint_with_no_region_in_progress(
    endpoint_statistics_table: EndpointStatisticsTable,
) -> None:
    endpoint_statistics_table.upsert_endpoint("ep", 8)
    assert stored(endpoint_statistics_table, "ep") == {"endpoint": "ep", "max_regions": 8, "regions_in_progress": 0}
    assert endpoint_statistics_table.current_in_progress_regions("ep") == 0


def test_upsert_changes_max_regions_and_keeps_regions_in_progress(
    endpoint_statistics_table: EndpointStatisticsTable,
) -> None:
    endpoint_statistics_table.upsert_endpoint("ep", 8)
    for _ in range(3):
        endpoint_statistics_table.increment_region_count("ep")
    endpoint_statistics_table.upsert_endpoint("ep", 2)
    assert stored(endpoint_statistics_table, "ep") == {"endpoint": "ep", "max_regions": 2, "regions_in_progress": 3}


def test_increment_and_decrement(endpoint_statistics_table: EndpointStatisticsTable) -> None:
    endpoint_statistics_table.upsert_endpoint("ep", 4)
    endpoint_statistics_table.increment_region_count("ep")
    endpoint_statistics_table.increment_region_count("ep")
    assert endpoint_statistics_table.current_in_progress_regions("ep") == 2
    endpoint_statistics_table.decrement_region_count("ep")
    assert endpoint_statistics_table.current_in_progress_regions("ep") == 1


def test_increment_of_an_unknown_endpoint_creates_it_with_one(
    endpoint_statistics_table: EndpointStatisticsTable,
) -> None:
    endpoint_statistics_table.increment_region_count("new")
    assert stored(endpoint_statistics_table, "new") == {"endpoint": "new", "regions_in_progress": 1}
    endpoint_statistics_table.upsert_endpoint("new", 3)
    assert endpoint_statistics_table.current_in_progress_regions("new") == 1


def test_decrement_at_zero_stays_at_zero(endpoint_statistics_table: EndpointStatisticsTable) -> None:
    endpoint_statistics_table.upsert_endpoint("ep", 4)
    endpoint_statistics_table.decrement_region_count("ep")
    endpoint_statistics_table.decrement_region_count("ep")
    assert endpoint_statistics_table.current_in_progress_regions("ep") == 0
    endpoint_statistics_table.increment_region_count("ep")
    assert endpoint_statistics_table.current_in_progress_regions("ep") == 1


def test_decrement_of_an_unknown_endpoint_does_nothing(endpoint_statistics_table: EndpointStatisticsTable) -> None:
    endpoint_statistics_table.decrement_region_count("never-seen")
    assert stored(endpoint_statistics_table, "never-seen") == {}
    assert endpoint_statistics_table.current_in_progress_regions("never-seen") == 0


def test_failures_raise_endpoint_statistics_exception(dynamodb_local_endpoint: str, table_names: TableNames) -> None:
    missing = EndpointStatisticsTable(table_names.endpoint + "-absent", host=dynamodb_local_endpoint)
    operations: list[Callable[[], object]] = [
        lambda: missing.upsert_endpoint("ep", 1),
        lambda: missing.increment_region_count("ep"),
        lambda: missing.decrement_region_count("ep"),
        lambda: missing.current_in_progress_regions("ep"),
    ]
    for operation in operations:
        with pytest.raises(EndpointStatisticsException) as raised:
            operation()
        assert raised.value.table_missing


def test_concurrent_increments_then_decrements_end_at_zero_and_never_go_negative(
    endpoint_statistics_table: EndpointStatisticsTable,
) -> None:
    table = endpoint_statistics_table
    table.upsert_endpoint("busy", 16)
    observed: list[int] = []
    stop = threading.Event()

    def read_until_stopped() -> None:
        while not stop.is_set():
            observed.append(table.current_in_progress_regions("busy"))

    def increment_many(_: int) -> None:
        for _ in range(200):
            table.increment_region_count("busy")

    def decrement_many(_: int) -> None:
        for _ in range(250):
            table.decrement_region_count("busy")

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(increment_many, range(16)))
            after_increments = table.current_in_progress_regions("busy")
            list(pool.map(decrement_many, range(16)))
    finally:
        stop.set()
        reader.join()

    assert after_increments == 16 * 200
    assert table.current_in_progress_regions("busy") == 0
    assert observed and min(observed) >= 0
    assert max(observed) <= 16 * 200
    # upsert while regions are in progress keeps the count
    table.increment_region_count("busy")
    table.upsert_endpoint("busy", 32)
    assert stored(table, "busy") == {"endpoint": "busy", "max_regions": 32, "regions_in_progress": 1}
