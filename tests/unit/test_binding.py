"""The bound-model cache: one botocore client per endpoint/region/credentials/pool/timeouts, bounded caches.

Binding opens no connection, so these run without an emulator (the endpoint is a closed loopback port); the same
sharing is exercised on DynamoDB Local by tests/integration/test_foundation.py.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestTable,
    binding,
)
from model_runner.database.binding import TableSettings, bind_model, bound_settings
from model_runner.database.exceptions import ConfigurationError

WHERE = {"host": "http://127.0.0.1:9", "region": "us-east-1"}


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "binding-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "binding-test")
    yield


def test_tables_on_one_endpoint_share_one_client() -> None:
    repositories = [
        JobTable("share-jobs", **WHERE),
        RegionRequestTable("share-regions", **WHERE),
        EndpointStatisticsTable("share-endpoints", **WHERE),
        FeatureTable("share-features", **WHERE),
        JobTable("share-jobs-2", **WHERE),
    ]
    assert len({id(repository.client) for repository in repositories}) == 1
    assert len({id(repository.model) for repository in repositories}) == 5


def test_three_hundred_table_names_build_no_further_client() -> None:
    first = JobTable("many-0", **WHERE).client
    clients = {id(JobTable(f"many-{n}", **WHERE).client) for n in range(300)}
    assert clients == {id(first)}


def test_expire_days_is_kept_out_of_the_class_and_the_client() -> None:
    week = JobTable("expiry-table", expire_days=7, **WHERE)
    month = JobTable("expiry-table", expire_days=30, **WHERE)
    assert month.model is week.model
    assert month.client is week.client
    assert (week.expire_seconds, month.expire_seconds) == (7 * 86400, 30 * 86400)


def test_client_settings_give_a_client_of_their_own() -> None:
    base = JobTable("settings-table", **WHERE)
    slower = JobTable("settings-table", read_timeout_seconds=99.0, **WHERE)
    bigger = JobTable("settings-table", max_pool_connections=7, **WHERE)
    other_region = JobTable("settings-table", host=WHERE["host"], region="eu-west-1")
    clients = [base.client, slower.client, bigger.client, other_region.client]
    assert len({id(client) for client in clients}) == 4
    assert slower.client.meta.config.read_timeout == 99.0
    assert bigger.client.meta.config.max_pool_connections == 7
    assert other_region.client.meta.region_name == "eu-west-1"
    # each class still talks to its own table through its client
    assert {repository.model.Meta.table_name for repository in (base, slower, bigger)} == {"settings-table"}


def test_other_credentials_get_another_client(monkeypatch: pytest.MonkeyPatch) -> None:
    first = JobTable("credentials-table", **WHERE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
    second = JobTable("credentials-table", **WHERE)
    assert second.client is not first.client
    assert second.client._request_signer._credentials.access_key == "someone-else"
    assert first.client._request_signer._credentials.access_key == "binding-test"


def test_botocore_retries_stay_off_on_the_shared_client() -> None:
    client = JobTable("retries-table", **WHERE).client
    assert client.meta.config.retries["total_max_attempts"] == 1


def test_the_caches_are_bounded_and_dropped_classes_are_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binding, "MAX_BOUND_MODELS", 20)
    monkeypatch.setattr(binding, "MAX_CLIENTS", 2)
    refs = [weakref.ref(JobTable(f"bounded-{n}", **WHERE).model) for n in range(60)]
    for timeout in range(5):
        JobTable("bounded-client", read_timeout_seconds=1.0 + timeout, **WHERE)
    gc.collect()
    info = binding.cache_info()
    assert info["bound_models"] <= 20
    assert info["clients"] <= 2
    assert sum(ref() is not None for ref in refs) <= 20


def test_the_cache_keeps_no_more_clients_alive_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # a class bound with a client that left the cache used to keep it alive: 40 endpoints kept 40 clients (~10 MB each)
    monkeypatch.setattr(binding, "MAX_CLIENTS", 3)
    clients = [
        weakref.ref(JobTable(f"endpoint-{n}", host=f"http://127.0.0.1:{10 + n}", region="us-east-1").client)
        for n in range(40)
    ]
    gc.collect()
    assert binding.cache_info()["clients"] == 3
    assert sum(ref() is not None for ref in clients) == 3


def test_clients_of_other_endpoints_share_one_parsed_service_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # parsing the service model is most of a client's ~10 MB: one copy per process, not per client
    first = JobTable("model-table", host="http://127.0.0.1:9", region="us-east-1").client
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    second = JobTable("model-table", host="http://127.0.0.1:8", region="eu-west-1").client
    assert second is not first
    assert second.meta.service_model._service_description is first.meta.service_model._service_description
    assert second._request_signer._credentials.access_key == "another-key"  # credentials are still read afresh


def test_a_class_still_held_keeps_working_after_it_left_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binding, "MAX_BOUND_MODELS", 1)
    held = JobTable("held-table", **WHERE)
    JobTable("pushes-it-out", **WHERE)
    assert held.model.Meta.table_name == "held-table"
    assert held.client is JobTable("pushes-it-out", **WHERE).client
    assert bound_settings(held.model).table_name == "held-table"


def test_bound_settings_of_an_unbound_class_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        bound_settings(JobItem)


def test_binding_the_same_settings_twice_gives_the_same_class() -> None:
    settings = TableSettings(table_name="same-table", **WHERE)
    assert bind_model(JobItem, settings) is bind_model(JobItem, settings)
