"""Regenerate the screenshot of the monitor's job page in the docs (``make screenshots``).

Runs the demo job on a DynamoDB Local started in memory (fixed seed, some failures), serves the monitor on a free
loopback port, opens the job page in the system's headless Chromium, selects a region with failed tiles (or a retried
one) and saves the page to ``docs/monitor-job.png``.

Command line: ``python -m model_runner.testing.screenshots [--output docs/monitor-job.png]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from model_runner.database import FeatureTable, JobTable, RegionRequestTable, TableNames, create_tables
from model_runner.demo.driver import run_job
from model_runner.monitor import MonitorData, serving
from model_runner.testing.browser import headless_chromium
from model_runner.testing.dynamodb_local import DynamoDBLocal, ensure_emulator

DEMO_IMAGE_ID = "demo-monitor"


def capture(output: Path, failure_rate: float = 0.1, seed: int = 3) -> Path:
    """Run the demo, serve the monitor and save a screenshot of the job page.

    :param output: Path = the PNG to write
    :param failure_rate: float = the demo's failure rate (failed tiles, crashes, duplicates)
    :param seed: int = the demo's seed
    :return: Path = the file written
    """
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1"})
    with DynamoDBLocal(in_memory=True, emulator_dir=ensure_emulator()) as local:
        endpoint = local.endpoint_url
        names = TableNames.resolve()
        create_tables(names, host=endpoint, region="us-east-1")
        run_job(
            names=names,
            endpoint_url=endpoint,
            region="us-east-1",
            image_id=DEMO_IMAGE_ID,
            failure_rate=failure_rate,
            seed=seed,
        )
        data = MonitorData(
            JobTable(names.job, host=endpoint, region="us-east-1"),
            RegionRequestTable(names.region, host=endpoint, region="us-east-1"),
            FeatureTable(names.feature, host=endpoint, region="us-east-1"),
        )
        with serving(data) as server, headless_chromium() as browser:
            # playwright evaluates its waits as strings, which the page's CSP (script-src 'self') forbids
            page = browser.new_page(viewport={"width": 1360, "height": 900}, bypass_csp=True)
            page.goto(f"{server.url}/jobs/{DEMO_IMAGE_ID}")
            page.wait_for_function("window.monitorState && window.monitorState.overview !== null")
            region = page.locator("svg#regions rect.failed").first
            if region.count() == 0:
                region = page.locator("svg#regions rect.retried").first
            region.click()
            page.wait_for_selector("#region-facts:not([hidden])")
            page.mouse.move(0, 0)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output), full_page=True)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    """Write the screenshot.

    :param argv: Optional[Sequence[str]] = the arguments
    :return: int = exit status
    """
    parser = argparse.ArgumentParser(prog="python -m model_runner.testing.screenshots", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("docs/monitor-job.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    print(f"wrote {capture(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
