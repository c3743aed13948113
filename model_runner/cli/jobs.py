"""The read commands: ``status``, ``regions``, ``features`` and ``endpoints``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, cast

from model_runner.common.files import atomic_output, check_output_path
from model_runner.database import (
    EndpointStatisticsException,
    EndpointStatisticsItem,
    GetImageRequestItemException,
    JobItem,
    RegionRequestItem,
)
from model_runner.demo.report import abandoned, job_state

from .context import Context
from .errors import EXIT_OK, CliError
from .output import (
    STATE_STYLES,
    STATUS_STYLES,
    HeldFirstWrite,
    bar,
    iso_time,
    key_values,
    milliseconds,
    note,
    number,
    print_json,
    rows_table,
    stdout_console,
    styled,
    whole_seconds,
)


def load_job(context: Context, image_id: str) -> JobItem:
    """Read a job, or fail with a clear message when there is none.

    :param context: Context = the global options
    :param image_id: str = the image id
    :return: JobItem = the stored job
    :raises CliError: when no job has this image id
    :raises DatabaseError: when the read fails (missing table, unreachable endpoint)
    """
    try:
        return context.job_table().get_image_request(image_id)
    except GetImageRequestItemException as err:
        if err.code is None:  # the read worked: there is no such job
            raise CliError(
                f"unknown image id {image_id!r}: no job in table {context.names.job} at {context.where}"
            ) from None
        raise


def _loads(text: str | None) -> Any:
    """Parse a JSON attribute, keeping the text when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def job_summary(job: JobItem) -> dict[str, Any]:
    """Summarise a job: state, region counts, times, model and outputs.

    The duration is what is stored: ``processing_duration`` in whole seconds (``duration_unit`` "s"), else, for a
    job ended without it, end_time - start_time in milliseconds (``duration_unit`` "ms"); None for a job that has
    not ended (no duration grows "so far"). ``abandoned`` is True for a job ended before all its regions were done.

    :param job: JobItem = the stored job
    :return: Dict[str, Any] = JSON-serialisable summary
    """
    success = int(job.region_success or 0)
    errors = int(job.region_error or 0)
    count = int(job.region_count) if job.region_count is not None else None
    value: int | None = None
    unit: str | None = None
    if job.end_time is not None and job.processing_duration is not None:
        value, unit = int(job.processing_duration), "s"
    elif job.end_time is not None and job.start_time is not None:
        value, unit = int(job.end_time) - int(job.start_time), "ms"
    return {
        "image_id": job.image_id,
        "job_id": job.job_id,
        "state": job_state(count, success, errors, job.end_time),
        "abandoned": abandoned(count, success, errors, job.end_time),
        "region_count": count,
        "regions_done": success + errors,
        "region_success": success,
        "region_error": errors,
        "start_time": iso_time(job.start_time),
        "end_time": iso_time(job.end_time),
        "duration_seconds": None if value is None else (value if unit == "s" else value / 1000),
        "duration_unit": unit,
        "model_name": job.model_name,
        "image_url": job.image_url,
        "width": job.width,
        "height": job.height,
        "tile_size": job.tile_size,
        "tile_overlap": job.tile_overlap,
        "outputs": _loads(job.outputs),
        "aggregated_by": job.aggregated_by,
    }


def _job_duration(summary: dict[str, Any]) -> str:
    if summary["end_time"] is None:
        return "- (not ended)"
    if summary["duration_unit"] == "s":
        return whole_seconds(summary["duration_seconds"])
    if summary["duration_unit"] == "ms":
        return milliseconds(round(summary["duration_seconds"] * 1000))
    return "-"


def _ended(summary: dict[str, Any]) -> str | None:
    if summary["abandoned"]:
        return (
            f"{summary['end_time']} (abandoned with {summary['regions_done']} of {summary['region_count']} regions "
            "done)"
        )
    return cast("str | None", summary["end_time"])


def status_command(args: argparse.Namespace, context: Context) -> int:
    """``status IMAGE_ID``: the job at a glance.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    summary = job_summary(load_job(context, args.image_id))
    if context.as_json:
        print_json(summary)
        return EXIT_OK
    state = summary["state"]
    size = f"{summary['width']} x {summary['height']} px" if summary["width"] is not None else None
    outputs = summary["outputs"]
    rows: list[tuple[str, Any]] = [
        ("state", styled(state, STATE_STYLES)),
        ("regions", bar(summary["regions_done"], summary["region_count"])),
        ("succeeded", number(summary["region_success"])),
        ("failed", number(summary["region_error"])),
        ("started", summary["start_time"]),
        ("ended", _ended(summary)),
        ("duration", _job_duration(summary)),
        ("model", summary["model_name"]),
        ("image", " ".join(part for part in (summary["image_url"], size and f"({size})") if part) or None),
        ("outputs", json.dumps(outputs) if outputs is not None and not isinstance(outputs, str) else outputs),
        ("aggregated by", summary["aggregated_by"]),
    ]
    title = f"Job {summary['image_id']}" + (f" ({summary['job_id']})" if summary["job_id"] else "")
    stdout_console().print(key_values(rows, title=title))
    return EXIT_OK


def _bounds_order(row: dict[str, Any]) -> tuple[int, int, str]:
    bounds = row.get("region_bounds")
    try:
        (r, c), _ = bounds  # type: ignore[misc]
        return int(r), int(c), str(row.get("region_id"))
    except (TypeError, ValueError):
        return sys.maxsize, sys.maxsize, str(row.get("region_id"))


def _tile(tile: Any) -> str:
    return json.dumps(tile)


def region_summary(row: dict[str, Any]) -> dict[str, Any]:
    """Summarise a region item: status, tile counts, retries, duration.

    A tile that failed and then succeeded on a retry of the region counts as succeeded, not failed. The duration is
    what is stored, in milliseconds: ``processing_duration``, else end_time - start_time; None for a region that has
    not ended.

    :param row: Dict[str, Any] = the region item as a dictionary
    :return: Dict[str, Any] = JSON-serialisable summary
    """
    succeeded_tiles = {_tile(tile) for tile in row.get("succeeded_tiles") or []}
    failed_tiles = {_tile(tile) for tile in row.get("failed_tiles") or []}
    succeeded = len(succeeded_tiles) if succeeded_tiles else int(row.get("succeeded_tile_count") or 0)
    # a tile that failed and then succeeded on a retry of the region is in both lists: it counts as succeeded
    failed = len(failed_tiles - succeeded_tiles) if failed_tiles else int(row.get("failed_tile_count") or 0)
    start, end = row.get("start_time"), row.get("end_time")
    millis: int | None = None
    if end is not None and row.get("processing_duration") is not None:
        millis = int(row["processing_duration"])
    elif end is not None and start is not None:
        millis = int(end) - int(start)
    return {
        "region_id": row.get("region_id"),
        "status": row.get("region_status"),
        "tiles_succeeded": int(succeeded),
        "tiles_failed": int(failed),
        "tiles_total": row.get("total_tiles"),
        "retries": int(row.get("region_retry_count") or 0),
        "start_time": iso_time(start),
        "end_time": iso_time(end),
        "duration_seconds": None if millis is None else millis / 1000,
        "duration_ms": millis,
        "region_bounds": row.get("region_bounds"),
    }


def regions_command(args: argparse.Namespace, context: Context) -> int:
    """``regions IMAGE_ID``: one row per region.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    load_job(context, args.image_id)
    rows = context.region_table().query_items(RegionRequestItem(image_id=args.image_id))
    regions = [region_summary(row) for row in sorted(rows, key=_bounds_order)]
    if context.as_json:
        print_json(regions)
        return EXIT_OK
    console = stdout_console()
    if not regions:
        console.print(f"No region recorded for {args.image_id} yet.")
        return EXIT_OK
    table = rows_table(
        [
            ("Region", "left"),
            ("Status", "left"),
            ("Succeeded", "right"),
            ("Failed", "right"),
            ("Total", "right"),
            ("Retries", "right"),
            ("Duration", "right"),
        ],
        [
            [
                str(region["region_id"]),
                styled(region["status"], STATUS_STYLES),
                number(region["tiles_succeeded"]),
                number(region["tiles_failed"]),
                "-" if region["tiles_total"] is None else number(region["tiles_total"]),
                number(region["retries"]),
                milliseconds(region["duration_ms"]),
            ]
            for region in regions
        ],
    )
    console.print(table)
    return EXIT_OK


def features_command(args: argparse.Namespace, context: Context) -> int:
    """``features IMAGE_ID [-o FILE]``: the job's features as one GeoJSON FeatureCollection, streamed.

    A file is written under a temporary name in the target's directory and renamed over it when complete, so a
    failure never leaves half a file; the target keeps its permissions, and a symbolic link's target receives the
    content. On stdout, nothing is written before the first page of features has been read, so a failed read (a
    missing table) leaves ``> file`` empty.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    if args.output not in (None, "-"):
        check_output_path(args.output)  # before any request: a wrong path fails at once, naming the path
    load_job(context, args.image_id)
    table = context.feature_table()
    if args.output in (None, "-"):
        count = int(table.write_feature_collection(args.image_id, HeldFirstWrite(sys.stdout)))
        sys.stdout.flush()
        note(f"{count} features")
        return EXIT_OK
    with atomic_output(args.output) as fp:
        count = int(table.write_feature_collection(args.image_id, fp))
    note(f"{count} features written to {args.output}")
    return EXIT_OK


def endpoints_command(args: argparse.Namespace, context: Context) -> int:
    """``endpoints``: every tracked model endpoint with its regions in progress and its maximum.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    table = context.endpoint_table()

    def scan() -> list[dict[str, Any]]:
        return [table.as_dict(item) for item in table.model.scan()]

    items = table._run(scan, EndpointStatisticsException, "list endpoints", {})
    endpoints: list[dict[str, Any]] = sorted(
        (
            {
                "endpoint": item.get("endpoint"),
                "regions_in_progress": int(item.get("regions_in_progress") or 0),
                "max_regions": item.get("max_regions"),
            }
            for item in items
        ),
        key=lambda entry: str(entry["endpoint"]),
    )
    if context.as_json:
        print_json(endpoints)
        return EXIT_OK
    console = stdout_console()
    if not endpoints:
        console.print(f"No endpoint tracked in {context.names.endpoint}.")
        return EXIT_OK
    console.print(
        rows_table(
            [("Endpoint", "left"), ("In progress", "right"), ("Max regions", "right"), ("Load", "left")],
            [
                [
                    str(entry["endpoint"]),
                    number(entry["regions_in_progress"]),
                    "-" if entry["max_regions"] is None else number(entry["max_regions"]),
                    bar(entry["regions_in_progress"], entry["max_regions"], width=20) if entry["max_regions"] else "-",
                ]
                for entry in endpoints
            ],
        )
    )
    raised = [str(entry["endpoint"]) for entry in endpoints if entry["regions_in_progress"]]
    if raised:
        console.print(
            "A count that stays above 0 while no worker runs was left by a worker that stopped without counting its "
            f"region out; reset it with: {context.command_prefix()} reset-endpoint {raised[0]}",
            soft_wrap=True,
        )
    return EXIT_OK


def reset_endpoint_command(args: argparse.Namespace, context: Context) -> int:
    """``reset-endpoint ENDPOINT [--to N]``: set an endpoint's regions in progress (to 0 by default).

    For a count that a crashed worker left raised: one UpdateItem that sets the count, on condition that the endpoint
    is tracked (an unknown name creates nothing). Run it only while no worker processes regions on that endpoint.

    :param args: argparse.Namespace = the parsed options (endpoint, to)
    :param context: Context = the global options
    :return: int = exit status
    :raises CliError: when the endpoint is not tracked
    """
    table = context.endpoint_table()
    before = table.current_in_progress_regions(args.endpoint)
    in_progress = EndpointStatisticsItem.regions_in_progress
    if not table._change(
        args.endpoint, [in_progress.set(args.to)], EndpointStatisticsItem.endpoint.exists(), "reset region count"
    ):
        raise CliError(
            f"unknown endpoint {args.endpoint!r}: not tracked in table {context.names.endpoint} at {context.where} "
            f"(list them with: {context.command_prefix()} endpoints)"
        )
    if context.as_json:
        print_json({"endpoint": args.endpoint, "regions_in_progress_before": before, "regions_in_progress": args.to})
    else:
        stdout_console().print(f"{args.endpoint}: regions in progress {before} -> {args.to}")
    return EXIT_OK
