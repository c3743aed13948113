"""The foundation on DynamoDB Local: table creation, runtime binding, and a round trip of every model."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import pytest
from pynamodb.models import Model

from model_runner.database import (
    ConfigurationError,
    EndpointStatisticsItem,
    FeatureItem,
    JobItem,
    JobTable,
    RegionRequestItem,
    RequestedJobsItem,
    TableNames,
    create_tables,
    delete_tables,
)
from model_runner.database.tables import TABLE_MODELS

pytestmark = pytest.mark.integration


def test_create_tables_creates_every_table_with_keys_and_ttl(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    report = create_tables(table_names, host=dynamodb_local_endpoint)
    assert sorted(report.created) == sorted(table_names.as_dict().values())
    botocore_client = JobTable(table_names.job, host=dynamodb_local_endpoint).client
    try:
        for role, table_name in table_names.as_dict().items():
            table = botocore_client.describe_table(TableName=table_name)["Table"]
            expected_model = TABLE_MODELS[role][0]
            expected_keys = {
                (attr.attr_name, "HASH" if attr.is_hash_key else "RANGE")
                for attr in expected_model.get_attributes().values()
                if attr.is_hash_key or attr.is_range_key
            }
            assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == expected_keys
            assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            ttl = botocore_client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
            if role in ("endpoint", "requested"):  # statistics never expire; requested jobs are deleted when done
                assert ttl["TimeToLiveStatus"] == "DISABLED"
            else:
                assert ttl["TimeToLiveStatus"] == "ENABLED"
                assert ttl["AttributeName"] == "expire_time"
    finally:
        delete_tables(table_names, host=dynamodb_local_endpoint)


def test_create_tables_twice_succeeds_and_changes_nothing(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    create_tables(table_names, host=dynamodb_local_endpoint)
    try:
        jobs = JobTable(table_names.job, host=dynamodb_local_endpoint)
        jobs.put_ddb_item(JobItem(image_id="kept", region_count=3))
        again = create_tables(table_names, host=dynamodb_local_endpoint)
        assert again.created == []
        assert sorted(again.existing) == sorted(table_names.as_dict().values())
        assert again.ttl_enabled == []
        assert jobs.get_ddb_item(JobItem(image_id="kept"))["region_count"] == 3
    finally:
        report = delete_tables(table_names, host=dynamodb_local_endpoint)
    assert sorted(report.deleted) == sorted(table_names.as_dict().values())
    assert delete_tables(table_names, host=dynamodb_local_endpoint).deleted == []


def test_two_job_tables_on_two_names_stay_separate(dynamodb_local_endpoint: str) -> None:
    first_names = TableNames.resolve(prefix="sep-a-")
    second_names = TableNames.resolve(prefix="sep-b-")
    for names in (first_names, second_names):
        create_tables(names, host=dynamodb_local_endpoint)
    try:
        first = JobTable(first_names.job, host=dynamodb_local_endpoint)
        second = JobTable(second_names.job, host=dynamodb_local_endpoint)
        assert first.model is not second.model
        first.put_ddb_item(JobItem(image_id="only-in-first", width=1))
        second.put_ddb_item(JobItem(image_id="only-in-second", width=2))
        assert first.get_ddb_item(JobItem(image_id="only-in-second")) == {}
        assert second.get_ddb_item(JobItem(image_id="only-in-first")) == {}
        assert first.get_ddb_item(JobItem(image_id="only-in-first"))["width"] == 1
        # binding the same name again reuses the class and its connection
        again = JobTable(first_names.job, host=dynamodb_local_endpoint)
        assert again.model is first.model
        assert again.model._get_connection() is first.model._get_connection()
    finally:
        for names in (first_names, second_names):
            delete_tables(names, host=dynamodb_local_endpoint)


def test_binding_from_many_threads_builds_one_class(dynamodb_local_endpoint: str) -> None:
    results: list[type] = []
    barrier = threading.Barrier(16)

    def bind() -> None:
        barrier.wait()
        results.append(JobTable("threaded-binding-table", host=dynamodb_local_endpoint).model)

    threads = [threading.Thread(target=bind) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(model) for model in results}) == 1


def test_table_name_comes_from_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch, dynamodb_local_endpoint: str
) -> None:
    monkeypatch.delenv("JOB_TABLE", raising=False)
    with pytest.raises(ConfigurationError, match="JOB_TABLE"):
        JobTable(host=dynamodb_local_endpoint)
    monkeypatch.setenv("JOB_TABLE", "from-the-environment")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local_endpoint)
    table = JobTable()
    assert table.table_name == "from-the-environment"
    assert table.settings.host == dynamodb_local_endpoint


FULL_ITEMS: dict[str, Model] = {
    "job": JobItem(
        image_id="image-1",
        job_id="job-1",
        image_url="s3://bucket/image.ntf",
        image_read_role="arn:aws:iam::123456789012:role/read",
        model_invoke_mode="SM_ENDPOINT",
        start_time=1_700_000_000_000,
        expire_time=1_700_600_000,
        end_time=1_700_000_100_000,
        region_success=3,
        region_error=1,
        region_count=4,
        width=10240,
        height=8192,
        extents="[0, 0, 10240, 8192]",
        tile_size="(512, 512)",
        tile_overlap="(32, 32)",
        model_name="ship-detector",
        outputs='[{"type": "S3", "bucket": "out"}]',
        processing_duration=100,
        feature_properties="[]",
        feature_distillation_option='{"algorithm": "NMS", "iou_threshold": 0.75}',
        roi_wkt="POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))",
        completed_regions={"region-1", "region-2"},
        completed_regions_binary={b"region-1"},
        aggregated_by="worker-7",
    ),
    "region": RegionRequestItem(
        image_id="image-1",
        region_id="region-1",
        job_id="job-1",
        start_time=1_700_000_000_000,
        last_updated_time=1_700_000_050_000,
        end_time=1_700_000_100_000,
        expire_time=1_700_600_000,
        image_read_role="arn:aws:iam::123456789012:role/read",
        processing_duration=100_000,
        message="two tiles failed",
        region_status="PARTIAL",
        total_tiles=4,
        failed_tiles=[[[0, 512], [512, 512]], [[512, 0], [512, 512]]],
        failed_tile_count=2,
        succeeded_tiles=[[[0, 0], [512, 512]], {"tile": [[512, 512], [512, 512]], "note": None}],
        succeeded_tile_count=2,
        region_bounds=[[0, 0], [1024, 1024]],
        region_retry_count=1,
        tile_compression="NONE",
        tile_format="NITF",
        tile_overlap=[32, 32],
        tile_size=[512, 512],
    ),
    "endpoint": EndpointStatisticsItem(endpoint="ship-detector-endpoint", max_regions=8, regions_in_progress=3),
    "feature": FeatureItem(
        hash_key="image-1-7",
        range_key="image-1-region-0:1:0:1",
        tile_id="image-1-region-0:1:0:1",
        expire_time=1_700_600_000,
        features=['{"type": "Feature", "properties": {"a": 1.5}, "geometry": null}'],
        packed=b"\x01\x00binary\xff",
        feature_count=1,
        source="0:0:512:512",
        generation="g1",
        generation_items=1,
        written_at=1_700_000_000_000,
    ),
    "requested": RequestedJobsItem(
        endpoint_id="ship-detector-endpoint",
        job_id="job-1",
        request_time=1_700_000_000,
        request_payload={"job_id": "job-1", "tile_size": [512, 512], "outputs": [{"type": "S3"}], "empty": ""},
        last_attempt=1_700_000_100,
        num_attempts=2,
        regions_complete=["r1", "#abcdefghijklmnop"],
        region_count=4,
        attempt_token="token",
    ),
}


@pytest.mark.parametrize("role", sorted(FULL_ITEMS))
def test_every_model_round_trips_with_every_attribute_set(
    role: str, dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    from model_runner.database import DDBHelper

    model = TABLE_MODELS[role][0]
    item = FULL_ITEMS[role]
    for name in model.get_attributes():
        assert getattr(item, name) is not None, f"the test item must set {name}"
    helper = DDBHelper(ddb_tables.as_dict()[role], item_class=model, host=dynamodb_local_endpoint)
    helper.put_ddb_item(item)
    stored = helper.model.get(*item.key_values(), consistent_read=True)
    assert stored.attribute_values == item.attribute_values
    # what was read can be written back unchanged (no float/Decimal trouble), and reads back the same
    helper.put_ddb_item(stored)
    assert helper.model.get(*item.key_values(), consistent_read=True).attribute_values == item.attribute_values


def test_numbers_of_every_python_type_are_accepted(dynamodb_local_endpoint: str, ddb_tables: TableNames) -> None:
    jobs = JobTable(ddb_tables.job, host=dynamodb_local_endpoint)
    jobs.put_ddb_item(JobItem(image_id="numbers", width=Decimal("10"), height=12.0, expire_time=Decimal("1700000000")))
    stored = jobs.get_ddb_item(JobItem(image_id="numbers"))
    assert stored == {"image_id": "numbers", "width": 10, "height": 12, "expire_time": 1700000000}
    assert all(type(stored[name]) is int for name in ("width", "height", "expire_time"))


def test_a_missing_region_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        JobTable("table-without-region", host="http://127.0.0.1:9")
