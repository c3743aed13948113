"""``create-tables`` and ``delete-tables``."""

from __future__ import annotations

import argparse
from typing import Any

from model_runner.database import create_tables, delete_tables

from .context import Context
from .errors import EXIT_OK, EXIT_USAGE, CliError
from .output import print_json, rows_table, stdout_console


def create_tables_command(args: argparse.Namespace, context: Context) -> int:
    """Create the four tables (on-demand, TTL on) unless they exist.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    report = create_tables(context.names, host=context.endpoint_url, region=context.region)
    rows: list[dict[str, Any]] = [
        {
            "role": role,
            "table": name,
            "result": "created" if name in report.created else "exists",
            "ttl_enabled_now": name in report.ttl_enabled,
        }
        for role, name in context.names.as_dict().items()
    ]
    if context.as_json:
        print_json({"endpoint": context.where, "tables": rows})
        return EXIT_OK
    console = stdout_console()
    console.print(
        rows_table(
            [("Table", "left"), ("Name", "left"), ("Result", "left")],
            [[row["role"], row["table"], row["result"]] for row in rows],
        )
    )
    console.print(f"at {context.where}")
    return EXIT_OK


def delete_tables_command(args: argparse.Namespace, context: Context) -> int:
    """Delete the four tables and every item in them; refuses without ``--yes``.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    :raises CliError: without --yes
    """
    names = list(context.names.as_dict().values())
    if not args.yes:
        raise CliError(
            f"delete-tables deletes {', '.join(names)} at {context.where} with every item in them: "
            "add --yes to confirm",
            EXIT_USAGE,
        )
    report = delete_tables(context.names, host=context.endpoint_url, region=context.region)
    rows = [{"table": name, "result": "deleted" if name in report.deleted else "absent"} for name in names]
    if context.as_json:
        print_json({"endpoint": context.where, "tables": rows})
        return EXIT_OK
    console = stdout_console()
    console.print(rows_table([("Name", "left"), ("Result", "left")], [[row["table"], row["result"]] for row in rows]))
    console.print(f"at {context.where}")
    return EXIT_OK
