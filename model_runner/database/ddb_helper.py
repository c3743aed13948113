"""DDBKey, DDBItem and DDBHelper: the base of every table's model and repository.

DDBItem is the base PynamoDB model of the table modules; DDBHelper is the base repository, bound at run time to a
table name (see :mod:`model_runner.database.binding`). DDBHelper keeps the classic dictionary-based API (get, put,
update, delete, query, batch write) on top of the bound model; the table repositories use the model directly, with
PynamoDB's update actions and conditions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    Any,
    ClassVar,
    TypeVar,
)

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from . import classic_api
from .attributes import deserialize_value as deserialize_value  # re-exported: the classic import path
from .attributes import serialize_value as serialize_value  # re-exported: the classic import path
from .attributes import to_native
from .binding import TableSettings, bind_model
from .coalescing import BATCH_LIMIT, BatchAttempt
from .exceptions import (
    CONDITION_FAILED,
    DatabaseError,
    DDBBatchWriteException,
    describe,
    error_code,
)
from .expiry import check_expire_days, resolve_expire_days
from .retry import DEFAULT_POLICY, RetryPolicy, call_with_retry, is_retryable

T = TypeVar("T")
E = TypeVar("E", bound=DatabaseError)

#: DynamoDB's limit of items in one BatchWriteItem request.
BATCH_SIZE = BATCH_LIMIT


def now_millis() -> int:
    """Return the current time in epoch milliseconds (the unit of start, end and update times).

    :return: int = epoch milliseconds
    """
    return int(time.time() * 1000)


@dataclass
class DDBKey:
    """The key of one item: hash key name and value, and the range key name and value when the table has one.

    :param hash_key: str = name of the partition key
    :param hash_value: str = value of the partition key
    :param range_key: Optional[str] = name of the sort key
    :param range_value: Optional[str] = value of the sort key
    """

    hash_key: str
    hash_value: str
    range_key: str | None = None
    range_value: str | None = None


class DDBItem(Model):
    """Base model of the tables. Subclasses declare attributes and keys; the table name is bound at run time.

    Items are built as the classic dataclasses were: by keyword, or positionally in the classic field order that each
    subclass declares in ``classic_fields`` (``RegionRequestItem(region_id, image_id, job_id, ...)``). An unknown
    keyword, a keyword also given positionally, or more positional arguments than fields raise TypeError: no argument
    is ever dropped (PynamoDB's own constructor takes ``(hash_key, range_key, _user_instantiated)`` and would keep a
    third positional argument as an internal flag).

    ``ddb_key`` is readable and assignable on every item. A bare ``DDBItem()`` (or a subclass that declares no PynamoDB
    attributes, such as a classic ``@dataclass`` item) works with :class:`DDBHelper` on any table: its key is the
    ``ddb_key`` assigned to it, its other attributes are its public instance attributes.
    """

    #: The classic dataclass's field order: positional arguments are these attributes, in this order. Empty for a
    #: model of the user's: then the positional arguments are its hash and range key, as in PynamoDB.
    classic_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        user_instantiated = bool(kwargs.pop("_user_instantiated", True))
        fields = cls.classic_fields or tuple(name for name in (cls._hash_keyname, cls._range_keyname) if name)
        if len(args) > len(fields):
            raise TypeError(
                f"{cls.__name__}() takes {len(fields)} positional arguments ({', '.join(fields) or 'none'}) "
                f"but {len(args)} were given"
            )
        for name, value in zip(fields, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for argument '{name}'")
            kwargs[name] = value
        attributes = cls.get_attributes()
        for name in kwargs:
            if name not in attributes:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument '{name}'")
        super().__init__(_user_instantiated=user_instantiated, **kwargs)

    @property
    def ddb_key(self) -> DDBKey:
        """The key of this item.

        :return: DDBKey = hash (and range) key names and values
        :raises TypeError: when the item's class declares no key and none was assigned
        """
        assigned: DDBKey | None = self.__dict__.get("_ddb_key")
        cls = type(self)
        hash_name = cls._hash_keyname
        range_name = cls._range_keyname
        if hash_name is None:
            if assigned is None:
                raise TypeError(f"{cls.__name__} declares no hash key: assign item.ddb_key = DDBKey(...) first")
            return assigned
        return DDBKey(
            hash_key=cls.get_attributes()[hash_name].attr_name,
            hash_value=getattr(self, hash_name),
            range_key=cls.get_attributes()[range_name].attr_name if range_name else None,
            range_value=getattr(self, range_name) if range_name else None,
        )

    @ddb_key.setter
    def ddb_key(self, key: DDBKey) -> None:
        """Set the key of this item, as on the classic dataclass.

        On a model with declared keys, the attributes the key names are set to its values; on an item without
        declared keys (a bare DDBItem), the key itself is kept.

        :param key: DDBKey = the key
        :raises TypeError: when ``key`` is not a DDBKey, or names a key the model does not have
        """
        if not isinstance(key, DDBKey):
            raise TypeError(f"ddb_key must be a DDBKey, got {type(key).__name__}: {key!r}")
        cls = type(self)
        if cls._hash_keyname is None:
            self.__dict__["_ddb_key"] = key
            return
        by_stored = {attribute.attr_name: name for name, attribute in cls.get_attributes().items()}
        pairs: list[tuple[str, Any]] = [(key.hash_key, key.hash_value)]
        if key.range_key is not None:
            pairs.append((key.range_key, key.range_value))
        keys = {cls._hash_keyname, cls._range_keyname}
        for stored_name, value in pairs:
            name = by_stored.get(stored_name, stored_name)
            if name not in keys:
                known = sorted(name for name in keys if name)
                raise TypeError(f"{cls.__name__} has no key named {stored_name!r}: its keys are {known}")
            setattr(self, name, value)

    @property
    def is_modeled(self) -> bool:
        """True when the item's class declares PynamoDB attributes; False for a bare or dataclass DDBItem.

        :return: bool = whether the item is a PynamoDB model with a schema
        """
        return bool(type(self).get_attributes())

    def classic_attributes(self) -> dict[str, Any]:
        """Return the attributes of an item without declared schema: its key and its public instance attributes.

        :return: Dict[str, Any] = attribute name to value, None values left out
        """
        values = {
            name: value
            for name, value in vars(self).items()
            if not name.startswith("_") and name != "attribute_values" and value is not None
        }
        key = self.__dict__.get("_ddb_key")
        if key is not None:
            values.setdefault(key.hash_key, key.hash_value)
            if key.range_key is not None and key.range_value is not None:
                values.setdefault(key.range_key, key.range_value)
        return values

    def to_put(self) -> dict[str, Any]:
        """Return the attributes that are set, by Python name, with native numbers.

        :return: Dict[str, Any] = attribute name to value, None values left out
        """
        if not self.is_modeled:
            return self.classic_attributes()
        return {name: to_native(value) for name, value in self.attribute_values.items() if value is not None}

    def to_update(self) -> dict[str, Any]:
        """Return the attributes that are set, without the keys: what an update of this item writes.

        :return: Dict[str, Any] = attribute name to value, keys and None values left out
        """
        if not self.is_modeled:
            key = self.ddb_key
            return {k: v for k, v in self.to_put().items() if k not in (key.hash_key, key.range_key)}
        keys = {type(self)._hash_keyname, type(self)._range_keyname}
        return {name: value for name, value in self.to_put().items() if name not in keys}

    def key_values(self) -> tuple[Any, Any | None]:
        """Return the hash and range key values of this item.

        :return: Tuple[Any, Optional[Any]] = (hash value, range value or None)
        """
        cls = type(self)
        if cls._hash_keyname is None:
            key = self.ddb_key
            return key.hash_value, key.range_value
        range_name = cls._range_keyname
        return getattr(self, str(cls._hash_keyname)), (getattr(self, range_name) if range_name else None)


ItemT = TypeVar("ItemT", bound=DDBItem)

_LEGACY_KEYWORDS = frozenset({"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"})
_LEGACY_NAME = re.compile(r"(?<![#:\w])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
_PLACEHOLDER = re.compile(r"#\w+")


class DDBHelper:
    """DDBHelper is a class meant to help OSML with accessing and interacting with DynamoDB tables.

    It binds ``item_class`` to the table at construction (no request is made) and offers the classic
    dictionary-based operations. Every failure raises a typed exception of :mod:`model_runner.database.exceptions`
    chained from its cause, and transient failures are retried with :mod:`model_runner.database.retry`.

    :param table_name: Optional[str] = the table; when None, the variable ``table_env_var`` of the class is read now
    :param item_class: Optional[Type[DDBItem]] = the model of the table (subclasses set it as a class attribute);
        None for a helper on any table, whose items are bare or dataclass DDBItems with a ``ddb_key`` (the dictionary
        path of :mod:`model_runner.database.classic_api`)
    :param host: Optional[str] = endpoint URL; when None, AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL
    :param region: Optional[str] = region; when None, AWS_REGION or AWS_DEFAULT_REGION
    :param max_pool_connections: Optional[int] = HTTP connections shared by the threads using this table
    :param retry_policy: Optional[RetryPolicy] = retries of transient failures
    :param expire_days: Optional[int] = days before items expire (TTL), at least 1; when None, EXPIRE_DAYS, then
        DDB_TTL_IN_DAYS, then 7 (see :mod:`model_runner.database.expiry`)
    :param read_timeout_seconds: Optional[float] = read timeout of one request; 15 when None
    :param connect_timeout_seconds: Optional[float] = connect timeout of one request; 5 when None

    Attributes:
        table_name (str): The name of the DynamoDB table to interact with.
        model (Type[DDBItem]): The model class bound to the table.
        table (boto3 Table): A boto3 Table resource of the table, made on first use (the classic helper's handle).
        resource (boto3 ServiceResource): The DynamoDB service resource ``table`` belongs to, made on first use.
        client (botocore client): The DynamoDB client the bound model uses.
    """

    item_class: ClassVar[type[DDBItem] | None] = None
    table_env_var: ClassVar[str] = "DDB_TABLE"
    #: Whether the table's items carry ``expire_time``: only then is the environment read for ``expire_days``.
    writes_expiry: ClassVar[bool] = True

    def __init__(
        self,
        table_name: str | None = None,
        *,
        item_class: type[DDBItem] | None = None,
        host: str | None = None,
        region: str | None = None,
        max_pool_connections: int | None = None,
        retry_policy: RetryPolicy | None = None,
        expire_days: int | None = None,
        read_timeout_seconds: float | None = None,
        connect_timeout_seconds: float | None = None,
    ) -> None:
        model = item_class or self.item_class
        #: The item class given (None for a helper on any table): its items take the model path.
        self.item_model: type[DDBItem] | None = model
        options: dict[str, Any] = {}
        if max_pool_connections is not None:
            options["max_pool_connections"] = max_pool_connections
        if self.writes_expiry:
            options["expire_days"] = resolve_expire_days(expire_days)
        elif expire_days is not None:
            options["expire_days"] = check_expire_days(expire_days)
        if read_timeout_seconds is not None:
            options["read_timeout_seconds"] = read_timeout_seconds
        if connect_timeout_seconds is not None:
            options["connect_timeout_seconds"] = connect_timeout_seconds
        self.settings = TableSettings.resolve(table_name, self.table_env_var, host=host, region=region, **options)
        self.table_name: str = self.settings.table_name
        self.retry_policy = retry_policy or DEFAULT_POLICY
        self.model: type[DDBItem] = bind_model(model or DDBItem, self.settings)
        self._resource: Any = None

    @property
    def resource(self) -> Any:
        """A boto3 DynamoDB service resource on the same endpoint and region, made on first use (classic code reached
        its table through ``helper.table``; this package's own requests never use it).

        :return: Any = the boto3 ServiceResource
        """
        if self._resource is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=self.settings.connect_timeout_seconds,
                read_timeout=self.settings.read_timeout_seconds,
                max_pool_connections=self.settings.max_pool_connections,
            )
            self._resource = boto3.session.Session().resource(
                "dynamodb", endpoint_url=self.settings.host, region_name=self.settings.region, config=config
            )
        return self._resource

    @property
    def table(self) -> Any:
        """The boto3 Table resource of this table, as the classic helper's ``table`` (made on first use).

        :return: Any = the boto3 Table
        """
        return self.resource.Table(self.table_name)

    @property
    def client(self) -> Any:
        """The botocore DynamoDB client of the bound model.

        :return: Any = the client
        """
        return self.model._get_connection().connection.client

    @property
    def expire_seconds(self) -> int:
        """Seconds an item lives before it expires.

        :return: int = seconds
        """
        return self.settings.expire_days * 24 * 3600

    def expire_time(self, now: float | None = None) -> int:
        """Return the epoch second at which an item written now expires.

        :param now: Optional[float] = the current epoch time in seconds; time.time() when None
        :return: int = epoch seconds
        """
        return int((time.time() if now is None else now) + self.expire_seconds)

    # -- the one place where requests are retried and failures translated ------------------------------------------

    def _run(self, operation: Callable[[], T], exc_class: type[E], action: str, key: Mapping[str, Any]) -> T:
        """Run a request with retries, raising ``exc_class`` chained from the cause when it fails.

        :param operation: Callable[[], T] = the request
        :param exc_class: Type[E] = the typed exception to raise
        :param action: str = what the request does, for the message
        :param key: Mapping[str, Any] = the key concerned, for the message
        :return: T = what the request returned
        :raises E: when the request fails permanently or no retry is left
        """
        try:
            return call_with_retry(operation, self.retry_policy)
        except DatabaseError:
            raise
        except Exception as err:
            raise self.error(exc_class, action, key, err) from err

    def error(self, exc_class: type[E], action: str, key: Mapping[str, Any], err: BaseException | None) -> E:
        """Build a typed exception naming the table, the key and the cause.

        :param exc_class: Type[E] = the exception class
        :param action: str = what failed
        :param key: Mapping[str, Any] = the key concerned
        :param err: Optional[BaseException] = the cause
        :return: E = the exception, to be raised ``from err``
        """
        code = error_code(err) if err is not None else None
        reason = f": {describe(err)}" if err is not None else ""
        if code == "ResourceNotFoundException":
            reason = f": table {self.table_name} does not exist (create it with `model-runner-db create-tables`)"
        return exc_class(
            f"{action} failed on table {self.table_name} for {dict(key)}{reason}",
            table_name=self.table_name,
            key=key,
            code=code,
        )

    def _conditional_update(
        self,
        item: DDBItem,
        actions: Sequence[Action],
        condition: Condition | None,
        exc_class: type[DatabaseError],
        action: str,
    ) -> DatabaseError | None:
        """Run one UpdateItem (ReturnValues ALL_NEW, loaded into ``item``) and report a condition that did not hold.

        :param item: DDBItem = the bound item to update; holds the stored item afterwards
        :param actions: Sequence[Action] = the update actions
        :param condition: Optional[Condition] = the condition of the update
        :param exc_class: Type[DatabaseError] = the exception raised when the update fails
        :param action: str = what the update does, for the message
        :return: Optional[DatabaseError] = None when the update was applied; the exception when the condition did
            not hold (the caller decides what that means)
        :raises DatabaseError: ``exc_class`` when the request fails for any other reason
        """
        try:
            self._run(
                lambda: item.update(actions=list(actions), condition=condition), exc_class, action, self.get_keys(item)
            )
        except DatabaseError as err:
            if err.code != CONDITION_FAILED:
                raise
            return err
        return None

    def is_model_item(self, item: DDBItem) -> bool:
        """Tell whether an item takes the model path: the helper has an item class and the item is one of it.

        :param item: DDBItem = the item
        :return: bool = True for the model path, False for the dictionary path
        """
        return self.item_model is not None and isinstance(item, self.item_model)

    def bind(self, item: ItemT) -> ItemT:
        """Return ``item`` as an instance of the bound model (the same object when it already is one).

        :param item: ItemT = an instance of the table's model
        :return: ItemT = an instance bound to this table
        """
        if isinstance(item, self.model):
            return item
        bound = self.model(_user_instantiated=False)
        bound.attribute_values = dict(item.attribute_values)
        return bound  # type: ignore[return-value]

    def _fetch(self, hash_value: Any, range_value: Any = None) -> DDBItem | None:
        """Read one item with a strongly consistent GetItem (no retry: callers wrap it in :meth:`_run`).

        :param hash_value: Any = the hash key value
        :param range_value: Any = the range key value, for tables that have one
        :return: Optional[DDBItem] = the bound item, or None when there is none
        """
        try:
            return self.model.get(hash_value, range_value, consistent_read=True)
        except DoesNotExist:
            return None

    def _read_item(
        self, exc_class: type[DatabaseError], action: str, hash_value: Any, range_value: Any = None
    ) -> DDBItem | None:
        """Read one item with a strongly consistent GetItem, retried, failures raised as ``exc_class``.

        :param exc_class: Type[DatabaseError] = the exception raised when the read fails
        :param action: str = what the caller does, for the message
        :param hash_value: Any = the hash key value
        :param range_value: Any = the range key value, for tables that have one
        :return: Optional[DDBItem] = the bound item, or None when there is none
        :raises DatabaseError: ``exc_class`` when the read fails
        """
        key = {str(self.model._hash_keyname): hash_value}
        if self.model._range_keyname is not None:
            key[self.model._range_keyname] = range_value
        return self._run(lambda: self._fetch(hash_value, range_value), exc_class, action, key)

    @staticmethod
    def as_dict(item: Model | None) -> dict[str, Any]:
        """Return an item as a dictionary of native values (empty for None).

        :param item: Optional[Model] = the item
        :return: Dict[str, Any] = attribute name to value
        """
        if item is None:
            return {}
        return {name: to_native(value) for name, value in item.attribute_values.items()}

    # -- the classic API -------------------------------------------------------------------------------------------

    def get_ddb_item(self, ddb_item: DDBItem) -> dict[str, Any]:
        """Get a DynamoDB item from table and convert Decimal values to native types

        :param ddb_item: DDBItem = item that we want to get (required)

        :return: Dict[str, Any] = the stored item, attribute name to value; empty when there is none
        :raises DDBException: when the request fails
        """
        return classic_api.get_item(self, ddb_item)

    def put_ddb_item(self, ddb_item: DDBItem, condition_expression: Any = None) -> dict[str, Any]:
        """Put a DynamoDB item into the table, replacing an item with the same key unless a condition says otherwise.

        :param ddb_item: DDBItem = item that we want to put (required)
        :param condition_expression: Any = condition that must hold for the put to succeed: a PynamoDB condition
            (``JobItem.image_id.does_not_exist()``), a boto3 condition (``Attr("endpoint").not_exists()``, as classic
            code passes), or a DynamoDB condition expression string whose bare attribute names are passed as
            expression attribute names

        :return: Dict[str, Any] = the response of the put_item request
        :raises DDBException: when the request fails or the condition does not hold (``code`` is
            ``ConditionalCheckFailedException``)
        """
        return classic_api.put_item(self, ddb_item, condition_expression)

    def batch_write_items(
        self,
        ddb_items: Sequence[DDBItem],
        max_retries: int = 500,
        max_delay: float = 8,
        max_total: float = 120,
        on_retry: Callable[[int], None] | None = None,
    ) -> None:
        """Write multiple DynamoDB items in a batch with jitter-delayed retry logic for unprocessed items.

        The items are split into requests of up to 25 (DynamoDB's limit). Unprocessed items and throttled or failed
        requests (throttling, 5xx, dropped connections) are sent again after a capped exponential backoff with full
        jitter, at most ``max_retries`` times and for at most ``max_total`` seconds of backoff while no item gets
        written; a request that writes at least one item starts the backoff over, so a long batch under steady
        throttling slows down but does not fail. Permanent errors (validation, item too large, missing table) are not
        retried.

        :param ddb_items: Sequence[DDBItem] = items to write; an item with the key of a stored item replaces it
        :param max_retries: int = maximum number of retries in a row without progress. Defaults to 500.
        :param max_delay: float = maximum delay in seconds of one backoff, before jitter. Defaults to 8 seconds.
        :param max_total: float = maximum seconds of backoff in a row without progress. Defaults to 120 seconds.
        :param on_retry: Optional[Callable[[int], None]] = called with the number of items sent again, on each retry

        :return: None
        :raises DDBBatchWriteException: naming how many items were left unwritten
        """
        policy = RetryPolicy(max_attempts=max_retries + 1, max_delay=max_delay, max_total=max_total)
        classic_api.batch_put(self, ddb_items, policy, on_retry)

    def batch_delete_keys(self, keys: Sequence[Mapping[str, Any]], policy: RetryPolicy | None = None) -> None:
        """Delete items by key in batches, with the backoff of :meth:`batch_write_items`.

        :param keys: Sequence[Mapping[str, Any]] = the keys, as DynamoDB attribute values (``{"pk": {"S": "x"}}``)
        :param policy: Optional[RetryPolicy] = retries while no key gets deleted; the batch writer's default when None
        :return: None
        :raises DDBBatchWriteException: naming how many keys were left undeleted
        """
        requests = [{"DeleteRequest": {"Key": dict(key)}} for key in keys]
        self.send_batch(requests, policy or RetryPolicy(max_attempts=501, max_delay=8, max_total=120))

    def send_batch(
        self,
        requests: Sequence[Mapping[str, Any]],
        policy: RetryPolicy,
        on_retry: Callable[[int], None] | None = None,
        *,
        first_attempt: BatchAttempt | None = None,
    ) -> None:
        """Send BatchWriteItem requests (puts and deletes), 25 per request, until every one is processed.

        The one batch writer of the package: unprocessed requests and transient failures are sent again after the
        policy's backoff; a request that processes at least one item starts the backoff over; permanent errors are
        not retried.

        :param requests: Sequence[Mapping[str, Any]] = ``{"PutRequest": {...}}`` or ``{"DeleteRequest": {...}}``
        :param policy: RetryPolicy = attempts, delays and total backoff while no request gets processed
        :param on_retry: Optional[Callable[[int], None]] = called with the number of requests sent again
        :param first_attempt: Optional[BatchAttempt] = the outcome of a request that already carried all of
            ``requests`` (a request shared with other calls, see :mod:`~model_runner.database.coalescing`): it counts
            as the first attempt, and only its unprocessed requests are sent again
        :return: None
        :raises DDBBatchWriteException: naming how many requests were left unprocessed
        """
        pending = list(requests)
        delays = policy.delays()
        key = {"items": len(pending)}
        attempt = first_attempt
        rest: list[Mapping[str, Any]] = []
        while pending:
            if attempt is None:
                chunk, rest = pending[:BATCH_SIZE], pending[BATCH_SIZE:]
                attempt = self.send_chunk(chunk, len(pending), key)
            pending = attempt.unprocessed + rest
            if len(attempt.unprocessed) < attempt.sent:  # progress: the next stall backs off from the start again
                delays = policy.delays()
            if attempt.unprocessed:
                delay = next(delays, None)
                if delay is None:
                    raise self._batch_error(len(pending), key, attempt.failure) from attempt.failure
                if on_retry is not None:
                    on_retry(len(attempt.unprocessed))
                time.sleep(delay)
            attempt = None

    def send_chunk(
        self, chunk: Sequence[Mapping[str, Any]], unwritten: int | None = None, key: Mapping[str, Any] | None = None
    ) -> BatchAttempt:
        """Send one BatchWriteItem request of at most 25 write requests, once.

        :param chunk: Sequence[Mapping[str, Any]] = the write requests
        :param unwritten: Optional[int] = requests the caller has left in all, for the error message (len(chunk))
        :param key: Optional[Mapping[str, Any]] = what the error names (the number of requests)
        :return: BatchAttempt = the requests left unprocessed; all of them, with the failure, after a transient error
        :raises DDBBatchWriteException: chained from a permanent error (one that a retry would not cure)
        """
        try:
            response = self.client.batch_write_item(RequestItems={self.table_name: list(chunk)})
        except Exception as err:
            if not is_retryable(err):
                count = len(chunk) if unwritten is None else unwritten
                raise self._batch_error(count, key or {"items": count}, err) from err
            return BatchAttempt(len(chunk), list(chunk), err)
        return BatchAttempt(len(chunk), list(response.get("UnprocessedItems", {}).get(self.table_name, [])))

    def _batch_error(self, unwritten: int, key: Mapping[str, Any], err: BaseException | None) -> DDBBatchWriteException:
        base = self.error(DDBBatchWriteException, f"batch write ({unwritten} items unwritten)", key, err)
        return DDBBatchWriteException(
            str(base), unprocessed=unwritten, table_name=self.table_name, key=key, code=base.code
        )

    def delete_ddb_item(self, ddb_item: DDBItem) -> dict[str, Any]:
        """Delete a DynamoDB item from the table (deleting a missing item succeeds).

        :param ddb_item: DDBItem = item that we want to delete (required)

        :return: Dict[str, Any] = response from the delete_item request
        :raises DDBException: when the request fails
        """
        return classic_api.delete_item(self, ddb_item)

    def update_ddb_item(
        self,
        ddb_item: DDBItem,
        update_exp: str | Sequence[Action] | None = None,
        update_attr: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Update a stored item; the update never creates a missing item.

        Three forms:

        - ``update_exp`` None: the item's set, non-key attributes are written (SET), nothing else.
        - ``update_exp`` a list of PynamoDB actions (``JobItem.region_count.set(4)``, ``X.add(1)``): applied as given.
        - ``update_exp`` a string (the **legacy path** of the classic boto3 helper) with ``update_attr`` holding its
          ``:values`` (and optionally ``#names``): every bare attribute name in the expression is passed as an
          expression attribute name (never colliding with a ``#name`` of the caller's), every value as an expression
          attribute value. On an item of a model (one that declares attributes), each value is first checked against
          the attribute it is written to: ``SET region_count = :c`` with ``"4"`` raises before any request.

        ``update_attr`` without ``update_exp`` raises DDBUpdateException, as in the classic helper.

        :param ddb_item: DDBItem = item that we want to update (required)
        :param update_exp: Union[str, Sequence[Action], None] = the update, as described above
        :param update_attr: Optional[Dict[str, Any]] = values (``:name``) and names (``#name``) of a legacy expression

        :return: Dict[str, Any] = the new ddb item as a dict
        :raises DDBUpdateException: when the item does not exist (code ``ConditionalCheckFailedException``), there is
            nothing to update, ``update_attr`` comes without an expression, a value is refused by its attribute, or
            the request fails
        """
        return classic_api.update_item(self, ddb_item, update_exp, update_attr)

    def actions_for(self, item: DDBItem, exclude: Iterable[str] = ()) -> list[Action]:
        """Return SET actions for the set, non-key attributes of an item.

        Each value is serialized by its attribute first, so a value of the wrong type is refused here (ValueError or
        TypeError) instead of being written with a type the attribute cannot read back: PynamoDB's ``set`` of a list
        attribute would otherwise store a non-list value (``False``, ``"abc"``) as it is.

        :param item: DDBItem = the item
        :param exclude: Iterable[str] = attribute names never to write (counters, lists changed atomically)
        :return: List[Action] = one SET per attribute
        :raises ValueError: when a value cannot be stored by its attribute
        :raises TypeError: when a value has a type its attribute refuses
        """
        skip = set(exclude) | {self.model._hash_keyname, self.model._range_keyname}
        attributes = self.model.get_attributes()
        return [
            getattr(self.model, name).set({attributes[name].attr_type: attributes[name].serialize(value)})
            for name, value in item.attribute_values.items()
            if name not in skip and value is not None
        ]

    @staticmethod
    def legacy_expression(expression: str) -> tuple[str, dict[str, str]]:
        """Rewrite a legacy expression so that every bare attribute name becomes an expression attribute name.

        See :func:`model_runner.database.classic_api.legacy_expression`.

        :param expression: str = the legacy update or condition expression
        :return: Tuple[str, Dict[str, str]] = the expression with placeholders, and the names they stand for
        """
        return classic_api.legacy_expression(expression)

    def query_items(self, ddb_item: DDBItem) -> list[dict[str, Any]]:
        """Query the table for all items of a given hash key: every page, strongly consistent.

        :param ddb_item: DDBItem = an item whose hash key is the one to query

        :return: List[Dict[str, Any]] = the items, as dictionaries
        :raises DDBException: when the request fails
        """
        return classic_api.query(self, ddb_item)

    @staticmethod
    def get_update_params(body: dict[str, Any], ddb_item: DDBItem) -> tuple[str, dict[str, Any]]:
        """Generate an update expression and a dict of values to update a dynamodb table.

        The classic shape, usable as it is with boto3's ``update_item(UpdateExpression=...,
        ExpressionAttributeValues=...)``: ``("SET a = :a, b = :b", {":a": ..., ":b": ...})``, with the item's keys
        and None values left out (see :func:`model_runner.database.classic_api.classic_update_params`). The
        expression is a ``str`` that also remembers a form with placeholders for the names: given back to
        :meth:`update_ddb_item`, that form is sent, so any attribute name is written literally.

        :param body: Dict = the body of the request that contains the updated data
        :param ddb_item: DDBItem = the item (its keys are not updated)

        :return: Tuple[str, Dict[str, Any]] = the generated update expression and attributes
        """
        return classic_api.classic_update_params(body, ddb_item)

    @staticmethod
    def get_keys(ddb_item: DDBItem) -> dict[str, Any]:
        """Return the key of an item: the hash key, and the range key when the table has one.

        :param ddb_item: DDBItem = the item

        :return: Dict[str, Any] = key attribute name to value
        """
        key = ddb_item.ddb_key
        keys: dict[str, Any] = {key.hash_key: key.hash_value}
        if key.range_key is not None:
            keys[key.range_key] = key.range_value
        return keys

    @staticmethod
    def convert_decimal(data: Any) -> Any:
        """Convert any Decimal values in the data to int or float, depending on the value.

        :param data: Any = the data to convert
        :returns: Any = the converted data
        """
        return to_native(data)
