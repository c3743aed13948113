"""The classic dictionary API of DDBHelper: items in and dictionaries out, expressions written as strings.

The classic boto3 helper worked on any table from its name alone: ``DDBHelper("my-table")`` with a bare ``DDBItem``
whose ``ddb_key`` was assigned, or with dataclass items of the user's. :class:`~model_runner.database.DDBHelper`
exposes these functions as its get/put/update/delete/query/batch-write methods. Each has two paths:

- **the model path**, when the helper has an item class and the item is one of it: the request goes through the
  bound PynamoDB model, whose attributes check every value before the request;
- **the dictionary path** for any other item (a bare DDBItem, a dataclass item, an item of another model): the item's
  key is its ``ddb_key``, its attributes are what ``to_put()`` returns, and values are encoded by
  :func:`~model_runner.database.attributes.serialize_value`.

Expressions given as strings (the **legacy path**) reach DynamoDB with every bare attribute name replaced by an
expression attribute name (``SET status = :s`` works although ``status`` is a reserved word); the placeholders
generated for them never reuse a placeholder of the caller's. For an item of a model (one that declares attributes),
each ``:value`` of a legacy update is checked against the attribute it is written to before the request, so
``SET region_count = :c`` with ``"4"`` is refused instead of storing a string in a number attribute.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pynamodb.attributes import ListAttribute, NumberAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action, Update

from .attributes import deserialize_value, to_native, to_native_number
from .exceptions import DatabaseError, DDBException, DDBUpdateException

if TYPE_CHECKING:
    from .ddb_helper import DDBItem
    from .retry import RetryPolicy

_T = TypeVar("_T")
_E = TypeVar("_E", bound=DatabaseError)

_KEYWORDS = frozenset({"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"})
_NAME = re.compile(r"(?<![#:\w])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
_NAME_PLACEHOLDER = re.compile(r"#\w+")
_SECTION = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)
_VALUE = re.compile(r":\w+")


class _Helper(Protocol):
    """What the functions of this module need of a DDBHelper (see :class:`~model_runner.database.DDBHelper`)."""

    table_name: str

    @property
    def client(self) -> Any:
        """The botocore DynamoDB client."""

    @property
    def model(self) -> Any:
        """The bound model class."""

    def is_model_item(self, item: DDBItem) -> bool:
        """Whether ``item`` takes the model path."""

    def bind(self, item: Any) -> Any:
        """The item as an instance of the bound model."""

    def _run(self, operation: Callable[[], _T], exc_class: type[_E], action: str, key: Mapping[str, Any]) -> _T:
        """Run a request with retries, raising ``exc_class`` when it fails."""

    def error(self, exc_class: type[_E], action: str, key: Mapping[str, Any], err: BaseException | None) -> _E:
        """Build a typed exception naming the table, the key and the cause."""

    def _read_item(self, exc_class: type[Any], action: str, hash_value: Any, range_value: Any = None) -> Any:
        """Read one bound item, or None."""

    def actions_for(self, item: Any, exclude: Iterable[str] = ()) -> list[Action]:
        """SET actions for the set, non-key attributes of an item."""

    def as_dict(self, item: Any) -> dict[str, Any]:
        """An item as a dictionary of native values."""

    def send_batch(
        self, requests: Sequence[Mapping[str, Any]], policy: RetryPolicy, on_retry: Callable[[int], None] | None = None
    ) -> None:
        """Send BatchWriteItem requests until every one is processed."""


# -- expressions -----------------------------------------------------------------------------------------------------


def legacy_expression(expression: str, reserved: Iterable[str] = ()) -> tuple[str, dict[str, str]]:
    """Rewrite a legacy expression so that every bare attribute name becomes an expression attribute name.

    ``SET region_count = :c`` becomes ``SET #n0 = :c`` with ``{"#n0": "region_count"}``; placeholders (``#x``,
    ``:x``), keywords and function names are kept. A generated placeholder is never one the expression already has
    nor one of ``reserved`` (the caller's own ``#names``), so a caller's ``#n0`` never stands for a generated one.

    :param expression: str = the legacy update or condition expression
    :param reserved: Iterable[str] = further name placeholders the result must not generate
    :return: Tuple[str, Dict[str, str]] = the expression with placeholders, and the names they stand for
    """
    names: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    taken = set(_NAME_PLACEHOLDER.findall(expression)) | set(reserved)

    def substitute(match: re.Match[str]) -> str:
        word = match.group(1)
        if word.upper() in _KEYWORDS:
            return word
        if word not in placeholders:
            index = len(placeholders)
            while f"#n{index}" in taken:
                index += 1
            placeholders[word] = f"#n{index}"
            taken.add(placeholders[word])
            names[placeholders[word]] = word
        return placeholders[word]

    return _NAME.sub(substitute, expression), names


def free_placeholder(base: str, taken: Iterable[str]) -> str:
    """Return ``base``, or ``base`` with a number appended, whichever is not in ``taken``.

    :param base: str = the wanted placeholder, such as ``#__hash``
    :param taken: Iterable[str] = placeholders in use
    :return: str = a placeholder not in use
    """
    used = set(taken)
    candidate, index = base, 0
    while candidate in used:
        index += 1
        candidate = f"{base}{index}"
    return candidate


def stored_name(item: DDBItem, name: str) -> str:
    """Return the stored name of an attribute of an item: its ``attr_name`` when the model declares it.

    :param item: DDBItem = the item
    :param name: str = a Python attribute name or a stored name
    :return: str = the stored name
    """
    attribute = type(item).get_attributes().get(name)
    return attribute.attr_name if attribute is not None else name


def update_body(body: Mapping[str, Any], item: DDBItem) -> dict[str, Any]:
    """Return what an update generated from ``body`` writes: stored name to value, keys and None values left out.

    :param body: Mapping[str, Any] = attribute name to new value
    :param item: DDBItem = the item (its keys are not updated)
    :return: Dict[str, Any] = stored attribute name to value
    """
    key = item.ddb_key
    keys = {key.hash_key, key.range_key}
    result: dict[str, Any] = {}
    for name, value in body.items():
        stored = stored_name(item, name)
        if value is None or stored in keys or name in keys:
            continue
        result[stored] = value
    return result


class ClassicUpdateExpression(str):
    """The update expression :func:`classic_update_params` returns: the classic string, which also remembers itself
    with a placeholder for every name.

    Sent with boto3 it is the classic string (names written as they are). Given back to
    :meth:`DDBHelper.update_ddb_item`, the form with placeholders is sent instead, so any name, even one that looks
    like expression syntax (``"a) OR attribute_exists(pk"``) or a reserved word, is written as a literal attribute.

    :param classic: str = the classic expression, ``SET a = :a, ...``
    :param safe: str = the same update with ``#nN`` name placeholders and the same value placeholders
    :param names: Mapping[str, str] = the name placeholders' names
    """

    safe: str
    names: dict[str, str]

    def __new__(cls, classic: str, safe: str = "", names: Mapping[str, str] | None = None) -> ClassicUpdateExpression:
        expression = super().__new__(cls, classic)
        expression.safe = safe or classic
        expression.names = dict(names or {})
        return expression


def classic_update_params(body: Mapping[str, Any], item: DDBItem) -> tuple[str, dict[str, Any]]:
    """Return the classic ``(update expression, expression attribute values)`` of an update from a dictionary.

    The classic shape: ``("SET a = :a, b = :b", {":a": ..., ":b": ...})``, usable as it is with boto3's
    ``update_item(UpdateExpression=..., ExpressionAttributeValues=...)``. The item's keys and None values are left
    out; attributes of the item's model are named by their stored name. A name that is not a plain identifier gets a
    value placeholder made of its word characters (made unique). As in the classic helper, the names are written as
    they are: a reserved word (``status``) or a name with other characters needs the caller's own
    ExpressionAttributeNames when sent with boto3 (:meth:`DDBHelper.update_ddb_item` never needs them).

    :param body: Mapping[str, Any] = attribute name to new value
    :param item: DDBItem = the item (its keys are not updated)
    :return: Tuple[str, Dict[str, Any]] = the expression ("" when there is nothing to write) and its values
    """
    clauses: list[str] = []
    safe_clauses: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for index, (name, value) in enumerate(update_body(body, item).items()):
        placeholder = free_placeholder(":" + (re.sub(r"\W", "_", name) or "v"), values)
        clauses.append(f"{name} = {placeholder}")
        safe_clauses.append(f"#n{index} = {placeholder}")
        names[f"#n{index}"] = name
        values[placeholder] = value
    if not clauses:
        return ClassicUpdateExpression(""), values
    return ClassicUpdateExpression("SET " + ", ".join(clauses), "SET " + ", ".join(safe_clauses), names), values


def safe_update_params(body: Mapping[str, Any], item: DDBItem) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Return an update of ``body`` with placeholders for names and values (what this package sends itself).

    :param body: Mapping[str, Any] = attribute name to new value
    :param item: DDBItem = the item (its keys are not updated)
    :return: Tuple[str, Dict[str, str], Dict[str, Any]] = expression, names (``#nN``), values (``:vN``)
    """
    clauses: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for index, (name, value) in enumerate(update_body(body, item).items()):
        clauses.append(f"#n{index} = :v{index}")
        names[f"#n{index}"] = name
        values[f":v{index}"] = value
    return ("SET " + ", ".join(clauses) if clauses else ""), names, values


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def value_targets(expression: str, names: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Find which attribute each ``:value`` of an update expression is written to, and how.

    Recognized: ``SET a = :v``, ``SET a = if_not_exists(a, :v)`` ("value"), ``SET a = a + :v`` / ``- :v``
    ("number"), ``SET a = list_append(x, :v)`` ("list"), ``ADD a :v`` ("add"), ``DELETE a :v`` ("delete"). Paths
    into an attribute (``a.b``, ``a[0]``) and other forms are left to DynamoDB.

    :param expression: str = the update expression, with ``#name`` placeholders
    :param names: Mapping[str, str] = the placeholders' names
    :return: List[Tuple[str, str, str]] = (stored attribute name, value placeholder, kind)
    """
    targets: list[tuple[str, str, str]] = []
    pieces = _SECTION.split(expression)
    for keyword, body in zip(pieces[1::2], pieces[2::2], strict=False):
        for clause in _split_top_level(body):
            if keyword.upper() == "SET":
                if "=" not in clause:
                    continue
                path, operand = (part.strip() for part in clause.split("=", 1))
            elif keyword.upper() in ("ADD", "DELETE"):
                path, _, operand = clause.partition(" ")
                operand = operand.strip()
            else:
                continue
            attribute = names.get(path, path if not path.startswith("#") else "")
            if not attribute or not re.fullmatch(r"[#\w]+", path):
                continue
            found = _VALUE.findall(operand)
            if keyword.upper() in ("ADD", "DELETE"):
                targets.extend((attribute, value, keyword.lower()) for value in found)
            elif re.fullmatch(r":\w+", operand) or re.fullmatch(r"if_not_exists\s*\([^,]+,\s*:\w+\s*\)", operand):
                targets.extend((attribute, value, "value") for value in found)
            elif operand.startswith("list_append"):
                targets.extend((attribute, value, "list") for value in found)
            elif "+" in operand or "-" in operand:
                targets.extend((attribute, value, "number") for value in found)
    return targets


def check_legacy_values(
    model: Any, expression: str, names: Mapping[str, str], values: Mapping[str, Any]
) -> tuple[str, str, BaseException] | None:
    """Check the values of a legacy update against the model's attributes they are written to.

    :param model: Any = the model class
    :param expression: str = the update expression, with ``#name`` placeholders
    :param names: Mapping[str, str] = the placeholders' names
    :param values: Mapping[str, Any] = the ``:value`` placeholders' values
    :return: Optional[Tuple[str, str, BaseException]] = (attribute, placeholder, error) of the first value refused
    """
    by_stored = {attribute.attr_name: attribute for attribute in model.get_attributes().values()}
    for stored, placeholder, kind in value_targets(expression, names):
        attribute = by_stored.get(stored)
        if attribute is None or placeholder not in values:
            continue
        value = values[placeholder]
        try:
            if kind == "value":
                if value is not None:
                    attribute.serialize(value)
            elif kind == "number" or (kind == "add" and isinstance(attribute, NumberAttribute)):
                if not isinstance(attribute, NumberAttribute):
                    raise TypeError(f"{stored} is not a number attribute")
                to_native_number(value)
                attribute.serialize(value)
            elif kind == "list":
                if not isinstance(attribute, ListAttribute) or not isinstance(value, (list, tuple)):
                    raise TypeError(f"expected a list for {stored}, got {type(value).__name__}")
                attribute.serialize(value)
            elif kind in ("add", "delete"):
                attribute.serialize(value)
        except (TypeError, ValueError) as err:
            return stored, placeholder, err
    return None


def condition_params(condition: Any, taken: Iterable[str] = ()) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Turn a condition into (expression, names, values) for a low-level request.

    :param condition: Any = a legacy string, a PynamoDB Condition, or a boto3 condition (``Attr("x").not_exists()``)
    :param taken: Iterable[str] = name placeholders already used by the request
    :return: Tuple[str, Dict[str, str], Dict[str, Any]] = expression, names, values (DynamoDB attribute values)
    :raises TypeError: for anything else
    """
    from .ddb_helper import serialize_value

    if isinstance(condition, str):
        expression, names = legacy_expression(condition, reserved=taken)
        return expression, names, {}
    if isinstance(condition, Condition):
        placeholders: dict[str, str] = {}
        values: dict[str, Any] = {}
        expression = condition.serialize(placeholders, values)
        return expression, {placeholder: name for name, placeholder in placeholders.items()}, values
    from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder

    if isinstance(condition, ConditionBase):
        built = ConditionExpressionBuilder().build_expression(condition)
        values = {key: serialize_value(value) for key, value in built.attribute_value_placeholders.items()}
        return built.condition_expression, dict(built.attribute_name_placeholders), values
    raise TypeError(f"a condition is a string, a PynamoDB or a boto3 condition, got {type(condition).__name__}")


# -- the dictionary path ---------------------------------------------------------------------------------------------


def item_values(item: DDBItem) -> dict[str, Any]:
    """Return an item as DynamoDB attribute values under stored names, for a low-level PutItem.

    :param item: DDBItem = a modeled item (serialized by its model) or a bare/dataclass one (by value type)
    :return: Dict[str, Any] = stored name to DynamoDB attribute value
    :raises TypeError: when a value cannot be stored
    :raises ValueError: when a number is NaN or infinite
    """
    from .ddb_helper import serialize_value

    if item.is_modeled:
        return dict(item.serialize())
    return {name: serialize_value(value) for name, value in item.to_put().items()}


def key_values(item: DDBItem) -> dict[str, Any]:
    """Return an item's key as DynamoDB attribute values (from its ``ddb_key``).

    :param item: DDBItem = the item
    :return: Dict[str, Any] = key name to DynamoDB attribute value
    """
    from .ddb_helper import serialize_value

    key = item.ddb_key
    keys = {key.hash_key: serialize_value(key.hash_value)}
    if key.range_key is not None:
        keys[key.range_key] = serialize_value(key.range_value)
    return keys


def native_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Decode a low-level item into native Python values.

    :param values: Mapping[str, Any] = stored name to DynamoDB attribute value
    :return: Dict[str, Any] = stored name to value (numbers as int or float)
    """
    return {name: deserialize_value(value) for name, value in values.items()}


def plain_key(item: DDBItem) -> dict[str, Any]:
    """Return an item's key as plain values, for messages.

    :param item: DDBItem = the item
    :return: Dict[str, Any] = key name to value
    """
    key = item.ddb_key
    keys: dict[str, Any] = {key.hash_key: key.hash_value}
    if key.range_key is not None:
        keys[key.range_key] = key.range_value
    return keys


def _request_key(helper: _Helper, item: DDBItem, exc_class: type[_E], action: str) -> tuple[dict[str, Any], Any]:
    try:
        key = plain_key(item)
        return key, key_values(item)
    except (TypeError, ValueError) as err:
        raise helper.error(exc_class, f"{action} (bad key)", {}, err) from err


def get_item(helper: _Helper, item: DDBItem) -> dict[str, Any]:
    """:meth:`DDBHelper.get_ddb_item`: one strongly consistent GetItem; {} when there is no item.

    :param helper: _Helper = the helper
    :param item: DDBItem = the item whose key to read
    :return: Dict[str, Any] = the stored item
    :raises DDBException: when the request fails
    """
    if helper.is_model_item(item):
        hash_value, range_value = item.key_values()
        return helper.as_dict(helper._read_item(DDBException, "get item", hash_value, range_value))
    key, request_key = _request_key(helper, item, DDBException, "get item")
    params = {"TableName": helper.table_name, "Key": request_key, "ConsistentRead": True}
    response = helper._run(lambda: helper.client.get_item(**params), DDBException, "get item", key)
    return native_item(response.get("Item", {}))


def put_item(helper: _Helper, item: DDBItem, condition: Any = None) -> dict[str, Any]:
    """:meth:`DDBHelper.put_ddb_item`: one PutItem, with a condition when given.

    :param helper: _Helper = the helper
    :param item: DDBItem = the item to write
    :param condition: Any = None, a legacy string, a PynamoDB Condition or a boto3 condition
    :return: Dict[str, Any] = the response of the request
    :raises DDBException: when the item cannot be stored, the condition does not hold or the request fails
    """
    key, _ = _request_key(helper, item, DDBException, "put item")
    model_path = helper.is_model_item(item)
    if model_path and (condition is None or isinstance(condition, Condition)):
        bound = helper.bind(item)
        return dict(helper._run(lambda: bound.save(condition=condition), DDBException, "put item", key))
    try:
        values = item_values(helper.bind(item) if model_path else item)
        params: dict[str, Any] = {"TableName": helper.table_name, "Item": values}
        if condition is not None:
            expression, names, condition_values = condition_params(condition)
            params["ConditionExpression"] = expression
            if names:
                params["ExpressionAttributeNames"] = names
            if condition_values:
                params["ExpressionAttributeValues"] = condition_values
    except (TypeError, ValueError) as err:
        raise helper.error(DDBException, "put item (bad value)", key, err) from err
    return dict(helper._run(lambda: helper.client.put_item(**params), DDBException, "put item", key))


def delete_item(helper: _Helper, item: DDBItem) -> dict[str, Any]:
    """:meth:`DDBHelper.delete_ddb_item`: one DeleteItem (deleting a missing item succeeds).

    :param helper: _Helper = the helper
    :param item: DDBItem = the item whose key to delete
    :return: Dict[str, Any] = the response of the request
    :raises DDBException: when the request fails
    """
    key, request_key = _request_key(helper, item, DDBException, "delete item")
    if helper.is_model_item(item):
        bound = helper.bind(item)
        return dict(helper._run(bound.delete, DDBException, "delete item", key))
    params = {"TableName": helper.table_name, "Key": request_key}
    return dict(helper._run(lambda: helper.client.delete_item(**params), DDBException, "delete item", key))


def query(helper: _Helper, item: DDBItem) -> list[dict[str, Any]]:
    """:meth:`DDBHelper.query_items`: every item of the item's hash key, all pages, strongly consistent.

    :param helper: _Helper = the helper
    :param item: DDBItem = an item whose hash key to query
    :return: List[Dict[str, Any]] = the items
    :raises DDBException: when the request fails
    """
    ddb_key = item.ddb_key
    key = {ddb_key.hash_key: ddb_key.hash_value}
    if helper.is_model_item(item):
        hash_value, _ = item.key_values()

        def model_query() -> list[dict[str, Any]]:
            return [helper.as_dict(found) for found in helper.model.query(hash_value, consistent_read=True)]

        return helper._run(model_query, DDBException, "query", key)
    from .ddb_helper import serialize_value

    try:
        hash_value = serialize_value(ddb_key.hash_value)
    except (TypeError, ValueError) as err:
        raise helper.error(DDBException, "query (bad key)", key, err) from err
    params: dict[str, Any] = {
        "TableName": helper.table_name,
        "KeyConditionExpression": "#k = :k",
        "ExpressionAttributeNames": {"#k": ddb_key.hash_key},
        "ExpressionAttributeValues": {":k": hash_value},
        "ConsistentRead": True,
    }

    def raw_query() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request = dict(params)
        while True:
            response = helper.client.query(**request)
            items.extend(native_item(found) for found in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    return helper._run(raw_query, DDBException, "query", key)


def batch_put(
    helper: _Helper, items: Sequence[DDBItem], policy: RetryPolicy, on_retry: Callable[[int], None] | None = None
) -> None:
    """:meth:`DDBHelper.batch_write_items`: PutRequests through the helper's batch writer.

    :param helper: _Helper = the helper
    :param items: Sequence[DDBItem] = the items
    :param policy: RetryPolicy = the batch writer's retries
    :param on_retry: Optional[Callable[[int], None]] = called with the number of items sent again
    :return: None
    :raises DDBBatchWriteException: when items are left unwritten
    :raises DDBException: when an item cannot be stored (nothing is sent)
    """
    requests: list[dict[str, Any]] = []
    for item in items:
        try:
            values = item_values(helper.bind(item) if helper.is_model_item(item) else item)
        except (TypeError, ValueError) as err:
            raise helper.error(DDBException, "batch write (bad value, nothing written)", plain_key(item), err) from err
        requests.append({"PutRequest": {"Item": values}})
    helper.send_batch(requests, policy, on_retry)


def update_item(
    helper: _Helper,
    item: DDBItem,
    update_exp: str | Sequence[Action] | None,
    update_attr: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """:meth:`DDBHelper.update_ddb_item`: one UpdateItem on an existing item, returning the item as stored after it.

    :param helper: _Helper = the helper
    :param item: DDBItem = the item to update
    :param update_exp: Union[str, Sequence[Action], None] = a legacy expression, PynamoDB actions, or None to write
        the item's set attributes
    :param update_attr: Optional[Mapping[str, Any]] = values (``:x``) and names (``#x``) of a legacy expression
    :return: Dict[str, Any] = the stored item
    :raises DDBUpdateException: when there is nothing to update, ``update_attr`` comes without an expression, a value
        is refused by its attribute, the item does not exist (code ``ConditionalCheckFailedException``) or the
        request fails
    """
    key, request_key = _request_key(helper, item, DDBUpdateException, "update item")
    if update_exp is None and update_attr:
        raise helper.error(
            DDBUpdateException,
            "update (update_attr given without an update expression, as the classic refused)",
            key,
            None,
        )
    model_path = helper.is_model_item(item)
    if model_path and not isinstance(update_exp, str):
        bound = helper.bind(item)
        try:
            actions = list(update_exp) if update_exp is not None else helper.actions_for(bound)
        except (TypeError, ValueError) as err:
            raise helper.error(DDBUpdateException, "update item (bad value)", key, err) from err
        if not actions:
            raise helper.error(DDBUpdateException, "update (nothing to update)", key, None)
        hash_attr = getattr(helper.model, str(helper.model._hash_keyname))
        helper._run(
            lambda: bound.update(actions=actions, condition=hash_attr.exists()), DDBUpdateException, "update item", key
        )
        return helper.as_dict(bound)
    attributes = dict(update_attr or {})
    if update_exp is None:
        expression, names, attributes = safe_update_params(item.to_update(), item)
        if not expression:
            raise helper.error(DDBUpdateException, "update (nothing to update)", key, None)
    elif isinstance(update_exp, ClassicUpdateExpression) and update_exp.names:
        expression, names = update_exp.safe, dict(update_exp.names)
        _refuse_bad_values(helper, item, key, expression, names, attributes)
    elif isinstance(update_exp, str):
        caller_names = {k: str(v) for k, v in attributes.items() if k.startswith("#")}
        expression, names = legacy_expression(update_exp, reserved=caller_names)
        names.update(caller_names)
        attributes = {k: v for k, v in attributes.items() if not k.startswith("#")}
        _refuse_bad_values(helper, item, key, expression, names, attributes)
    else:
        placeholders: dict[str, str] = {}
        serialized: dict[str, Any] = {}
        expression = Update(*update_exp).serialize(placeholders, serialized) or ""
        names = {placeholder: name for name, placeholder in placeholders.items()}
        attributes = {}
        return _send_update(helper, key, request_key, expression, names, attributes, serialized, model_path)
    return _send_update(helper, key, request_key, expression, names, attributes, {}, model_path)


def _refuse_bad_values(
    helper: _Helper,
    item: DDBItem,
    key: Mapping[str, Any],
    expression: str,
    names: Mapping[str, str],
    values: Mapping[str, Any],
) -> None:
    """Raise DDBUpdateException when a value is refused by the attribute of the item's model it is written to.

    :param helper: _Helper = the helper
    :param item: DDBItem = the item; an item without declared attributes has nothing to check against
    :param key: Mapping[str, Any] = the item's key, for the message
    :param expression: str = the update expression, with ``#name`` placeholders
    :param names: Mapping[str, str] = the placeholders' names
    :param values: Mapping[str, Any] = the ``:value`` placeholders' values
    :raises DDBUpdateException: chained from the attribute's TypeError or ValueError
    """
    if not item.is_modeled:
        return
    refused = check_legacy_values(type(item), expression, names, values)
    if refused is not None:
        stored, placeholder, cause = refused
        action = f"update item ({placeholder} refused by attribute {stored})"
        raise helper.error(DDBUpdateException, action, key, cause) from cause


def _send_update(
    helper: _Helper,
    key: dict[str, Any],
    request_key: dict[str, Any],
    expression: str,
    names: dict[str, str],
    values: Mapping[str, Any],
    serialized: Mapping[str, Any],
    model_path: bool,
) -> dict[str, Any]:
    from .ddb_helper import serialize_value

    hash_name = next(iter(request_key))
    hash_placeholder = free_placeholder("#__hash", set(names) | set(_NAME_PLACEHOLDER.findall(expression)))
    names[hash_placeholder] = hash_name
    try:
        encoded = {k: serialize_value(v) for k, v in values.items()}
    except (TypeError, ValueError) as err:
        raise helper.error(DDBUpdateException, "update item (bad value)", key, err) from err
    encoded.update(serialized)
    params: dict[str, Any] = {
        "TableName": helper.table_name,
        "Key": request_key,
        "UpdateExpression": expression,
        "ConditionExpression": f"attribute_exists({hash_placeholder})",
        "ExpressionAttributeNames": names,
        "ReturnValues": "ALL_NEW",
    }
    if encoded:
        params["ExpressionAttributeValues"] = encoded
    response = helper._run(lambda: helper.client.update_item(**params), DDBUpdateException, "update item", key)
    stored = native_item(response.get("Attributes", {}))
    if not model_path:
        return stored
    # the same names as the other forms return: Python names for the model's attributes, others as stored
    python_names = {attribute.attr_name: name for name, attribute in helper.model.get_attributes().items()}
    return {python_names.get(k, k): to_native(v) for k, v in stored.items()}
