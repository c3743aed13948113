"""Every branch of every method a role calls sends only actions that the role's generated policy allows.

The workflow test of test_infra.py runs one job the way the workers do; it reaches only the branches that job takes.
Here, each method of ``METHOD_ACTIONS`` is driven through each of its branches on DynamoDB Local (first call,
redelivered call, late call, missing item, condition that does not hold, nothing to write), one branch at a time, with
every DynamoDB call recorded through botocore's events. Then:

* the actions recorded for a method, over all its branches, are exactly ``METHOD_ACTIONS`` for it, and
* for every role and every method it calls, each branch's actions are in the role's policy on that table.

The branches are data (``BRANCHES``): a method a role calls that has no branch here fails the coverage test, so a new
role (one entry of ``ROLE_METHODS``) or a new method is recorded before its policy is trusted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import geojson
import pytest
from botocore.exceptions import ReadTimeoutError
from pynamodb.exceptions import PynamoDBException

from model_runner.api import ImageRequest
from model_runner.common import RequestStatus, TileState
from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    RequestedJobsItem,
    RequestedJobsTable,
    TableNames,
    create_tables,
    delete_tables,
)
from model_runner.database.exceptions import DatabaseError
from model_runner.database.retry import RetryPolicy
from model_runner.infra import ActionRecorder, policy_document
from model_runner.infra.iam import METHOD_ACTIONS, ROLE_METHODS

pytestmark = pytest.mark.integration

TILE = ((0, 0), (512, 512))

#: What a branch may end with: a typed refusal, bad input, or (for a request delivered late) PynamoDB's own error.
REFUSALS = (DatabaseError, TypeError, ValueError, PynamoDBException)


@dataclass
class Tables:
    """The repositories on fresh tables, and the recorder attached to their client(s)."""

    names: TableNames
    job: JobTable
    region: RegionRequestTable
    endpoint: EndpointStatisticsTable
    feature: FeatureTable
    requested: RequestedJobsTable
    recorder: ActionRecorder

    def record(self, table: str, method: str, branch: str, call: Callable[[], Any]) -> None:
        """Run one branch of a method with its calls labelled ``table.method``; a refusal is a branch too."""
        with (
            self.recorder.running(branch, f"{table}.{method}"),
            contextlib.suppress(*REFUSALS),
        ):
            call()


def _id() -> str:
    return uuid.uuid4().hex[:12]


def _features(image_id: str, count: int) -> list[geojson.Feature]:
    return [
        geojson.Feature(
            id=f"{image_id}-{k}",
            geometry=geojson.Point((10.0 + k / 1e4, 20.0)),
            properties={"image_id": image_id, "bounds_imcoords": [5 + k, 5, 25 + k, 25]},
        )
        for k in range(count)
    ]


def _job(t: Tables, regions: int = 1) -> str:
    image_id = _id()
    t.job.start_image_request(JobItem(image_id=image_id, job_id=f"job-{image_id}", region_count=regions))
    return image_id


def _region(t: Tables) -> tuple[str, str]:
    image_id, region_id = _id(), _id()
    t.region.start_region_request(RegionRequestItem(image_id=image_id, region_id=region_id))
    return image_id, region_id


# -- the branches of each method ------------------------------------------------------------------------------------
# Each driver prepares the state with unlabelled calls, then runs one branch of the method through ``t.record``.

Driver = Callable[[Tables, pytest.MonkeyPatch], None]


def job_start(t: Tables, _: pytest.MonkeyPatch) -> None:
    item = JobItem(image_id=_id(), job_id="j")
    t.record("job", "start_image_request", "new job", lambda: t.job.start_image_request(item))
    t.record("job", "start_image_request", "redelivered", lambda: t.job.start_image_request(item))


def job_update(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _job(t)
    t.record(
        "job",
        "update_image_request",
        "attributes set",
        lambda: t.job.update_image_request(JobItem(image_id=image_id, width=5)),
    )
    t.record(
        "job",
        "update_image_request",
        "nothing to write",
        lambda: t.job.update_image_request(JobItem(image_id=image_id)),
    )
    t.record(
        "job",
        "update_image_request",
        "missing job",
        lambda: t.job.update_image_request(JobItem(image_id=_id(), width=5)),
    )
    t.record(
        "job",
        "update_image_request",
        "missing job, nothing to write",
        lambda: t.job.update_image_request(JobItem(image_id=_id())),
    )


def job_complete(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _job(t, regions=2)
    t.record(
        "job",
        "complete_region_request",
        "counted",
        lambda: t.job.complete_region_request(image_id, False, region_id="r1"),
    )
    t.record(
        "job",
        "complete_region_request",
        "counted already",
        lambda: t.job.complete_region_request(image_id, False, region_id="r1"),
    )
    t.record("job", "complete_region_request", "no region id", lambda: t.job.complete_region_request(image_id, True))
    t.record(
        "job",
        "complete_region_request",
        "missing job",
        lambda: t.job.complete_region_request(_id(), False, region_id="r1"),
    )


def job_claim(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _job(t)
    t.record("job", "claim_aggregation", "wins", lambda: t.job.claim_aggregation(image_id, "w1"))
    t.record("job", "claim_aggregation", "loses", lambda: t.job.claim_aggregation(image_id, "w2"))
    t.record("job", "claim_aggregation", "missing job", lambda: t.job.claim_aggregation(_id(), "w1"))


def job_end(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _job(t)
    t.record("job", "end_image_request", "ends", lambda: t.job.end_image_request(image_id))
    t.record("job", "end_image_request", "missing job", lambda: t.job.end_image_request(_id()))


def job_get(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _job(t)
    t.record("job", "get_image_request", "exists", lambda: t.job.get_image_request(image_id))
    t.record("job", "get_image_request", "missing job", lambda: t.job.get_image_request(_id()))


def region_start(t: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    image_id, region_id = _id(), _id()
    item = RegionRequestItem(image_id=image_id, region_id=region_id)
    t.record("region", "start_region_request", "first start", lambda: t.region.start_region_request(item))
    t.record("region", "start_region_request", "restart", lambda: t.region.start_region_request(item))
    # a start held in the network: its client gives up (read timeout), the request reaches DynamoDB later
    held: list[Callable[[], Any]] = []
    original = t.region.model.update

    def hold(self: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(lambda: original(self, *args, **kwargs))
        raise ReadTimeoutError(endpoint_url="http://held")

    single = RegionRequestTable(t.names.region, host=t.region.settings.host, retry_policy=RetryPolicy(max_attempts=1))
    with monkeypatch.context() as patch:
        patch.setattr(single.model, "update", hold)
        t.record("region", "start_region_request", "late start (sent)", lambda: single.start_region_request(item))
    t.region.complete_region_request(item, RequestStatus.SUCCESS)
    t.record("region", "start_region_request", "late start (arrives after the completion)", held[0])
    assert t.region.get_region_request(region_id, image_id).region_status == RequestStatus.SUCCESS.value
    t.record("region", "start_region_request", "start of an ended region", lambda: t.region.start_region_request(item))


def region_complete(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, region_id = _region(t)
    started = t.region.get_region_request(region_id, image_id)
    t.record(
        "region",
        "complete_region_request",
        "start time given",
        lambda: t.region.complete_region_request(started, RequestStatus.SUCCESS),
    )
    bare = RegionRequestItem(image_id=image_id, region_id=region_id)
    t.record(
        "region", "complete_region_request", "start time read", lambda: t.region.complete_region_request(bare, "FAILED")
    )
    missing = RegionRequestItem(image_id=_id(), region_id=_id())
    t.record(
        "region",
        "complete_region_request",
        "missing region",
        lambda: t.region.complete_region_request(missing, "SUCCESS"),
    )
    with_start = RegionRequestItem(image_id=_id(), region_id=_id(), start_time=1)
    t.record(
        "region",
        "complete_region_request",
        "missing region, start given",
        lambda: t.region.complete_region_request(with_start, "SUCCESS"),
    )


def region_update(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, region_id = _region(t)
    t.record(
        "region",
        "update_region_request",
        "exists",
        lambda: t.region.update_region_request(
            RegionRequestItem(image_id=image_id, region_id=region_id, total_tiles=4)
        ),
    )
    t.record(
        "region",
        "update_region_request",
        "missing region",
        lambda: t.region.update_region_request(RegionRequestItem(image_id=_id(), region_id=_id(), total_tiles=4)),
    )


def region_get(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, region_id = _region(t)
    t.record("region", "get_region_request", "exists", lambda: t.region.get_region_request(region_id, image_id))
    t.record("region", "get_region_request", "missing region", lambda: t.region.get_region_request(_id(), image_id))


def region_add_tile(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, region_id = _region(t)
    t.record(
        "region", "add_tile", "new tile", lambda: t.region.add_tile(image_id, region_id, TILE, TileState.SUCCEEDED)
    )
    t.record(
        "region", "add_tile", "tile again", lambda: t.region.add_tile(image_id, region_id, TILE, TileState.SUCCEEDED)
    )
    t.record(
        "region", "add_tile", "failed tile", lambda: t.region.add_tile(image_id, region_id, TILE, TileState.FAILED)
    )
    t.record("region", "add_tile", "missing region", lambda: t.region.add_tile(_id(), _id(), TILE, TileState.SUCCEEDED))
    t.record(
        "region", "add_tile", "bad tile", lambda: t.region.add_tile(image_id, region_id, ((0,), (1,)), "SUCCEEDED")
    )


def region_query(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, _region_id = _region(t)
    t.record("region", "query_items", "regions", lambda: t.region.query_items(RegionRequestItem(image_id=image_id)))
    t.record("region", "query_items", "none", lambda: t.region.query_items(RegionRequestItem(image_id=_id())))


def endpoint_methods(t: Tables, _: pytest.MonkeyPatch) -> None:
    name = _id()
    t.record("endpoint", "upsert_endpoint", "new", lambda: t.endpoint.upsert_endpoint(name, 4))
    t.record("endpoint", "upsert_endpoint", "existing", lambda: t.endpoint.upsert_endpoint(name, 8))
    t.record("endpoint", "increment_region_count", "tracked", lambda: t.endpoint.increment_region_count(name))
    t.record("endpoint", "increment_region_count", "untracked", lambda: t.endpoint.increment_region_count(_id()))
    t.record("endpoint", "decrement_region_count", "above zero", lambda: t.endpoint.decrement_region_count(name))
    t.record("endpoint", "decrement_region_count", "at zero", lambda: t.endpoint.decrement_region_count(name))
    t.record("endpoint", "decrement_region_count", "untracked", lambda: t.endpoint.decrement_region_count(_id()))
    t.record("endpoint", "current_in_progress_regions", "tracked", lambda: t.endpoint.current_in_progress_regions(name))
    t.record(
        "endpoint", "current_in_progress_regions", "untracked", lambda: t.endpoint.current_in_progress_regions(_id())
    )
    t.record("endpoint", "model.scan", "scan", lambda: list(t.endpoint.model.scan()))


def feature_methods(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id = _id()
    add = t.feature.add_features
    t.record("feature", "add_features", "tile", lambda: add(_features(image_id, 3), source_tile=TILE))
    t.record("feature", "add_features", "tile again, fewer", lambda: add(_features(image_id, 1), source_tile=TILE))
    t.record("feature", "add_features", "no tile", lambda: add(_features(image_id, 2)))
    t.record("feature", "add_features", "nothing", lambda: add([], source_tile=TILE))
    job = JobItem(image_id=image_id)
    t.record("feature", "aggregate_features", "features", lambda: t.feature.aggregate_features(job))
    t.record("feature", "aggregate_features", "none", lambda: t.feature.aggregate_features(JobItem(image_id=_id())))
    out = io.StringIO()
    t.record(
        "feature", "write_feature_collection", "features", lambda: t.feature.write_feature_collection(image_id, out)
    )
    t.record(
        "feature", "write_feature_collection", "none", lambda: t.feature.write_feature_collection(_id(), io.StringIO())
    )


def region_add_tiles(t: Tables, _: pytest.MonkeyPatch) -> None:
    image_id, region_id = _region(t)
    tiles = [TILE, ((0, 480), (512, 512))]

    def add(batch: Any, state: Any = TileState.SUCCEEDED, image: str = image_id, region: str = region_id) -> Any:
        return lambda: t.region.add_tiles(image, region, batch, state)

    t.record("region", "add_tiles", "new tiles", add(tiles[:1]))
    t.record("region", "add_tiles", "some recorded", add(tiles))
    t.record("region", "add_tiles", "all recorded", add(tiles))
    t.record("region", "add_tiles", "missing region", add(tiles, image=_id(), region=_id()))
    t.record("region", "add_tiles", "empty list", add([]))
    t.record("region", "add_tiles", "not a tile", add(["tile"]))


def _request() -> ImageRequest:
    job_id = _id()
    return ImageRequest(job_id=job_id, image_id=f"{job_id}:s3://b/i", image_url="s3://b/i", model_name="ep")


@contextlib.contextmanager
def _answer_lost_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The next UpdateItem of the requested-jobs table is applied, then its answer is lost (a read timeout)."""
    original = RequestedJobsItem.update
    lost: list[bool] = []

    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if not lost:
            lost.append(True)
            raise ReadTimeoutError(endpoint_url="http://answer-lost")
        return result

    with monkeypatch.context() as patch:
        patch.setattr(RequestedJobsItem, "update", update)
        yield


def requested_methods(t: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    request = _request()
    add = t.requested.add_new_request
    t.record("requested", "add_new_request", "new", lambda: add(request))
    t.record("requested", "add_new_request", "redelivered", lambda: add(request))
    update = t.requested.update_request_details
    t.record("requested", "update_request_details", "exists", lambda: update(request, 3))
    t.record("requested", "update_request_details", "missing", lambda: update(_request(), 3))
    t.record("requested", "get_outstanding_requests", "all", lambda: t.requested.get_outstanding_requests())
    t.record("requested", "get_outstanding_requests", "one", lambda: t.requested.get_outstanding_requests("ep"))
    (record,) = [r for r in t.requested.get_outstanding_requests("ep") if r.job_id == request.job_id]
    attempt = t.requested.start_next_attempt
    t.record("requested", "start_next_attempt", "wins", lambda: attempt(record))
    t.record("requested", "start_next_attempt", "stale", lambda: attempt(record))
    t.record("requested", "start_next_attempt", "missing", lambda: attempt(dataclasses.replace(record, job_id=_id())))
    fresh = next(r for r in t.requested.get_outstanding_requests("ep") if r.job_id == request.job_id)
    with _answer_lost_once(monkeypatch):
        t.record("requested", "start_next_attempt", "answer lost", lambda: attempt(fresh))
    region = t.requested.complete_region
    t.record("requested", "complete_region", "new", lambda: region(request, "r1"))
    t.record("requested", "complete_region", "again", lambda: region(request, "r1"))
    t.record("requested", "complete_region", "missing", lambda: region(_request(), "r1"))
    with _answer_lost_once(monkeypatch):
        t.record("requested", "complete_region", "answer lost", lambda: region(request, "r2"))
    t.record("requested", "complete_request", "exists", lambda: t.requested.complete_request(request))
    t.record("requested", "complete_request", "missing", lambda: t.requested.complete_request(request))


#: The drivers, by the (table, method) pairs whose branches they run.
BRANCHES: dict[Driver, tuple[tuple[str, str], ...]] = {
    job_start: (("job", "start_image_request"),),
    job_update: (("job", "update_image_request"),),
    job_complete: (("job", "complete_region_request"),),
    job_claim: (("job", "claim_aggregation"),),
    job_end: (("job", "end_image_request"),),
    job_get: (("job", "get_image_request"),),
    region_start: (("region", "start_region_request"),),
    region_complete: (("region", "complete_region_request"),),
    region_update: (("region", "update_region_request"),),
    region_get: (("region", "get_region_request"),),
    region_add_tile: (("region", "add_tile"),),
    region_query: (("region", "query_items"),),
    region_add_tiles: (("region", "add_tiles"),),
    requested_methods: tuple(
        ("requested", m)
        for m in (
            "add_new_request",
            "update_request_details",
            "get_outstanding_requests",
            "start_next_attempt",
            "complete_region",
            "complete_request",
        )
    ),
    endpoint_methods: tuple(
        ("endpoint", m)
        for m in (
            "upsert_endpoint",
            "increment_region_count",
            "decrement_region_count",
            "current_in_progress_regions",
            "model.scan",
        )
    ),
    feature_methods: (
        ("feature", "add_features"),
        ("feature", "aggregate_features"),
        ("feature", "write_feature_collection"),
    ),
}


@pytest.fixture(scope="module")
def branches(dynamodb_local_endpoint: str) -> Iterator[Tables]:
    """Every branch of every driver run once on fresh tables, each DynamoDB call recorded and labelled."""
    names = TableNames.resolve(prefix=f"iam{uuid.uuid4().hex[:8]}-")
    create_tables(names, host=dynamodb_local_endpoint)
    where: dict[str, Any] = {"host": dynamodb_local_endpoint}
    tables = Tables(
        names=names,
        job=JobTable(names.job, **where),
        region=RegionRequestTable(names.region, **where),
        endpoint=EndpointStatisticsTable(names.endpoint, **where),
        feature=FeatureTable(names.feature, (512, 512), (32, 32), **where),
        requested=RequestedJobsTable(names.requested, **where),
        recorder=ActionRecorder(),
    )
    for repository in (tables.job, tables.region, tables.endpoint, tables.feature, tables.requested):
        tables.recorder.attach(repository.client)
    monkeypatch = pytest.MonkeyPatch()
    try:
        for driver in BRANCHES:
            driver(tables, monkeypatch)
        yield tables
    finally:
        monkeypatch.undo()
        tables.recorder.detach()
        delete_tables(names, host=dynamodb_local_endpoint)


def _by_table(t: Tables, per_table_name: dict[str, set[str]]) -> dict[str, set[str]]:
    short = {table_name: table for table, table_name in t.names.as_dict().items()}
    return {short.get(name, name): actions for name, actions in per_table_name.items()}


def _branches_of(t: Tables, table: str, method: str) -> dict[str, dict[str, set[str]]]:
    """Branch name to the actions it sent, per table (the recorder's role field holds the branch)."""
    found: dict[str, dict[str, set[str]]] = {}
    for (branch, label), per_table_name in t.recorder.calls.items():
        if label == f"{table}.{method}":
            found[branch] = _by_table(t, per_table_name)
    return found


def test_every_method_a_role_calls_has_its_branches_driven() -> None:
    driven = {pair for pairs in BRANCHES.values() for pair in pairs}
    called = {
        (table, method)
        for per_table in ROLE_METHODS.values()
        for table, methods in per_table.items()
        for method in methods
    }
    assert called <= driven, f"no branch drivers for {sorted(called - driven)}: add them to BRANCHES"
    assert set(METHOD_ACTIONS) <= driven


def test_method_actions_are_the_union_of_every_branch(branches: Tables) -> None:
    recorded: dict[tuple[str, str], frozenset[str]] = {}
    for pairs in BRANCHES.values():
        for table, method in pairs:
            per_branch = _branches_of(branches, table, method)
            assert per_branch, f"{table}.{method}: no branch recorded"
            actions: set[str] = set()
            for branch, per_table in per_branch.items():
                assert set(per_table) <= {table}, f"{table}.{method} ({branch}) touched {sorted(per_table)}"
                actions |= per_table.get(table, set())
            recorded[(table, method)] = frozenset(actions)
    assert {key: recorded[key] for key in METHOD_ACTIONS} == METHOD_ACTIONS


@pytest.mark.parametrize("role", list(ROLE_METHODS))
def test_no_branch_of_a_roles_methods_sends_an_action_its_policy_lacks(branches: Tables, role: str) -> None:
    document = policy_document(role, branches.names, region="us-east-1", account_id="123456789012")
    allowed: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        table_name = statement["Resource"].rsplit("table/", 1)[1]
        table = next(t for t, n in branches.names.as_dict().items() if n == table_name)
        allowed[table] = {action.removeprefix("dynamodb:") for action in statement["Action"]}
    missing = []
    for table, methods in ROLE_METHODS[role].items():
        for method in methods:
            for branch, per_table in _branches_of(branches, table, method).items():
                lacking = per_table.get(table, set()) - allowed.get(table, set())
                if lacking:
                    missing.append(f"{table}.{method} ({branch}): {sorted(lacking)}")
    assert not missing, f"{role}'s policy lacks what its methods send: {missing}"


def test_the_start_of_an_ended_region_reads_the_region(branches: Tables) -> None:
    # the branch the image-worker's policy once missed: the condition fails, the region is read, then restarted
    per_branch = _branches_of(branches, "region", "start_region_request")
    assert per_branch["start of an ended region"] == {"region": {"UpdateItem", "GetItem"}}
    assert per_branch["late start (arrives after the completion)"] == {"region": {"UpdateItem"}}
