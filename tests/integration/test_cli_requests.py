"""``model-runner-db requests``: the scheduler's outstanding requests, as a table and as JSON, on DynamoDB Local."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_runner.api import ImageRequest
from model_runner.cli.main import main
from model_runner.database import RequestedJobsTable, TableNames

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def message(job_id: str, endpoint: str) -> dict[str, Any]:
    return {"jobId": job_id, "imageUrls": [f"s3://imagery/{job_id}.ntf"], "imageProcessor": {"name": endpoint}}


def test_requests_lists_every_endpoint_or_one(
    capsys: pytest.CaptureFixture[str], dynamodb_local_endpoint: str, ddb_tables: TableNames
) -> None:
    options = ["--endpoint-url", dynamodb_local_endpoint, "--requested-table", ddb_tables.requested]
    code, out, _ = run(capsys, *options, "requests")
    assert code == 0 and "No outstanding request" in out and ddb_tables.requested in out

    table = RequestedJobsTable(ddb_tables.requested, host=dynamodb_local_endpoint)
    first = ImageRequest.from_external_message(message("job-1", "aircraft"))
    record = table.add_new_request(first, region_count=4)
    table.add_new_request(ImageRequest.from_external_message(message("job-2", "ships")))
    table.start_next_attempt(record)
    table.complete_region(first, "r1")

    code, out, _ = run(capsys, *options, "requests", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["endpoint_id"], r["job_id"]) for r in rows] == [("aircraft", "job-1"), ("ships", "job-2")]
    assert (rows[0]["num_attempts"], rows[0]["regions_complete"], rows[0]["region_count"]) == (1, 1, 4)
    assert rows[0]["image_id"] == "job-1:s3://imagery/job-1.ntf" and rows[1]["region_count"] is None

    code, out, _ = run(capsys, *options, "requests", "ships", "--json")
    assert code == 0 and [r["job_id"] for r in json.loads(out)] == ["job-2"]

    code, out, _ = run(capsys, *options, "requests")
    assert code == 0 and "job-1" in out and "1/4" in out and "ships" in out


def test_requests_on_a_missing_table_says_how_to_create_it(
    capsys: pytest.CaptureFixture[str], dynamodb_local_endpoint: str
) -> None:
    code, _, err = run(capsys, "--endpoint-url", dynamodb_local_endpoint, "--requested-table", "nope-table", "requests")
    assert code == 1 and "nope-table" in err and "create-tables" in err
