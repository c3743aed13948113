"""Retries are bounded: permanent failure ends in the typed exception within a documented time; a throttling storm
slows work down but loses none of it."""

from __future__ import annotations

import time
from typing import cast

import pytest

from model_runner.database import (
    AddFeaturesException,
    DDBBatchWriteException,
    DDBException,
    DDBHelper,
    DDBUpdateException,
    FeatureTable,
    JobItem,
    JobTable,
    RetryPolicy,
)
from model_runner.database.ddb_helper import BATCH_SIZE
from model_runner.database.retry import DEFAULT_POLICY, THROTTLING_CODES

from .conftest import RunReport
from .proxy import FaultMix, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

#: Read timeout of the repositories behind the proxy: a ``slow`` answer is held longer than this.
READ_TIMEOUT = 0.4
#: A shorter policy than the default, so that most kinds of permanent failure take a second, not seven.
QUICK_POLICY = RetryPolicy(max_attempts=5, base_delay=0.025, max_delay=0.2, max_total=5.0)


def backoff_bound(policy: RetryPolicy) -> float:
    """The most a policy can sleep in all: every jittered delay at its ceiling, capped by ``max_total``.

    :param policy: RetryPolicy = the policy
    :return: float = seconds
    """
    ceilings = sum(min(policy.max_delay, policy.base_delay * 2**k) for k in range(policy.max_attempts - 1))
    return float(min(ceilings, policy.max_total))


def _stored_counts(job_table: JobTable) -> dict[str, float | None]:
    """Every job stored (read directly, not through the proxy): image_id to region_count."""
    return {
        cast(JobItem, row).image_id: cast(JobItem, row).region_count
        for row in job_table.model.scan(consistent_read=True)
    }


def _helper(table_name: str, proxy: FaultProxy, policy: RetryPolicy = DEFAULT_POLICY) -> DDBHelper:
    return DDBHelper(
        table_name, item_class=JobItem, host=proxy.url, read_timeout_seconds=READ_TIMEOUT, retry_policy=policy
    )


def test_default_policy_sleeps_at_most_about_seven_seconds() -> None:
    # The figure docs/reliability.md quotes; it changes only when retry.DEFAULT_POLICY does.
    assert backoff_bound(DEFAULT_POLICY) == pytest.approx(7.175)
    assert DEFAULT_POLICY.max_attempts == 10


@pytest.mark.parametrize(
    ("kind", "code", "policy"),
    [
        ("throttle", "ProvisionedThroughputExceededException", DEFAULT_POLICY),
        ("throttling", "ThrottlingException", QUICK_POLICY),
        ("error500", "InternalServerError", DEFAULT_POLICY),
        ("error503", "503", QUICK_POLICY),
        ("reset", "ConnectionClosedError", QUICK_POLICY),
        ("slow", "ReadTimeoutError", QUICK_POLICY),
    ],
)
def test_permanent_transient_failure_gives_up_with_the_typed_exception_in_bounded_time(
    job_table: JobTable, fault_proxy: FaultProxy, run_report: RunReport, kind: str, code: str, policy: RetryPolicy
) -> None:
    fault_proxy.slow_seconds = READ_TIMEOUT * 2
    fault_proxy.set_mix(FaultMix.only(kind, 1.0))
    helper = _helper(job_table.table_name, fault_proxy, policy)
    started = time.monotonic()
    with pytest.raises(DDBException) as caught:
        helper.get_ddb_item(JobItem(image_id="never-answered"))
    elapsed = time.monotonic() - started
    assert caught.value.code == code
    assert caught.value.table_name == job_table.table_name
    assert "never-answered" in str(caught.value)
    assert caught.value.__cause__ is not None
    stats = fault_proxy.snapshot()
    assert stats.requests["GetItem"] == policy.max_attempts  # retried, and no more than the policy says
    per_request = READ_TIMEOUT + 1.0 if kind == "slow" else 1.0
    assert elapsed <= backoff_bound(policy) + policy.max_attempts * per_request
    run_report.record(
        f"retry-bounds[{kind}]",
        operations=1,
        requests=stats.total_requests,
        faults=stats.total_faults,
        gave_up=1,
        retries=stats.total_requests - 1,
        seconds=round(elapsed, 2),
        items_checked=1,
        discrepancies=0,
    )


def test_permanent_errors_are_not_retried(job_table: JobTable, fault_proxy: FaultProxy) -> None:
    helper = _helper(job_table.table_name, fault_proxy)
    with pytest.raises(DDBUpdateException) as missing:
        helper.update_ddb_item(JobItem(image_id="missing", region_count=3))
    assert missing.value.code == "ConditionalCheckFailedException"
    with pytest.raises(DDBException) as too_large:
        helper.put_ddb_item(JobItem(image_id="huge", extents="x" * 410_000))
    assert too_large.value.code == "ValidationException"
    stats = fault_proxy.snapshot()
    assert stats.requests["UpdateItem"] == 1
    assert stats.requests["PutItem"] == 1
    assert helper.get_ddb_item(JobItem(image_id="missing")) == {}  # the update created nothing
    assert helper.get_ddb_item(JobItem(image_id="huge")) == {}


def test_batch_writer_gives_up_on_permanent_failure_naming_what_is_unwritten(
    job_table: JobTable, fault_proxy: FaultProxy
) -> None:
    fault_proxy.set_mix(FaultMix.only("error500", 1.0))
    helper = _helper(job_table.table_name, fault_proxy)
    items = [JobItem(image_id=f"b{n}") for n in range(30)]
    with pytest.raises(DDBBatchWriteException) as caught:
        helper.batch_write_items(items, max_retries=4, max_delay=0.05)
    assert caught.value.unprocessed == 30
    assert caught.value.code == "InternalServerError"
    assert fault_proxy.snapshot().requests["BatchWriteItem"] == 5


def test_throttling_storm_slows_work_down_but_loses_none(
    job_table: JobTable, fault_proxy: FaultProxy, run_report: RunReport, reliability_scale: int
) -> None:
    """Half of all requests throttled: single writes retry within their policy; a call whose retries all fail
    raises a throttling error and is sent again by its caller (as a redelivered message would be), the batch
    writer keeps going until everything is written. At the end every item is stored, once, with its content."""
    count = 100 * reliability_scale
    fault_proxy.set_mix(FaultMix(throttle=0.3, throttling=0.2))
    helper = _helper(job_table.table_name, fault_proxy)
    started = time.monotonic()
    redelivered = 0
    for n in range(count):
        for _attempt in range(10):
            try:
                helper.put_ddb_item(JobItem(image_id=f"single-{n}", region_count=n))
                break
            except DDBException as err:
                assert err.code in THROTTLING_CODES  # only throttling: nothing else may surface
                redelivered += 1
        else:
            pytest.fail(f"single-{n} still throttled after 10 deliveries")
    helper.batch_write_items([JobItem(image_id=f"batch-{n}", region_count=n) for n in range(count)])
    elapsed = time.monotonic() - started
    stats = fault_proxy.snapshot()
    with fault_proxy.faults_off():
        stored = _stored_counts(job_table)
    expected = {f"single-{n}": n for n in range(count)} | {f"batch-{n}": n for n in range(count)}
    discrepancies = sum(1 for key, n in expected.items() if stored.get(key) != n)
    discrepancies += len(set(stored) - set(expected))
    assert discrepancies == 0
    assert stats.faults["throttle"] + stats.faults["throttling"] > count // 2  # there was a storm
    batches = -(-count // BATCH_SIZE)
    run_report.record(
        "throttling-storm",
        operations=count + batches,
        requests=stats.total_requests,
        faults=stats.total_faults,
        gave_up=redelivered,
        retries=stats.total_requests - count - batches - redelivered,
        redelivered=redelivered,
        seconds=round(elapsed, 2),
        items_checked=len(expected),
        discrepancies=discrepancies,
    )


def test_long_batch_write_through_a_throttling_storm_writes_everything(
    job_table: JobTable, fault_proxy: FaultProxy, run_report: RunReport, reliability_scale: int
) -> None:
    """Backoff grows while a batch write is stuck and starts over once a request gets through, so a long batch under
    steady throttling (40% of its requests) finishes within a modest backoff budget instead of sleeping ever longer
    until the budget runs out and the batch fails with items unwritten."""
    count = 1000 * reliability_scale
    fault_proxy.set_mix(FaultMix(throttle=0.25, throttling=0.15))
    helper = _helper(job_table.table_name, fault_proxy)
    retried: list[int] = []
    started = time.monotonic()
    helper.batch_write_items(
        [JobItem(image_id=f"b{n:05d}", region_count=n) for n in range(count)], on_retry=retried.append, max_total=30
    )
    elapsed = time.monotonic() - started
    stats = fault_proxy.snapshot()
    stored = _stored_counts(job_table)
    discrepancies = sum(1 for n in range(count) if stored.get(f"b{n:05d}") != n) + len(stored) - count
    assert discrepancies == 0
    assert len(retried) == stats.faults["throttle"] + stats.faults["throttling"] > 0
    run_report.record(
        "throttling-storm-batch",
        operations=1,
        requests=stats.total_requests,
        faults=stats.total_faults,
        retries=len(retried),
        seconds=round(elapsed, 2),
        items_checked=count,
        discrepancies=discrepancies,
    )


# -- the feature table obeys its repository's policy (issue 14, item 1) --------------------------------------------

#: The policy of the issue's report: 3 attempts, at most a second of backoff.
SHORT_POLICY = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.5, max_total=1.0)


def _feature(image_id: str, number: int) -> dict[str, object]:
    return {
        "type": "Feature",
        "id": f"{image_id}-{number}",
        "geometry": None,
        "properties": {"image_id": image_id, "bounds_imcoords": [number, number, number + 5, number + 5]},
    }


def _features_behind(proxy: FaultProxy, table_name: str, policy: RetryPolicy) -> FeatureTable:
    return FeatureTable(
        table_name, (512, 512), (32, 32), host=proxy.url, read_timeout_seconds=READ_TIMEOUT, retry_policy=policy
    )


@pytest.mark.parametrize("kind", ["error500", "reset", "throttle"])
def test_add_features_gives_up_within_the_repository_policy(
    feature_table: FeatureTable, fault_proxy: FaultProxy, run_report: RunReport, kind: str
) -> None:
    fault_proxy.set_mix(FaultMix.only(kind, 1.0))
    features = _features_behind(fault_proxy, feature_table.table_name, SHORT_POLICY)
    started = time.monotonic()
    with pytest.raises(AddFeaturesException) as caught:
        features.add_features([_feature("img-bound", n) for n in range(40)], source_tile=((0, 0), (512, 512)))
    elapsed = time.monotonic() - started
    assert caught.value.__cause__ is not None
    stats = fault_proxy.snapshot()
    assert stats.requests["BatchWriteItem"] == SHORT_POLICY.max_attempts  # one item, one request per attempt
    assert elapsed <= backoff_bound(SHORT_POLICY) + SHORT_POLICY.max_attempts * 1.0
    run_report.record(
        f"retry-bounds-add-features[{kind}]",
        operations=1,
        requests=stats.total_requests,
        faults=stats.total_faults,
        gave_up=1,
        retries=stats.total_requests - 1,
        seconds=round(elapsed, 2),
        items_checked=1,
        discrepancies=0,
    )


def test_add_features_with_items_left_unprocessed_gives_up_within_the_policy(
    feature_table: FeatureTable, dynamodb_local_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB answers every BatchWriteItem with all its items unprocessed (a partition at its limit)."""
    sent: list[int] = []

    class Unprocessing:
        def batch_write_item(self, RequestItems: dict[str, list[object]]) -> dict[str, object]:
            sent.append(sum(len(requests) for requests in RequestItems.values()))
            return {"UnprocessedItems": RequestItems}

    monkeypatch.setattr(FeatureTable, "client", property(lambda self: Unprocessing()))
    started = time.monotonic()
    table = FeatureTable(
        feature_table.table_name, (512, 512), (32, 32), host=dynamodb_local_endpoint, retry_policy=SHORT_POLICY
    )
    with pytest.raises(AddFeaturesException) as caught:
        table.add_features([_feature("img-unprocessed", n) for n in range(40)])
    elapsed = time.monotonic() - started
    assert sent == [1] * SHORT_POLICY.max_attempts
    assert isinstance(caught.value.__cause__, DDBBatchWriteException)
    assert elapsed <= backoff_bound(SHORT_POLICY) + 1.0


def test_delete_features_gives_up_within_the_repository_policy(
    feature_table: FeatureTable, dynamodb_local_endpoint: str
) -> None:
    feature_table.add_features([_feature("img-del-bound", n) for n in range(40)], source_tile=((0, 0), (512, 512)))
    with FaultProxy(dynamodb_local_endpoint, operations=["BatchWriteItem"]) as proxy:
        proxy.set_mix(FaultMix.only("error500", 1.0))
        features = _features_behind(proxy, feature_table.table_name, SHORT_POLICY)
        started = time.monotonic()
        with pytest.raises(DDBBatchWriteException):
            features.delete_features("img-del-bound")
        elapsed = time.monotonic() - started
        assert proxy.snapshot().requests["BatchWriteItem"] == SHORT_POLICY.max_attempts
    assert elapsed <= backoff_bound(SHORT_POLICY) + SHORT_POLICY.max_attempts * 1.0 + 5.0  # + 50 shard queries
    assert len(feature_table.get_features("img-del-bound")) == 40
