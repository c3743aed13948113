"""The job monitor's pages in a real headless browser (the system's Chromium, driven by playwright): live refresh
while a demo job runs, table values shown as text, an unknown job and an outage shown as messages."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

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
from model_runner.demo.driver import JobReport, Progress, run_job
from model_runner.monitor import MonitorData, serving
from model_runner.testing.browser import BrowserUnavailable, headless_chromium
from model_runner.testing.dynamodb_local import free_port

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, max_total=0.5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        with headless_chromium() as running:
            yield running
    except BrowserUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have a browser: {err}", pytrace=False)
        pytest.skip(str(err))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # bypass_csp: playwright evaluates its checks as strings, which the pages' CSP forbids; it also means an
    # injected script would run here, so the escaping test checks escaping itself, not only the CSP
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def monitor_data(names: TableNames, endpoint: str) -> MonitorData:
    return MonitorData(
        JobTable(names.job, host=endpoint, retry_policy=FAST, connect_timeout_seconds=1),
        RegionRequestTable(names.region, host=endpoint, retry_policy=FAST, connect_timeout_seconds=1),
        FeatureTable(names.feature, host=endpoint, retry_policy=FAST, connect_timeout_seconds=1),
    )


def test_the_job_page_refreshes_itself_while_the_demo_runs(
    page: Any, ddb_tables: TableNames, dynamodb_local_endpoint: str
) -> None:
    endpoint = dynamodb_local_endpoint
    result: dict[str, Any] = {}

    regions_seen = [-1]

    def pace(progress: Progress) -> None:
        """Hold the worker a moment after each region: on idle cores the demo job ends within one page refresh."""
        if progress.regions_done != regions_seen[0]:
            regions_seen[0] = progress.regions_done
            time.sleep(0.3)

    def demo() -> None:
        try:
            result["report"] = run_job(
                names=ddb_tables,
                endpoint_url=endpoint,
                image_id="demo-live",
                image_size=(4096, 4096),
                region_size=(1024, 1024),
                tile_size=(256, 256),
                overlap=(16, 16),
                workers=1,
                tile_workers=1,
                features_per_tile=2,
                failure_rate=0.1,
                seed=2,
                progress=pace,
            )
        except BaseException as err:  # reported by the assertion below
            result["error"] = err

    jobs = JobTable(ddb_tables.job, host=endpoint)
    worker = threading.Thread(target=demo, name="demo-job")
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "error" not in result:
            try:
                if jobs.get_image_request("demo-live").region_count:
                    break
            except Exception:
                time.sleep(0.05)
        with serving(monitor_data(ddb_tables, endpoint), refresh_seconds=0.5) as server:
            page.goto(f"{server.url}/jobs/demo-live")
            page.wait_for_function("window.monitorState && window.monitorState.refreshes >= 1")
            page.evaluate("window.__sameDocument = true")
            seen_while_running: set[str] = set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = page.text_content("#state")
                if state != "running":
                    break
                seen_while_running.add(page.text_content("#progress-text") or "")
                time.sleep(0.2)
            page.wait_for_function("window.monitorState.finalOverview === true")
            final_progress = page.text_content("#progress-text")
            region_states = page.eval_on_selector_all(
                "svg#regions rect.region", "nodes => nodes.map(n => n.getAttribute('data-state'))"
            )
            same_document = page.evaluate("window.__sameDocument === true")
            live = page.text_content("#live")
            note = page.text_content("#feature-note")
            page.focus("svg#regions rect.region >> nth=5")  # regions are reachable with the keyboard too
            page.keyboard.press("Enter")
            page.wait_for_selector("#region-facts:not([hidden])")
            selected = page.text_content('#region-facts dd[data-fact="id"]')
    finally:
        worker.join(timeout=300)
    assert "error" not in result, result.get("error")
    report: JobReport = result["report"]
    assert len(seen_while_running) >= 2, f"the page showed no progress while the job ran: {seen_while_running}"
    assert same_document, "the page reloaded instead of refreshing itself"
    assert final_progress == "16 / 16 regions"
    assert len(region_states) == 16 and "started" not in region_states
    assert region_states.count("failed") == report.regions_failed
    assert live == "job ended: not refreshing"
    assert selected is not None and selected.endswith("-job-demo-live")
    assert note is not None and note.startswith(f"{report.features_aggregated:,} features")


def test_values_from_the_tables_render_as_text(page: Any, ddb_tables: TableNames, dynamodb_local_endpoint: str) -> None:
    endpoint = dynamodb_local_endpoint
    image_id = '<img src=x id=injected-img onerror="window.__xss=1"><script>window.__xss=2</script>'
    message = '<b id="injected-b">bold</b><script>window.__xss=3</script>'
    jobs = JobTable(ddb_tables.job, host=endpoint)
    jobs.start_image_request(JobItem(image_id=image_id, model_name="<i>model</i>"))
    jobs.update_image_request(JobItem(image_id=image_id, region_count=1, width=1024, height=1024))
    regions = RegionRequestTable(ddb_tables.region, host=endpoint)
    region_id = "<svg onload=window.__xss=4>"
    started = regions.start_region_request(
        RegionRequestItem(image_id=image_id, region_id=region_id, region_bounds=[[0, 0], [1024, 1024]])
    )
    regions.update_region_request(RegionRequestItem(image_id=image_id, region_id=region_id, message=message))
    regions.add_tile(image_id, region_id, [[0, 0], [512, 512]], TileState.SUCCEEDED)
    regions.add_tile(image_id, region_id, [[512, 0], [512, 512]], TileState.FAILED)
    regions.complete_region_request(started, RequestStatus.FAILED)

    with serving(monitor_data(ddb_tables, endpoint)) as server:
        page.goto(f"{server.url}/")
        page.wait_for_selector("#jobs tbody tr")
        link_text = page.text_content("#jobs tbody tr td.id a")
        model_text = page.text_content("#jobs tbody tr td:last-child")
        page.click("#jobs tbody tr td.id a")
        page.wait_for_function("window.monitorState && window.monitorState.refreshes >= 1")
        title = page.text_content("#title")
        page.click("svg#regions rect.region")
        page.wait_for_selector("#region-facts:not([hidden])")
        shown_message = page.text_content('#region-facts dd[data-fact="message"]')
        shown_id = page.text_content('#region-facts dd[data-fact="id"]')
        tiles_visible = page.is_visible("svg#tiles")
        tile_marks = page.evaluate(
            "['rect.succeeded', 'rect.failed', 'line.cross']"
            ".map(s => document.querySelectorAll('svg#tiles ' + s).length)"
        )
        failed_listed = page.text_content("#failed-tiles")
        injected = page.evaluate(
            "[document.querySelectorAll('#injected-img, #injected-b, svg[onload]').length, window.__xss]"
        )

    assert link_text == image_id and model_text == "<i>model</i>"
    assert title == image_id
    assert shown_message == message and shown_id == region_id
    assert injected == [0, None]
    assert tiles_visible and tile_marks == [1, 1, 2] and failed_listed == "x 0, y 512, 512 x 512"


def test_an_unknown_job_is_a_404_page(page: Any, ddb_tables: TableNames, dynamodb_local_endpoint: str) -> None:
    with serving(monitor_data(ddb_tables, dynamodb_local_endpoint)) as server:
        response = page.goto(f"{server.url}/jobs/" + quote("no-such<job>", safe=""))
        heading = page.text_content("h1")
        message = page.text_content("#message")

    assert response.status == 404
    assert heading == "Not found"
    assert message is not None and "no job with image id 'no-such<job>'" in message


def test_an_outage_shows_as_a_message_and_the_server_keeps_serving(page: Any, aws_test_env: None) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with serving(monitor_data(TableNames.resolve(), dead)) as server:
        page.goto(f"{server.url}/")
        page.wait_for_selector("#banner:not([hidden])")
        banner = page.text_content("#banner")
        again = page.goto(f"{server.url}/static/monitor.css")

    assert banner is not None and banner.startswith("Cannot list jobs: DynamoDB could not be read")
    assert again is not None and again.status == 200


def _selected(marker_expression: str) -> set[str]:
    """Names of this module's tests that ``-m marker_expression`` selects (collection only, in a fresh pytest)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "--collect-only", "-q", "-m", marker_expression],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {line.split("::", 1)[1] for line in done.stdout.splitlines() if "::" in line}


def test_make_test_runs_every_page_test_in_the_page_phase_and_no_other() -> None:
    # make test runs -m "not browser" beside the xdist workers and -m browser alone: a page test left unmarked would
    # start Chromium beside the workers (and the 2 GB bound would not hold); the two phases together run every test
    page_tests = {
        name
        for name, function in globals().items()
        if name.startswith("test_") and {"page", "browser"} & set(inspect.signature(function).parameters)
    }
    in_page_phase = _selected("browser")
    in_parallel_phase = _selected("not browser")
    assert len(page_tests) == 4
    assert in_page_phase == page_tests
    assert in_parallel_phase == {"test_make_test_runs_every_page_test_in_the_page_phase_and_no_other"}
