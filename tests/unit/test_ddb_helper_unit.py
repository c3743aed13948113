"""DDBHelper without DynamoDB Local: the pure helpers, and the request paths on moto's DynamoDB."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from pynamodb.attributes import UnicodeAttribute

from model_runner.database import DDBBatchWriteException, DDBHelper, DDBItem, DDBUpdateException, JobItem
from model_runner.database.attributes import FloatAttribute, IntegerAttribute
from model_runner.database.ddb_helper import deserialize_value, serialize_value


class UnitItem(DDBItem):
    class Meta:
        billing_mode = "PAY_PER_REQUEST"

    group = UnicodeAttribute(hash_key=True, attr_name="pk")
    name = UnicodeAttribute(range_key=True, attr_name="sk")
    amount = IntegerAttribute(null=True)
    ratio = FloatAttribute(null=True)
    payload = UnicodeAttribute(null=True, attr_name="p")


# -- legacy expressions --------------------------------------------------------------------------------------------


def test_legacy_expression_turns_bare_names_into_placeholders() -> None:
    expression, names = DDBHelper.legacy_expression("SET region_count = :c, b = b + :one REMOVE a.b[1]")
    assert expression == "SET #n0 = :c, #n1 = #n1 + :one REMOVE #n2.#n1[1]"
    assert names == {"#n0": "region_count", "#n1": "b", "#n2": "a"}


def test_legacy_expression_keeps_keywords_functions_and_placeholders() -> None:
    expression, names = DDBHelper.legacy_expression(
        "attribute_not_exists(pk) AND NOT contains(tags, :t) or size ( #given ) BETWEEN :a AND :b"
    )
    assert expression == "attribute_not_exists(#n0) AND NOT contains(#n1, :t) or size ( #given ) BETWEEN :a AND :b"
    assert names == {"#n0": "pk", "#n1": "tags"}


def test_legacy_expression_never_reuses_a_placeholder_of_the_expression() -> None:
    expression, names = DDBHelper.legacy_expression("SET label = :l, #n0 = :c, #n2 = :d, other = :o")
    assert expression == "SET #n1 = :l, #n0 = :c, #n2 = :d, #n3 = :o"
    assert names == {"#n1": "label", "#n3": "other"}


# -- get_update_params, get_keys, convert_decimal ------------------------------------------------------------------


def test_get_update_params_uses_stored_names_and_leaves_out_keys_and_none() -> None:
    item = UnitItem(group="g", name="n")
    expression, attributes = DDBHelper.get_update_params(
        {"group": "g", "sk": "n", "payload": "x", "amount": None, "free form": 1}, item
    )
    assert expression == "SET p = :p, free form = :free_form"
    assert attributes == {":p": "x", ":free_form": 1}


def test_get_update_params_returns_the_classic_shape_with_unique_value_placeholders() -> None:
    item = JobItem(image_id="i")
    expression, attributes = DDBHelper.get_update_params({"a-b": 1, "a_b": 2, "region_count": 3}, item)
    assert expression == "SET a-b = :a_b, a_b = :a_b1, region_count = :region_count"
    assert attributes == {":a_b": 1, ":a_b1": 2, ":region_count": 3}


def test_get_update_params_with_nothing_to_write() -> None:
    assert DDBHelper.get_update_params({"image_id": "i", "region_count": None}, JobItem(image_id="i")) == ("", {})


def test_get_keys() -> None:
    assert DDBHelper.get_keys(UnitItem(group="g", name="n")) == {"pk": "g", "sk": "n"}
    assert DDBHelper.get_keys(JobItem(image_id="i")) == {"image_id": "i"}


def test_convert_decimal_leaves_other_values_alone() -> None:
    data = {"s": "x", "b": b"y", "n": None, "t": True, "set": {1, 2}}
    assert DDBHelper.convert_decimal(data) == data
    assert DDBHelper.convert_decimal(Decimal("1e3")) == 1000


# -- value encoding of the legacy path -----------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
    lambda f: f == 0 or 1e-100 < abs(f) < 2**53  # whole floats above 2**53 read back as the int DynamoDB stored
)
scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.integers(-(10**20), 10**20), finite_floats)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12,
)


@given(values)
def test_serialize_then_deserialize_gives_the_value_back(value: Any) -> None:
    assert deserialize_value(serialize_value(value)) == value


@given(st.sets(st.text(max_size=5), min_size=1) | st.sets(st.integers(), min_size=1) | st.sets(st.binary(), min_size=1))
def test_sets_round_trip(value: set[Any]) -> None:
    assert deserialize_value(serialize_value(value)) == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, Decimal("NaN"), object(), set()])
def test_values_dynamodb_cannot_store_are_refused(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        serialize_value(bad)


# -- request paths on moto -----------------------------------------------------------------------------------------


@pytest.fixture
def moto_helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[DDBHelper]:
    """A DDBHelper on a fresh table of moto's in-process DynamoDB."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        helper = DDBHelper(f"unit-{uuid.uuid4().hex[:8]}", item_class=UnitItem, region="us-east-1")
        helper.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
        yield helper


def test_moto_round_trip(moto_helper: DDBHelper) -> None:
    moto_helper.put_ddb_item(UnitItem(group="g", name="n", amount=2, ratio=0.5))
    assert moto_helper.get_ddb_item(UnitItem(group="g", name="n")) == {
        "group": "g",
        "name": "n",
        "amount": 2,
        "ratio": 0.5,
    }
    moto_helper.update_ddb_item(UnitItem(group="g", name="n", payload="p"))
    assert moto_helper.get_ddb_item(UnitItem(group="g", name="n"))["payload"] == "p"
    moto_helper.delete_ddb_item(UnitItem(group="g", name="n"))
    assert moto_helper.get_ddb_item(UnitItem(group="g", name="n")) == {}


def test_moto_update_of_a_missing_item_raises(moto_helper: DDBHelper) -> None:
    with pytest.raises(DDBUpdateException) as raised:
        moto_helper.update_ddb_item(UnitItem(group="g", name="absent", amount=1))
    assert raised.value.code == "ConditionalCheckFailedException"
    assert moto_helper.get_ddb_item(UnitItem(group="g", name="absent")) == {}


def test_batch_write_sends_unprocessed_items_again(moto_helper: DDBHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    client = moto_helper.client
    real_batch_write = client.batch_write_item
    sent: list[int] = []

    def drop_half_of_first_requests(RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        requests = RequestItems[moto_helper.table_name]
        sent.append(len(requests))
        if len(sent) <= 2:  # the first two requests: the last half of the items are left unprocessed
            kept, dropped = requests[: len(requests) // 2], requests[len(requests) // 2 :]
            real_batch_write(RequestItems={moto_helper.table_name: kept})
            return {"UnprocessedItems": {moto_helper.table_name: dropped}}
        return dict(real_batch_write(RequestItems=RequestItems))

    monkeypatch.setattr(client, "batch_write_item", drop_half_of_first_requests)
    retried: list[int] = []
    items = [UnitItem(group="g", name=f"{i:03d}", amount=i) for i in range(60)]
    moto_helper.batch_write_items(items, max_delay=0.01, on_retry=retried.append)

    assert len(moto_helper.query_items(UnitItem(group="g"))) == 60
    assert retried == [13, 13]  # 25 sent, 13 dropped; then those 13 with 12 new, 13 dropped again
    assert all(size <= 25 for size in sent)


def test_batch_write_gives_up_after_max_retries(moto_helper: DDBHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    def never_processed(RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {"UnprocessedItems": RequestItems}

    monkeypatch.setattr(moto_helper.client, "batch_write_item", never_processed)
    retried: list[int] = []
    with pytest.raises(DDBBatchWriteException) as raised:
        moto_helper.batch_write_items(
            [UnitItem(group="g", name=str(i)) for i in range(30)],
            max_retries=3,
            max_delay=0.01,
            on_retry=retried.append,
        )
    assert raised.value.unprocessed == 30
    assert len(retried) == 3
