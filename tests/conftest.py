"""Suite-wide hooks: the page tests carry the ``browser`` marker, so ``make test`` can run them in a phase of their own.

``make test`` runs ``-m "not browser"`` in parallel (pytest-xdist), then ``-m browser`` in one process: a headless
Chromium (~0.5 GB) then never runs beside two xdist workers at their heaviest, which kept the whole run's peak memory
over 2 GB. The two selections are complements, so no test is lost between the phases.
"""

from __future__ import annotations

import pytest

#: Fixtures that start the headless browser: a test that uses one of them (directly or through another fixture) is a
#: page test.
BROWSER_FIXTURES = frozenset({"browser"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the headless browser with ``browser``.

    :param items: List[pytest.Item] = the collected tests
    """
    for item in items:
        if BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
