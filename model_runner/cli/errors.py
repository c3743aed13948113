"""Turn what went wrong into one line a person can act on, and an exit status.

Exit statuses: 0 success, 1 the command failed (unknown image, missing table, unreachable endpoint, failed checks),
2 bad usage (options), 3 ``local status`` found no server, 130 interrupted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from model_runner.database import DatabaseError
from model_runner.database.exceptions import error_code
from model_runner.database.retry import UNREACHABLE_ERROR_NAMES

from .context import is_local

if TYPE_CHECKING:
    from .context import Context

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130

#: What to do when no region is configured (a command line hint: options and variables, no Python arguments).
NO_REGION_MESSAGE = "no AWS region configured: pass --region, set AWS_REGION, or set region in the AWS profile"
#: botocore's names of the errors of an endpoint that cannot be reached.
UNREACHABLE_CODES = UNREACHABLE_ERROR_NAMES
CREDENTIAL_CODES = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "ProfileNotFound",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "UnauthorizedOperation",
    }
)


class CliError(Exception):
    """A failure the command line reports as one line, with its exit status.

    :param message: str = what went wrong and, when possible, what to do
    :param exit_code: int = the exit status
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    """Collapse a message onto one line.

    :param text: str = the message
    :return: str = the message with runs of whitespace replaced by one space
    """
    return re.sub(r"\s+", " ", text).strip()


def explain(err: BaseException, context: Context | None) -> CliError:
    """Translate an exception raised by a command into a :class:`CliError`.

    :param err: BaseException = the exception
    :param context: Optional[Context] = the command's global options, for hints
    :return: CliError = the message and exit status
    """
    if isinstance(err, CliError):
        return err
    code = err.code if isinstance(err, DatabaseError) and err.code else error_code(err)
    where = context.where if context is not None else "DynamoDB"
    prefix = context.command_prefix() if context is not None else "model-runner-db"
    if isinstance(err, DatabaseError) and err.table_missing:
        return CliError(
            f"table {err.table_name} does not exist at {where}; create the tables with: {prefix} create-tables"
        )
    if code in UNREACHABLE_CODES:
        local = context is not None and is_local(context.endpoint_url)
        hint = "is DynamoDB Local running? (model-runner-db local start)" if local else "check --endpoint-url"
        return CliError(f"cannot reach {where} ({code}): {hint}")
    if code == "NoRegionError":
        return CliError(NO_REGION_MESSAGE)
    if code in CREDENTIAL_CODES:
        return CliError(f"AWS credentials refused or missing ({code}): pass --profile or set AWS_ACCESS_KEY_ID")
    return CliError(one_line(str(err)) or type(err).__name__)
