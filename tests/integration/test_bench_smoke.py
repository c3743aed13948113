"""Smoke run of the benchmarks (``python -m benchmarks --quick``) so that the benchmark code cannot rot.

It runs the whole pipeline at tiny N against the session's DynamoDB Local and checks what a reader of the results
relies on: every section of the JSON, no variant or operation that failed, every feature read back, and the plot.
The figures themselves are not asserted: speed lives in the benchmarks, not in the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICK_N = 500
QUICK_CALLS = 5

#: What the module's run gives: the results JSON, the output folder and the printed report.
Run = tuple[dict[str, Any], Path, str]


@pytest.fixture(scope="module")
def quick_run(dynamodb_local_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run ``python -m benchmarks --quick`` once for the module.

    :return: Tuple[Dict[str, Any], Path, str] = the results JSON, the output folder and the printed report
    """
    out = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--quick",
        "--sizes",
        str(QUICK_N),
        "--op-calls",
        str(QUICK_CALLS),
        "--endpoint-url",
        dynamodb_local_endpoint,
        "--out",
        str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"benchmark failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads((out / "latest.json").read_text()), out, done.stdout


def test_results_hold_every_section(quick_run: Run) -> None:
    results, _, _ = quick_run
    for section in ("machine", "versions", "config", "operations", "feature_path", "floor", "classic", "targets"):
        assert section in results, f"section {section} missing"
    assert results["config"]["sizes"] == [QUICK_N]
    assert results["versions"]["pynamodb"]
    assert results["machine"]["cpus"]


def test_every_operation_measured_against_the_floor(quick_run: Run) -> None:
    results, _, _ = quick_run
    operations = results["operations"]["operations"]
    names = {op["name"] for op in operations}
    for expected in (
        "JobTable.start_image_request",
        "JobTable.complete_region_request",
        "JobTable.update_image_request",
        "JobTable.end_image_request",
        "RegionRequestTable.start_region_request",
        "RegionRequestTable.add_tile",
        "EndpointStatisticsTable.increment_region_count",
        "FeatureTable.add_features",
    ):
        assert expected in names
    failed = {op["name"]: op["error"] for op in operations if "error" in op}
    assert not failed
    for op in operations:
        assert op["requests_per_call"] >= 1
        assert op["floor_errors"] == 0, f"{op['name']}: the floor's replay was refused"
        assert op["ratio_median"] > 0
        assert results["floor"]["operations"][op["name"]]["ratio_median"] == op["ratio_median"]


def test_feature_path_stores_and_reads_back_every_feature(quick_run: Run) -> None:
    results, _, _ = quick_run
    (entry,) = results["feature_path"]["sizes"]
    assert entry["n"] == QUICK_N
    for variant, figures in entry["storage"].items():
        assert "error" not in figures, f"storage {variant}: {figures.get('error')}"
        assert figures["items_written"] > 0
        assert figures["write_capacity_units"] > 0
    for variant, figures in entry["aggregation"].items():
        assert "error" not in figures, f"aggregation {variant}: {figures.get('error')}"
        assert figures["complete"], f"aggregation {variant} read {figures['features']} features of {QUICK_N}"
        assert figures["read_capacity_units"] > 0
    assert all(value is not None for value in entry["ratios"].values())
    assert results["classic"][str(QUICK_N)]["storage_wcu_ours_over_classic"] is not None


def test_targets_are_judged(quick_run: Run) -> None:
    results, _, _ = quick_run
    targets = {target["id"]: target for target in results["targets"]}
    assert {"operation_overhead", "storage_capacity", "aggregation_vs_floor", "aggregation_memory_flat"} <= set(targets)
    assert targets["operation_overhead"]["met"] in (True, False)
    assert targets["aggregation_memory_flat"]["met"] is None  # one size cannot show growth
    assert targets["binding_memory"]["met"] is True  # 300 table names x 4 repositories add < 100 MiB


def test_report_and_plot_written(quick_run: Run) -> None:
    results, out, stdout = quick_run
    png = Path(results["files"]["png"])
    assert png.parent == out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "latest.png").stat().st_size == png.stat().st_size
    assert "| ours/floor pairs |" in Path(results["files"]["markdown"]).read_text()
    assert "Targets" in stdout and "Feature aggregation" in stdout
