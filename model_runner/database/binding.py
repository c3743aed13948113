"""Bind a model to a table name, endpoint and region at run time.

The models in the table modules name no table: the name comes from the repository's constructor or from the
environment of the deployment, read when the repository is created. :func:`bind_model` returns a subclass of the model
whose ``Meta`` (a subclass of the parent's ``Meta``) carries the table, endpoint and region. Bound classes are cached
per (model, table name, client settings), so binding the same table twice gives the same class and the same
connection. One botocore client is shared by all tables with the same endpoint, region, credentials, pool and
timeouts; it is built under a lock before any class using it is handed out, so threads that share it never race to
build their own. Each client gets a botocore session of its own (credentials and configuration are read afresh), but
all of them share one botocore data loader, so the service model is parsed once per process: a client built from a
fresh session costs ~10 MB, most of it that parsed model; a client here costs ~0.3 MB and a bound class ~10 KB.
Both caches are bounded (least recently used dropped); a client dropped from its cache takes the classes bound with
it out of theirs, so the cache never keeps more than its bound of clients alive.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import NoRegionError
from botocore.session import Session
from pynamodb.connection import Connection
from pynamodb.models import Model

from .exceptions import ConfigurationError

M = TypeVar("M", bound=Model)

#: Connections per bound model: at least as many as the worker threads that share it.
DEFAULT_POOL_SIZE = 64

_SETTINGS_ATTRIBUTE = "_model_runner_table_settings"


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


#: Environment variables botocore reads to find credentials: a client is shared only by tables bound under the same
#: values (a CLI command or a test that changes them gets a client of its own).
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

#: Botocore clients kept for later bindings (least recently used dropped first, with the classes bound with them).
#: A client costs ~0.3 MB (its botocore data loader is shared).
MAX_CLIENTS = 8

#: Bound model classes kept for later bindings (least recently used dropped first). A class costs ~10 KB: its
#: client is shared. A dropped class keeps working for whoever holds it; binding its table again makes a new one.
MAX_BOUND_MODELS = 256


def _credentials_identity() -> str:
    """Return a digest of the credential settings of the environment (never the secrets themselves)."""
    digest = hashlib.sha256()
    for name in CREDENTIAL_VARIABLES:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ClientSettings:
    """What a botocore client depends on: tables that agree on all of it share one client.

    Per-table settings (the table name, ``expire_days``) are not part of it.

    :param host: Optional[str] = the endpoint URL; None for the AWS default
    :param region: Optional[str] = the AWS region
    :param max_pool_connections: int = HTTP connections of the client
    :param connect_timeout_seconds: float = connect timeout of one request
    :param read_timeout_seconds: float = read timeout of one request
    :param credentials: str = digest of the credential variables of the environment when the table was bound
    """

    host: str | None
    region: str | None
    max_pool_connections: int
    connect_timeout_seconds: float
    read_timeout_seconds: float
    credentials: str

    @classmethod
    def of(cls, settings: TableSettings) -> ClientSettings:
        """Return the client settings of a table's settings, with the credentials of the environment now.

        :param settings: TableSettings = the table's settings
        :return: ClientSettings = the part of them (and of the environment) the client depends on
        """
        return cls(
            host=settings.host,
            region=settings.region,
            max_pool_connections=settings.max_pool_connections,
            connect_timeout_seconds=settings.connect_timeout_seconds,
            read_timeout_seconds=settings.read_timeout_seconds,
            credentials=_credentials_identity(),
        )


_lock = threading.Lock()
_clients: OrderedDict[ClientSettings, Any] = OrderedDict()
_bound: OrderedDict[tuple[type, str, ClientSettings], type] = OrderedDict()
#: botocore data loaders (they cache the parsed service models), one per data path (``AWS_DATA_PATH``).
_loaders: dict[Any, Any] = {}


def _session() -> Session:
    """Return a fresh botocore session that uses the process's shared data loader (caller holds the lock).

    A session reads credentials and configuration from the environment; its data loader parses the DynamoDB service
    model and endpoint data (~10 MB) on first use and keeps them. Sharing the loader keeps one parsed copy per
    process instead of one per client, while each client still gets its own credentials.
    """
    session = Session()
    data_path = session.get_config_variable("data_path")
    loader = _loaders.get(data_path)
    if loader is None:
        loader = _loaders[data_path] = session.get_component("data_loader")
    else:
        session.register_component("data_loader", loader)
    return session


def _drop_client(client_settings: ClientSettings) -> None:
    """Drop a client from the cache with every class bound with it (caller holds the lock).

    A bound class holds its client: a class left in the cache would keep a dropped client alive. Classes already
    handed out keep working for whoever holds them.
    """
    del _clients[client_settings]
    for key in [key for key in _bound if key[2] == client_settings]:
        del _bound[key]


def _shared_client(client_settings: ClientSettings, table_name: str) -> Any:
    """Return the botocore client for these settings, building it now when there is none (caller holds the lock).

    The client is built the way PynamoDB builds its own (a :class:`pynamodb.connection.Connection` with botocore's
    retries off), from a session of :func:`_session`, once, before any thread can use it: a botocore client is
    thread-safe once built, but building one is not.
    """
    client = _clients.get(client_settings)
    if client is not None:
        _clients.move_to_end(client_settings)
        return client
    connection = Connection(
        region=client_settings.region,
        host=client_settings.host,
        connect_timeout_seconds=client_settings.connect_timeout_seconds,
        read_timeout_seconds=client_settings.read_timeout_seconds,
        max_retry_attempts=0,
        max_pool_connections=client_settings.max_pool_connections,
    )
    # PynamoDB keeps the session it builds the client from in a thread-local: give it one with the shared loader
    connection._local.session = _session()
    try:
        client = connection.client
    except NoRegionError as err:
        raise ConfigurationError(
            f"no AWS region for table {table_name}: set AWS_REGION (or AWS_DEFAULT_REGION), "
            "configure one in the AWS profile, or pass region="
        ) from err
    _clients[client_settings] = client
    while len(_clients) > MAX_CLIENTS:
        _drop_client(next(iter(_clients)))
    return client


def bind_model(model: type[M], settings: TableSettings) -> type[M]:
    """Return the subclass of ``model`` bound to a table, cached per (model, table name, client settings).

    The bound class's ``Meta`` subclasses ``model.Meta``; botocore retries are off (the repositories retry with
    :mod:`model_runner.database.retry`). Its connection uses the botocore client shared by every table with the same
    :class:`ClientSettings` (endpoint, region, credentials, pool and timeouts), built before the class is handed
    out. ``expire_days`` is not part of the key: it is the repository's business, not the class's. At most
    :data:`MAX_BOUND_MODELS` classes and :data:`MAX_CLIENTS` clients are kept.

    :param model: Type[M] = a model of the table modules (JobItem, RegionRequestItem, ...)
    :param settings: TableSettings = table name, endpoint, region and pool size
    :return: Type[M] = the bound model class
    :raises ConfigurationError: when no region can be found
    """
    client_settings = ClientSettings.of(settings)
    key = (model, settings.table_name, client_settings)
    with _lock:
        bound = _bound.get(key)
        if bound is not None:
            _bound.move_to_end(key)
            return bound
        client = _shared_client(client_settings, settings.table_name)
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
        bound = type(
            model.__name__,
            (model,),
            {"Meta": meta, "__module__": model.__module__, _SETTINGS_ATTRIBUTE: settings},
        )
        bound.__qualname__ = f"{model.__qualname__}[{settings.table_name}]"
        # PynamoDB's connection builds its client lazily, one per connection: hand it the shared one instead.
        bound._get_connection().connection._client = client  # type: ignore[attr-defined]
        _bound[key] = bound
        while len(_bound) > MAX_BOUND_MODELS:
            _bound.popitem(last=False)
    return bound


def bound_settings(model: type[Model]) -> TableSettings:
    """Return the settings a bound model class was made with.

    ``expire_days`` is the one of the first binding: the repository's own ``settings`` hold its ``expire_days``.

    :param model: Type[Model] = a class returned by :func:`bind_model`
    :return: TableSettings = its settings
    :raises ConfigurationError: when the class is not bound
    """
    settings = model.__dict__.get(_SETTINGS_ATTRIBUTE)
    if not isinstance(settings, TableSettings):
        raise ConfigurationError(f"{model.__name__} is not bound to a table")
    return settings


def cache_info() -> dict[str, int]:
    """Return how many botocore clients and bound classes the cache holds now.

    :return: Dict[str, int] = ``clients`` and ``bound_models``
    """
    with _lock:
        return {"clients": len(_clients), "bound_models": len(_bound)}
