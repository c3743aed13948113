"""The write invariant of the feature layout, as properties: whatever the sizes (near every part boundary), the clocks
and the writes cut off half way, the aggregate is exactly the last complete write of every tile; without a source tile
an identical retry never loses a feature.

The table is simulated by a dictionary (key -> item) and read by the reader's own selection
(:func:`feature_layout.select_items` over each shard in range key order); items are sized against a small target so
that hypothesis reaches every part boundary with small data."""

from __future__ import annotations

import base64
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_runner.database import feature_codec as codec
from model_runner.database import feature_layout as layout
from model_runner.database.feature_layout import CLASSIC, COMPACT, Entry

IMAGE = "img-prop"
SALT = 3
#: A small item size target, so that a few features of a few hundred bytes cross part boundaries.
TARGET = 2_000
TILES = ["r0c0w512h512", "r0c480w512h512", "r480c0w512h512"]

Table = dict[tuple[str, str], dict[str, Any]]


def feature(seed: int, size: int) -> bytes:
    """The canonical JSON of a feature whose ``blob`` is ``size`` bytes of incompressible text."""
    blob = base64.b64encode(random.Random(seed).randbytes(size * 3 // 4 + 1)).decode()[:size]
    return codec.encode_feature({"type": "Feature", "id": f"f{seed}", "properties": {"image_id": IMAGE, "blob": blob}})


def entries(features: Sequence[bytes]) -> list[Entry]:
    return [Entry(data, index, f"0:0:{index % 2}:0") for index, data in enumerate(features)]


def plan(features: Sequence[bytes], source: str | None, now: float, fmt: str, target: int = TARGET) -> list[Any]:
    return layout.plan_items(
        IMAGE,
        entries(features),
        source=source,
        hash_salt=SALT,
        now=now,
        expire_time=int(now) + 7 * 86400,
        write_format=fmt,
        target=target,
    )


def store(table: Table, items: Iterable[dict[str, Any]]) -> None:
    for item in items:
        table[(item["hash_key"]["S"], item["range_key"]["S"])] = item


def aggregate(table: Table) -> Counter[bytes]:
    """What a reader returns: every shard read in range key order through the reader's selection."""
    features: Counter[bytes] = Counter()
    for shard in range(1, SALT + 1):
        keys = sorted(key for key in table if key[0] == f"{IMAGE}-{shard}")
        for item in layout.select_items(layout.Stored.parse(table[key]) for key in keys):
            if item.payload is not None:
                features.update(codec.iter_lines(codec.decompress(item.payload)))
            else:
                features.update(codec.classic_lines(item.classic or []).split(b"\n"))
    return features


def sizes_near_boundaries() -> st.SearchStrategy[list[int]]:
    """Feature sizes whose sum falls within a few bytes of k item budgets (k = 1..3), or anywhere."""

    @st.composite
    def near(draw: st.DrawFn) -> list[int]:
        count = draw(st.integers(1, 6))
        parts = draw(st.integers(1, 3))
        delta = draw(st.integers(-40, 40))
        total = max(count, parts * (TARGET - 120) + delta)
        base = min(total // count, TARGET - 250)
        return [max(1, base + draw(st.integers(-3, 3))) for _ in range(count)]

    anywhere = st.lists(st.integers(1, TARGET - 100), min_size=1, max_size=6)
    return st.one_of(near(), anywhere)


@dataclass
class Write:
    tile: int
    sizes: list[int]
    seed: int
    cut: list[bool] | None  # None: complete; else which items of the write reached the table (not all)
    step_ms: int
    sub_ms: int


writes_strategy = st.lists(
    st.builds(
        Write,
        tile=st.integers(0, len(TILES) - 1),
        sizes=sizes_near_boundaries(),
        seed=st.integers(0, 3),  # few seeds: identical retries are frequent
        cut=st.one_of(st.none(), st.lists(st.booleans(), min_size=1, max_size=8)),
        step_ms=st.sampled_from([1, 7, 10, 100, 1000, 10**6]),  # clocks whose digits end in zeros or not
        sub_ms=st.integers(0, 999),
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("fmt", [COMPACT, CLASSIC])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=writes_strategy, start=st.sampled_from([1_700_000_000.0, 999_999_999.9, 1_234_567_890.123]))
def test_the_aggregate_is_the_last_complete_write_of_every_tile(fmt: str, writes: list[Write], start: float) -> None:
    table: Table = {}
    last_complete: dict[int, list[bytes]] = {}
    clock_ms = int(start * 1000)
    for write in writes:
        clock_ms += write.step_ms
        now = (clock_ms + (write.sub_ms % 900 + 50) / 1000) / 1000  # within millisecond clock_ms
        features = [feature(write.seed * 100 + n, size) for n, size in enumerate(write.sizes)]
        try:
            items = plan(features, TILES[write.tile], now, fmt)
        except codec.FeatureTooLargeError:
            continue  # refused before anything is written: the tile keeps its last complete write
        if write.cut is None:
            store(table, items)
            last_complete[write.tile] = features
        else:
            mask = (write.cut * len(items))[: len(items)]
            if all(mask):
                mask[-1] = False  # cut off: at least one item never arrives
            store(table, (item for item, kept in zip(items, mask, strict=True) if kept))
    expected: Counter[bytes] = Counter()
    for features in last_complete.values():
        expected.update(features)
    assert aggregate(table) == expected


@pytest.mark.parametrize("fmt", [COMPACT, CLASSIC])
@settings(max_examples=100, deadline=None)
@given(
    sizes=sizes_near_boundaries(),
    attempts=st.lists(st.lists(st.booleans(), min_size=1, max_size=8), min_size=0, max_size=4),
    clocks=st.lists(st.floats(1e9, 9.9e9), min_size=5, max_size=5),
)
def test_without_a_source_tile_an_identical_retry_never_loses_a_feature(
    fmt: str, sizes: list[int], attempts: list[list[bool]], clocks: list[float]
) -> None:
    table: Table = {}
    features = [feature(n, size) for n, size in enumerate(sizes)]
    try:
        plan(features, None, clocks[-1], fmt)
    except codec.FeatureTooLargeError:
        return
    for attempt, clock in zip(attempts, clocks, strict=False):  # cut off attempts, each at its own moment
        items = plan(features, None, clock, fmt)
        store(table, (item for item, kept in zip(items, (attempt * len(items))[: len(items)], strict=True) if kept))
    store(table, plan(features, None, clocks[-1], fmt))  # the retry that completes
    assert aggregate(table) == Counter(features)  # every feature, and once: the retries wrote the same items


@pytest.mark.parametrize("fmt", [COMPACT, CLASSIC])
@settings(max_examples=100, deadline=None)
@given(sizes=sizes_near_boundaries(), clocks=st.lists(st.floats(1e9, 9.9e9), min_size=2, max_size=4))
def test_the_split_depends_on_the_features_alone(fmt: str, sizes: list[int], clocks: list[float]) -> None:
    features = [feature(n, size) for n, size in enumerate(sizes)]
    splits = set()
    try:
        plan(features, TILES[0], clocks[0], fmt)
    except codec.FeatureTooLargeError:
        return
    for clock in [*clocks, 1_700_000_000.0, 1_700_000_000.1, 1_700_000_000.123]:
        items = plan(features, TILES[0], clock, fmt)
        for item in items:
            assert codec.item_size(_native(item)) <= TARGET
        # everything but the write id's time part and the expiry is the same at every moment
        splits.add(
            tuple((item["range_key"]["S"].split(".", 1)[1], str(item.get("p", item.get("features")))) for item in items)
        )
    assert len(splits) == 1


def _native(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attribute values as native values (for feature_codec.item_size)."""
    native: dict[str, Any] = {}
    for name, value in item.items():
        ((kind, data),) = value.items()
        native[name] = int(data) if kind == "N" else [e["S"] for e in data] if kind == "L" else data
    return native


def test_the_previous_layout_with_two_splits_of_one_generation_keeps_the_complete_one() -> None:
    """The defect of issue 13 as it was stored: part 0 rewritten with m=1, a stale part 1 of m=2 left behind."""
    payload = codec.compress([feature(1, 50), feature(2, 50)])

    def old(part: int, items: int, written_at: int) -> dict[str, Any]:
        return {
            "hash_key": {"S": f"{IMAGE}-1"},
            "range_key": {"S": f"{TILES[0]}#abc#0:0:0:0#{part}"},
            "p": {"B": payload},
            "s": {"S": TILES[0]},
            "g": {"S": "abc"},
            "m": {"N": str(items)},
            "t": {"N": str(written_at)},
        }

    table: Table = {}
    store(table, [old(0, 1, 2000), old(1, 2, 1000)])
    assert aggregate(table) == Counter([feature(1, 50), feature(2, 50)])


def test_items_stay_under_the_target_at_the_real_size_even_when_nothing_compresses() -> None:
    features = [feature(n, 60_000) for n in range(12)]  # 720 KB of incompressible JSON
    for fmt in (COMPACT, CLASSIC):
        items = plan(features, TILES[0], 1_700_000_000.5, fmt, target=codec.ITEM_SIZE_TARGET)
        assert len(items) >= 2
        assert all(codec.item_size(_native(item)) <= codec.ITEM_SIZE_TARGET for item in items)


def test_a_call_is_one_item_when_it_fits() -> None:
    features = [
        codec.encode_feature({"type": "Feature", "id": n, "properties": {"image_id": IMAGE, "n": n}})
        for n in range(5000)
    ]
    assert len(plan(features, TILES[0], 1_700_000_000.0, COMPACT, target=codec.ITEM_SIZE_TARGET)) == 1
