"""The command line as an operator meets it, run as a real program (a subprocess): interruptions, a DynamoDB that
dies mid-run, leftovers of earlier runs, output files, messages and options (issue 16, issue 14 item 8)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geojson
import psutil
import pytest

from model_runner.cli.demo import GIVE_UP_SECONDS, show_report
from model_runner.database import EndpointStatisticsTable, FeatureTable, JobItem, JobTable, TableNames
from model_runner.demo import JobReport
from model_runner.demo.plan import DEMO_ENDPOINT
from model_runner.testing.dynamodb_local import DynamoDBLocal, ensure_emulator

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "model_runner.database"]
#: A demo that runs for a while on a loaded machine (16 regions, 400 tiles) but ends on its own.
LONG_DEMO = ["--image-size", "8192", "--workers", "4", "--tile-workers", "2"]
SMALL_DEMO = ["--image-size", "2048", "--region-size", "1024", "--workers", "4", "--features-per-tile", "4"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("model-runner-db: error: "), lines
    return lines[0]


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
    ]


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Poll until ``condition`` holds; fail when the process ended first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the command ended before {what}: {process.communicate()}")
        try:
            if condition():
                return
        except Exception:  # the tables may not exist yet
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def in_progress(endpoint: str, names: TableNames) -> Callable[[], bool]:
    table = EndpointStatisticsTable(names.endpoint, host=endpoint)
    return lambda: table.current_in_progress_regions(DEMO_ENDPOINT) > 0


def environment_without_endpoint(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "MODEL_RUNNER_TEST_ENDPOINT")
    }
    env["HOME"] = str(home)
    env["DYNAMODB_LOCAL_DIR"] = str(ensure_emulator())
    return env


# -- 1. one Ctrl-C ends a demo at once, and stops the DynamoDB Local it started -----------------------------------


def test_one_ctrl_c_during_a_demo_without_endpoint_exits_130_at_once_and_stops_its_dynamodb_local(
    tmp_path: Path, aws_test_env: None
) -> None:
    process = subprocess.Popen(
        [*CLI, "demo", *LONG_DEMO],
        env=environment_without_endpoint(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        servers: list[psutil.Process] = []

        def server_started() -> bool:
            children = psutil.Process(process.pid).children()
            servers[:] = [p for p in children if any(arg.endswith("DynamoDBLocal.jar") for arg in p.cmdline())]
            return bool(servers)

        wait_for(server_started, "DynamoDB Local started", process)
        port = servers[0].cmdline()[servers[0].cmdline().index("-port") + 1]
        names = TableNames.resolve()
        wait_for(in_progress(f"http://127.0.0.1:{port}", names), "regions in progress", process)

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        started = time.monotonic()
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert took < 10, f"exited {took:.1f} s after Ctrl-C"
    assert err.strip().splitlines()[-1] == "model-runner-db: interrupted", err
    assert "Traceback" not in err and "Exception" not in err, err
    assert len([line for line in err.splitlines() if "interrupted" in line]) == 1
    servers[0].wait(timeout=10)  # raises when the server outlives the demo
    assert not servers[0].is_running()


# -- 3. an interrupted demo gives back what it holds; later runs judge only what they did -------------------------


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_an_interrupted_demo_gives_back_its_endpoint_count_and_ends_its_job_as_failed(
    dynamodb_local_endpoint: str, ddb_tables: TableNames, sig: int, code: int, word: str
) -> None:
    opts = table_options(dynamodb_local_endpoint, ddb_tables)
    process = subprocess.Popen(
        [*CLI, *opts, "demo", *LONG_DEMO, "--image-id", "cut-short"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(in_progress(dynamodb_local_endpoint, ddb_tables), "regions in progress", process)
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == code, err
    assert err.strip().splitlines() == [f"model-runner-db: {word}"], err
    endpoints = EndpointStatisticsTable(ddb_tables.endpoint, host=dynamodb_local_endpoint)
    assert endpoints.current_in_progress_regions(DEMO_ENDPOINT) == 0
    status = json.loads(run(*opts, "status", "cut-short", "--json").stdout)
    assert status["state"] == "failed" and status["abandoned"] is True and status["end_time"] is not None
    text = run(*opts, "status", "cut-short").stdout
    assert "abandoned with" in text and "so far" not in text

    again = run(*opts, "demo", *SMALL_DEMO, "--json", timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ok"] is True


def test_a_count_left_by_a_crashed_worker_does_not_fail_later_demos_and_endpoints_says_how_to_reset_it(
    dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    opts = table_options(dynamodb_local_endpoint, ddb_tables)
    endpoints = EndpointStatisticsTable(ddb_tables.endpoint, host=dynamodb_local_endpoint)
    endpoints.upsert_endpoint(DEMO_ENDPOINT, 8)
    for _ in range(7):  # seven workers died without counting their regions out
        endpoints.increment_region_count(DEMO_ENDPOINT)

    result = run(*opts, "demo", *SMALL_DEMO, "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["failed_checks"] == []
    assert report["regions_in_progress_before"] == report["regions_in_progress_after"] == 7

    listing = run(*opts, "endpoints")
    assert f"reset-endpoint {DEMO_ENDPOINT}" in listing.stdout
    reset = run(*opts, "reset-endpoint", DEMO_ENDPOINT)
    assert reset.returncode == 0, reset.stderr
    assert "7 -> 0" in reset.stdout
    assert endpoints.current_in_progress_regions(DEMO_ENDPOINT) == 0
    unknown = run(*opts, "reset-endpoint", "no-such-endpoint")
    assert unknown.returncode == 1 and "unknown endpoint 'no-such-endpoint'" in one_error_line(unknown)
    assert "no-such-endpoint" not in run(*opts, "endpoints").stdout  # nothing created


def test_the_report_names_the_check_that_failed(capsys: pytest.CaptureFixture[str]) -> None:
    report = JobReport(image_id="x", spec=_spec(), regions_in_progress_before=2, regions_in_progress_after=3)
    report.aggregations = 1

    show_report(report)

    out = capsys.readouterr().out
    assert report.failed_checks == ["endpoint count restored"]
    assert "CHECKS FAILED" in out
    assert "FAILED: endpoint count restored (regions in progress 2 before the run, 3 after)" in out


def _spec() -> dict[str, Any]:
    return {
        "width": 1,
        "height": 1,
        "region_size": (1, 1),
        "tile_size": (1, 1),
        "overlap": (0, 0),
        "workers": 1,
        "tile_workers": 1,
        "failure_rate": 0.0,
        "seed": 0,
    }


# -- 2. DynamoDB dies mid-demo: the demo gives up within its bound ------------------------------------------------


def test_a_demo_whose_dynamodb_dies_gives_up_within_its_retry_bound_naming_the_endpoint(aws_test_env: None) -> None:
    with DynamoDBLocal(emulator_dir=ensure_emulator(), in_memory=True) as server:
        endpoint = server.endpoint_url
        names = TableNames.resolve(prefix="dies-")
        process = subprocess.Popen(
            [*CLI, "--endpoint-url", endpoint, "--table-prefix", "dies-", "demo", *LONG_DEMO],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(in_progress(endpoint, names), "regions in progress", process)
            server.stop()  # what `model-runner-db local stop` does to a running demo
            started = time.monotonic()
            _, err = process.communicate(timeout=GIVE_UP_SECONDS * 3)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1
    line = one_error_line(subprocess.CompletedProcess([], 1, "", err))
    assert endpoint in line and "lost" in line, line
    assert took < GIVE_UP_SECONDS, f"gave up after {took:.1f} s"


# -- 4. outputs are checked before any work -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (
            "/nonexistent/dir/f.geojson",
            "cannot write '/nonexistent/dir/f.geojson': directory '/nonexistent/dir' does not exist",
        ),
        ("/tmp", "cannot write '/tmp': is a directory"),
        ("", "cannot write '': the file name is empty"),
    ],
)
def test_demo_checks_its_output_file_before_any_work(
    dynamodb_local_endpoint: str, ddb_tables: TableNames, path: str, problem: str
) -> None:
    opts = table_options(dynamodb_local_endpoint, ddb_tables)
    result = run(*opts, "demo", *SMALL_DEMO, "--image-id", "never", "-o", path)

    assert result.returncode == 1
    assert one_error_line(result) == f"model-runner-db: error: {problem}"
    assert run(*opts, "status", "never").returncode == 1  # no job was started


# -- 5 and issue 14 item 8: features output -----------------------------------------------------------------------


def _job_with_features(endpoint: str, names: TableNames, image_id: str) -> None:
    JobTable(names.job, host=endpoint).start_image_request(JobItem(image_id=image_id, job_id="j"))
    properties = {"image_id": image_id, "bounds_imcoords": [10, 20, 60, 40]}
    feature = geojson.Feature(id="f-1", geometry=geojson.Point((1.0, 2.0)), properties=properties)
    FeatureTable(names.feature, (512, 512), (32, 32), host=endpoint).add_features(
        [feature], source_tile=((0, 0), (512, 512))
    )


def test_features_to_stdout_writes_nothing_when_the_first_page_cannot_be_read(
    dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    _job_with_features(dynamodb_local_endpoint, ddb_tables, "img")
    opts = table_options(dynamodb_local_endpoint, ddb_tables)
    missing = [*opts, "--feature-table", "no-such-feature-table"]

    result = run(*missing, "features", "img")

    assert result.returncode == 1 and result.stdout == ""
    assert "no-such-feature-table does not exist" in one_error_line(result)
    assert json.loads(run(*opts, "features", "img").stdout)["features"][0]["id"] == "f-1"


def test_features_output_writes_through_a_symlink_and_keeps_the_files_mode(
    dynamodb_local_endpoint: str, ddb_tables: TableNames, tmp_path: Path
) -> None:
    _job_with_features(dynamodb_local_endpoint, ddb_tables, "img")
    opts = table_options(dynamodb_local_endpoint, ddb_tables)
    target = tmp_path / "real" / "features.geojson"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.geojson"
    link.symlink_to(target)

    result = run(*opts, "features", "img", "-o", str(link))

    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert json.loads(target.read_text())["features"][0]["id"] == "f-1"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.geojson"]  # no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.geojson", "real"]

    new = tmp_path / "new.geojson"
    umask = os.umask(0o022)
    os.umask(umask)
    assert run(*opts, "features", "img", "-o", str(new)).returncode == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/tmp", "cannot write '/tmp': is a directory"), ("", "cannot write '': the file name is empty")],
)
def test_features_file_errors_name_the_path_given_and_the_problem(
    dynamodb_local_endpoint: str, ddb_tables: TableNames, path: str, problem: str
) -> None:
    _job_with_features(dynamodb_local_endpoint, ddb_tables, "img")
    result = run(*table_options(dynamodb_local_endpoint, ddb_tables), "features", "img", "-o", path)
    assert result.returncode == 1
    assert one_error_line(result) == f"model-runner-db: error: {problem}"


# -- 7. messages --------------------------------------------------------------------------------------------------


def test_an_endpoint_that_is_no_url_is_a_usage_error_naming_it() -> None:
    result = run("--endpoint-url", "foo", "status", "x")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "--endpoint-url 'foo' is not an endpoint URL" in line and "ValueError" not in line
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": "localhost:8000"}
    assert "AWS_ENDPOINT_URL_DYNAMODB 'localhost:8000'" in one_error_line(run("status", "x", env=env))


def test_no_region_says_what_to_set_in_command_line_terms(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"))
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    result = run("status", "x", env=env)
    line = one_error_line(result)
    assert "--region" in line and "AWS_REGION" in line and "region=" not in line


def test_the_debug_hint_is_not_given_under_debug() -> None:
    from model_runner.cli.main import _explain_any

    assert "--debug" in str(_explain_any(RuntimeError("boom"), None))
    assert "--debug" not in str(_explain_any(RuntimeError("boom"), None, debug=True))


# -- 8. a busy port -----------------------------------------------------------------------------------------------


def test_local_start_on_a_busy_port_says_which_port_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("local", "start", "--port", str(port), "--data-dir", str(tmp_path / "ddb"))
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"port {port} is already in use" in line and "--port N" in line and "java" not in line.lower()


# -- 9. --version, global options anywhere, no abbreviations --------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("model-runner-db ")


def test_global_options_after_the_infrastructure_commands() -> None:
    template = run("cloudformation", "--format", "json", "--table-prefix", "dev-", "--region", "us-west-2")
    assert template.returncode == 0, template.stderr
    assert "us-west-2" not in template.stdout  # --region is the global option, not a table name
    assert "dev-ImageProcessingJobStatus" in template.stdout
    policy = run("iam-policy", "--role", "reader", "--region", "eu-west-1", "--account-id", "1", "--debug")
    assert policy.returncode == 0, policy.stderr
    assert "arn:aws:dynamodb:eu-west-1:1:table/ImageProcessingJobStatus" in policy.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["cloudformation", "--region-t", "x"],
        ["--region-t", "x", "cloudformation"],
        ["demo", "--work", "2"],
        ["--endpoint", "http://127.0.0.1:1", "endpoints"],
        ["iam-policy", "--ro", "reader"],
    ],
)
def test_no_option_is_matched_by_an_abbreviation(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("model-runner-db: error: ") and len(result.stderr.splitlines()) == 1
