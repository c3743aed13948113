"""Fixtures of the reliability suite: the fault-injecting proxy, the run's scale and seed, and the run's report.

Options (or environment variables):

* ``--reliability-scale N`` / ``RELIABILITY_SCALE``: multiply the sizes of the job runs (jobs, regions, tiles,
  workers, hypothesis examples). 1 by default, sized for CI; 10 for a long run.
* ``--reliability-seed N`` / ``RELIABILITY_SEED``: seed of the proxy's random draws (0 by default).

The options exist when pytest is pointed at ``tests/reliability`` (or a file in it); the environment variables work
in every run, ``make test`` included.

At the end of a session that ran reliability tests, the figures (operations, faults, retries, items checked,
discrepancies) are written to ``.cache/reliability/last-run.json`` (git-ignored); docs/reliability.md quotes them.
Under pytest-xdist (``make test`` runs ``-n auto``) each worker writes its part to ``.cache/reliability/parts/`` and
the controller merges the parts into that one file at the end, so the report covers every scenario of the run.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .proxy import FaultProxy

REPORT_PATH = Path(__file__).resolve().parents[2] / ".cache" / "reliability" / "last-run.json"
#: Where the xdist workers write their parts of the report.
PARTS_DIR = REPORT_PATH.parent / "parts"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability")
    group.addoption(
        "--reliability-scale",
        type=int,
        default=None,
        help="multiply the sizes of the reliability runs (default 1, or $RELIABILITY_SCALE)",
    )
    group.addoption(
        "--reliability-seed",
        type=int,
        default=None,
        help="seed of the fault proxy's random draws (default 0, or $RELIABILITY_SEED)",
    )


class RunReport:
    """Figures of one session of the reliability suite, one entry per scenario, written as JSON at the end."""

    def __init__(self, scale: int, seed: int) -> None:
        self.scale = scale
        self.seed = seed
        self.started = time.time()
        self.scenarios: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def record(self, name: str, **figures: Any) -> None:
        """Record (or replace) the figures of a scenario.

        :param name: str = the scenario, such as ``jobs[throttle]``
        :param figures: Any = JSON-ready figures
        """
        with self._lock:
            self.scenarios[name] = figures

    def write(self, path: Path = REPORT_PATH) -> None:
        """Write the report.

        :param path: Path = where
        """
        totals: dict[str, float] = {}
        for figures in self.scenarios.values():
            for key in ("operations", "faults", "retries", "items_checked", "discrepancies", "seconds", "cases"):
                value = figures.get(key)
                if isinstance(value, (int, float)):
                    totals[key] = totals.get(key, 0) + value
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "scale": self.scale,
            "seed": self.seed,
            "session_seconds": round(time.time() - self.started, 1),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "totals": totals,
            "scenarios": dict(sorted(self.scenarios.items())),
        }
        path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


_report: RunReport | None = None


def _int_option(config: pytest.Config, option: str, env: str, default: int) -> int:
    value = config.getoption(option, default=None)  # None too when pytest never loaded this conftest early
    if value is None:
        value = int(os.environ.get(env, "") or default)
    return int(value)


@pytest.fixture(scope="session")
def reliability_scale(pytestconfig: pytest.Config) -> int:
    """The run's scale: 1 in CI, larger for long runs.

    :return: int = the multiplier, at least 1
    """
    return max(1, _int_option(pytestconfig, "--reliability-scale", "RELIABILITY_SCALE", 1))


@pytest.fixture(scope="session")
def reliability_seed(pytestconfig: pytest.Config) -> int:
    """The seed of the proxy's draws.

    :return: int = the seed
    """
    return _int_option(pytestconfig, "--reliability-seed", "RELIABILITY_SEED", 0)


@pytest.fixture(scope="session")
def run_report(reliability_scale: int, reliability_seed: int) -> RunReport:
    """The session's report; scenarios record their figures in it.

    :return: RunReport = the report, written at the end of the session
    """
    global _report
    if _report is None:
        _report = RunReport(reliability_scale, reliability_seed)
    return _report


def _worker_id() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    if _worker_id() is None and PARTS_DIR.is_dir():  # the controller (or a plain run), before any worker starts
        for part in PARTS_DIR.glob("*.json"):
            part.unlink()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    worker = _worker_id()
    if worker is not None:
        if _report is not None and _report.scenarios:
            _report.write(PARTS_DIR / f"{worker}.json")
        return
    parts = sorted(PARTS_DIR.glob("*.json")) if PARTS_DIR.is_dir() else []
    if parts:  # an xdist run: merge what the workers wrote
        documents = [json.loads(part.read_text()) for part in parts]
        merged = RunReport(int(documents[0]["scale"]), int(documents[0]["seed"]))
        merged.started = time.time() - max(float(d.get("session_seconds", 0)) for d in documents)
        for document in documents:
            merged.scenarios.update(document["scenarios"])
        merged.write()
    elif _report is not None and _report.scenarios:
        _report.write()


@pytest.fixture
def fault_proxy(dynamodb_local_endpoint: str, reliability_seed: int) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's DynamoDB Local, injecting nothing until told to.

    :return: Iterator[FaultProxy] = the started proxy; stopped after the test
    """
    with FaultProxy(dynamodb_local_endpoint, seed=reliability_seed) as proxy:
        yield proxy
