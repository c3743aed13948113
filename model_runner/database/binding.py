"""Bind a model to a table name, endpoint and region at run time.

The models in the table modules name no table: the name comes from the repository's constructor or from the
environment of the deployment, read when the repository is created. :func:`bind_model` returns a subclass of the model
whose ``Meta`` (a subclass of the parent's ``Meta``) carries the table, endpoint and region. Bound classes are cached
per (model, settings), so binding the same table twice gives the same class and the same connection; the botocore
client is built under a lock when the class is made, so threads that share it never race to build their own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import NoRegionError
from pynamodb.models import Model

from .exceptions import ConfigurationError

M = TypeVar("M", bound=Model)

#: Connections per bound model: at least as many as the worker threads that share it.
DEFAULT_POOL_SIZE = 64


#: Variables that name the same table as another, checked together: upstream renamed JOB_TABLE to IMAGE_REQUEST_TABLE.
TABLE_VARIABLE_ALIASES: dict[str, tuple[str, ...]] = {"JOB_TABLE": ("IMAGE_REQUEST_TABLE",)}


def env_table_name(env_var: str) -> str | None:
    """Return the table name the environment gives for a table: ``env_var`` or its alias, read now.

    JOB_TABLE and IMAGE_REQUEST_TABLE (upstream's name for the same table) are both read: either may be set, or both
    to the same name; both set to different names is refused, since workers would then split one job table in two.

    :param env_var: str = the table's variable (JOB_TABLE, REGION_REQUEST_TABLE, ...)
    :return: Optional[str] = the name, or None when no variable is set (empty counts as not set)
    :raises ConfigurationError: when the variable and its alias name different tables
    """
    names = [env_var, *TABLE_VARIABLE_ALIASES.get(env_var, ())]
    found = {name: os.environ[name] for name in names if os.environ.get(name)}
    if len(set(found.values())) > 1:
        listed = " and ".join(f"{name}={value!r}" for name, value in found.items())
        raise ConfigurationError(f"{listed} name different tables for the same data: set one of them, or both alike")
    return next(iter(found.values()), None)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class TableSettings:
    """Where a table lives and how to talk to it.

    :param table_name: str = the DynamoDB table name
    :param host: Optional[str] = the endpoint URL (DynamoDB Local, a VPC endpoint); None for the AWS default
    :param region: Optional[str] = the AWS region; None for botocore's default chain
    :param max_pool_connections: int = HTTP connections the client keeps; at least the number of worker threads
    :param connect_timeout_seconds: float = connect timeout of one request
    :param read_timeout_seconds: float = read timeout of one request
    :param expire_days: int = days an item is kept before DynamoDB's TTL removes it
    """

    table_name: str
    host: str | None = None
    region: str | None = None
    max_pool_connections: int = DEFAULT_POOL_SIZE
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 15.0
    expire_days: int = 7

    def __post_init__(self) -> None:
        from .expiry import check_expire_days

        check_expire_days(self.expire_days)

    @classmethod
    def resolve(
        cls,
        table_name: str | None,
        env_var: str,
        host: str | None = None,
        region: str | None = None,
        **options: Any,
    ) -> TableSettings:
        """Build settings from explicit values, falling back to the environment now (never at import).

        The table name falls back to ``env_var`` (JOB_TABLE or IMAGE_REQUEST_TABLE, see :func:`env_table_name`;
        REGION_REQUEST_TABLE, ENDPOINT_TABLE, FEATURE_TABLE, OUTSTANDING_IMAGE_REQUEST_TABLE);
        the region to AWS_REGION, then AWS_DEFAULT_REGION; the endpoint to AWS_ENDPOINT_URL_DYNAMODB, then
        AWS_ENDPOINT_URL.

        :param table_name: Optional[str] = the table name, or None to read ``env_var``
        :param env_var: str = the variable holding the table name of the classic deployment
        :param host: Optional[str] = the endpoint URL, or None to read the environment
        :param region: Optional[str] = the region, or None to read the environment
        :param options: Any = further fields of TableSettings (max_pool_connections, timeouts, expire_days)
        :return: TableSettings = the settings
        :raises ConfigurationError: when no table name is given and ``env_var`` is not set
        """
        name = table_name or env_table_name(env_var)
        if not name:
            aliases = "".join(f" or {alias}" for alias in TABLE_VARIABLE_ALIASES.get(env_var, ()))
            raise ConfigurationError(f"no table name given and {env_var}{aliases} is not set")
        if not isinstance(name, str) or not 3 <= len(name) <= 255:
            raise ConfigurationError(f"invalid table name {name!r}: 3 to 255 characters")
        return cls(
            table_name=name,
            host=host or _env("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
            region=region or _env("AWS_REGION", "AWS_DEFAULT_REGION"),
            **options,
        )


_lock = threading.Lock()
_bound: dict[tuple[type, TableSettings], type] = {}


def bind_model(model: type[M], settings: TableSettings) -> type[M]:
    """Return the subclass of ``model`` bound to a table, cached per (model, settings).

    The bound class's ``Meta`` subclasses ``model.Meta``; botocore retries are off (the repositories retry with
    :mod:`model_runner.database.retry`), and the client is built before the class is handed out.

    :param model: Type[M] = a model of the table modules (JobItem, RegionRequestItem, ...)
    :param settings: TableSettings = table name, endpoint, region and pool size
    :return: Type[M] = the bound model class
    """
    key = (model, settings)
    bound = _bound.get(key)
    if bound is not None:
        return bound
    with _lock:
        bound = _bound.get(key)
        if bound is None:
            parent_meta = getattr(model, "Meta", object)
            meta = type(
                "Meta",
                (parent_meta,),
                {
                    "table_name": settings.table_name,
                    "host": settings.host,
                    "region": settings.region,
                    "max_pool_connections": settings.max_pool_connections,
                    "connect_timeout_seconds": settings.connect_timeout_seconds,
                    "read_timeout_seconds": settings.read_timeout_seconds,
                    "max_retry_attempts": 0,
                },
            )
            bound = type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})
            bound.__qualname__ = f"{model.__qualname__}[{settings.table_name}]"
            # Build the botocore client now, under the lock: a cold start from many threads would build many.
            try:
                bound._get_connection().connection.client  # type: ignore[attr-defined]  # noqa: B018
            except NoRegionError as err:
                raise ConfigurationError(
                    f"no AWS region for table {settings.table_name}: set AWS_REGION (or AWS_DEFAULT_REGION), "
                    "configure one in the AWS profile, or pass region="
                ) from err
            _bound[key] = bound
    return bound


def bound_settings(model: type[Model]) -> TableSettings:
    """Return the settings a bound model class was made with.

    :param model: Type[Model] = a class returned by :func:`bind_model`
    :return: TableSettings = its settings
    :raises ConfigurationError: when the class is not bound
    """
    for (_, settings), bound in _bound.items():
        if bound is model:
            return settings
    raise ConfigurationError(f"{model.__name__} is not bound to a table")
