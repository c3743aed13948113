"""The fault proxy itself: each fault does what the suite relies on, seen from a plain botocore client."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from .proxy import FAULT_KINDS, FaultMix, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

READ_TIMEOUT = 0.5
#: What botocore raises when the connection drops: reset before or after the request was applied.
CONNECTION_ERRORS = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)


def _client(endpoint: str) -> Any:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=READ_TIMEOUT,
        connect_timeout=2,
        max_pool_connections=4,
    )
    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


@pytest.fixture
def table(dynamodb_local_endpoint: str) -> Iterator[str]:
    name = f"proxy-{uuid.uuid4().hex[:10]}"
    direct = _client(dynamodb_local_endpoint)
    direct.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    direct.delete_table(TableName=name)


def _put(client: Any, table: str, pk: str) -> None:
    client.put_item(TableName=table, Item={"pk": {"S": pk}})


def _stored(direct: Any, table: str, pk: str) -> bool:
    return "Item" in direct.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)


def test_without_faults_requests_pass_through_on_kept_alive_connections(
    fault_proxy: FaultProxy, dynamodb_local_endpoint: str, table: str
) -> None:
    client = _client(fault_proxy.url)
    for n in range(20):
        _put(client, table, f"k{n}")
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    assert sorted(item["pk"]["S"] for item in items) == sorted(f"k{n}" for n in range(20))
    stats = fault_proxy.snapshot()
    assert stats.requests["PutItem"] == 20
    assert stats.forwarded["PutItem"] == 20
    assert stats.total_faults == 0
    assert stats.connections < 5  # keep-alive: not one connection per request


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("throttle", "ProvisionedThroughputExceededException"),
        ("throttling", "ThrottlingException"),
        ("error500", "InternalServerError"),
        ("error503", "503"),
    ],
)
def test_error_answers_carry_the_dynamodb_error_code_and_are_not_applied(
    fault_proxy: FaultProxy, dynamodb_local_endpoint: str, table: str, kind: str, code: str
) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.force(kind, operation="PutItem")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _put(client, table, "faulted")
    assert caught.value.response["Error"]["Code"] == code
    assert not _stored(_client(dynamodb_local_endpoint), table, "faulted")
    _put(client, table, "next")  # the same connection goes on working
    assert _stored(_client(dynamodb_local_endpoint), table, "next")
    assert fault_proxy.snapshot().faults == Counter({kind: 1})


def test_reset_drops_the_connection_before_dynamodb_sees_the_request(
    fault_proxy: FaultProxy, dynamodb_local_endpoint: str, table: str
) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.force("reset", operation="PutItem")
    with pytest.raises(CONNECTION_ERRORS):
        _put(client, table, "reset")
    assert not _stored(_client(dynamodb_local_endpoint), table, "reset")
    assert fault_proxy.snapshot().forwarded["PutItem"] == 0


def test_lost_answer_means_the_request_was_applied(
    fault_proxy: FaultProxy, dynamodb_local_endpoint: str, table: str
) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.force("lost", operation="PutItem")
    with pytest.raises(CONNECTION_ERRORS):
        _put(client, table, "applied")
    assert _stored(_client(dynamodb_local_endpoint), table, "applied")
    stats = fault_proxy.snapshot()
    assert stats.forwarded["PutItem"] == 1
    assert stats.faults["lost"] == 1


def test_slow_answer_times_the_client_out_and_is_applied_late(
    dynamodb_local_endpoint: str, table: str, reliability_seed: int
) -> None:
    with FaultProxy(dynamodb_local_endpoint, seed=reliability_seed, slow_seconds=READ_TIMEOUT * 3) as proxy:
        client = _client(proxy.url)
        proxy.force("slow", operation="PutItem")
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            _put(client, table, "late")
        direct = _client(dynamodb_local_endpoint)
        assert not _stored(direct, table, "late")  # the client gave up before DynamoDB saw it
        assert proxy.drain(timeout=10)
        assert _stored(direct, table, "late")


def test_faults_only_hit_the_chosen_operations(fault_proxy: FaultProxy, table: str) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.operations = frozenset({"GetItem"})
    fault_proxy.set_mix(FaultMix(error500=1.0))
    for n in range(5):
        _put(client, table, f"ok{n}")
    with pytest.raises(botocore.exceptions.ClientError):
        client.get_item(TableName=table, Key={"pk": {"S": "ok0"}})
    client.describe_table(TableName=table)
    stats = fault_proxy.snapshot()
    assert stats.faults_by_operation == Counter({"GetItem:error500": 1})


def test_control_plane_is_not_faulted_by_default(fault_proxy: FaultProxy, table: str) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.set_mix(FaultMix(error500=1.0))
    client.describe_table(TableName=table)
    with pytest.raises(botocore.exceptions.ClientError):
        client.get_item(TableName=table, Key={"pk": {"S": "x"}})
    with fault_proxy.faults_off():
        client.get_item(TableName=table, Key={"pk": {"S": "x"}})
    assert fault_proxy.snapshot().faults == Counter({"error500": 1})


def test_random_mix_injects_each_kind_at_about_its_rate(
    fault_proxy: FaultProxy, dynamodb_local_endpoint: str, table: str
) -> None:
    client = _client(fault_proxy.url)
    fault_proxy.set_mix(FaultMix(throttle=0.1, error500=0.1, lost=0.1))
    outcomes: Counter[str] = Counter()
    for n in range(300):
        try:
            _put(client, table, f"m{n}")
            outcomes["ok"] += 1
        except botocore.exceptions.ClientError as err:
            outcomes[err.response["Error"]["Code"]] += 1
        except CONNECTION_ERRORS:
            outcomes["connection"] += 1
    stats = fault_proxy.snapshot()
    assert stats.requests["PutItem"] == 300
    assert stats.faults["throttle"] == outcomes["ProvisionedThroughputExceededException"]
    assert stats.faults["error500"] == outcomes["InternalServerError"]
    assert stats.faults["lost"] == outcomes["connection"]
    for kind in ("throttle", "error500", "lost"):
        assert 10 <= stats.faults[kind] <= 55, stats.faults
    stored = _client(dynamodb_local_endpoint).scan(TableName=table, Select="COUNT", ConsistentRead=True)["Count"]
    assert stored == outcomes["ok"] + outcomes["connection"]  # lost answers were applied; errors were not


def test_fault_mix_draws_are_seeded_and_follow_the_rates() -> None:
    mix = FaultMix.spread(0.35)
    first = [mix.draw(random.Random(7)) for _ in range(1)]
    assert first == [mix.draw(random.Random(7))]
    rng = random.Random(11)
    draws = Counter(mix.draw(rng) for _ in range(20000))
    assert abs(draws[None] / 20000 - 0.65) < 0.02
    for kind in FAULT_KINDS:
        assert abs(draws[kind] / 20000 - 0.05) < 0.01


@pytest.mark.parametrize("bad", [{"throttle": -0.1}, {"lost": 1.5}, {"throttle": 0.6, "reset": 0.6}])
def test_fault_mix_rejects_rates_that_are_not_probabilities(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultMix(**bad)


def test_unknown_fault_kind_is_refused(fault_proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        fault_proxy.force("gremlins")
    with pytest.raises(ValueError):
        FaultMix.only("gremlins", 0.1)
