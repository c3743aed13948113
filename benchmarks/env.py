"""Where the benchmark runs: DynamoDB Local, fake credentials, tables, and a description of the machine."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any

#: Credentials and region DynamoDB Local accepts; never real ones.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

#: Variables that would send requests elsewhere or sign them with real credentials.
REMOVED_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

#: Packages whose versions the results name.
PACKAGES = ("model-runner-database", "pynamodb", "botocore", "orjson", "zstandard", "geojson", "matplotlib", "psutil")

REGION = "us-east-1"


def use_fake_credentials() -> None:
    """Point botocore at fake credentials and the us-east-1 region, for DynamoDB Local (called at run time).

    :return: None
    """
    for name in REMOVED_AWS_ENV:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENV)
    local = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        os.environ[name] = f"{current},{local}" if current else local


@contextmanager
def dynamodb_endpoint(endpoint_url: str | None) -> Iterator[str]:
    """Yield the endpoint to benchmark: ``endpoint_url`` when given, else an in-memory DynamoDB Local started now.

    :param endpoint_url: Optional[str] = an endpoint already running
    :return: Iterator[str] = the endpoint URL; a server started here is stopped on exit
    """
    if endpoint_url:
        yield endpoint_url.rstrip("/")
        return
    from model_runner.testing.dynamodb_local import DynamoDBLocal, ensure_emulator

    server = DynamoDBLocal(in_memory=True)
    server.emulator_dir = ensure_emulator()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def create_feature_table(name: str, endpoint_url: str) -> None:
    """Create a table with the feature table's schema (hash_key, range_key) and wait until it is active.

    :param name: str = the table name
    :param endpoint_url: str = the DynamoDB endpoint
    :return: None
    """
    from model_runner.database import FeatureTable

    repository = FeatureTable(name, host=endpoint_url, region=REGION)
    repository.model.create_table(wait=True, billing_mode="PAY_PER_REQUEST", ignore_update_ttl_errors=True)


def delete_table(name: str, client: Any) -> None:
    """Delete a table, ignoring one that is already gone.

    :param name: str = the table name
    :param client: Any = a botocore DynamoDB client
    :return: None
    """
    with suppress(client.exceptions.ResourceNotFoundException):
        client.delete_table(TableName=name)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _dynamodb_local(external: bool) -> dict[str, Any]:
    if external:
        return {"started_here": False}
    from model_runner.testing.dynamodb_local import DEFAULT_SIMULATOR_VERSION, JAR_NAME, default_emulator_dir

    jar = default_emulator_dir() / JAR_NAME
    digest = None
    if jar.is_file():
        digest = hashlib.sha256(jar.read_bytes()).hexdigest()[:16]
    return {
        "started_here": True,
        "mode": "in-memory",
        "package": f"amplify-dynamodb-simulator {DEFAULT_SIMULATOR_VERSION}",
        "jar_sha256": digest,
    }


def machine_info(external_endpoint: bool) -> dict[str, Any]:
    """Describe the machine and software the numbers come from.

    :param external_endpoint: bool = the endpoint was given (not started here)
    :return: Dict[str, Any] = platform, CPU, memory, load, versions
    """
    import psutil

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["java"] = _java_version()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python_executable": sys.executable,
        "git_commit": _git_commit(),
        "dynamodb_local": _dynamodb_local(external_endpoint),
        "versions": versions,
    }
