"""The demo job driver on DynamoDB Local: whole jobs with many workers, with and without failures, and its recorder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from model_runner.common.typing import ImageRegion, RequestStatus
from model_runner.database import (
    CompleteRegionException,
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    TableNames,
)
from model_runner.demo import (
    CapacityRecorder,
    JobReport,
    Progress,
    Repositories,
    SyntheticDetector,
    SyntheticImage,
    generate_crops,
    run_job,
)

pytestmark = pytest.mark.integration

TILE = (512, 512)
OVERLAP = (32, 32)
#: A small job: 4 regions of 1024 x 1024, 9 tiles each (the last row and column 64 px wide).
SMALL: dict[str, Any] = {
    "image_size": (2048, 2048),
    "region_size": (1024, 1024),
    "tile_size": TILE,
    "overlap": OVERLAP,
    "workers": 4,
    "tile_workers": 3,
    "features_per_tile": 6,
}


@pytest.fixture
def repositories(dynamodb_local_endpoint: str, ddb_tables: TableNames) -> Repositories:
    return Repositories.connect(ddb_tables, dynamodb_local_endpoint, tile_size=TILE, overlap=OVERLAP)


def expected_ids(image_id: str, tiles: list[ImageRegion], seed: int, features_per_tile: int) -> set[str]:
    """The ids the detector gives for tiles, computed without the tables."""
    detector = SyntheticDetector(seed, features_per_tile)
    image = SyntheticImage(image_id, 1, 1)
    return {str(feature["id"]) for tile in tiles for feature in detector.detect(image, tile)}


def all_tiles(spec: dict[str, Any]) -> list[ImageRegion]:
    width, height = spec["image_size"]
    regions = generate_crops(((0, 0), (width, height)), spec["region_size"], (0, 0))
    return [tile for region in regions for tile in generate_crops(region, spec["tile_size"], spec["overlap"])]


def stored_ids(feature_table: FeatureTable, image_id: str) -> list[str]:
    return [str(feature["id"]) for feature in feature_table.iter_features(image_id)]


def region_rows(repositories: Repositories, image_id: str) -> list[dict[str, Any]]:
    return repositories.region.query_items(RegionRequestItem(image_id=image_id))


# -- the geometry of the synthetic image ----------------------------------------------------------------------------


def test_crops_cover_the_rectangle_with_the_overlap_and_clip_at_the_edges() -> None:
    crops = generate_crops(((1024, 0), (1024, 1000)), (512, 512), (32, 32))

    assert [origin for origin, _ in crops[:3]] == [(1024, 0), (1024, 480), (1024, 960)]
    assert crops[2][1] == (64, 512)  # 1024 - 960 wide, clipped at the right edge
    assert crops[-1] == ((1024 + 960, 960), (64, 1000 - 960))
    assert len(crops) == 9
    covered = {(r, c) for (r0, c0), (w, h) in crops for r in range(r0, r0 + h, 8) for c in range(c0, c0 + w, 8)}
    assert covered >= {(r, c) for r in range(1024, 2024, 8) for c in range(0, 1024, 8)}


def test_the_detector_is_deterministic_and_stays_inside_the_tile() -> None:
    image = SyntheticImage("img", 2048, 2048)
    tile = ((512, 960), (64, 512))
    first = SyntheticDetector(seed=5).detect(image, tile)
    again = SyntheticDetector(seed=5).detect(image, tile, attempt=2)

    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    for feature in first:
        minx, miny, maxx, maxy = feature["properties"]["imageBBox"]
        assert 960 <= minx < maxx <= 1024 and 512 <= miny < maxy <= 1024
        assert feature["properties"]["image_id"] == "img"


# -- whole jobs -----------------------------------------------------------------------------------------------------


def test_a_job_without_failures_ends_complete_with_every_feature_aggregated_once(repositories: Repositories) -> None:
    seen: list[Progress] = []
    report = run_job(repositories, image_id="clean", seed=1, progress=seen.append, **SMALL)

    tiles = all_tiles(SMALL)
    expected = expected_ids("clean", tiles, seed=1, features_per_tile=SMALL["features_per_tile"])
    assert report.ok and report.state == "complete"
    assert (report.regions, report.regions_succeeded, report.regions_failed) == (4, 4, 0)
    assert (report.tiles, report.tiles_succeeded, report.tile_attempts) == (36, 36, 36)
    assert report.features_written == report.features_aggregated == len(expected) > 0
    assert report.aggregations == 1 and report.region_redeliveries == 0
    ids = stored_ids(repositories.feature, "clean")
    assert len(ids) == len(set(ids)) and set(ids) == expected

    job = repositories.job.get_image_request("clean")
    assert (job.region_count, job.region_success, job.region_error) == (4, 4, 0)
    assert job.end_time is not None and job.aggregated_by
    rows = region_rows(repositories, "clean")
    assert (
        sorted((row["region_status"], row["succeeded_tile_count"], row["total_tiles"]) for row in rows)
        == [("SUCCESS", 9, 9)] * 4
    )
    assert repositories.endpoint.current_in_progress_regions("synthetic-detector-endpoint") == 0

    assert seen[-1] == Progress(36, 36, 4, 4, len(expected), "done")
    assert max(p.tiles_done for p in seen) == 36

    capacity = report.capacity
    assert capacity.requests["UpdateItem"] >= 36 + 4 * 3  # a tile each; a region: start, total, completions
    assert capacity.requests["BatchWriteItem"] >= 1 and capacity.write_units > 0 and capacity.read_units > 0
    assert report.throughput()["tiles_per_second"] > 0


@pytest.mark.parametrize("seed", [10, 36])  # seeds whose draws crash a region and duplicate a completion
def test_failures_crashes_and_duplicates_keep_every_count_exact(repositories: Repositories, seed: int) -> None:
    image_id = f"faulty-{seed}"
    report = run_job(repositories, image_id=image_id, seed=seed, failure_rate=0.25, **SMALL)

    # the run exercised what it is meant to
    assert report.redeliveries["crash"] >= 1 and report.redeliveries["failed_tiles"] >= 1
    assert report.duplicate_completions >= 1 and report.tile_failures >= 1
    assert report.ok, report.to_json()

    job = repositories.job.get_image_request(image_id)
    rows = region_rows(repositories, image_id)
    failed_regions = [row for row in rows if row["region_status"] != RequestStatus.SUCCESS.value]
    assert len(rows) == job.region_count == 4
    assert job.region_success + job.region_error == 4
    assert job.region_error == len(failed_regions) == report.regions_failed
    assert report.state == ("complete" if not failed_regions else "partial" if len(failed_regions) < 4 else "failed")

    # each tile recorded once per state; a restart counted once per redelivery
    for row in rows:
        assert (
            row["succeeded_tile_count"]
            == len(row["succeeded_tiles"])
            == len({json.dumps(t) for t in row["succeeded_tiles"]})
        )
    assert (
        sum(row["region_retry_count"] for row in rows) == report.region_redeliveries == report.region_retries_recorded
    )

    # the aggregate holds the features of every succeeded tile, each once; beyond them only features of a tile that
    # a crashed worker wrote before its retry failed (features are written before the tile's state)
    def tiles(name: str) -> list[ImageRegion]:
        return [((t[0][0], t[0][1]), (t[1][0], t[1][1])) for row in rows for t in row[name]]

    succeeded = tiles("succeeded_tiles")
    of_succeeded = expected_ids(image_id, succeeded, seed=seed, features_per_tile=SMALL["features_per_tile"])
    of_recorded = expected_ids(image_id, succeeded + tiles("failed_tiles"), seed, SMALL["features_per_tile"])
    ids = stored_ids(repositories.feature, image_id)
    assert len(ids) == len(set(ids)) == report.features_aggregated == report.features_written
    assert of_succeeded <= set(ids) <= of_recorded
    assert report.feature_writes >= report.features_written  # the crashed tile's features were sent twice
    assert report.tiles_succeeded == len(succeeded) and report.tiles_failed == 36 - len(succeeded)
    assert repositories.endpoint.current_in_progress_regions("synthetic-detector-endpoint") == 0


def test_jobs_with_the_same_seed_detect_the_same_features(repositories: Repositories) -> None:
    first = run_job(repositories, image_id="same-1", seed=4, **SMALL)
    second = run_job(repositories, image_id="same-2", seed=4, **SMALL)
    other = run_job(repositories, image_id="other", seed=5, **SMALL)

    assert first.features_written == second.features_written != other.features_written


def test_a_feature_table_with_another_tiling_is_refused_before_any_request(
    dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    repositories = Repositories.connect(ddb_tables, dynamodb_local_endpoint, tile_size=(1024, 1024), overlap=OVERLAP)
    with pytest.raises(ValueError, match="tiles"):
        run_job(repositories, image_id="mismatch", **SMALL)
    with pytest.raises(Exception, match="does not exist"):
        repositories.job.get_image_request("mismatch")


def test_a_run_on_missing_tables_fails_with_the_typed_error(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    from model_runner.database import StartImageException

    with pytest.raises(StartImageException) as caught:
        run_job(names=table_names, endpoint_url=dynamodb_local_endpoint, image_id="nowhere", **SMALL)
    assert caught.value.table_missing


# -- the aggregation claim ------------------------------------------------------------------------------------------


def test_the_aggregation_is_claimed_once_and_a_retry_of_the_winner_wins_again(job_table: JobTable) -> None:
    job_table.start_image_request(JobItem(image_id="claim", outputs="[]"))
    won = job_table.claim_aggregation("claim", "worker-a")
    lost = job_table.claim_aggregation("claim", "worker-b")
    retried = job_table.claim_aggregation("claim", "worker-a")

    assert (won, lost, retried) == (True, False, True)
    stored = job_table.get_image_request("claim")
    assert stored.aggregated_by == "worker-a" and stored.outputs == "[]"
    # a stale job written back never releases or moves the claim
    job_table.update_image_request(JobItem(image_id="claim", aggregated_by="worker-b", width=5))
    assert job_table.get_image_request("claim").aggregated_by == "worker-a"
    with pytest.raises(CompleteRegionException):
        job_table.claim_aggregation("no-such-job", "worker-a")


# -- the capacity recorder ------------------------------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[CapacityRecorder]:
    with CapacityRecorder() as recording:
        yield recording


def test_the_recorder_counts_requests_errors_and_capacity_until_detached(
    job_table: JobTable, endpoint_statistics_table: EndpointStatisticsTable, recorder: CapacityRecorder
) -> None:
    recorder.attach(job_table.client, endpoint_statistics_table.client)
    recorder.attach(job_table.client)  # attaching again counts nothing twice
    job_table.start_image_request(JobItem(image_id="counted"))
    job_table.start_image_request(JobItem(image_id="counted"))  # conditional put refused, then a read
    endpoint_statistics_table.increment_region_count("ep")
    endpoint_statistics_table.current_in_progress_regions("ep")

    summary = recorder.summary()
    assert summary.requests == {"PutItem": 2, "GetItem": 2, "UpdateItem": 1}
    assert summary.errors == {"ConditionalCheckFailedException": 1}
    assert summary.write_units >= 2 and summary.read_units >= 1
    assert set(summary.units_by_table) == {job_table.table_name, endpoint_statistics_table.table_name}
    assert summary.to_json()["total_requests"] == 5

    recorder.detach()
    job_table.get_image_request("counted")
    assert recorder.summary().total_requests == 5
    recorder.reset()
    assert recorder.summary() == type(summary)()


def test_a_report_serialises_to_json(repositories: Repositories) -> None:
    report: JobReport = run_job(repositories, image_id="as-json", **SMALL)
    data = json.loads(json.dumps(report.to_json()))

    assert data["ok"] is True and data["features_match"] is True
    assert data["spec"]["image_id"] == "as-json" and data["capacity"]["total_requests"] > 0
    assert data["features_written"] == data["features_aggregated"]
