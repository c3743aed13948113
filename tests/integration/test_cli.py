"""The model-runner-db command line against DynamoDB Local: every command, its --json output, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_runner.cli.main import main
from model_runner.common.typing import RequestStatus, TileState
from model_runner.database import (
    EndpointStatisticsTable,
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    TableNames,
)
from model_runner.database.tables import TABLE_MODELS
from model_runner.demo import SyntheticDetector, SyntheticImage
from model_runner.testing.dynamodb_local import free_port, stop_detached

pytestmark = pytest.mark.integration


class Run:
    """What one command did."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)

    def one_error_line(self) -> str:
        """The error, checked to be one line on stderr without a traceback."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        assert lines[0].startswith("model-runner-db: error: ")
        return lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def table_options(endpoint: str, names: TableNames) -> list[str]:
    return [
        "--endpoint-url",
        endpoint,
        "--job-table",
        names.job,
        "--region-table",
        names.region,
        "--endpoint-table",
        names.endpoint,
        "--feature-table",
        names.feature,
        "--requested-table",
        names.requested,
    ]


@pytest.fixture
def opts(dynamodb_local_endpoint: str, ddb_tables: TableNames) -> list[str]:
    """Global options reaching the test's tables (created)."""
    return table_options(dynamodb_local_endpoint, ddb_tables)


def add_job(endpoint: str, names: TableNames, image_id: str, regions: int = 3) -> JobTable:
    job_table = JobTable(names.job, host=endpoint)
    job_table.start_image_request(
        JobItem(image_id=image_id, job_id=f"job-{image_id}", model_name="model-x", outputs='[{"type": "S3"}]')
    )
    job_table.update_image_request(JobItem(image_id=image_id, region_count=regions, width=4096, height=2048))
    return job_table


# -- create-tables / delete-tables ----------------------------------------------------------------------------------


def test_create_tables_creates_then_reports_existing_tables(cli: Any, dynamodb_local_endpoint: str) -> None:
    prefix = f"cli{os.getpid()}-"
    first = cli("--endpoint-url", dynamodb_local_endpoint, "--table-prefix", prefix, "create-tables", "--json")
    again = cli("create-tables", "--json", "--endpoint-url", dynamodb_local_endpoint, "--table-prefix", prefix)
    try:
        assert first.code == again.code == 0
        assert [t["result"] for t in first.json()["tables"]] == ["created"] * len(TABLE_MODELS)
        assert [t["result"] for t in again.json()["tables"]] == ["exists"] * len(TABLE_MODELS)
        assert {t["table"] for t in first.json()["tables"]} == set(TableNames.resolve(prefix=prefix).as_dict().values())
        text = cli("--endpoint-url", dynamodb_local_endpoint, "--table-prefix", prefix, "create-tables")
        assert text.code == 0 and f"{prefix}ImageProcessingJobStatus" in text.out and "exists" in text.out
    finally:
        deleted = cli("--endpoint-url", dynamodb_local_endpoint, "--table-prefix", prefix, "delete-tables", "--yes")
    assert deleted.code == 0 and deleted.out.count("deleted") == len(TABLE_MODELS)


def test_delete_tables_refuses_without_yes(cli: Any, opts: list[str], ddb_tables: TableNames) -> None:
    refused = cli(*opts, "delete-tables")

    assert refused.code == 2
    assert "--yes" in refused.one_error_line() and ddb_tables.job in refused.err
    assert cli(*opts, "create-tables", "--json").json()["tables"][0]["result"] == "exists"


# -- status ---------------------------------------------------------------------------------------------------------


def test_status_shows_a_running_then_an_ended_job(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    job_table = add_job(dynamodb_local_endpoint, ddb_tables, "img-status")
    job_table.complete_region_request("img-status", error=False, region_id="r1")
    job_table.complete_region_request("img-status", error=False, region_id="r2")

    running = cli(*opts, "status", "img-status", "--json")
    assert running.code == 0
    summary = running.json()
    assert summary["state"] == "running"
    assert (summary["region_count"], summary["regions_done"], summary["region_success"]) == (3, 2, 2)
    assert summary["model_name"] == "model-x" and summary["outputs"] == [{"type": "S3"}]
    assert summary["start_time"].endswith("Z") and summary["end_time"] is None

    job_table.complete_region_request("img-status", error=True, region_id="r3")
    job_table.end_image_request("img-status")
    ended = cli(*opts, "status", "img-status", "--json").json()
    assert (ended["state"], ended["regions_done"], ended["region_error"]) == ("partial", 3, 1)
    assert ended["end_time"] is not None and ended["duration_seconds"] is not None

    text = cli("status", "img-status", *opts)  # global options after the command work too
    assert text.code == 0
    assert "partial" in text.out and "3/3" in text.out and "model-x" in text.out and "job-img-status" in text.out


def test_status_of_a_job_whose_regions_all_failed_says_failed(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    job_table = add_job(dynamodb_local_endpoint, ddb_tables, "img-failed", regions=1)
    job_table.complete_region_request("img-failed", error=True, region_id="r1")
    job_table.end_image_request("img-failed")

    assert cli(*opts, "status", "img-failed", "--json").json()["state"] == "failed"


# -- regions --------------------------------------------------------------------------------------------------------


def test_regions_lists_one_row_per_region_with_tiles_retries_and_duration(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    add_job(dynamodb_local_endpoint, ddb_tables, "img-regions", regions=2)
    regions = RegionRequestTable(ddb_tables.region, host=dynamodb_local_endpoint)
    for region_id, bounds in (("r-b", [[0, 1024], [1024, 1024]]), ("r-a", [[0, 0], [1024, 1024]])):
        regions.start_region_request(
            RegionRequestItem(image_id="img-regions", region_id=region_id, region_bounds=bounds)
        )
    tiles = [((0, 0), (512, 512)), ((0, 480), (512, 512)), ((480, 0), (512, 512))]
    regions.add_tile("img-regions", "r-a", tiles[0], TileState.SUCCEEDED)
    regions.add_tile("img-regions", "r-a", tiles[1], TileState.FAILED)
    regions.add_tile("img-regions", "r-a", tiles[2], TileState.FAILED)
    regions.start_region_request(RegionRequestItem(image_id="img-regions", region_id="r-a"))  # a retry
    regions.add_tile("img-regions", "r-a", tiles[1], TileState.SUCCEEDED)  # failed, then succeeded on the retry
    regions.update_region_request(RegionRequestItem(image_id="img-regions", region_id="r-a", total_tiles=3))
    regions.complete_region_request(RegionRequestItem(image_id="img-regions", region_id="r-a"), RequestStatus.PARTIAL)

    result = cli(*opts, "regions", "img-regions", "--json")
    assert result.code == 0
    rows = result.json()
    assert [row["region_id"] for row in rows] == ["r-a", "r-b"]  # in image order
    first, second = rows
    assert (first["status"], first["tiles_succeeded"], first["tiles_failed"], first["tiles_total"]) == (
        "PARTIAL",
        2,
        1,
        3,
    )
    assert first["retries"] == 1 and first["duration_seconds"] >= 0 and first["end_time"] is not None
    assert (second["status"], second["tiles_succeeded"], second["end_time"]) == ("STARTED", 0, None)

    text = cli(*opts, "regions", "img-regions")
    assert text.code == 0 and "PARTIAL" in text.out and "STARTED" in text.out and "r-a" in text.out


# -- features -------------------------------------------------------------------------------------------------------


def write_features(endpoint: str, names: TableNames, image_id: str) -> set[str]:
    table = FeatureTable(names.feature, (512, 512), (32, 32), host=endpoint)
    detector = SyntheticDetector(seed=2, features_per_tile=10)
    image = SyntheticImage(image_id, 1024, 1024)
    ids: set[str] = set()
    for tile in (((0, 0), (512, 512)), ((0, 480), (512, 512))):
        features = detector.detect(image, tile)
        table.add_features(features, source_tile=tile)
        ids.update(str(feature["id"]) for feature in features)
    return ids


def test_features_streams_a_feature_collection_to_a_file_or_stdout(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames, tmp_path: Path
) -> None:
    add_job(dynamodb_local_endpoint, ddb_tables, "img-features")
    ids = write_features(dynamodb_local_endpoint, ddb_tables, "img-features")
    path = tmp_path / "out.geojson"

    to_file = cli(*opts, "features", "img-features", "-o", str(path))
    assert to_file.code == 0 and to_file.out == ""
    assert to_file.err.strip() == f"{len(ids)} features written to {path}"
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection"
    assert sorted(feature["id"] for feature in collection["features"]) == sorted(ids)
    assert [p.name for p in tmp_path.iterdir()] == ["out.geojson"]  # no temporary file left

    to_stdout = cli(*opts, "features", "img-features")
    assert to_stdout.code == 0 and to_stdout.err.strip() == f"{len(ids)} features"
    assert {feature["id"] for feature in json.loads(to_stdout.out)["features"]} == ids


def test_features_of_a_job_without_features_is_an_empty_collection(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    add_job(dynamodb_local_endpoint, ddb_tables, "img-empty")
    result = cli(*opts, "features", "img-empty")

    assert result.code == 0 and json.loads(result.out) == {"type": "FeatureCollection", "features": []}
    assert result.err.strip() == "0 features"


# -- endpoints ------------------------------------------------------------------------------------------------------


def test_endpoints_lists_regions_in_progress_and_max_regions(
    cli: Any, opts: list[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    endpoints = EndpointStatisticsTable(ddb_tables.endpoint, host=dynamodb_local_endpoint)
    endpoints.upsert_endpoint("model-b", 4)
    endpoints.upsert_endpoint("model-a", 10)
    for _ in range(3):
        endpoints.increment_region_count("model-a")

    result = cli(*opts, "endpoints", "--json")
    assert result.code == 0
    assert result.json() == [
        {"endpoint": "model-a", "regions_in_progress": 3, "max_regions": 10},
        {"endpoint": "model-b", "regions_in_progress": 0, "max_regions": 4},
    ]
    text = cli(*opts, "endpoints")
    assert "model-a" in text.out and "3/10" in text.out


def test_endpoints_of_an_empty_table_says_so(cli: Any, opts: list[str]) -> None:
    assert cli(*opts, "endpoints", "--json").json() == []
    assert "No endpoint" in cli(*opts, "endpoints").out


# -- errors: one line, non-zero, no traceback -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "regions", "features"])
def test_an_unknown_image_id_is_one_clear_line(cli: Any, opts: list[str], command: str) -> None:
    result = cli(*opts, command, "no-such-image")

    assert result.code == 1 and result.out == ""
    assert "unknown image id 'no-such-image'" in result.one_error_line()


@pytest.mark.parametrize("command", [["status", "x"], ["regions", "x"], ["features", "x"], ["endpoints"]])
def test_a_missing_table_is_named_with_how_to_create_it(
    cli: Any, dynamodb_local_endpoint: str, table_names: TableNames, command: list[str]
) -> None:
    result = cli(*table_options(dynamodb_local_endpoint, table_names), *command)

    assert result.code == 1
    line = result.one_error_line()
    missing = table_names.endpoint if command == ["endpoints"] else table_names.job
    assert f"table {missing} does not exist" in line
    assert "create-tables" in line and f"--job-table {table_names.job}" in line


@pytest.mark.parametrize(
    "command", [["status", "x"], ["endpoints"], ["create-tables"], ["delete-tables", "--yes"], ["demo"]]
)
def test_an_unreachable_endpoint_is_one_clear_line(cli: Any, aws_test_env: None, command: list[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = cli("--endpoint-url", endpoint, *command)

    assert result.code == 1
    line = result.one_error_line()
    assert f"cannot reach {endpoint}" in line and "local start" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--workers", "0"], "--workers"),
        (["demo", "--failure-rate", "2"], "between 0 and 1"),
        (["demo", "--image-size", "big"], "WIDTHxHEIGHT"),
        (["demo", "--overlap", "512"], "smaller than the tile size"),
        (["local", "start", "--port", "70000"], "65535"),
        (["local", "restart"], "invalid choice"),
        (["status"], "IMAGE_ID"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_options_are_one_line_with_status_2(cli: Any, args: list[str], message: str) -> None:
    result = cli(*args)

    assert result.code == 2 and result.out == ""
    assert message in result.one_error_line()


def test_an_invalid_table_name_is_a_usage_error(cli: Any, dynamodb_local_endpoint: str) -> None:
    result = cli("--endpoint-url", dynamodb_local_endpoint, "--job-table", "x", "status", "img")

    assert result.code == 2 and "invalid table name 'x'" in result.one_error_line()


# -- demo -----------------------------------------------------------------------------------------------------------

DEMO_ARGS = ["--image-size", "2048x1024", "--region-size", "1024", "--workers", "4", "--tile-workers", "2"]


def test_demo_with_failures_reports_matching_features_and_exact_counts(
    cli: Any, opts: list[str], tmp_path: Path
) -> None:
    output = tmp_path / "demo.geojson"
    result = cli(
        *opts,
        "demo",
        *DEMO_ARGS,
        "--failure-rate",
        "0.2",
        "--seed",
        "3",
        "--image-id",
        "cli-demo",
        "-o",
        str(output),
        "--json",
    )

    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] is True and report["features_match"] is True and report["counts_match"] is True
    assert report["features_written"] == report["features_aggregated"] > 0
    assert report["aggregations"] == 1 and report["regions"] == 2
    assert report["region_redeliveries"] >= 1 and report["tile_failures"] >= 1
    assert len(json.loads(output.read_text())["features"]) == report["features_aggregated"]
    assert report["capacity"]["total_requests"] > 0 and report["capacity"]["write_units"] > 0

    status = cli(*opts, "status", "cli-demo", "--json").json()
    assert (status["region_success"], status["region_error"]) == (report["regions_succeeded"], report["regions_failed"])
    assert status["state"] == report["state"] != "running"
    rows = cli(*opts, "regions", "cli-demo", "--json").json()
    assert len(rows) == 2 and sum(row["retries"] for row in rows) == report["region_retries_recorded"]


def test_demo_prints_a_report(cli: Any, opts: list[str]) -> None:
    result = cli(*opts, "demo", *DEMO_ARGS, "--image-id", "cli-report")

    assert result.code == 0, result.err
    for label in ("regions", "tiles", "features", "retries", "wall time", "throughput", "capacity"):
        assert label in result.out
    assert "all checks passed" in result.out and "(match)" in result.out


def _environment_without_endpoint(tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "MODEL_RUNNER_TEST_ENDPOINT")
    }
    env["HOME"] = str(tmp_path)  # no shared AWS config files either
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    return env


def test_demo_without_an_endpoint_runs_its_own_dynamodb_local(tmp_path: Path) -> None:
    from model_runner.testing.dynamodb_local import ensure_emulator

    env = _environment_without_endpoint(tmp_path)
    env["DYNAMODB_LOCAL_DIR"] = str(ensure_emulator())
    result = subprocess.run(
        [sys.executable, "-m", "model_runner.database", "demo", *DEMO_ARGS, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert "starting DynamoDB Local in memory" in result.stderr and "Traceback" not in result.stderr


def test_python_m_model_runner_database_is_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_runner.database", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0
    for command in ("create-tables", "delete-tables", "status", "regions", "features", "endpoints", "local", "demo"):
        assert command in result.stdout


# -- local ----------------------------------------------------------------------------------------------------------


def test_local_start_status_stop_keeps_tables_on_disk(cli: Any, tmp_path: Path, aws_test_env: None) -> None:
    data_dir = tmp_path / "ddb"
    port = str(free_port())
    try:
        started = cli("local", "start", "--data-dir", str(data_dir), "--port", port, "--json")
        assert started.code == 0, started.err
        info = started.json()
        endpoint = info["endpoint_url"]
        assert endpoint == f"http://127.0.0.1:{port}" and info["in_memory"] is False

        assert cli("local", "status", "--data-dir", str(data_dir), "--json").json()["endpoint_url"] == endpoint
        created = cli("--endpoint-url", endpoint, "--table-prefix", "disk-", "create-tables", "--json")
        assert [t["result"] for t in created.json()["tables"]] == ["created"] * len(TABLE_MODELS)

        stopped = cli("local", "stop", "--data-dir", str(data_dir), "--json")
        assert stopped.code == 0 and stopped.json()["stopped"] is True
        not_running = cli("local", "status", "--data-dir", str(data_dir))
        assert not_running.code == 3 and "not running" in not_running.out

        text = cli("local", "start", "--data-dir", str(data_dir), "--port", port)
        assert text.code == 0 and f"export AWS_ENDPOINT_URL_DYNAMODB={endpoint}" in text.out, text.err
        again = cli("--endpoint-url", endpoint, "--table-prefix", "disk-", "create-tables", "--json")
        assert [t["result"] for t in again.json()["tables"]] == ["exists"] * len(
            TABLE_MODELS
        )  # kept on disk across the restart
    finally:
        stop_detached(data_dir)
    assert cli("local", "stop", "--data-dir", str(data_dir)).out.startswith("No DynamoDB Local was running")
