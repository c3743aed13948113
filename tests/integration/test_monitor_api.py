"""The job monitor's JSON API and pages over HTTP, on DynamoDB Local: jobs made with the public API and with the demo,
unknown ids, missing tables, an unreachable DynamoDB, escaping, and no write of any kind."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from model_runner.cli.main import main
from model_runner.common.typing import RequestStatus, TileState
from model_runner.database import (
    FeatureTable,
    JobItem,
    JobTable,
    RegionRequestItem,
    RegionRequestTable,
    RetryPolicy,
    TableNames,
)
from model_runner.demo.driver import run_job
from model_runner.monitor import MonitorData, MonitorServer, serving
from model_runner.testing.dynamodb_local import free_port

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, max_total=0.5)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def request(server: MonitorServer, path: str, method: str = "GET") -> Answer:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def monitor_data(names: TableNames, endpoint: str, **options: Any) -> MonitorData:
    return MonitorData(
        JobTable(names.job, host=endpoint, retry_policy=FAST),
        RegionRequestTable(names.region, host=endpoint, retry_policy=FAST),
        FeatureTable(names.feature, host=endpoint, retry_policy=FAST),
        **options,
    )


@pytest.fixture
def repos(ddb_tables: TableNames, dynamodb_local_endpoint: str) -> dict[str, Any]:
    endpoint = dynamodb_local_endpoint
    return {
        "names": ddb_tables,
        "endpoint": endpoint,
        "job": JobTable(ddb_tables.job, host=endpoint),
        "region": RegionRequestTable(ddb_tables.region, host=endpoint),
        "feature": FeatureTable(ddb_tables.feature, (512, 512), (32, 32), host=endpoint),
    }


@pytest.fixture
def server(repos: dict[str, Any]) -> Iterator[MonitorServer]:
    with serving(monitor_data(repos["names"], repos["endpoint"])) as running:
        yield running


def make_job(repos: dict[str, Any], image_id: str, regions: int = 4, end: bool = False, errors: int = 0) -> None:
    jobs: JobTable = repos["job"]
    jobs.start_image_request(JobItem(image_id=image_id, job_id=f"job-{image_id}", model_name="m"))
    jobs.update_image_request(
        JobItem(image_id=image_id, region_count=regions, width=2048, height=1024, tile_size="(512, 512)")
    )
    for index in range(regions if end else regions // 2):
        jobs.complete_region_request(image_id, error=index < errors, region_id=f"r{index}")
    if end:
        jobs.end_image_request(image_id)


def region_item(image_id: str, region_id: str, row: int, col: int) -> RegionRequestItem:
    return RegionRequestItem(
        image_id=image_id, region_id=region_id, region_bounds=[[row, col], [1024, 1024]], tile_size=[512, 512]
    )


def tile(row: int, col: int) -> list[list[int]]:
    return [[row, col], [512, 512]]


def test_jobs_newest_first_with_progress_failures_and_scan_cost(repos: dict[str, Any], server: MonitorServer) -> None:
    make_job(repos, "old-job", end=True, errors=1)
    time.sleep(0.01)
    make_job(repos, "mid-job", end=True)
    time.sleep(0.01)
    make_job(repos, "new-job")

    answer = request(server, "/api/jobs")

    assert answer.status == 200
    listing = answer.json()
    assert [job["image_id"] for job in listing["jobs"]] == ["new-job", "mid-job", "old-job"]
    new, mid, old = listing["jobs"]
    assert (new["state"], new["regions_done"], new["region_count"], new["end_time"]) == ("running", 2, 4, None)
    assert (mid["state"], mid["region_error"]) == ("complete", 0)
    assert (old["state"], old["region_error"], old["regions_done"]) == ("partial", 1, 4)
    assert old["duration_seconds"] is not None and old["duration_seconds"] >= 0
    scan = listing["scan"]
    assert scan["items_read"] == 3 and scan["truncated"] is False
    assert scan["read_units"] > 0  # DynamoDB's own figure (ReturnConsumedCapacity), 0.5 unit per 4 KB read


def test_the_scan_is_bounded_says_so_and_bills_the_whole_items(repos: dict[str, Any]) -> None:
    for index in range(5):
        make_job(repos, f"job-{index}")
        # 3,000 bytes the listing never shows: a scan bills them anyway (0.5 read unit per 4 KB read)
        repos["job"].update_image_request(JobItem(image_id=f"job-{index}", image_url="s3://b/" + "x" * 3000))

    with serving(monitor_data(repos["names"], repos["endpoint"], scan_limit=3)) as small:
        listing = request(small, "/api/jobs?limit=2").json()

    assert listing["scan"] == {**listing["scan"], "items_read": 3, "scan_limit": 3, "truncated": True}
    assert len(listing["jobs"]) == 2 and listing["total_listed"] == 3
    assert "image_url" not in listing["jobs"][0]
    assert listing["scan"]["read_units"] == 1.5  # 3 items of ~3.1 KB: 9.3 KB -> 3 x 4 KB -> 1.5 units


def test_job_regions_and_tiles_of_a_job_made_with_the_public_api(repos: dict[str, Any], server: MonitorServer) -> None:
    image_id = "img/with space"  # a slash and a space: one path segment once encoded
    make_job(repos, image_id)
    regions: RegionRequestTable = repos["region"]
    ok = regions.start_region_request(region_item(image_id, "ok", 0, 0))
    regions.add_tile(image_id, "ok", tile(0, 0), TileState.SUCCEEDED)
    regions.complete_region_request(ok, RequestStatus.SUCCESS)
    bad = regions.start_region_request(region_item(image_id, "bad", 0, 1024))
    regions.add_tile(image_id, "bad", tile(0, 1024), TileState.SUCCEEDED)
    regions.add_tile(image_id, "bad", tile(512, 1536), TileState.FAILED)
    regions.update_region_request(RegionRequestItem(image_id=image_id, region_id="bad", message="tile timed out"))
    regions.complete_region_request(bad, RequestStatus.PARTIAL)
    regions.start_region_request(region_item(image_id, "again", 1024, 0))
    regions.start_region_request(region_item(image_id, "again", 1024, 0))  # redelivered: a retry
    regions.start_region_request(region_item(image_id, "running", 1024, 1024))
    encoded = quote(image_id, safe="")

    job = request(server, f"/api/jobs/{encoded}").json()
    listed = request(server, f"/api/jobs/{encoded}/regions").json()["regions"]
    one = request(server, f"/api/jobs/{encoded}/regions/bad").json()

    assert (job["image_id"], job["width"], job["height"], job["tile_size"]) == (image_id, 2048, 1024, [512, 512])
    by_id = {region["region_id"]: region for region in listed}
    assert [region["region_id"] for region in listed] == ["ok", "bad", "again", "running"]  # image order
    assert {name: region["state"] for name, region in by_id.items()} == {
        "ok": "succeeded",
        "bad": "failed",
        "again": "retried",
        "running": "started",
    }
    assert (by_id["bad"]["tiles_succeeded"], by_id["bad"]["tiles_failed"], by_id["bad"]["message"]) == (
        1,
        1,
        "tile timed out",
    )
    assert by_id["again"]["retries"] == 1
    assert by_id["ok"]["box"] == [0, 0, 1024, 1024] and by_id["bad"]["box"] == [1024, 0, 1024, 1024]
    assert "tiles" not in by_id["bad"]
    assert sorted((t["box"], t["state"]) for t in one["tiles"]) == [
        ([1024, 0, 512, 512], "succeeded"),
        ([1536, 512, 512, 512], "failed"),
    ]


def test_a_demo_job_overview_counts_every_feature_and_caps_the_boxes(repos: dict[str, Any], tmp_path: Path) -> None:
    names, endpoint = repos["names"], repos["endpoint"]
    report = run_job(
        names=names,
        endpoint_url=endpoint,
        image_id="demo-api",
        image_size=(2048, 2048),
        region_size=(1024, 1024),
        tile_size=(512, 512),
        overlap=(32, 32),
        workers=2,
        tile_workers=2,
        failure_rate=0.2,
        seed=5,
    )
    with serving(monitor_data(names, endpoint, box_cap=50)) as server:
        overview = request(server, "/api/jobs/demo-api/features/overview").json()
        regions = request(server, "/api/jobs/demo-api/regions").json()["regions"]
        download = request(server, "/api/jobs/demo-api/features.geojson")

    assert overview["count"] == report.features_aggregated > 50
    assert len(overview["boxes"]) == 50 and overview["sampled"] is True
    density = overview["density"]
    assert sum(density["counts"]) == overview["count"]
    assert density["cell"] == [480, 480] and (density["cols"], density["rows"]) == (5, 5)
    recorded = {tuple(t["box"]) for r in regions for t in request_tiles(names, endpoint, r["region_id"])}
    assert {tuple(box) for box in overview["tiles"]} == recorded
    assert len(regions) == 4 and sum(r["retries"] for r in regions) == report.region_retries_recorded
    # the download is the collection `features -o` writes
    assert download.status == 200 and "attachment" in download.headers["content-disposition"]
    output = tmp_path / "cli.geojson"
    tables = ["--job-table", names.job, "--feature-table", names.feature]
    code = main(["--endpoint-url", endpoint, *tables, "features", "demo-api", "-o", str(output)])
    assert code == 0
    served, written = json.loads(download.body), json.loads(output.read_text())
    assert sorted(f["id"] for f in served["features"]) == sorted(f["id"] for f in written["features"])
    assert len(served["features"]) == report.features_aggregated


def request_tiles(names: TableNames, endpoint: str, region_id: str) -> list[dict[str, Any]]:
    data = monitor_data(names, endpoint)
    return list(data.region("demo-api", region_id)["tiles"])


def test_unknown_ids_and_routes_are_404_without_traceback(repos: dict[str, Any], server: MonitorServer) -> None:
    make_job(repos, "known")

    api = request(server, "/api/jobs/nope")
    page = request(server, "/jobs/nope")
    region = request(server, "/api/jobs/known/regions/nope")
    route = request(server, "/no/such/page")
    download = request(server, "/api/jobs/nope/features.geojson")

    assert api.status == 404 and "no job with image id 'nope'" in api.json()["error"]
    assert page.status == 404 and "no job with image id" in page.text and "Traceback" not in page.text
    assert region.status == 404 and "no region 'nope'" in region.json()["error"]
    assert route.status == 404 and download.status == 404


def test_missing_tables_give_a_clear_404(dynamodb_local_endpoint: str) -> None:
    names = TableNames.resolve(prefix="never-created-")
    with serving(monitor_data(names, dynamodb_local_endpoint)) as server:
        jobs = request(server, "/api/jobs")
        page = request(server, "/jobs/any")

    assert jobs.status == 404 and "never-created-ImageProcessingJobStatus does not exist" in jobs.json()["error"]
    assert page.status == 404 and "does not exist" in page.text and "create-tables" in page.text


def test_an_outage_is_a_503_message_and_the_server_keeps_serving(aws_test_env: None) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    names = TableNames.resolve()
    data = MonitorData(
        JobTable(names.job, host=dead, retry_policy=FAST, connect_timeout_seconds=1),
        RegionRequestTable(names.region, host=dead, retry_policy=FAST, connect_timeout_seconds=1),
        FeatureTable(names.feature, host=dead, retry_policy=FAST, connect_timeout_seconds=1),
    )
    with serving(data) as server:
        jobs = request(server, "/api/jobs")
        page = request(server, "/jobs/some-job")
        after = request(server, "/static/monitor.js")

    assert jobs.status == 503 and "DynamoDB could not be read" in jobs.json()["error"]
    assert page.status == 503 and "DynamoDB could not be read" in page.text  # the page loads, says so, retries
    assert 'data-image-id="some-job"' in page.text
    assert after.status == 200


def test_table_values_are_escaped_in_the_html(repos: dict[str, Any], server: MonitorServer) -> None:
    image_id = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    make_job(repos, image_id)

    page = request(server, "/jobs/" + quote(image_id, safe=""))

    assert page.status == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_read_only_no_method_writes(repos: dict[str, Any], server: MonitorServer) -> None:
    make_job(repos, "job")
    before = repos["job"].as_dict(repos["job"].get_image_request("job"))

    answers = [request(server, "/api/jobs/job", method) for method in ("POST", "PUT", "DELETE", "PATCH")]

    assert {answer.status for answer in answers} == {405}
    assert answers[0].headers["allow"] == "GET, HEAD"
    assert repos["job"].as_dict(repos["job"].get_image_request("job")) == before


def test_serve_command_binds_loopback_and_says_so(repos: dict[str, Any]) -> None:
    names, endpoint = repos["names"], repos["endpoint"]
    make_job(repos, "cli-job")
    command = [sys.executable, "-m", "model_runner.database", "--endpoint-url", endpoint]
    command += ["--job-table", names.job, "--region-table", names.region, "--feature-table", names.feature]
    process = subprocess.Popen(
        [*command, "serve", "--port", "0"], stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("Job monitor on http://127.0.0.1:") and "loopback only" in line, line
        url = line.split(" on ", 1)[1].split("/ ", 1)[0]
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        connection.request("GET", "/api/jobs")
        listing = json.loads(connection.getresponse().read())
        assert [job["image_id"] for job in listing["jobs"]] == ["cli-job"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "port number up to 65535" in capsys.readouterr().err


def test_the_api_example_of_the_docs_runs(repos: dict[str, Any], server: MonitorServer) -> None:
    text = (Path(__file__).parents[2] / "docs" / "monitor.md").read_text(encoding="utf-8")
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    make_job(repos, "image-1")
    regions: RegionRequestTable = repos["region"]
    for region_id, status in (("region-1", RequestStatus.SUCCESS), ("region-2", RequestStatus.FAILED)):
        started = regions.start_region_request(region_item("image-1", region_id, 0, 0))
        regions.complete_region_request(started, status)
    namespace: dict[str, Any] = {}

    exec(example.replace("http://127.0.0.1:8765", server.url), namespace)

    assert namespace["failed"] == ["region-2"]
