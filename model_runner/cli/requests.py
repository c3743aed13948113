"""``requests``: the scheduler's outstanding image requests (the requested-jobs table), per model endpoint."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from model_runner.database import ImageRequestStatusRecord

from .context import Context
from .errors import EXIT_OK
from .output import bar, duration, print_json, rows_table, stdout_console


def request_summary(record: ImageRequestStatusRecord, now: float | None = None) -> dict[str, Any]:
    """Summarise an outstanding request: endpoint, job, image, attempts, regions done, waiting time.

    :param record: ImageRequestStatusRecord = the record
    :param now: Optional[float] = the current epoch time in seconds
    :return: Dict[str, Any] = JSON-serialisable summary
    """
    current = time.time() if now is None else now
    return {
        "endpoint_id": record.endpoint_id,
        "job_id": record.job_id,
        "image_id": record.request_payload.image_id,
        "image_url": record.request_payload.image_url,
        "request_time": record.request_time,
        "waiting_seconds": max(0, int(current - record.request_time)),
        "num_attempts": record.num_attempts,
        "last_attempt": record.last_attempt or None,
        "regions_complete": len(record.regions_complete),
        "region_count": record.region_count,
    }


def requests_command(args: argparse.Namespace, context: Context) -> int:
    """``requests``: every outstanding request (a Scan), or one endpoint's (``ENDPOINT``, a Query).

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    table = context.requested_jobs_table()
    records = table.get_outstanding_requests(args.endpoint)
    rows = sorted(
        (request_summary(record) for record in records),
        key=lambda row: (row["endpoint_id"], row["request_time"], row["job_id"]),
    )
    if context.as_json:
        print_json(rows)
        return EXIT_OK
    console = stdout_console()
    if not rows:
        where = f" for endpoint {args.endpoint}" if args.endpoint else ""
        console.print(f"No outstanding request{where} in {context.names.requested}.")
        return EXIT_OK
    console.print(
        rows_table(
            [
                ("Endpoint", "left"),
                ("Job", "left"),
                ("Attempts", "right"),
                ("Regions", "left"),
                ("Waiting", "right"),
            ],
            [
                [
                    row["endpoint_id"],
                    row["job_id"],
                    str(row["num_attempts"]),
                    bar(row["regions_complete"], row["region_count"], width=12),
                    duration(row["waiting_seconds"]),
                ]
                for row in rows
            ],
        )
    )
    return EXIT_OK


def add_parser(commands: Any, common: Sequence[argparse.ArgumentParser]) -> None:
    """Register ``requests`` on the command line.

    :param commands: Any = the subparsers of the main parser
    :param common: List[ArgumentParser] = the parents carrying the global options
    """
    parser = commands.add_parser(
        "requests",
        parents=common,
        help="the scheduler's outstanding image requests: attempts and regions done, per endpoint",
        description="List the records of the requested-jobs table (OUTSTANDING_IMAGE_REQUEST_TABLE): one per image "
        "request waiting or in progress, with its attempts and completed regions. All endpoints are read with a "
        "Scan; ENDPOINT reads one endpoint's with a Query.",
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", nargs="?", help="only this model endpoint's requests (a Query)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    parser.set_defaults(handler=requests_command)
