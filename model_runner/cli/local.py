"""``local start|stop|status``: DynamoDB Local for development, running in the background.

The server is persistent on disk (``-dbPath`` in the data directory) unless ``--in-memory`` is given. The data
directory also holds the server's state file and log, so ``stop`` and ``status`` find the server that ``start``
started, from any shell.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from model_runner.testing.dynamodb_local import (
    LocalServerInfo,
    PortInUseError,
    ensure_emulator,
    port_in_use,
    start_detached,
    status_detached,
    stop_detached,
)

from .context import Context
from .errors import EXIT_NOT_RUNNING, EXIT_OK, CliError
from .output import key_values, print_json, stdout_console

#: The port DynamoDB Local conventionally listens on.
DEFAULT_PORT = 8000


def default_data_dir() -> Path:
    """Return the default data directory: ``$XDG_DATA_HOME/model-runner-db/dynamodb-local`` (~/.local/share).

    :return: Path = the directory (it may not exist yet)
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "model-runner-db" / "dynamodb-local"


def _describe(info: LocalServerInfo) -> dict[str, Any]:
    data = info.to_json()
    data["running"] = True
    data["storage"] = "in memory" if info.in_memory else f"on disk in {info.data_dir}"
    return data


def _show(info: LocalServerInfo, context: Context, title: str) -> None:
    if context.as_json:
        print_json(_describe(info))
        return
    console = stdout_console()
    console.print(
        key_values(
            [
                ("endpoint", info.endpoint_url),
                ("pid", str(info.pid)),
                ("storage", "in memory (lost at stop)" if info.in_memory else f"on disk in {info.data_dir}"),
                ("log", str(info.data_dir / "dynamodb-local.log")),
            ],
            title=title,
        )
    )
    console.print(f"Use it with: export AWS_ENDPOINT_URL_DYNAMODB={info.endpoint_url}", soft_wrap=True)


def _busy(port: int, data_dir: Path) -> CliError:
    """Say which port is taken and what to do about it."""
    return CliError(
        f"port {port} is already in use by another program: stop it (a DynamoDB Local of another data directory "
        f"stops with: model-runner-db local stop --data-dir DIR; `ss -ltnp 'sport = :{port}'` shows who listens), "
        f"or start on another port with: model-runner-db local start --port N"
        + (f" --data-dir {data_dir}" if data_dir != default_data_dir() else "")
    )


def local_command(args: argparse.Namespace, context: Context) -> int:
    """Start, stop or show the development DynamoDB Local.

    :param args: argparse.Namespace = the parsed options (action, data_dir, port, in_memory)
    :param context: Context = the global options
    :return: int = exit status; 3 for ``status`` when no server runs
    :raises CliError: when the port is taken by another program
    :raises DynamoDBLocalError: when the server cannot be fetched, started or stopped
    """
    data_dir: Path = args.data_dir or default_data_dir()
    if args.action == "start":
        port = args.port or DEFAULT_PORT
        if status_detached(data_dir) is None and port_in_use(port):
            raise _busy(port, data_dir)
        emulator = ensure_emulator()
        try:
            info = start_detached(data_dir, port=port, in_memory=args.in_memory, emulator_dir=emulator)
        except PortInUseError as err:  # taken between the check and the start
            raise _busy(port, data_dir) from err
        _show(info, context, "DynamoDB Local is running")
        return EXIT_OK
    if args.action == "stop":
        stopped = stop_detached(data_dir)
        if context.as_json:
            print_json({"stopped": stopped, "data_dir": str(data_dir)})
        else:
            stdout_console().print(
                "DynamoDB Local stopped." if stopped else f"No DynamoDB Local was running for {data_dir}."
            )
        return EXIT_OK
    running = status_detached(data_dir)
    if running is None:
        if context.as_json:
            print_json({"running": False, "data_dir": str(data_dir)})
        else:
            stdout_console().print(f"DynamoDB Local is not running (data directory {data_dir}).")
        return EXIT_NOT_RUNNING
    _show(running, context, "DynamoDB Local is running")
    return EXIT_OK
