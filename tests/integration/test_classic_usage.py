"""The package used exactly as code written for the classic ``aws.osml.model_runner.database`` uses it.

Plain table names (the endpoint comes from the environment, as on a worker), positional items in the classic field
order, ``except ClientError`` around the calls that let botocore's error through, bare DDBItems with assigned keys,
and ``get_update_params`` fed to a raw boto3 ``update_item``. Every test runs on DynamoDB Local and on moto.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from model_runner.common.typing import RequestStatus
from model_runner.database import (
    CompleteRegionException,
    DDBException,
    DDBHelper,
    DDBItem,
    DDBKey,
    DDBUpdateException,
    EndpointStatisticsTable,
    FeatureItem,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    TableNames,
    create_tables,
)
from model_runner.database.endpoint_statistics_table import EndpointStatisticsItem


@dataclass
class Backend:
    """Where the tables of a test live: names, endpoint (None for moto) and a raw boto3 client."""

    names: TableNames
    endpoint: str | None

    def client(self) -> Any:
        return boto3.client("dynamodb", endpoint_url=self.endpoint, region_name="us-east-1")


@pytest.fixture(params=["dynamodb-local", "moto"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The four tables, on DynamoDB Local or on moto; the endpoint is in the environment as on a classic worker."""
    # the session's environment first: what this fixture changes is then restored to it, not to an older state
    endpoint = request.getfixturevalue("dynamodb_local_endpoint") if request.param == "dynamodb-local" else None
    request.getfixturevalue("aws_test_env")
    names = TableNames.resolve(prefix=f"c{uuid.uuid4().hex[:10]}-")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if request.param == "moto":
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
        with mock_aws():
            create_tables(names)
            yield Backend(names, None)
        return
    assert endpoint is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    create_tables(names, host=endpoint)
    yield Backend(names, endpoint)
    for table in names.as_dict().values():
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").delete_table(TableName=table)


# -- positional items ----------------------------------------------------------------------------------------------


def test_items_take_positional_arguments_in_the_classic_field_order() -> None:
    region = RegionRequestItem("region-1", "image-1", "job-1", 1000)
    assert (region.region_id, region.image_id, region.job_id, region.start_time) == (
        "region-1",
        "image-1",
        "job-1",
        1000,
    )
    job = JobItem("image-1", "job-1", "s3://bucket/image.tif", "arn:role", "SM_ENDPOINT")
    assert (job.image_id, job.job_id, job.image_url, job.image_read_role, job.model_invoke_mode) == (
        "image-1",
        "job-1",
        "s3://bucket/image.tif",
        "arn:role",
        "SM_ENDPOINT",
    )
    endpoint = EndpointStatisticsItem("endpoint-1", 3, 8)
    assert (endpoint.endpoint, endpoint.regions_in_progress, endpoint.max_regions) == ("endpoint-1", 3, 8)
    feature = FeatureItem("image-1-7", "range", "image-1-region-0:0:0:0", ['{"type": "Feature"}'], 1700000000)
    assert (feature.hash_key, feature.range_key, feature.tile_id, feature.features, feature.expire_time) == (
        "image-1-7",
        "range",
        "image-1-region-0:0:0:0",
        ['{"type": "Feature"}'],
        1700000000,
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: RegionRequestItem("r", "i", job_id="j", unknown="x"),
        lambda: JobItem(*(["x"] * 23)),
        lambda: EndpointStatisticsItem("e", 1, 2, 3),
        lambda: RegionRequestItem("r", "i", region_id="again"),
        lambda: JobItem(hash_key="x"),
    ],
    ids=["unknown keyword", "too many for JobItem", "too many for EndpointStatisticsItem", "twice", "pynamodb keyword"],
)
def test_unknown_keywords_and_extra_positional_arguments_raise_type_error(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


def test_a_positional_region_is_stored_under_its_own_keys(backend: Backend) -> None:
    regions = RegionRequestTable(backend.names.region)
    regions.start_region_request(RegionRequestItem("region-7", "image-7", "job-7"))
    stored = regions.get_region_request("region-7", "image-7")
    assert stored is not None
    assert (stored.region_id, stored.image_id, stored.job_id) == ("region-7", "image-7", "job-7")


# -- except ClientError ----------------------------------------------------------------------------------------------


def test_except_client_error_catches_a_failed_helper_call_with_its_code(backend: Backend) -> None:
    helper = DDBHelper(backend.names.job, item_class=JobItem)
    helper.put_ddb_item(JobItem("image-1", "job-1"))
    with pytest.raises(ClientError) as caught:
        helper.put_ddb_item(JobItem("image-1", "job-2"), JobItem.image_id.does_not_exist())
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert isinstance(caught.value, DDBException) and caught.value.code == "ConditionalCheckFailedException"

    missing = DDBHelper(f"missing-{uuid.uuid4().hex[:8]}", item_class=JobItem)
    for call in (
        lambda: missing.get_ddb_item(JobItem("x")),
        lambda: missing.put_ddb_item(JobItem("x")),
        lambda: missing.update_ddb_item(JobItem("x", region_count=1)),
        lambda: missing.delete_ddb_item(JobItem("x")),
        lambda: missing.query_items(JobItem("x")),
    ):
        try:
            call()
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ResourceNotFoundException"
        else:
            pytest.fail("no error on a missing table")


def test_except_client_error_catches_endpoint_statistics_failures(backend: Backend) -> None:
    missing = EndpointStatisticsTable(f"missing-{uuid.uuid4().hex[:8]}")
    for call in (
        lambda: missing.upsert_endpoint("e", 4),
        lambda: missing.increment_region_count("e"),
        lambda: missing.decrement_region_count("e"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_update_error_is_a_client_error_and_a_ddb_update_exception(backend: Backend) -> None:
    helper = DDBHelper(backend.names.job, item_class=JobItem)
    with pytest.raises(ClientError) as caught:
        helper.update_ddb_item(JobItem("never-started", region_count=3))
    assert isinstance(caught.value, DDBUpdateException)
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_repository_methods_raise_the_classic_exception_types(backend: Backend) -> None:
    regions = RegionRequestTable(backend.names.region)
    with pytest.raises(CompleteRegionException):
        regions.complete_region_request(RegionRequestItem("never-started", "image-1"), RequestStatus.SUCCESS)
    with pytest.raises(CompleteRegionException):
        JobTable(backend.names.job).complete_region_request("never-started", error=False)


# -- a bare DDBItem with an assigned key ---------------------------------------------------------------------------


def test_ddb_key_is_assignable_on_every_item() -> None:
    job = JobItem()
    job.ddb_key = DDBKey(hash_key="image_id", hash_value="image-3")
    assert job.image_id == "image-3" and job.ddb_key.hash_value == "image-3"
    region = RegionRequestItem()
    region.ddb_key = DDBKey(hash_key="image_id", hash_value="image-3", range_key="region_id", range_value="r-1")
    assert (region.image_id, region.region_id) == ("image-3", "r-1")
    bare = DDBItem()
    bare.ddb_key = DDBKey(hash_key="pk", hash_value="v")
    assert bare.ddb_key == DDBKey(hash_key="pk", hash_value="v")
    with pytest.raises(TypeError):
        job.ddb_key = DDBKey(hash_key="not_a_key", hash_value="x")


# -- DDBHelper on any table, with plain dictionaries ---------------------------------------------------------------


@dataclass
class CustomItem(DDBItem):
    """An item of a user's own table, written as for the classic helper: a dataclass with its key set after init."""

    group: str
    name: str | None = None
    count: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        self.ddb_key = DDBKey(hash_key="group", hash_value=self.group, range_key="name", range_value=self.name)


@pytest.fixture
def custom_table(backend: Backend) -> Iterator[str]:
    """A table of the user's own, created with raw boto3: hash key ``group``, range key ``name``."""
    name = f"custom-{uuid.uuid4().hex[:8]}"
    client = backend.client()
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}, {"AttributeName": "name", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "group", "AttributeType": "S"},
            {"AttributeName": "name", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name)
    yield name
    client.delete_table(TableName=name)


def test_a_helper_from_a_table_name_alone_works_on_dataclass_items(custom_table: str) -> None:
    helper = DDBHelper(custom_table)
    helper.put_ddb_item(CustomItem("g", "a", 1, "first"))
    helper.batch_write_items([CustomItem("g", f"b{n}", n) for n in range(30)])
    assert helper.get_ddb_item(CustomItem("g", "a")) == {"group": "g", "name": "a", "count": 1, "label": "first"}
    updated = helper.update_ddb_item(CustomItem("g", "a", count=2))
    assert updated == {"group": "g", "name": "a", "count": 2, "label": "first"}
    legacy = helper.update_ddb_item(CustomItem("g", "a"), "SET count = count + :one, size = :s", {":one": 1, ":s": 9})
    assert (legacy["count"], legacy["size"]) == (3, 9)  # count and size are reserved words in DynamoDB
    assert "label" not in helper.update_ddb_item(CustomItem("g", "b0"), "REMOVE label")  # no values: still sent
    assert len(helper.query_items(CustomItem("g"))) == 31
    helper.delete_ddb_item(CustomItem("g", "a"))
    assert helper.get_ddb_item(CustomItem("g", "a")) == {}


def test_a_bare_ddb_item_with_an_assigned_key_works_on_any_table(custom_table: str) -> None:
    helper = DDBHelper(custom_table)
    item = DDBItem()
    item.ddb_key = DDBKey(hash_key="group", hash_value="bare", range_key="name", range_value="one")
    helper.put_ddb_item(item)
    helper.update_ddb_item(item, "SET label = :l", {":l": "set later"})
    assert helper.get_ddb_item(item) == {"group": "bare", "name": "one", "label": "set later"}
    whole_group = DDBItem()
    whole_group.ddb_key = DDBKey(hash_key="group", hash_value="bare")
    assert [row["name"] for row in helper.query_items(whole_group)] == ["one"]
    helper.delete_ddb_item(item)
    assert helper.query_items(whole_group) == []


def test_a_boto3_condition_guards_a_put_as_in_the_classic_upsert(custom_table: str) -> None:
    from boto3.dynamodb.conditions import Attr

    helper = DDBHelper(custom_table)
    helper.put_ddb_item(CustomItem("g", "once", 1), Attr("group").not_exists())
    with pytest.raises(ClientError) as caught:
        helper.put_ddb_item(CustomItem("g", "once", 2), Attr("group").not_exists())
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert helper.get_ddb_item(CustomItem("g", "once"))["count"] == 1


def test_get_update_params_feeds_a_raw_boto3_update(backend: Backend) -> None:
    jobs = JobTable(backend.names.job)
    jobs.start_image_request(JobItem("image-p", "job-p"))
    item = JobItem("image-p", region_count=4, width=640, extents="[0, 0, 640, 480]")
    expression, values = DDBHelper.get_update_params(item.to_update(), item)
    assert expression.startswith("SET ") and "#" not in expression
    table = boto3.resource("dynamodb", endpoint_url=backend.endpoint, region_name="us-east-1").Table(backend.names.job)
    table.update_item(Key=DDBHelper.get_keys(item), UpdateExpression=expression, ExpressionAttributeValues=values)
    stored = jobs.get_image_request("image-p")
    assert (stored.region_count, stored.width, stored.extents, stored.job_id) == (4, 640, "[0, 0, 640, 480]", "job-p")


def test_update_attributes_without_an_expression_raise_as_in_the_classic(backend: Backend) -> None:
    jobs = JobTable(backend.names.job)
    jobs.start_image_request(JobItem("image-u"))
    with pytest.raises(DDBUpdateException):
        jobs.update_ddb_item(JobItem("image-u", width=5), update_attr={":w": 7})
    assert jobs.get_image_request("image-u").width is None


# -- issue 14, item 5: the legacy update string path ---------------------------------------------------------------


def test_a_callers_placeholder_never_stands_for_a_generated_one(backend: Backend) -> None:
    jobs = JobTable(backend.names.job)
    jobs.start_image_request(JobItem("image-n", width=1, height=2))
    # the generated placeholder for region_count must not be #n0, which the caller uses for width
    stored = jobs.update_ddb_item(
        JobItem("image-n"), "SET region_count = :c, #n0 = :w", {":c": 4, ":w": 640, "#n0": "width"}
    )
    assert (stored["region_count"], stored["width"], stored["height"]) == (4, 640, 2)
    # a #n0 the expression does not use: before the fix it replaced the generated #n0 and the write hit width
    try:
        jobs.update_ddb_item(JobItem("image-n"), "SET region_count = :c", {":c": 5, "#n0": "width"})
    except DDBUpdateException as err:  # DynamoDB refuses a name the expression does not use
        assert err.code == "ValidationException"
    job = jobs.get_image_request("image-n")
    assert job.width == 640 and job.region_count in (4, 5)


def test_a_value_the_attribute_refuses_is_refused_before_the_request(backend: Backend) -> None:
    jobs = JobTable(backend.names.job)
    jobs.start_image_request(JobItem("image-v", region_count=2))
    for expression, values in (
        ("SET region_count = :c", {":c": "4"}),
        ("SET region_count = if_not_exists(region_count, :c)", {":c": "4"}),
        ("SET region_success = region_success + :one", {":one": "1"}),
        ("ADD region_error :one", {":one": "1"}),
        ("SET image_url = :u", {":u": 5}),
    ):
        with pytest.raises(DDBUpdateException) as caught:
            jobs.update_ddb_item(JobItem("image-v"), expression, values)
        assert isinstance(caught.value.__cause__, (TypeError, ValueError))
    with pytest.raises(DDBUpdateException):  # a helper without item class checks a modeled item the same way
        DDBHelper(backend.names.job).update_ddb_item(JobItem("image-v"), "SET region_count = :c", {":c": "4"})
    job = jobs.get_image_request("image-v")  # still readable: nothing was written
    assert (job.region_count, job.region_success, job.region_error, job.image_url) == (2, 0, 0, None)
    assert jobs.complete_region_request("image-v", error=False).region_success == 1


def test_the_helpers_table_is_a_boto3_table_as_in_the_classic(custom_table: str) -> None:
    helper = DDBHelper(custom_table)
    helper.table.put_item(Item={"group": "t", "name": "raw", "count": 3})
    raw = helper.table.get_item(Key={"group": "t", "name": "raw"})["Item"]
    assert DDBHelper.convert_decimal(raw) == {"group": "t", "name": "raw", "count": 3}
    assert helper.get_ddb_item(CustomItem("t", "raw"))["count"] == 3


def test_the_other_calls_that_let_client_error_through_still_do(backend: Backend) -> None:
    from model_runner.database import FeatureTable

    suffix = uuid.uuid4().hex[:8]
    jobs = JobTable(f"missing-jobs-{suffix}")
    features = FeatureTable(f"missing-features-{suffix}", (512, 512), (32, 32))
    for call in (
        lambda: jobs.update_image_request(JobItem("x", region_count=1)),
        lambda: features.get_features("x"),
        lambda: EndpointStatisticsTable(f"missing-ep-{suffix}").current_in_progress_regions("e"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
