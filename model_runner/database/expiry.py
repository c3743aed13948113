"""How long items live: the one place that decides a repository's ``expire_days``.

Precedence, first that is set wins:

1. the repository's ``expire_days`` argument;
2. ``EXPIRE_DAYS`` (this project's variable; the CloudFormation stack's ``ExpireDays`` output);
3. ``DDB_TTL_IN_DAYS`` (upstream OversightML Model Runner's variable);
4. :data:`DEFAULT_EXPIRE_DAYS` (7).

Every value must be a whole number of at least 1: 0 or less would make DynamoDB's TTL delete items as soon as they
are written, so it is refused with :class:`~model_runner.database.exceptions.ConfigurationError` (a ``ValueError``),
whether it comes from the argument or from a variable. The environment is read when a repository is created, never
at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .exceptions import ConfigurationError

#: Days items live when neither the argument nor a variable says otherwise.
DEFAULT_EXPIRE_DAYS = 7

#: The variables read, in order of precedence.
EXPIRE_DAYS_VARIABLES = ("EXPIRE_DAYS", "DDB_TTL_IN_DAYS")

#: Seconds in a day: ``expire_time`` = now (epoch seconds) + days x this.
DAY_SECONDS = 86_400


def check_expire_days(value: object, source: str = "expire_days", *, text: bool = False) -> int:
    """Check a number of days items live.

    :param value: object = the value: an int (not a bool), or, with ``text``, the text of one
    :param source: str = where it comes from, for the message (``expire_days``, ``EXPIRE_DAYS``, ...)
    :param text: bool = the value comes from a variable: the text of a whole number is accepted
    :return: int = the days
    :raises ConfigurationError: when it is not a whole number of at least 1
    """
    days: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif text and isinstance(value, str):
        try:
            days = int(value.strip())
        except ValueError:
            days = None
    if days is None:
        raise ConfigurationError(f"{source} must be a whole number of days, got {value!r}")
    if days < 1:
        raise ConfigurationError(
            f"{source} must be at least 1 day, got {days}: TTL would delete items as soon as they are written"
        )
    return days


def resolve_expire_days(expire_days: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Return the days items live: the argument, else EXPIRE_DAYS, else DDB_TTL_IN_DAYS, else 7.

    An empty variable counts as not set.

    :param expire_days: Optional[int] = the repository's argument; None to fall back to the environment
    :param environ: Optional[Mapping[str, str]] = the environment; ``os.environ`` (read now) when None
    :return: int = the days, at least 1
    :raises ConfigurationError: when the value that wins is not a whole number of at least 1
    """
    if expire_days is not None:
        return check_expire_days(expire_days)
    env = os.environ if environ is None else environ
    for name in EXPIRE_DAYS_VARIABLES:
        value = env.get(name)
        if value is not None and value.strip():
            return check_expire_days(value, name, text=True)
    return DEFAULT_EXPIRE_DAYS
