"""``model-runner-db``: look after the model runner's tables, inspect jobs, run DynamoDB Local and the demo job.

Also ``python -m model_runner.database``. Options are parsed with argparse (the standard library: one less
dependency, and subcommands with shared global options are all this needs); tables and progress bars use rich.

Global options (AWS CLI style) may come before or after the command:
``--endpoint-url``, ``--region``, ``--profile``, ``--table-prefix``, ``--job-table``, ``--region-table``,
``--endpoint-table``, ``--feature-table``, ``--requested-table``, ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import infra
from .context import Context
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, NO_REGION_MESSAGE, CliError, explain, one_line
from .options import non_negative_int, overlap, port, positive_int, rate, size

PROG = "model-runner-db"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), and that never matches an option by
    abbreviation (``--region`` must not quietly mean ``--region-table``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Report a usage error on one line and exit with status 2.

        :param message: str = what is wrong
        """
        self.exit(EXIT_USAGE, f"{PROG}: error: {one_line(message)} (see {self.prog} --help)\n")


# -- the parser ------------------------------------------------------------------------------------------------------


def package_version() -> str:
    """Return the installed version of the package.

    :return: str = e.g. ``0.1.0``; ``unknown`` when the package's metadata is not installed
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-runner-database")
    except PackageNotFoundError:
        return "unknown"


def _global_options(suppress: bool) -> _Parser:
    """Build the global options, for the main parser (with defaults) or a command's (without: a value given before
    the command is kept).

    :param suppress: bool = leave values absent instead of None when not given
    :return: ArgumentParser = a parent parser
    """
    parent = _Parser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else None
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        default=default,
        help="DynamoDB endpoint (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL)",
    )
    group.add_argument("--region", default=default, help="AWS region (AWS_REGION, AWS_DEFAULT_REGION)")
    group.add_argument("--profile", default=default, help="AWS profile of the shared config files (AWS_PROFILE)")
    group.add_argument(
        "--table-prefix", metavar="PREFIX", default=default, help="put PREFIX before the default table names"
    )
    group.add_argument("--job-table", metavar="NAME", default=default, help="job table (JOB_TABLE)")
    group.add_argument("--region-table", metavar="NAME", default=default, help="region table (REGION_REQUEST_TABLE)")
    group.add_argument(
        "--endpoint-table", metavar="NAME", default=default, help="endpoint statistics table (ENDPOINT_TABLE)"
    )
    group.add_argument("--feature-table", metavar="NAME", default=default, help="feature table (FEATURE_TABLE)")
    group.add_argument(
        "--requested-table",
        metavar="NAME",
        default=default,
        help="requested-jobs table of the scheduler (OUTSTANDING_IMAGE_REQUEST_TABLE)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show the Python traceback of an error",
    )
    return parent


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``model-runner-db``.

    :return: ArgumentParser = the parser; each command sets ``handler(args, context) -> int``
    """
    parser = _Parser(
        prog=PROG,
        description="Look after the model runner's DynamoDB tables, inspect image jobs, run DynamoDB Local and a "
        "demo job.",
        parents=[_global_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    common = [_global_options(suppress=True)]
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    from . import demo, jobs, local, requests, serve, tables  # imported here: --help stays fast

    create = commands.add_parser(
        "create-tables",
        parents=common,
        help="create the tables (on-demand; TTL on expire_time but for the endpoint and requested-jobs tables) "
        "unless they exist",
    )
    _json_option(create)
    create.set_defaults(handler=tables.create_tables_command)

    delete = commands.add_parser("delete-tables", parents=common, help="delete the tables and all their items")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    _json_option(delete)
    delete.set_defaults(handler=tables.delete_tables_command)

    status = commands.add_parser(
        "status", parents=common, help="a job at a glance: state, regions, times, model, outputs"
    )
    status.add_argument("image_id", metavar="IMAGE_ID")
    _json_option(status)
    status.set_defaults(handler=jobs.status_command)

    regions = commands.add_parser(
        "regions", parents=common, help="one row per region of a job: status, tiles, retries, duration"
    )
    regions.add_argument("image_id", metavar="IMAGE_ID")
    _json_option(regions)
    regions.set_defaults(handler=jobs.regions_command)

    features = commands.add_parser(
        "features", parents=common, help="a job's features as a GeoJSON FeatureCollection, streamed"
    )
    features.add_argument("image_id", metavar="IMAGE_ID")
    features.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (default: stdout); the count goes to stderr"
    )
    features.set_defaults(handler=jobs.features_command)

    endpoints = commands.add_parser(
        "endpoints", parents=common, help="model endpoints: regions in progress and max regions"
    )
    _json_option(endpoints)
    endpoints.set_defaults(handler=jobs.endpoints_command)

    reset = commands.add_parser(
        "reset-endpoint",
        parents=common,
        help="set an endpoint's regions in progress (to 0): for a count a crashed worker left raised",
        description="Set the regions in progress of a model endpoint, to 0 unless --to is given. A worker that dies "
        "while it processes a region never counts it out; run this only while no worker processes regions on that "
        "endpoint.",
    )
    reset.add_argument("endpoint", metavar="ENDPOINT", help="the endpoint name, as `endpoints` lists it")
    reset.add_argument("--to", type=non_negative_int, default=0, help="the count to set (default: 0)")
    _json_option(reset)
    reset.set_defaults(handler=jobs.reset_endpoint_command)

    local_parser = commands.add_parser(
        "local",
        parents=common,
        help="run DynamoDB Local for development (persistent on disk unless --in-memory)",
        description="Start, stop or show a DynamoDB Local that runs in the background, persistent in --data-dir "
        "unless --in-memory. It prints the endpoint URL to use.",
    )
    local_parser.add_argument("action", choices=("start", "stop", "status"))
    local_parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="data directory (default: ~/.local/share/model-runner-db/dynamodb-local)",
    )
    local_parser.add_argument("--port", type=port, help=f"port to listen on, for start (default: {local.DEFAULT_PORT})")
    local_parser.add_argument("--in-memory", action="store_true", help="keep the tables in memory only (lost at stop)")
    _json_option(local_parser)
    local_parser.set_defaults(handler=local.local_command)

    demo_parser = commands.add_parser(
        "demo",
        parents=common,
        help="run a whole synthetic image job with many workers and report it",
        description="Run a whole image job through the tables: a synthetic image cut into regions and tiles, a "
        "synthetic detector, many worker threads, optional failures (failed tiles, crashed workers, duplicated "
        "messages), aggregation and end. Without an endpoint, DynamoDB Local is started in memory for the run.",
    )
    demo_parser.add_argument(
        "--image-size", type=size, default=(8192, 8192), metavar="WxH", help="image size in pixels (default: 8192x8192)"
    )
    demo_parser.add_argument(
        "--region-size", type=size, default=(2048, 2048), metavar="WxH", help="region size (default: 2048)"
    )
    demo_parser.add_argument(
        "--tile-size", type=size, default=(512, 512), metavar="WxH", help="tile size (default: 512)"
    )
    demo_parser.add_argument(
        "--overlap", type=overlap, default=(32, 32), metavar="WxH", help="tile overlap (default: 32)"
    )
    demo_parser.add_argument("--workers", type=positive_int, default=8, help="region worker threads (default: 8)")
    demo_parser.add_argument(
        "--tile-workers", type=positive_int, default=4, help="tile threads per region worker (default: 4)"
    )
    demo_parser.add_argument(
        "--failure-rate",
        type=rate,
        default=0.0,
        help="probability of a failed tile, a crashed region worker and a duplicated completion (default: 0)",
    )
    demo_parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the detector and the failures (default: 0)"
    )
    demo_parser.add_argument(
        "--features-per-tile", type=non_negative_int, default=20, help="mean detections per tile (default: 20)"
    )
    demo_parser.add_argument("--image-id", help="image id of the job (default: a new demo-... id)")
    demo_parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the aggregated FeatureCollection to FILE (checked before any work)",
    )
    _json_option(demo_parser)
    demo_parser.set_defaults(handler=demo.demo_command)

    serve.add_parser(commands, common)
    requests.add_parser(commands, common)
    infra.add_parsers(commands, parents=common)
    return parser


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Check option values that depend on each other."""
    if getattr(args, "command", None) != "demo":
        return
    if any(o >= t for o, t in zip(args.overlap, args.tile_size, strict=True)):
        width, height = args.tile_size
        parser.error(f"argument --overlap: must be smaller than the tile size {width}x{height}")


def _silence_broken_pipe() -> None:
    """After a closed pipe (``model-runner-db features X | head``), send further output nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class _Signals:
    """Turn the first SIGINT, SIGTERM or SIGHUP into KeyboardInterrupt, and make later ones wait for the clean-up.

    A command that is interrupted gives back what it holds on the way out (the demo: endpoint counts, its job, the
    DynamoDB Local it started), within a bounded time; a second Ctrl-C during that clean-up is noted, not raised, so
    that it cannot cut the clean-up short with a traceback.
    """

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        """Install the handlers (main thread only)."""
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, self._handle)

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:
            print(f"{PROG}: stopping, please wait (at most a few seconds)", file=sys.stderr, flush=True)
            return
        self.received = number
        raise KeyboardInterrupt

    def exit_status(self) -> int:
        """Return the exit status of an interrupted command: 128 + the signal number (130 for Ctrl-C).

        :return: int = the status
        """
        return 128 + (self.received or signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Called without ``argv`` (as the program ``model-runner-db``), it also handles SIGTERM and SIGHUP like Ctrl-C, and
    exits at once after the command even when a thread of an interrupted command still waits on the network.

    :param argv: Optional[Sequence[str]] = the arguments; ``sys.argv[1:]`` when None
    :return: int = exit status: 0 success, 1 failure, 2 bad usage, 3 ``local status`` found no server, 130 interrupted
        (143 terminated)
    """
    as_program = argv is None and threading.current_thread() is threading.main_thread()
    signals = _Signals()
    if as_program:
        signals.install()
    code = _run(argv, signals)
    stopped_early = signals.received is not None or code != EXIT_OK
    if (
        as_program
        and stopped_early
        and any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread())
    ):
        # an interrupted or failed command left a thread in a request: its result is not wanted, and waiting for it at
        # exit (concurrent.futures joins its threads) would hang; everything that mattered was cleaned up already
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(argv: Sequence[str] | None, signals: _Signals) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check(args, parser)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    context: Context | None = None
    try:
        context = Context.from_args(args)
        with context.aws_environment():
            if hasattr(args, "handler"):
                return int(args.handler(args, context))
            try:
                return int(args.func(args))
            except ValueError as err:  # the infrastructure commands raise it for option values they refuse
                raise CliError(one_line(str(err)), EXIT_USAGE) from err
    except KeyboardInterrupt:
        terminated = signals.received not in (None, signal.SIGINT)
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr, flush=True)
        return signals.exit_status() if signals.received is not None else EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_broken_pipe()
        return EXIT_FAILED
    except Exception as err:
        if getattr(args, "debug", False):
            traceback.print_exc()
        failure = _explain_any(err, context, debug=bool(getattr(args, "debug", False)))
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return failure.exit_code


def _explain_any(err: Exception, context: Context | None, debug: bool = False) -> CliError:
    """Explain a failure; errors that are no user error say so and, unless --debug is on, point to it."""
    from model_runner.database import ConfigurationError, DatabaseError
    from model_runner.database.exceptions import error_code
    from model_runner.testing.dynamodb_local import DynamoDBLocalError

    if isinstance(err, ConfigurationError):
        if err.__cause__ is not None and error_code(err.__cause__) == "NoRegionError":
            return CliError(NO_REGION_MESSAGE, EXIT_USAGE)
        return CliError(one_line(str(err)), EXIT_USAGE)
    if isinstance(err, (CliError, DatabaseError)):
        return explain(err, context)
    if isinstance(err, DynamoDBLocalError):
        return CliError(f"DynamoDB Local: {one_line(str(err))}")
    if isinstance(err, OSError):
        return CliError(one_line(str(err)))
    failure = explain(err, context)
    if failure.args[0] != (one_line(str(err)) or type(err).__name__):  # a known botocore failure, explained
        return failure
    hint = "" if debug else " (run with --debug for the traceback)"
    return CliError(f"{type(err).__name__}: {one_line(str(err))}{hint}")


if __name__ == "__main__":
    sys.exit(main())
