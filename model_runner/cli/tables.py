"""``create-tables`` and ``delete-tables``."""

from __future__ import annotations

import argparse
from typing import Any

from pynamodb.attributes import TTLAttribute

from model_runner.database import create_tables, delete_tables
from model_runner.database.exceptions import error_code
from model_runner.database.retry import call_with_retry
from model_runner.database.tables import TABLE_MODELS

from .context import CLI_RETRY_POLICY, Context
from .errors import EXIT_OK, EXIT_USAGE, UNREACHABLE_CODES, CliError
from .output import print_json, rows_table, stdout_console


def ttl_attribute(role: str) -> str | None:
    """Return the TTL attribute of a table, by its role; None for a table without TTL (the endpoint table: an
    endpoint's count must not expire).

    :param role: str = job, region, endpoint or feature
    :return: Optional[str] = the attribute's name in the table, e.g. ``expire_time``
    """
    model = TABLE_MODELS[role][0]
    for name, attribute in model.get_attributes().items():
        if isinstance(attribute, TTLAttribute):
            return str(attribute.attr_name or name)
    return None


def check_reachable(context: Context) -> None:
    """Fail fast when the endpoint cannot be reached (table setup itself retries for longer).

    One DescribeTable of the job table: any answer, even "no such table" or "access denied", means it is reachable.

    :param context: Context = the global options
    :raises Exception: the connection error, when the endpoint does not answer
    """
    client = context.job_table().client
    try:
        call_with_retry(lambda: client.describe_table(TableName=context.names.job), CLI_RETRY_POLICY)
    except Exception as err:
        if error_code(err) in UNREACHABLE_CODES:
            raise


def create_tables_command(args: argparse.Namespace, context: Context) -> int:
    """Create the tables (on-demand; TTL on expire_time except the endpoint and requested-jobs tables) unless they
    exist.

    :param args: argparse.Namespace = the parsed options
    :param context: Context = the global options
    :return: int = exit status
    """
    check_reachable(context)
    report = create_tables(context.names, host=context.endpoint_url, region=context.region)
    rows: list[dict[str, Any]] = [
        {
            "role": role,
            "table": name,
            "result": "created" if name in report.created else "exists",
            "ttl_attribute": ttl_attribute(role),
            "ttl": ttl_attribute(role) is not None,  # create_tables leaves TTL on wherever the model has one
        }
        for role, name in context.names.as_dict().items()
    ]
    if context.as_json:
        print_json({"endpoint": context.where, "tables": rows})
        return EXIT_OK
    console = stdout_console()
    console.print(
        rows_table(
            [("Table", "left"), ("Name", "left"), ("Result", "left"), ("TTL", "left")],
            [[row["role"], row["table"], row["result"], row["ttl_attribute"] or "none"] for row in rows],
        )
    )
    console.print(f"at {context.where}")
    return EXIT_OK


def delete_tables_command(args: argparse.Namespace, context: Context) -> int:
    """Delete the tables and every item in them; refuses without ``--yes``.

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
    check_reachable(context)
    report = delete_tables(context.names, host=context.endpoint_url, region=context.region)
    rows = [{"table": name, "result": "deleted" if name in report.deleted else "absent"} for name in names]
    if context.as_json:
        print_json({"endpoint": context.where, "tables": rows})
        return EXIT_OK
    console = stdout_console()
    console.print(rows_table([("Name", "left"), ("Result", "left")], [[row["table"], row["result"]] for row in rows]))
    console.print(f"at {context.where}")
    return EXIT_OK
