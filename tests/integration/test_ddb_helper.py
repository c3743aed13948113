"""DDBHelper, the base repository, on DynamoDB Local: every method of the classic dictionary API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pynamodb.attributes import UnicodeAttribute

from model_runner.database import (
    DatabaseError,
    DDBBatchWriteException,
    DDBException,
    DDBHelper,
    DDBItem,
    DDBUpdateException,
    JobItem,
    JobTable,
    TableNames,
)
from model_runner.database.attributes import FloatAttribute, IntegerAttribute, NativeListAttribute
from model_runner.database.exceptions import CONDITION_FAILED

pytestmark = pytest.mark.integration


class SampleItem(DDBItem):
    """A table with a hash and a range key whose stored names differ from the Python names."""

    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    group = UnicodeAttribute(hash_key=True, attr_name="pk")
    name = UnicodeAttribute(range_key=True, attr_name="sk")
    amount = IntegerAttribute(null=True)
    ratio = FloatAttribute(null=True)
    label = UnicodeAttribute(null=True)
    tags = NativeListAttribute(null=True)
    payload = UnicodeAttribute(null=True, attr_name="p")


@pytest.fixture
def helper(dynamodb_local_endpoint: str, table_names: TableNames) -> Iterator[DDBHelper]:
    """A DDBHelper on a fresh table of SampleItem."""
    repository = DDBHelper(table_names.feature + "-sample", item_class=SampleItem, host=dynamodb_local_endpoint)
    repository.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    yield repository
    repository.model.delete_table()


@pytest.fixture
def jobs(dynamodb_local_endpoint: str, job_table: JobTable) -> JobTable:
    """A hash-key-only table, through the same base API."""
    return job_table


def raw_item(helper: DDBHelper, group: str, name: str) -> dict[str, Any]:
    """The stored item as DynamoDB has it, attribute names included, bypassing the model."""
    response = helper.client.get_item(
        TableName=helper.table_name, Key={"pk": {"S": group}, "sk": {"S": name}}, ConsistentRead=True
    )
    return dict(response.get("Item", {}))


class CallCounter:
    """Counts the requests of one operation the botocore client sends."""

    def __init__(self, helper: DDBHelper, operation: str) -> None:
        self.calls = 0
        self._events = helper.client.meta.events
        self._event = f"after-call.dynamodb.{operation}"

    def __call__(self, **_: Any) -> None:
        self.calls += 1

    def __enter__(self) -> CallCounter:
        self._events.register(self._event, self, unique_id=f"count-{id(self)}")
        return self

    def __exit__(self, *_: object) -> None:
        self._events.unregister(self._event, unique_id=f"count-{id(self)}")


# -- get / put / delete --------------------------------------------------------------------------------------------


def test_get_of_a_missing_item_is_empty(helper: DDBHelper, jobs: JobTable) -> None:
    assert helper.get_ddb_item(SampleItem(group="g", name="absent")) == {}
    assert jobs.get_ddb_item(JobItem(image_id="absent")) == {}


def test_put_then_get_round_trips_ints_floats_lists_and_strings(helper: DDBHelper) -> None:
    helper.put_ddb_item(
        SampleItem(group="g", name="n", amount=Decimal("3"), ratio=0.25, label="é", tags=[[1, 2], [3.5, "x"]])
    )
    got = helper.get_ddb_item(SampleItem(group="g", name="n"))
    assert got == {"group": "g", "name": "n", "amount": 3, "ratio": 0.25, "label": "é", "tags": [[1, 2], [3.5, "x"]]}
    assert type(got["amount"]) is int and type(got["ratio"]) is float
    assert type(got["tags"][0][0]) is int and type(got["tags"][1][0]) is float


def test_numbers_read_can_be_written_back(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=7, ratio=1.5, tags=[0.1, 2]))
    got = helper.get_ddb_item(SampleItem(group="g", name="n"))
    helper.put_ddb_item(SampleItem(**{**got, "name": "copy"}))
    expression, values = DDBHelper.get_update_params({"ratio": Decimal("2.75"), "tags": got["tags"]}, SampleItem())
    helper.update_ddb_item(SampleItem(group="g", name="copy"), expression, values)
    copy = helper.get_ddb_item(SampleItem(group="g", name="copy"))
    assert (copy["amount"], copy["ratio"], copy["tags"]) == (7, 2.75, [0.1, 2])


def test_put_replaces_an_item_without_condition(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, label="old"))
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=2))
    assert helper.get_ddb_item(SampleItem(group="g", name="n")) == {"group": "g", "name": "n", "amount": 2}


def test_put_with_a_pynamodb_condition(helper: DDBHelper) -> None:
    condition = SampleItem.group.does_not_exist()
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1), condition)
    with pytest.raises(DDBException) as raised:
        helper.put_ddb_item(SampleItem(group="g", name="n", amount=2), condition)
    assert raised.value.code == CONDITION_FAILED
    assert helper.get_ddb_item(SampleItem(group="g", name="n"))["amount"] == 1


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [("attribute_not_exists(pk)", False), ("attribute_exists(label)", True), ("attribute_exists(amount)", False)],
)
def test_put_with_a_legacy_string_condition(helper: DDBHelper, condition: str, allowed: bool) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", label="first"))
    replacement = SampleItem(group="g", name="n", label="second")
    if allowed:
        helper.put_ddb_item(replacement, condition)
    else:
        with pytest.raises(DDBException) as raised:
            helper.put_ddb_item(replacement, condition)
        assert raised.value.code == CONDITION_FAILED
    assert helper.get_ddb_item(SampleItem(group="g", name="n"))["label"] == ("second" if allowed else "first")


def test_delete(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1))
    helper.put_ddb_item(SampleItem(group="g", name="other", amount=2))
    helper.delete_ddb_item(SampleItem(group="g", name="n"))
    assert helper.get_ddb_item(SampleItem(group="g", name="n")) == {}
    assert helper.get_ddb_item(SampleItem(group="g", name="other"))["amount"] == 2
    helper.delete_ddb_item(SampleItem(group="g", name="n"))  # deleting a missing item succeeds


def test_requests_on_a_missing_table_raise_typed_exceptions(
    dynamodb_local_endpoint: str, table_names: TableNames
) -> None:
    missing = DDBHelper(table_names.job + "-absent", item_class=SampleItem, host=dynamodb_local_endpoint)
    item = SampleItem(group="g", name="n", amount=1)
    calls: list[tuple[type[DatabaseError], Callable[[], object]]] = [
        (DDBException, lambda: missing.get_ddb_item(item)),
        (DDBException, lambda: missing.put_ddb_item(item)),
        (DDBException, lambda: missing.delete_ddb_item(item)),
        (DDBException, lambda: missing.query_items(item)),
        (DDBUpdateException, lambda: missing.update_ddb_item(item)),
        (DDBBatchWriteException, lambda: missing.batch_write_items([item])),
    ]
    for exc_class, call in calls:
        with pytest.raises(exc_class) as raised:
            call()
        assert raised.value.table_missing
        assert missing.table_name in str(raised.value)


# -- update --------------------------------------------------------------------------------------------------------


def update_forms() -> list[tuple[str, Callable[[DDBHelper, SampleItem], object]]]:
    return [
        ("set attributes", lambda h, item: h.update_ddb_item(item)),
        ("pynamodb actions", lambda h, item: h.update_ddb_item(item, [SampleItem.amount.add(1)])),
        ("legacy string", lambda h, item: h.update_ddb_item(item, "SET label = :l", {":l": "x"})),
        ("get_update_params", lambda h, item: h.update_ddb_item(item, *h.get_update_params({"label": "x"}, item))),
    ]


@pytest.mark.parametrize(("form", "update"), update_forms(), ids=[form for form, _ in update_forms()])
def test_update_never_creates_a_missing_item(
    helper: DDBHelper, form: str, update: Callable[[DDBHelper, SampleItem], object]
) -> None:
    with pytest.raises(DDBUpdateException) as raised:
        update(helper, SampleItem(group="g", name="absent", amount=4))
    assert raised.value.code == CONDITION_FAILED
    assert helper.get_ddb_item(SampleItem(group="g", name="absent")) == {}
    assert raw_item(helper, "g", "absent") == {}


def test_update_writes_only_the_set_attributes(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, label="kept", tags=[1]))
    result = helper.update_ddb_item(SampleItem(group="g", name="n", ratio=0.5, amount=9))
    expected = {"group": "g", "name": "n", "amount": 9, "ratio": 0.5, "label": "kept", "tags": [1]}
    assert result == expected
    assert helper.get_ddb_item(SampleItem(group="g", name="n")) == expected


def test_update_with_nothing_to_write_raises(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1))
    with pytest.raises(DDBUpdateException):
        helper.update_ddb_item(SampleItem(group="g", name="n"))


def test_update_with_pynamodb_actions(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, tags=[[0, 0]], label="gone"))
    result = helper.update_ddb_item(
        SampleItem(group="g", name="n"),
        [
            SampleItem.amount.add(2),
            SampleItem.tags.set(SampleItem.tags.append([[1, 1]])),
            SampleItem.label.remove(),
        ],
    )
    assert result == {"group": "g", "name": "n", "amount": 3, "tags": [[0, 0], [1, 1]]}
    assert helper.get_ddb_item(SampleItem(group="g", name="n")) == result


def test_legacy_string_update_with_values(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, tags=[1]))
    result = helper.update_ddb_item(
        SampleItem(group="g", name="n"),
        "SET label = :l, amount = amount + :one, tags = list_append(tags, :more) REMOVE ratio",
        {":l": "new", ":one": 1, ":more": [Decimal("2.5")]},
    )
    assert result == {"group": "g", "name": "n", "amount": 2, "label": "new", "tags": [1, 2.5]}
    assert type(result["amount"]) is int
    assert helper.get_ddb_item(SampleItem(group="g", name="n"))["tags"] == [1, 2.5]


def test_legacy_update_with_its_own_placeholders_keeps_each_name(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, label="a"))
    helper.update_ddb_item(
        SampleItem(group="g", name="n"),
        "SET label = :l, #n0 = :c",
        {":l": "b", ":c": 5, "#n0": "amount"},
    )
    got = helper.get_ddb_item(SampleItem(group="g", name="n"))
    assert (got["label"], got["amount"]) == ("b", 5)


def test_get_update_params_stores_python_names_under_their_attribute_names(helper: DDBHelper) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", payload="old"))
    item = SampleItem(group="g", name="n", payload="new", amount=2)
    helper.update_ddb_item(item, *DDBHelper.get_update_params(item.to_update(), item))
    assert helper.get_ddb_item(SampleItem(group="g", name="n"))["payload"] == "new"
    assert set(raw_item(helper, "g", "n")) == {"pk", "sk", "p", "amount"}


@pytest.mark.parametrize(
    "evil_name",
    [
        "label REMOVE amount",
        "amount = :v0, label",
        "#n0",
        ":v0",
        "label) OR attribute_exists(pk",
        "tags[0]",
        "a.b",
    ],
)
def test_injection_looking_names_are_stored_as_literal_attribute_names(helper: DDBHelper, evil_name: str) -> None:
    helper.put_ddb_item(SampleItem(group="g", name="n", amount=1, label="kept", tags=[1]))
    item = SampleItem(group="g", name="n")
    expression, attributes = DDBHelper.get_update_params({evil_name: "value", "ratio": 0.5}, item)
    helper.update_ddb_item(item, expression, attributes)
    raw = raw_item(helper, "g", "n")
    assert raw[evil_name] == {"S": "value"}
    assert raw["amount"] == {"N": "1"} and raw["label"] == {"S": "kept"} and raw["tags"] == {"L": [{"N": "1"}]}
    assert raw["ratio"] == {"N": "0.5"}


# -- query ---------------------------------------------------------------------------------------------------------


def test_query_items_reads_every_page(helper: DDBHelper) -> None:
    items = [SampleItem(group="big", name=f"{i:04d}", payload="x" * 10_000, amount=i) for i in range(150)]
    helper.batch_write_items(items)
    helper.batch_write_items([SampleItem(group="other", name="0", amount=-1)])

    with CallCounter(helper, "Query") as queries:
        found = helper.query_items(SampleItem(group="big"))

    assert queries.calls >= 2  # more than 1 MB: DynamoDB answered in pages
    assert sorted(item["amount"] for item in found) == list(range(150))
    assert all(item["group"] == "big" and len(item["payload"]) == 10_000 for item in found)
    assert helper.query_items(SampleItem(group="none")) == []


def test_query_items_of_a_hash_key_only_table(jobs: JobTable) -> None:
    jobs.put_ddb_item(JobItem(image_id="a", region_count=1))
    assert jobs.query_items(JobItem(image_id="a")) == [{"image_id": "a", "region_count": 1}]


# -- batch write ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [60, 1_000])
def test_batch_write_items(helper: DDBHelper, size: int) -> None:
    items = [SampleItem(group="batch", name=f"{i:05d}", amount=i, ratio=i / 4, tags=[i, [i]]) for i in range(size)]
    with CallCounter(helper, "BatchWriteItem") as batches:
        helper.batch_write_items(items)
    assert batches.calls >= -(-size // 25)
    found = helper.query_items(SampleItem(group="batch"))
    assert len(found) == size
    assert {item["name"]: (item["amount"], item["ratio"], item["tags"]) for item in found} == {
        f"{i:05d}": (i, i / 4, [i, [i]]) for i in range(size)
    }


def test_batch_write_of_an_oversized_item_fails_at_once(helper: DDBHelper) -> None:
    items = [SampleItem(group="batch", name=f"{i:02d}", amount=i) for i in range(30)]
    items[27].payload = "x" * 410_000
    retries: list[int] = []
    with CallCounter(helper, "BatchWriteItem") as batches, pytest.raises(DDBBatchWriteException) as raised:
        helper.batch_write_items(items, on_retry=retries.append)
    assert raised.value.code == "ValidationException"
    assert raised.value.unprocessed == 5
    assert retries == []
    assert batches.calls == 2  # the first 25 items, then the failing request once: no retry
    assert len(helper.query_items(SampleItem(group="batch"))) == 25


def test_batch_write_of_no_item_sends_nothing(helper: DDBHelper) -> None:
    with CallCounter(helper, "BatchWriteItem") as batches:
        helper.batch_write_items([])
    assert batches.calls == 0


# -- static helpers ------------------------------------------------------------------------------------------------


def test_get_keys_names_the_stored_key_attributes() -> None:
    assert DDBHelper.get_keys(SampleItem(group="g", name="n", amount=1)) == {"pk": "g", "sk": "n"}
    assert DDBHelper.get_keys(JobItem(image_id="i", region_count=2)) == {"image_id": "i"}


def test_get_update_params_leaves_out_keys_and_none() -> None:
    expression, attributes = DDBHelper.get_update_params(
        {"group": "g", "pk": "g", "name": "n", "amount": 1, "label": None, "ratio": 0.5},
        SampleItem(group="g", name="n"),
    )
    assert expression == "SET amount = :amount, ratio = :ratio"
    assert attributes == {":amount": 1, ":ratio": 0.5}


def test_convert_decimal() -> None:
    data = {"a": Decimal("1"), "b": [Decimal("2.5"), (Decimal("3"), "s")], "c": {"d": Decimal("-0.0")}, "e": None}
    converted = DDBHelper.convert_decimal(data)
    assert converted == {"a": 1, "b": [2.5, [3, "s"]], "c": {"d": 0}, "e": None}
    assert type(converted["a"]) is int and type(converted["b"][0]) is float
