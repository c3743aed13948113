"""ImageRequestItem/ImageRequestTable (upstream's names of the job table) and the expiry settings, on DynamoDB Local."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from shapely.geometry import box

from model_runner.api import ImageRequest
from model_runner.common.typing import TileState
from model_runner.database import (
    ConfigurationError,
    FeatureTable,
    GetImageRequestItemException,
    ImageRequestItem,
    ImageRequestTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    TableNames,
)

pytestmark = pytest.mark.integration

DAY = 86_400
HEAD_ORDER = (
    "image_id",
    "job_id",
    "image_url",
    "image_read_role",
    "model_invoke_mode",
    "start_time",
    "expire_time",
    "end_time",
    "region_success",
    "region_error",
    "region_count",
    "width",
    "height",
    "tile_size",
    "tile_overlap",
    "model_name",
    "outputs",
    "processing_duration",
    "feature_properties",
    "feature_distillation_option",
    "roi_wkt",
)


@pytest.fixture
def image_requests(job_table: JobTable) -> Iterator[ImageRequestTable]:
    """An ImageRequestTable on the same table as ``job_table``."""
    yield ImageRequestTable(job_table.table_name, host=job_table.settings.host)


def test_image_request_item_takes_upstream_positional_order() -> None:
    values = [f"v{i}" if i in (0, 1, 2, 3, 4) else None for i in range(len(HEAD_ORDER))]
    values[10], values[11], values[13], values[15] = 3, 640, "(512, 512)", "aircraft"
    item = ImageRequestItem(*values)
    assert {name: getattr(item, name) for name in HEAD_ORDER} == dict(zip(HEAD_ORDER, values, strict=True))
    assert item.extents is None and isinstance(item, JobItem)
    with pytest.raises(TypeError):
        ImageRequestItem(*values, "one too many")
    assert ImageRequestItem("img", extents="POLYGON ((0 0, 1 0, 1 1, 0 0))").extents is not None  # by keyword
    assert JobItem.classic_fields.index("extents") == 13  # the seed's order keeps it


def test_from_image_request_gives_an_image_request_item() -> None:
    request = ImageRequest(
        job_id="j",
        image_id="j:s3://b/i",
        image_url="s3://b/i",
        model_name="m",
        tile_size=(2048, 2048),
        roi=box(0, 0, 1, 1),
    )
    item = ImageRequestItem.from_image_request(request)
    assert type(item) is ImageRequestItem
    assert (item.tile_size, item.tile_overlap, item.roi_wkt) == ("(2048, 2048)", "(50, 50)", box(0, 0, 1, 1).wkt)
    assert (item.outputs, item.feature_properties) == ("[]", "[]")


def test_image_request_table_is_the_job_table_under_its_new_name(
    job_table: JobTable, image_requests: ImageRequestTable
) -> None:
    started = image_requests.start_image_request(ImageRequestItem("img", "job", region_count=Decimal(2)))
    assert type(started).__mro__[1] is ImageRequestItem  # the bound class of ImageRequestItem
    assert image_requests.complete_region_request("img", error=False, region_id="r1").region_success == 1
    done = image_requests.complete_region_request("img", error=True, region_id="r2")
    assert ImageRequestTable.is_image_request_complete(done)
    assert image_requests.complete_region_request("img", error=True, region_id="r2").region_error == 1  # once
    ended = image_requests.end_image_request("img")
    assert ended.end_time is not None and isinstance(ended, ImageRequestItem)
    got = image_requests.get_image_request("img")
    assert isinstance(got, ImageRequestItem) and got.region_success == Decimal(1) == 1
    assert got.attribute_values == job_table.get_image_request("img").attribute_values  # one table, one item
    with pytest.raises(GetImageRequestItemException):
        image_requests.get_image_request("missing")


def test_extents_written_by_the_seed_api_are_read_by_the_new_one(
    job_table: JobTable, image_requests: ImageRequestTable
) -> None:
    job_table.start_image_request(JobItem("img", extents="[0, 0, 10, 10]"))
    assert image_requests.get_image_request("img").extents == "[0, 0, 10, 10]"
    image_requests.update_image_request(ImageRequestItem("img", width=4, extents="[1, 1, 2, 2]"))
    assert job_table.get_image_request("img").extents == "[1, 1, 2, 2]"


def test_the_classic_helper_api_works_on_image_request_items(image_requests: ImageRequestTable) -> None:
    image_requests.start_image_request(ImageRequestItem("img"))
    updated = image_requests.update_ddb_item(ImageRequestItem("img", region_count=Decimal(3), width=Decimal(640)))
    assert updated["region_count"] == 3 and updated["width"] == 640
    assert image_requests.get_ddb_item(ImageRequestItem("img"))["region_count"] == Decimal(3)
    stored = image_requests.get_image_request("img")
    assert stored.region_count == 3 and type(stored.region_count) is int


# -- table names from the environment --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"IMAGE_REQUEST_TABLE": "images"}, "images"),
        ({"JOB_TABLE": "jobs"}, "jobs"),
        ({"JOB_TABLE": "same", "IMAGE_REQUEST_TABLE": "same"}, "same"),
        ({"JOB_TABLE": "", "IMAGE_REQUEST_TABLE": "images"}, "images"),
    ],
)
def test_image_request_table_or_job_table_names_the_table(
    monkeypatch: pytest.MonkeyPatch, aws_test_env: None, variables: dict[str, str], expected: str
) -> None:
    for name in ("JOB_TABLE", "IMAGE_REQUEST_TABLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert ImageRequestTable().table_name == JobTable().table_name == expected
    assert TableNames.resolve().job == expected


def test_job_table_and_image_request_table_naming_different_tables_is_refused(
    monkeypatch: pytest.MonkeyPatch, aws_test_env: None
) -> None:
    monkeypatch.setenv("JOB_TABLE", "jobs")
    monkeypatch.setenv("IMAGE_REQUEST_TABLE", "images")
    for make in (JobTable, ImageRequestTable, TableNames.resolve):
        with pytest.raises(ConfigurationError, match="JOB_TABLE='jobs' and IMAGE_REQUEST_TABLE='images'"):
            make()
    assert JobTable("explicit").table_name == "explicit"  # an explicit name needs no variable


# -- expiry: the argument, then EXPIRE_DAYS, then DDB_TTL_IN_DAYS -----------------------------------------------


@pytest.fixture
def clean_expiry_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("EXPIRE_DAYS", raising=False)
    monkeypatch.delenv("DDB_TTL_IN_DAYS", raising=False)
    return monkeypatch


def test_ddb_ttl_in_days_sets_the_expiry_of_jobs_and_regions(
    clean_expiry_env: pytest.MonkeyPatch, job_table: JobTable, region_request_table: RegionRequestTable
) -> None:
    clean_expiry_env.setenv("DDB_TTL_IN_DAYS", "2")
    jobs = ImageRequestTable(job_table.table_name, host=job_table.settings.host)
    regions = RegionRequestTable(region_request_table.table_name, host=region_request_table.settings.host)
    job = jobs.start_image_request(ImageRequestItem("img"))
    region = regions.start_region_request(RegionRequestItem(image_id="img", region_id="r"))
    regions.add_tiles("img", "r", [((0, 0), (8, 8))], TileState.SUCCEEDED)
    for expire_time in (job.expire_time, region.expire_time):
        assert expire_time is not None and abs(expire_time - (time.time() + 2 * DAY)) < 60
    assert job.start_time is not None and abs(job.start_time / 1000 + 2 * DAY - job.expire_time) < 5


def test_the_argument_wins_then_expire_days_then_ddb_ttl_in_days(
    clean_expiry_env: pytest.MonkeyPatch, aws_test_env: None
) -> None:
    assert JobTable("t-expiry").settings.expire_days == 7
    clean_expiry_env.setenv("DDB_TTL_IN_DAYS", "3")
    assert JobTable("t-expiry").settings.expire_days == 3
    clean_expiry_env.setenv("EXPIRE_DAYS", "5")
    assert JobTable("t-expiry").settings.expire_days == 5
    assert RegionRequestTable("t-expiry").settings.expire_days == 5
    assert FeatureTable("t-expiry", (512, 512), (32, 32)).settings.expire_days == 5  # features never before jobs
    assert JobTable("t-expiry", expire_days=9).settings.expire_days == 9


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "7"])
def test_expire_days_below_one_or_not_a_whole_number_is_refused(aws_test_env: None, value: object) -> None:
    with pytest.raises(ConfigurationError, match="expire_days"):
        JobTable("t-expiry", expire_days=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("variable", ["EXPIRE_DAYS", "DDB_TTL_IN_DAYS"])
@pytest.mark.parametrize("text", ["0", "-3", "seven", "1.5"])
def test_a_bad_variable_is_refused_naming_it(
    clean_expiry_env: pytest.MonkeyPatch, aws_test_env: None, variable: str, text: str
) -> None:
    clean_expiry_env.setenv(variable, text)
    with pytest.raises(ConfigurationError, match=variable):
        RegionRequestTable("t-expiry")
    assert RegionRequestTable("t-expiry", expire_days=2).settings.expire_days == 2  # the argument wins
    from model_runner.database import EndpointStatisticsTable, RequestedJobsTable

    EndpointStatisticsTable("t-expiry")  # tables without expiry do not read the variables
    RequestedJobsTable("t-expiry")
