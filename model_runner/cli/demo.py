"""``demo``: run a whole synthetic image job with many workers, show its progress, and report what it did and cost.

With no endpoint configured (no ``--endpoint-url``, no AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL) the demo
starts DynamoDB Local in memory with placeholder credentials, and stops it at the end. With an endpoint it creates
the tables there when they are missing and leaves the job in them, to look at with ``status``, ``regions`` and
``features``.

The output file (``-o``) is checked before any work. Interrupted (Ctrl-C, SIGTERM), the demo gives back the endpoint
counts its workers hold, ends its job as failed (abandoned) and stops the DynamoDB Local it started. When DynamoDB
stops answering, every request gives up after :data:`DEMO_RETRY_POLICY` (see :data:`GIVE_UP_SECONDS`) and the demo
ends with one line naming the endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from model_runner.common.files import check_output_path
from model_runner.database import RetryPolicy, create_tables
from model_runner.demo.driver import DemoError, EndpointUnreachable, JobReport, Repositories, run_job, unreachable_code
from model_runner.demo.driver import Progress as JobProgress
from model_runner.testing.dynamodb_local import DynamoDBLocal, ensure_emulator

from .context import LOCAL_CREDENTIALS, LOCAL_REGION, Context
from .errors import EXIT_FAILED, EXIT_OK, CliError
from .output import (
    STATE_STYLES,
    duration,
    key_values,
    note,
    number,
    print_json,
    stderr_console,
    stdout_console,
    styled,
)
from .tables import check_reachable

#: Retries of the demo's requests: a person is watching, so a DynamoDB that stopped answering ends the run soon.
DEMO_RETRY_POLICY = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=1.0, max_total=3.0)
#: Seconds the demo waits for a connection and for an answer.
DEMO_CONNECT_TIMEOUT = 2.0
DEMO_READ_TIMEOUT = 10.0
#: The longest a request of the demo tries before it gives up: every attempt waits out the read timeout (a DynamoDB
#: that accepts connections but never answers), plus the policy's total backoff. A DynamoDB that is gone (connection
#: refused) gives up after the backoff alone, about 3 s.
GIVE_UP_SECONDS = (
    DEMO_RETRY_POLICY.max_attempts * (DEMO_CONNECT_TIMEOUT + DEMO_READ_TIMEOUT) + DEMO_RETRY_POLICY.max_total
)


@contextlib.contextmanager
def local_aws_environment() -> Iterator[None]:
    """Use placeholder credentials and region (and no profile or session token) inside the block.

    :return: Iterator[None] = nothing; the environment is the effect, restored afterwards
    """
    changes: dict[str, str | None] = {
        **LOCAL_CREDENTIALS,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_PROFILE": None,
        "AWS_DEFAULT_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
    }
    saved = {name: os.environ.get(name) for name in changes}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def demo_command(args: argparse.Namespace, context: Context) -> int:
    """Run the demo job and print its report.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status: 0 when every check of the report holds, 1 otherwise
    """
    if args.output is not None:
        check_output_path(args.output)  # before any work: a wrong path must not cost a whole run
    with contextlib.ExitStack() as stack:
        if context.endpoint_url is None:
            note("No endpoint configured: starting DynamoDB Local in memory for the demo (stopped at the end).")
            server = DynamoDBLocal(in_memory=True, emulator_dir=ensure_emulator())
            stack.callback(server.stop)  # registered first: an interrupt while it starts stops it too
            stack.enter_context(local_aws_environment())
            endpoint = server.start()
            context = replace(context, endpoint_url=endpoint, region=LOCAL_REGION)
        else:
            check_reachable(context)
        create_tables(context.names, host=context.endpoint_url, region=context.region)
        threads = args.workers * (args.tile_workers + 1) + 4
        repositories = Repositories.connect(
            context.names,
            context.endpoint_url,
            context.region,
            args.tile_size,
            args.overlap,
            max(threads, 10),
            retry_policy=DEMO_RETRY_POLICY,
            connect_timeout_seconds=DEMO_CONNECT_TIMEOUT,
            read_timeout_seconds=DEMO_READ_TIMEOUT,
        )
        try:
            report = _run_with_progress(args, repositories)
        except Exception as err:
            code = err.code if isinstance(err, EndpointUnreachable) else unreachable_code(err)
            if code is not None:
                raise CliError(
                    f"lost {context.where} during the demo ({code}): gave up once the retries had run out (at most "
                    f"{GIVE_UP_SECONDS:.0f} s per request); is DynamoDB still running?"
                ) from err
            if isinstance(err, DemoError):
                raise CliError(f"the demo stopped: {err}") from err
            raise
    if context.as_json:
        print_json(report.to_json())
    else:
        show_report(report)
    if not report.ok:
        note(f"model-runner-db: error: the demo's checks failed: {', '.join(report.failed_checks)} (see the report)")
        return EXIT_FAILED
    return EXIT_OK


def _run_with_progress(args: argparse.Namespace, repositories: Repositories) -> JobReport:
    console = stderr_console()
    columns = (
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles  {task.fields[regions]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=None, regions="")

        def on_progress(progress: JobProgress) -> None:
            bar.update(
                task,
                description=progress.phase,
                completed=progress.tiles_done,
                total=progress.tiles_total,
                regions=f"{progress.regions_done}/{progress.regions_total} regions  "
                f"{number(progress.features_written)} features",
            )

        return run_job(
            repositories,
            image_id=args.image_id,
            image_size=args.image_size,
            region_size=args.region_size,
            tile_size=args.tile_size,
            overlap=args.overlap,
            workers=args.workers,
            tile_workers=args.tile_workers,
            failure_rate=args.failure_rate,
            seed=args.seed,
            features_per_tile=args.features_per_tile,
            output=args.output,
            progress=on_progress,
            stop_when_unreachable=True,
        )


def _counts(counts: dict[str, int]) -> str:
    return (
        ", ".join(f"{name} {number(value)}" for name, value in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
    )


def _check_details(report: JobReport) -> str:
    """Say what a failed check saw, for the checks whose name alone does not."""
    details = []
    if "endpoint count restored" in report.failed_checks:
        details.append(
            f"regions in progress {report.regions_in_progress_before} before the run, "
            f"{report.regions_in_progress_after} after"
        )
    if "one aggregation" in report.failed_checks:
        details.append(f"{report.aggregations} aggregations")
    return f" ({'; '.join(details)})" if details else ""


def show_report(report: JobReport) -> None:
    """Print a run's report as a table.

    :param report: JobReport = the report
    """
    spec: dict[str, Any] = report.spec
    capacity = report.capacity
    speed = report.throughput()
    failed = report.failed_checks
    check = "[green]all checks passed[/]" if report.ok else "[red]CHECKS FAILED[/]"
    checks = (
        "[green]all passed[/]: " + ", ".join(report.checks())
        if report.ok
        else "[red]FAILED[/]: " + ", ".join(failed) + _check_details(report)
    )
    match = "[green]match[/]" if report.features_match else "[red]DO NOT MATCH[/]"
    tile_w, tile_h = spec["tile_size"]
    region_w, region_h = spec["region_size"]
    again = report.redeliveries
    rows: list[tuple[str, Any]] = [
        ("job", f"{escape(report.image_id)}: " + styled(report.state, STATE_STYLES).markup + f", {check}"),
        ("checks", checks),
        ("image", f"{spec['width']} x {spec['height']} px, {report.regions} regions of {region_w} x {region_h}"),
        ("tiles", f"{number(report.tiles)} of {tile_w} x {tile_h}, overlap {spec['overlap'][0]}"),
        (
            "workers",
            f"{spec['workers']} x {spec['tile_workers']} tile threads, failure rate {spec['failure_rate']:.2f}, "
            f"seed {spec['seed']}",
        ),
        ("regions", f"{report.regions_succeeded} succeeded, {report.regions_failed} failed"),
        (
            "deliveries",
            f"{report.region_deliveries} (again: {again['crash']} after a crash, {again['failed_tiles']} for failed "
            f"tiles, {again['error']} after an error)",
        ),
        (
            "duplicates",
            f"{report.duplicate_completions} completions delivered twice, {report.lost_claims} aggregation claims lost",
        ),
        (
            "tiles done",
            f"{number(report.tiles_succeeded)} succeeded, {number(report.tiles_failed)} failed; "
            f"{number(report.tile_attempts)} attempts",
        ),
        (
            "features",
            f"{number(report.features_written)} written, {number(report.features_aggregated)} aggregated ({match}), "
            f"{number(report.feature_writes)} sent",
        ),
        ("aggregation", f"{report.aggregations} worker aggregated"),
        (
            "retries",
            f"{report.region_retries_recorded} region retries recorded, "
            f"{number(report.tile_attempts - report.tiles)} tiles run again, errors: {_counts(report.worker_errors)}",
        ),
        ("wall time", duration(report.wall_seconds)),
        (
            "throughput",
            f"{number(speed['tiles_per_second'], 1)} tiles/s, {number(speed['features_per_second'])} features/s, "
            f"{number(speed['requests_per_second'])} requests/s",
        ),
        (
            "capacity",
            f"{number(capacity.read_units, 1)} RCU + {number(capacity.write_units, 1)} WCU "
            f"in {number(capacity.total_requests)} requests",
        ),
        ("requests", _counts(capacity.requests)),
        ("answers", f"errors: {_counts(capacity.errors)}"),
    ]
    if report.output_path:
        rows.append(("output", escape(report.output_path)))
    console = stdout_console()
    console.print(key_values(rows, title="Demo job report", markup=True))
