"""The infrastructure commands of ``model-runner-db``: ``cloudformation`` and ``iam-policy``.

:func:`add_parsers` registers both on the subparsers of the main command; each sets ``func`` to its handler,
``handler(args) -> int``. :func:`run` parses and runs them on their own (``python -m model_runner.cli.infra``).
Options that the main command may also define globally (``--table-prefix``, table names, ``--region``) default to
``argparse.SUPPRESS`` here, so a value given before the subcommand is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from model_runner.common.files import atomic_output
from model_runner.database.tables import TABLE_MODELS, TableNames
from model_runner.infra.cloudformation import (
    ON_DEMAND,
    PROVISIONED,
    TemplateOptions,
    build_template,
    render,
    yaml_available,
)
from model_runner.infra.iam import ROLE_METHODS, policy_document

from .options import positive_int

#: Options naming a table, per table short name of ``TABLE_MODELS`` (the main command's global options).
TABLE_OPTIONS = {
    "job": "job_table",
    "region": "region_table",
    "endpoint": "endpoint_table",
    "feature": "feature_table",
    "requested": "requested_table",
}


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    suppress: Any = argparse.SUPPRESS
    parser.add_argument("--table-prefix", default=suppress, help="prefix of the default table names")
    for table, dest in TABLE_OPTIONS.items():
        option = f"--{dest.replace('_', '-')}"
        parser.add_argument(
            option, dest=dest, default=suppress, help=f"name of the {table} table ({TABLE_MODELS[table][1]})"
        )


def _add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def add_parsers(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Register the ``cloudformation`` and ``iam-policy`` subcommands.

    :param subparsers: Any = the object returned by ``ArgumentParser.add_subparsers()``
    :param parents: Sequence[ArgumentParser] = the main command's global options (``--table-prefix``, the table
        names, ``--region``, ...), accepted after the subcommand too; without them (on their own, :func:`run`) the
        subcommands define the options they read
    :return: None
    """
    own_options = not parents
    template = subparsers.add_parser(
        "cloudformation",
        parents=list(parents),
        allow_abbrev=False,
        help="print a CloudFormation template of the tables, derived from the models",
        description="Print a CloudFormation template of the tables, derived from the PynamoDB models: key "
        "schema, TTL on the expiry attribute, billing, point-in-time recovery, encryption, table names as parameters, "
        "names and ARNs as outputs.",
    )
    if own_options:
        _add_table_options(template)
    template.add_argument(
        "--ttl-days", type=positive_int, default=7, help="days items live (TTL), the ExpireDays default (7)"
    )
    template.add_argument(
        "--pitr", action=argparse.BooleanOptionalAction, default=True, help="point-in-time recovery (on)"
    )
    template.add_argument(
        "--billing-mode", choices=("on-demand", "provisioned"), default="on-demand", help="on-demand (default)"
    )
    template.add_argument("--read-capacity", type=positive_int, default=5, help="read capacity units (provisioned)")
    template.add_argument("--write-capacity", type=positive_int, default=5, help="write capacity units (provisioned)")
    template.add_argument(
        "--deletion-protection", action="store_true", help="deletion protection on, tables retained with the stack"
    )
    template.add_argument(
        "--with-policies", action="store_true", help="add an IAM managed policy per worker role on these tables"
    )
    template.add_argument("--format", choices=("yaml", "json"), default="yaml", help="yaml (default) or json")
    _add_output_option(template)
    template.set_defaults(func=cloudformation_command)

    policy = subparsers.add_parser(
        "iam-policy",
        parents=list(parents),
        allow_abbrev=False,
        help="print the least-privilege IAM policy of a worker role",
        description="Print the least-privilege IAM policy document of a role: only the DynamoDB actions its code "
        "paths send, only on the tables it touches. Give --role twice for a worker that plays both roles.",
    )
    policy.add_argument(
        "--role", action="append", required=True, choices=list(ROLE_METHODS), help="the role; repeat for a union"
    )
    if own_options:
        _add_table_options(policy)
        policy.add_argument(
            "--region", default=argparse.SUPPRESS, help="region of the tables (AWS_REGION, AWS_DEFAULT_REGION, else *)"
        )
    policy.add_argument("--account-id", default="*", help="account of the tables (* when not given)")
    policy.add_argument("--partition", default="aws", help="aws (default), aws-cn or aws-us-gov")
    _add_output_option(policy)
    policy.set_defaults(func=iam_policy_command)


def _write(text: str, output: str | None) -> None:
    if output is not None and output != "-":
        with atomic_output(output) as fp:
            fp.write(text)
    else:
        sys.stdout.write(text)


def _given_names(args: argparse.Namespace) -> dict[str, str]:
    return {table: getattr(args, dest) for table, dest in TABLE_OPTIONS.items() if getattr(args, dest, None)}


def cloudformation_command(args: argparse.Namespace) -> int:
    """Print (or write) the template.

    :param args: argparse.Namespace = the parsed options of ``cloudformation``
    :return: int = exit status, 0
    :raises ValueError: for option values the template refuses
    """
    options = TemplateOptions(
        table_prefix=getattr(args, "table_prefix", None) or "",
        ttl_days=args.ttl_days,
        pitr=args.pitr,
        billing_mode=PROVISIONED if args.billing_mode == "provisioned" else ON_DEMAND,
        read_capacity=args.read_capacity,
        write_capacity=args.write_capacity,
        deletion_protection=args.deletion_protection,
        with_policies=args.with_policies,
    )
    fmt = args.format
    if fmt == "yaml" and not yaml_available():
        print("PyYAML is not installed: writing JSON, which CloudFormation reads too", file=sys.stderr)
        fmt = "json"
    _write(render(build_template(options, names=_given_names(args)), fmt), args.output)
    return 0


def iam_policy_command(args: argparse.Namespace) -> int:
    """Print (or write) the policy document of the chosen role(s).

    Table names come from the options, then the environment the workers use (JOB_TABLE, ...), then the defaults.

    :param args: argparse.Namespace = the parsed options of ``iam-policy``
    :return: int = exit status, 0
    :raises ValueError: for an unknown role
    """
    names = TableNames.resolve(prefix=getattr(args, "table_prefix", None), **_given_names(args))
    region = getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    document = policy_document(
        args.role, names, region=region or "*", account_id=args.account_id, partition=args.partition
    )
    if region is None or args.account_id == "*":
        print("note: pass --region and --account-id for the tables' exact ARNs", file=sys.stderr)
    _write(json.dumps(document, indent=2) + "\n", args.output)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run ``cloudformation`` or ``iam-policy`` on their own.

    :param argv: Optional[Sequence[str]] = the arguments; ``sys.argv[1:]`` when None
    :return: int = exit status: 0, or 2 for bad option values (one line on stderr)
    """
    parser = argparse.ArgumentParser(
        prog="model-runner-db", description="Deployment artefacts of the tables.", allow_abbrev=False
    )
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as err:
        print(f"model-runner-db {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
