"""Fetch, start and stop DynamoDB Local, the official AWS emulator, for tests, demos and benchmarks.

This module gathers the public names of the three parts, one concept each:

* :mod:`.emulator`: where the emulator lives and fetching it (``npm pack amplify-dynamodb-simulator``);
* :mod:`.local_server`: :class:`DynamoDBLocal`, a child process (in memory by default) stopped on
  :meth:`DynamoDBLocal.stop` or when the ``with`` block is left; the pytest plugin and the demo use it;
* :mod:`.detached`: :func:`start_detached`, :func:`status_detached` and :func:`stop_detached`, a server that outlives
  the caller, persistent in a data directory; the ``model-runner-db local`` command uses them.

Command line: ``python -m model_runner.testing.dynamodb_local fetch [--dest DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .detached import STATE_FILE_NAME, LocalServerInfo, start_detached, status_detached, stop_detached
from .emulator import (
    DEFAULT_SIMULATOR_VERSION,
    EMULATOR_DIR_ENV,
    JAR_NAME,
    LIB_DIR_NAME,
    NPM_PACKAGE,
    DynamoDBLocalError,
    default_emulator_dir,
    ensure_emulator,
    extract_emulator,
    fetch,
)
from .local_server import HOST, LOG_FILE_NAME, DynamoDBLocal, PortInUseError, free_port, port_in_use

__all__ = [
    "DEFAULT_SIMULATOR_VERSION",
    "EMULATOR_DIR_ENV",
    "HOST",
    "JAR_NAME",
    "LIB_DIR_NAME",
    "LOG_FILE_NAME",
    "NPM_PACKAGE",
    "STATE_FILE_NAME",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "LocalServerInfo",
    "PortInUseError",
    "default_emulator_dir",
    "ensure_emulator",
    "extract_emulator",
    "fetch",
    "free_port",
    "main",
    "port_in_use",
    "start_detached",
    "status_detached",
    "stop_detached",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: ``fetch [--dest DIR] [--version V]``.

    :param argv: Sequence[str] = the arguments, ``sys.argv[1:]`` when None
    :return: int = the exit code, 0 on success
    """
    parser = argparse.ArgumentParser(
        prog="python -m model_runner.testing.dynamodb_local", description="Manage the DynamoDB Local emulator."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download DynamoDB Local unless it is already there")
    fetch_parser.add_argument(
        "--dest", type=Path, default=None, help=f"emulator directory (default: ${EMULATOR_DIR_ENV} or ~/.cache/...)"
    )
    fetch_parser.add_argument(
        "--version", default=DEFAULT_SIMULATOR_VERSION, help=f"{NPM_PACKAGE} version (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        path = fetch(args.dest, args.version)
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
