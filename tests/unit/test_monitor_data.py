"""The monitor's reads without DynamoDB: region states, stored pairs, feature bounds, and the feature overview
streaming features one by one (none kept), counting every one and sampling at most the cap."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from model_runner.monitor import data as monitor_data
from model_runner.monitor.data import MonitorData, _fast_bounds, pair, region_state, region_summary


class Feature(dict[str, Any]):
    """A feature dict that can be weakly referenced, to see whether the overview keeps it."""

    __hash__ = object.__hash__  # type: ignore[assignment]


class FakeFeatures:
    def __init__(self, count: int, alive: weakref.WeakSet[Feature], checks: list[int]) -> None:
        self.count = count
        self.alive = alive
        self.checks = checks

    def iter_features(self, image_id: str) -> Iterator[Feature]:
        for index in range(self.count):
            if index % 1000 == 0:
                self.checks.append(len(self.alive))
            x, y = (index * 37) % 4000, (index * 91) % 2000
            properties = {"bounds_imcoords": [x, y, x + 10, y + 10]} if index % 100 else {"no": "geometry"}
            feature = Feature(properties=properties)
            self.alive.add(feature)
            yield feature


def overview(count: int, box_cap: int) -> tuple[dict[str, Any], list[int]]:
    alive: weakref.WeakSet[Feature] = weakref.WeakSet()
    checks: list[int] = []
    reader = MonitorData.__new__(MonitorData)  # only the overview's parts: no table is needed
    reader.box_cap = box_cap
    reader.features = FakeFeatures(count, alive, checks)  # type: ignore[assignment]
    reader._tile_boxes = lambda image_id: []  # type: ignore[method-assign]
    job = {"width": 4096, "height": 2048, "tile_size": [512, 512], "tile_overlap": [32, 32]}
    return reader._overview("image", job), checks


def test_the_overview_streams_counts_every_feature_and_samples_the_cap() -> None:
    result, alive_counts = overview(20_000, box_cap=500)

    assert result["count"] == 20_000 and len(result["boxes"]) == 500 and result["sampled"] is True
    assert result["without_image_bounds"] == 200  # counted, not drawn
    assert sum(result["density"]["counts"]) == 19_800
    assert (result["density"]["cols"], result["density"]["rows"]) == (9, 5)  # 4096 / 480, 2048 / 480, rounded up
    assert max(alive_counts) <= 2, "features are kept after they are counted"
    # a uniform sample: boxes from the whole stream, not only its first 500 features
    assert max(box[0] for box in result["boxes"]) > 3500


def test_a_job_under_the_cap_draws_every_box() -> None:
    result, _ = overview(300, box_cap=500)

    assert result["count"] == 300 and len(result["boxes"]) == 297 and result["sampled"] is False


def test_a_huge_image_has_at_most_256_density_cells_a_side(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = MonitorData.__new__(MonitorData)
    reader.box_cap = 0
    reader.features = FakeFeatures(10, weakref.WeakSet(), [])  # type: ignore[assignment]
    reader._tile_boxes = lambda image_id: []  # type: ignore[method-assign]
    job = {"width": 1_000_000, "height": 500_000, "tile_size": [512, 512], "tile_overlap": [0, 0]}

    density = reader._overview("image", job)["density"]

    assert density["cols"] <= monitor_data.MAX_DENSITY_CELLS and density["rows"] <= monitor_data.MAX_DENSITY_CELLS
    assert density["cell"][0] % 512 == 0 and sum(density["counts"]) == 9


@pytest.mark.parametrize(
    ("row", "state"),
    [
        ({"region_status": "STARTED", "region_retry_count": 0}, "started"),
        ({"region_status": "STARTED", "region_retry_count": 2}, "retried"),
        ({"region_status": "SUCCESS", "region_retry_count": 0}, "succeeded"),
        ({"region_status": "SUCCESS", "region_retry_count": 1}, "retried"),
        ({"region_status": "PARTIAL", "region_retry_count": 1}, "failed"),
        ({"region_status": "FAILED"}, "failed"),
        ({}, "started"),
    ],
)
def test_region_states(row: dict[str, Any], state: str) -> None:
    assert region_state(row) == state


def test_a_tile_that_failed_then_succeeded_counts_as_succeeded() -> None:
    tile = [[0, 0], [512, 512]]
    other = [[0, 480], [512, 512]]
    row = {
        "region_id": "r",
        "succeeded_tiles": [tile],
        "failed_tiles": [tile, other],
        "region_bounds": [[0, 0], [9, 9]],
    }

    summary = region_summary(row, tiles=True)

    assert (summary["tiles_succeeded"], summary["tiles_failed"]) == (1, 1)
    assert sorted((t["box"], t["state"]) for t in summary["tiles"]) == [
        ([0, 0, 512, 512], "succeeded"),
        ([480, 0, 512, 512], "failed"),
    ]


def test_pairs_and_bounds() -> None:
    assert pair("(512, 256)") == [512, 256] and pair([1, 2]) == [1, 2] and pair("x") is None and pair(None) is None
    ring = [[1, 2], [5, 2], [5, 9], [1, 9], [1, 2]]
    assert _fast_bounds({"properties": {"imageGeometry": {"type": "Polygon", "coordinates": [ring]}}}) == (
        1.0,
        2.0,
        5.0,
        9.0,
    )
    assert _fast_bounds({"properties": {"bounds_imcoords": [1, 2, 3, 4]}}) == (1.0, 2.0, 3.0, 4.0)
    assert _fast_bounds({"properties": {"geom_imcoords": [[0, 0], [4, 0], [4, 3]]}}) == (0.0, 0.0, 4.0, 3.0)
    assert _fast_bounds({"properties": {}}) is None and _fast_bounds({}) is None


def test_a_running_jobs_overview_is_not_read_back_to_back() -> None:
    from model_runner.monitor.data import _Cached

    quick = _Cached(at=100.0, ended=False, value={}, took=0.5)
    slow = _Cached(at=100.0, ended=False, value={}, took=40.0)
    final = _Cached(at=100.0, ended=True, value={}, took=40.0)

    assert quick.fresh(ended=False, now=109.0) and not quick.fresh(ended=False, now=111.0)
    assert slow.fresh(ended=False, now=450.0) and not slow.fresh(ended=False, now=501.0)
    assert not slow.fresh(ended=True, now=101.0)  # the job ended since: read the final features
    assert final.fresh(ended=True, now=10_000.0)


def test_every_page_asset_is_shipped_in_the_package() -> None:
    import configparser
    import fnmatch
    from pathlib import Path

    root = Path(__file__).parents[2]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["model_runner.monitor.static"].split(",")]
    assets = [
        p.name for p in (root / "model_runner" / "monitor" / "static").iterdir() if p.is_file() and p.suffix != ".py"
    ]

    assert assets and all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in assets)
    # and the server names only files that exist
    from model_runner.monitor.server import STATIC_FILES

    assert set(STATIC_FILES) <= set(assets) and {"jobs.html", "job.html", "message.html"} <= set(assets)
