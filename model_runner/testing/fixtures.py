"""pytest fixtures that give repositories bound to freshly created tables on DynamoDB Local.

Each fixture creates only the table it gives, under a name unique to the test, and deletes it afterwards, so
tests never see each other's items. They rely on ``dynamodb_local_endpoint`` (the session's DynamoDB Local).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from model_runner.database import (
        EndpointStatisticsTable,
        FeatureTable,
        JobTable,
        RegionRequestTable,
        RequestedJobsTable,
        TableNames,
    )


def _unique_names() -> TableNames:
    from model_runner.database import TableNames

    return TableNames.resolve(prefix=f"t{uuid.uuid4().hex[:10]}-")


@pytest.fixture
def table_names() -> TableNames:
    """Table names unique to this test (nothing is created).

    :return: TableNames = the names
    """
    return _unique_names()


@pytest.fixture
def ddb_tables(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[TableNames]:
    """All the tables created on DynamoDB Local for this test, deleted afterwards.

    :return: TableNames = their names; repositories take them with ``host=dynamodb_local_endpoint``
    """
    from model_runner.database import create_tables, delete_tables

    create_tables(table_names, host=dynamodb_local_endpoint)
    yield table_names
    delete_tables(table_names, host=dynamodb_local_endpoint)


def _make(role: str, factory: Callable[[str, str], Any], endpoint: str, names: TableNames) -> Iterator[Any]:
    from model_runner.database.tables import TABLE_MODELS

    _model, _, _ = TABLE_MODELS[role]
    table_name = names.as_dict()[role]
    repository = factory(table_name, endpoint)
    repository.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST", ignore_update_ttl_errors=True)
    yield repository
    repository.model.delete_table()


@pytest.fixture
def job_table(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[JobTable]:
    """A JobTable on a fresh job table of DynamoDB Local.

    :return: JobTable = the repository
    """
    from model_runner.database import JobTable

    yield from _make("job", lambda name, host: JobTable(name, host=host), dynamodb_local_endpoint, table_names)


@pytest.fixture
def region_request_table(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[RegionRequestTable]:
    """A RegionRequestTable on a fresh region table of DynamoDB Local.

    :return: RegionRequestTable = the repository
    """
    from model_runner.database import RegionRequestTable

    yield from _make(
        "region", lambda name, host: RegionRequestTable(name, host=host), dynamodb_local_endpoint, table_names
    )


@pytest.fixture
def endpoint_statistics_table(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> Iterator[EndpointStatisticsTable]:
    """An EndpointStatisticsTable on a fresh endpoint table of DynamoDB Local.

    :return: EndpointStatisticsTable = the repository
    """
    from model_runner.database import EndpointStatisticsTable

    yield from _make(
        "endpoint", lambda name, host: EndpointStatisticsTable(name, host=host), dynamodb_local_endpoint, table_names
    )


@pytest.fixture
def feature_table(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[FeatureTable]:
    """A FeatureTable (tile size 512x512, overlap 32x32) on a fresh feature table of DynamoDB Local.

    :return: FeatureTable = the repository
    """
    from model_runner.database import FeatureTable

    yield from _make(
        "feature",
        lambda name, host: FeatureTable(name, (512, 512), (32, 32), host=host),
        dynamodb_local_endpoint,
        table_names,
    )


@pytest.fixture
def requested_jobs_table(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[RequestedJobsTable]:
    """A RequestedJobsTable on a fresh requested-jobs table of DynamoDB Local.

    :return: RequestedJobsTable = the repository
    """
    from model_runner.database import RequestedJobsTable

    yield from _make(
        "requested", lambda name, host: RequestedJobsTable(name, host=host), dynamodb_local_endpoint, table_names
    )


__all__: list[str] = [
    "ddb_tables",
    "endpoint_statistics_table",
    "feature_table",
    "job_table",
    "region_request_table",
    "requested_jobs_table",
    "table_names",
]
