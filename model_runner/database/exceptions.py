"""Typed exceptions of model_runner.database.

Every failure of a repository operation raises one of these, chained from its cause (``raise ... from err``). Each
carries the table name, the key and, when DynamoDB answered, its error code, so callers and the command line can tell
a missing table from a missing item or a throttled request without parsing messages.

Where the classic helper let botocore's ``ClientError`` through (DDBHelper's get, put, update, delete, query and
batch write, and EndpointStatisticsTable's upsert, increment and decrement), the exception raised here is also a
``ClientError`` (:class:`ClientCompatibleError`): ``except ClientError as err`` around such a call still catches it,
with ``err.response["Error"]["Code"]`` as DynamoDB sent it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

#: DynamoDB's error code of a condition that did not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"


class DatabaseError(Exception):
    """Base class of every exception of model_runner.database.

    :param message: str = what failed, naming the table and the key
    :param table_name: Optional[str] = the table the operation ran against
    :param key: Optional[Mapping[str, Any]] = the key of the item concerned
    :param code: Optional[str] = the DynamoDB error code of the cause, such as ``ResourceNotFoundException``
    """

    def __init__(
        self,
        message: str,
        *,
        table_name: str | None = None,
        key: Mapping[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.table_name = table_name
        self.key = dict(key) if key is not None else None
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Any:
        # BaseException's protocol (class, args, state), also for the ClientError subclasses, whose own __reduce__
        # would rebuild a plain ClientError.
        return type(self), self.args, self.__dict__

    @property
    def table_missing(self) -> bool:
        """True when the operation failed because the table does not exist."""
        return self.code == "ResourceNotFoundException"


def _cause_client_error(err: BaseException) -> ClientError | None:
    """Return the botocore ClientError behind an exception (through ``cause`` and ``__cause__``), if any.

    :param err: BaseException = the exception
    :return: Optional[ClientError] = the first ClientError found that is not one of ours
    """
    current: BaseException | None = err
    for _ in range(6):
        if current is None:
            return None
        if isinstance(current, ClientError) and not isinstance(current, DatabaseError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None


class ClientCompatibleError(DatabaseError, ClientError):
    """A typed exception that is also a botocore ``ClientError``, for the calls that let ClientError through.

    ``response`` and ``operation_name`` are those of the DynamoDB error behind it (the exception it was raised from);
    when DynamoDB gave none (a connection failure, a check made before any request), ``response`` is built as botocore
    builds it, with ``code`` (or the exception's class name) as ``response["Error"]["Code"]``.
    """

    @property
    def response(self) -> dict[str, Any]:
        """The error response, as botocore's ClientError carries it.

        :return: Dict[str, Any] = ``{"Error": {"Code": ..., "Message": ...}, "ResponseMetadata": {...}}``
        """
        cause = _cause_client_error(self)
        if cause is not None:
            return dict(cause.response)
        return {
            "Error": {"Code": self.code or type(self).__name__, "Message": str(self)},
            "ResponseMetadata": {},
        }

    @property
    def operation_name(self) -> str:
        """The DynamoDB operation that failed, as botocore's ClientError names it (``UpdateItem`` ...).

        :return: str = the operation name; the exception's class name when no request failed
        """
        cause = _cause_client_error(self)
        return str(cause.operation_name) if cause is not None else type(self).__name__


class ConfigurationError(DatabaseError, ValueError):
    """A table name, region or endpoint is missing or invalid."""


class DDBException(ClientCompatibleError):
    """A generic DDBHelper operation (get, put, delete, query) failed."""


class DDBUpdateException(ClientCompatibleError):
    """An update failed, including an update of an item that does not exist."""


class DDBBatchWriteException(ClientCompatibleError):
    """Some items of a batch write could not be written; ``unprocessed`` says how many."""

    def __init__(self, message: str, *, unprocessed: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.unprocessed = unprocessed


class TableSetupException(DatabaseError):
    """Creating, describing or deleting a table failed."""


class AddFeaturesException(DatabaseError):
    """Features could not be stored; nothing of the failing call was written when raised before the first write."""


class GetFeaturesException(ClientCompatibleError):
    """Features could not be read back (aggregation failed)."""


class CompleteRegionException(DatabaseError):
    """Recording the completion of a region failed (for example the job does not exist)."""


class EndImageException(DatabaseError):
    """Ending an image job failed."""


class GetImageRequestItemException(DatabaseError):
    """Reading an image job failed or the job does not exist."""


class GetRegionRequestItemException(DatabaseError):
    """Reading a region failed."""


class IsImageCompleteException(DatabaseError):
    """Completion of a job cannot be decided because a count is missing."""


class StartImageException(DatabaseError):
    """Starting an image job failed."""


class StartRegionException(DatabaseError):
    """Starting a region failed."""


class UpdateRegionException(DatabaseError):
    """Updating a region (or recording a tile) failed."""


class InvalidRegionRequestException(UpdateRegionException):
    """A region operation got input it cannot store (a malformed tile, an empty tile list, an unknown tile state);
    nothing was written. Upstream's name; an :class:`UpdateRegionException`, so ``except UpdateRegionException``
    catches it too."""


class UpdateImageException(DDBUpdateException):
    """Updating an image job failed."""


class RequestedJobsException(ClientCompatibleError):
    """An operation of the requested-jobs table failed; like botocore's ClientError, which upstream lets through,
    it carries DynamoDB's code in ``err.response["Error"]["Code"]`` (and ``err.code``)."""


class EndpointStatisticsException(ClientCompatibleError):
    """Reading or changing the statistics of an endpoint failed."""


def error_code(err: BaseException) -> str | None:
    """Return the DynamoDB error code behind an exception, looking through PynamoDB's and botocore's wrappers.

    :param err: BaseException = the exception raised by PynamoDB or botocore
    :return: Optional[str] = the code (``ConditionalCheckFailedException``, ``ThrottlingException`` ...), the name of a
        botocore connection error (``ReadTimeoutError`` ...), or None
    """
    seen = 0
    current: BaseException | None = err
    while current is not None and seen < 5:
        if isinstance(current, DatabaseError) and current.code:
            return current.code
        response = None if isinstance(current, DatabaseError) else getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        cause = getattr(current, "cause", None)
        if cause is None or cause is current:
            from botocore.exceptions import BotoCoreError

            if isinstance(current, BotoCoreError):
                return type(current).__name__
            cause = current.__cause__
        current = cause
        seen += 1
    return None


def describe(err: BaseException) -> str:
    """Return a one-line description of a DynamoDB failure: its code and message when DynamoDB gave them.

    :param err: BaseException = the exception raised by PynamoDB or botocore
    :return: str = the description
    """
    current: BaseException | None = err
    for _ in range(5):
        if current is None:
            break
        response = None if isinstance(current, DatabaseError) else getattr(current, "response", None)
        if isinstance(response, dict) and response.get("Error"):
            error = response["Error"]
            return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
        current = getattr(current, "cause", None) or current.__cause__
    return f"{type(err).__name__}: {err}"
