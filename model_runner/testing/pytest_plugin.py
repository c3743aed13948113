"""pytest plugin (entry point ``model_runner_dynamodb``): fake AWS credentials and a DynamoDB Local per session.

It loads in every pytest run of an environment where this package is installed, so it imports nothing heavy at
module level: the harness is imported when a fixture first needs it.

Fixtures:

* ``aws_test_env`` (session): fake credentials and region, no profile and no endpoint override.
* ``dynamodb_local_endpoint`` (session): the URL of an in-memory DynamoDB Local started for the session (the
  emulator is fetched first when missing), or ``$MODEL_RUNNER_TEST_ENDPOINT`` when set, in which case nothing starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: When set, ``dynamodb_local_endpoint`` yields this URL and starts nothing.
TEST_ENDPOINT_ENV = "MODEL_RUNNER_TEST_ENDPOINT"

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_REMOVED_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


def _with_local_hosts(no_proxy: str | None) -> str:
    """Return a NO_PROXY value that also names the local hosts, so that no proxy sits before DynamoDB Local."""
    hosts = [host.strip() for host in (no_proxy or "").split(",") if host.strip()]
    return ",".join(hosts + [host for host in _LOCAL_HOSTS if host not in hosts])


@pytest.fixture(scope="session")
def aws_test_env() -> Iterator[None]:
    """Set fake AWS credentials and region for the session, and restore the environment afterwards.

    Sets ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` to ``testing`` and ``AWS_DEFAULT_REGION`` and
    ``AWS_REGION`` to ``us-east-1``; removes ``AWS_PROFILE``, ``AWS_DEFAULT_PROFILE``, ``AWS_SESSION_TOKEN``,
    ``AWS_SECURITY_TOKEN``, ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_DYNAMODB``; adds 127.0.0.1 and localhost to
    ``NO_PROXY``/``no_proxy``.

    :return: Iterator[None] = nothing, the environment is the effect
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        for name in _REMOVED_AWS_ENV:
            patch.delenv(name, raising=False)
        for name in ("NO_PROXY", "no_proxy"):
            patch.setenv(name, _with_local_hosts(os.environ.get(name)))
        yield


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(aws_test_env: None) -> Iterator[str]:
    """Yield the endpoint of a DynamoDB Local for the session, started in memory and stopped at session end.

    When ``$MODEL_RUNNER_TEST_ENDPOINT`` is set, yield it and start nothing. When the emulator cannot be fetched or
    started, the tests that need it fail with the reason; they are never skipped.

    :param aws_test_env: None = fake credentials and region for the session
    :return: Iterator[str] = the endpoint URL, e.g. ``http://127.0.0.1:PORT``
    """
    external = os.environ.get(TEST_ENDPOINT_ENV, "").strip()
    if external:
        yield external.rstrip("/")
        return

    from model_runner.testing.dynamodb_local import DynamoDBLocal, DynamoDBLocalError, ensure_emulator
    from model_runner.testing.local_server import BOUNDED_HEAP_OPTIONS

    server = DynamoDBLocal(in_memory=True, java_options=BOUNDED_HEAP_OPTIONS)
    failure: str | None = None
    try:
        server.emulator_dir = ensure_emulator()
        endpoint_url = server.start()
    except DynamoDBLocalError as exc:
        failure = str(exc)
    if failure is not None:  # failed outside the except block, so the report is the reason without a traceback
        pytest.fail(f"DynamoDB Local could not start: {failure}", pytrace=False)
    try:
        yield endpoint_url
    finally:
        server.stop()


# --- table fixtures (model_runner.database) ---
from model_runner.testing.fixtures import (  # noqa: E402  (fixtures need dynamodb_local_endpoint above)
    ddb_tables,
    endpoint_statistics_table,
    feature_table,
    job_table,
    region_request_table,
    requested_jobs_table,
    table_names,
)

__all__ = [
    "aws_test_env",
    "ddb_tables",
    "dynamodb_local_endpoint",
    "endpoint_statistics_table",
    "feature_table",
    "job_table",
    "region_request_table",
    "requested_jobs_table",
    "table_names",
]
