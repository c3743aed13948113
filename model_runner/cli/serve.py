"""``serve``: the read-only job monitor in the browser (:mod:`model_runner.monitor`) on the command's tables."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from typing import Any

from .context import Context
from .errors import EXIT_OK, CliError
from .options import listen_port, positive_int, refresh_seconds
from .output import note

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """Tell whether a listen address is reachable from this machine only.

    :param host: str = the address or host name
    :return: bool = True for 127.0.0.0/8, ::1 and localhost
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Register ``serve`` on the subparsers of the main command.

    :param commands: Any = the object returned by ``ArgumentParser.add_subparsers()``
    :param parents: List[ArgumentParser] = the global options
    """
    from model_runner.monitor.data import DEFAULT_BOX_CAP, DEFAULT_SCAN_LIMIT

    parser = commands.add_parser(
        "serve",
        parents=list(parents),
        help="a read-only job monitor in the browser (jobs, regions, tiles, features)",
        description="Serve a read-only job monitor: recent jobs, and per job its region grid coloured by state, the "
        "tiles of a region, the features in image coordinates over the tile seams, and a GeoJSON download; plus a "
        "JSON API under /api. Listens on loopback (127.0.0.1) unless --host says otherwise. Nothing is written to "
        "the tables.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=listen_port, default=DEFAULT_PORT, help=f"port to listen on, 0 for any (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--scan-limit",
        type=positive_int,
        default=DEFAULT_SCAN_LIMIT,
        metavar="N",
        help=f"job items the jobs page reads at most per listing (default: {DEFAULT_SCAN_LIMIT})",
    )
    parser.add_argument(
        "--box-cap",
        type=positive_int,
        default=DEFAULT_BOX_CAP,
        metavar="N",
        help=f"feature boxes drawn at most on a job page, a uniform sample beyond (default: {DEFAULT_BOX_CAP})",
    )
    parser.add_argument(
        "--refresh",
        type=refresh_seconds,
        default=3.0,
        metavar="SECONDS",
        help="how often a running job's page refreshes (default: 3)",
    )
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace, context: Context) -> int:
    """``serve``: run the monitor until interrupted.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    from model_runner.monitor import MonitorData, make_server

    data = MonitorData(
        context.job_table(),
        context.region_table(),
        context.feature_table(),
        scan_limit=args.scan_limit,
        box_cap=args.box_cap,
    )
    try:
        server = make_server(data, args.host, args.port, refresh_seconds=args.refresh)
    except OSError as err:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from err
    with server:
        if is_loopback(args.host):
            reach = "loopback only, other machines cannot connect; --host 0.0.0.0 lets them"
        else:
            reach = f"listening on {args.host}: anyone who can reach this machine can read the jobs (no login)"
        note(f"Job monitor on {server.url}/ ({reach})")
        note(
            f"Reading tables {context.names.job}, {context.names.region}, {context.names.feature} at "
            f"{context.where}; read-only. Press Ctrl-C to stop."
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            note("Job monitor stopped.")
    return EXIT_OK
