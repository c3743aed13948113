"""Typed exceptions of model_runner.database.

Every failure of a repository operation raises one of these, chained from its cause (``raise ... from err``). Each
carries the table name, the key and, when DynamoDB answered, its error code, so callers and the command line can tell
a missing table from a missing item or a throttled request without parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        super().__init__(message)
        self.table_name = table_name
        self.key = dict(key) if key is not None else None
        self.code = code

    @property
    def table_missing(self) -> bool:
        """True when the operation failed because the table does not exist."""
        return self.code == "ResourceNotFoundException"


class ConfigurationError(DatabaseError, ValueError):
    """A table name, region or endpoint is missing or invalid."""


class DDBException(DatabaseError):
    """A generic DDBHelper operation (get, put, delete, query) failed."""


class DDBUpdateException(DatabaseError):
    """An update failed, including an update of an item that does not exist."""


class DDBBatchWriteException(DatabaseError):
    """Some items of a batch write could not be written; ``unprocessed`` says how many."""

    def __init__(self, message: str, *, unprocessed: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.unprocessed = unprocessed


class TableSetupException(DatabaseError):
    """Creating, describing or deleting a table failed."""


class AddFeaturesException(DatabaseError):
    """Features could not be stored; nothing of the failing call was written when raised before the first write."""


class GetFeaturesException(DatabaseError):
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


class UpdateImageException(DDBUpdateException):
    """Updating an image job failed."""


class RequestedJobsException(DatabaseError):
    """An operation of the requested-jobs table failed (``code`` says why, e.g. ConditionalCheckFailedException)."""


class EndpointStatisticsException(DatabaseError):
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
        response = getattr(current, "response", None)
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
        response = getattr(current, "response", None)
        if isinstance(response, dict) and response.get("Error"):
            error = response["Error"]
            return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
        current = getattr(current, "cause", None) or current.__cause__
    return f"{type(err).__name__}: {err}"
