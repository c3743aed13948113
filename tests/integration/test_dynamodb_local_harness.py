"""The DynamoDB Local harness: attached and detached servers, fetch, and the pytest plugin's session fixtures."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from model_runner.testing.dynamodb_local import (
    JAR_NAME,
    STATE_FILE_NAME,
    DynamoDBLocal,
    DynamoDBLocalError,
    ensure_emulator,
    fetch,
    free_port,
    start_detached,
    status_detached,
    stop_detached,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator_dir() -> Path:
    """The emulator directory, fetched when missing."""
    try:
        return ensure_emulator()
    except DynamoDBLocalError as exc:
        pytest.fail(f"DynamoDB Local is not available: {exc}", pytrace=False)


@pytest.fixture
def data_dir(tmp_path: Path, emulator_dir: Path) -> Iterator[Path]:
    """A data directory for detached servers; whatever runs there is stopped afterwards."""
    path = tmp_path / "data"
    yield path
    stop_detached(path)


def _client(endpoint_url: str) -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _port_free(port: int) -> bool:
    """Return whether a server could listen on the port (SO_REUSEADDR, as servers do: TIME_WAIT may remain)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def _fake_executable(path: Path, script: str) -> Path:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_starts_on_a_free_port_and_answers_list_tables(emulator_dir: Path) -> None:
    with DynamoDBLocal(emulator_dir=emulator_dir) as server:
        assert server.is_running()
        assert server.bound_port is not None
        assert server.endpoint_url == f"http://127.0.0.1:{server.bound_port}"
        client = _client(server.endpoint_url)
        assert client.list_tables()["TableNames"] == []
        _create_table(client, "harness")
        assert client.list_tables()["TableNames"] == ["harness"]
        assert server.start() == server.endpoint_url  # already running: same server
    assert not server.is_running()


def test_the_servers_of_the_test_harness_run_with_a_bounded_heap(dynamodb_local_endpoint: str) -> None:
    """Several servers run at once under pytest-xdist: each is capped so that `make test` stays under 2 GB."""
    from model_runner.testing.pytest_plugin import TEST_ENDPOINT_ENV

    if os.environ.get(TEST_ENDPOINT_ENV, "").strip():
        pytest.skip(f"{TEST_ENDPOINT_ENV} names a server the harness did not start")
    port = int(dynamodb_local_endpoint.rsplit(":", 1)[1])
    commands = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):  # a process of another test may end meanwhile
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    ours = [command for command in commands if b"-port" in command and str(port).encode() in command]
    assert ours, f"no process serves port {port}"
    from model_runner.testing.local_server import BOUNDED_HEAP_OPTIONS

    assert any(option.startswith("-Xmx") for option in BOUNDED_HEAP_OPTIONS)
    assert [option for option in BOUNDED_HEAP_OPTIONS if option.encode() not in ours[0]] == []


def test_java_options_reach_the_jvm_and_none_are_added_by_default(emulator_dir: Path) -> None:
    with DynamoDBLocal(emulator_dir=emulator_dir, java_options=["-Xmx200m"]) as bounded:
        assert b"-Xmx200m" in Path(f"/proc/{bounded.pid}/cmdline").read_bytes().split(b"\0")
        assert _client(bounded.endpoint_url).list_tables()["TableNames"] == []
    with DynamoDBLocal(emulator_dir=emulator_dir) as default:
        assert not [o for o in Path(f"/proc/{default.pid}/cmdline").read_bytes().split(b"\0") if o.startswith(b"-X")]


def test_shared_db_lets_every_credential_and_region_see_the_same_tables(emulator_dir: Path) -> None:
    with DynamoDBLocal(emulator_dir=emulator_dir) as server:
        _create_table(_client(server.endpoint_url), "shared")
        other = botocore.session.get_session().create_client(
            "dynamodb",
            region_name="eu-west-1",
            endpoint_url=server.endpoint_url,
            aws_access_key_id="y",
            aws_secret_access_key="y",
        )
        assert other.list_tables()["TableNames"] == ["shared"]


def test_stop_ends_the_process_and_frees_the_port(emulator_dir: Path) -> None:
    server = DynamoDBLocal(emulator_dir=emulator_dir)
    server.start()
    pid, port, log_path = server.pid, server.bound_port, server.log_path
    assert pid is not None and port is not None and log_path is not None and log_path.is_file()
    server.stop()
    assert _pid_gone(pid)
    assert _port_free(port)
    assert not server.is_running() and server.pid is None
    assert not log_path.exists()  # the temporary log directory goes with the server
    server.stop()  # idempotent
    with pytest.raises(DynamoDBLocalError, match="not started"):
        _ = server.endpoint_url


def test_persistent_db_path_keeps_tables_and_log(emulator_dir: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    with DynamoDBLocal(emulator_dir=emulator_dir, db_path=db_path) as server:
        _create_table(_client(server.endpoint_url), "kept")
    with DynamoDBLocal(emulator_dir=emulator_dir, db_path=db_path) as server:
        assert _client(server.endpoint_url).list_tables()["TableNames"] == ["kept"]
    assert (db_path / "dynamodb-local.log").is_file()


def test_a_port_held_by_another_server_is_an_error(emulator_dir: Path) -> None:
    with DynamoDBLocal(emulator_dir=emulator_dir) as first:
        second = DynamoDBLocal(emulator_dir=emulator_dir, port=first.bound_port)
        with pytest.raises(DynamoDBLocalError, match=f"port {first.bound_port}"):
            second.start(timeout=30)
        assert not second.is_running()
        assert first.is_running()


def test_a_bad_java_path_is_named(emulator_dir: Path, tmp_path: Path) -> None:
    java = tmp_path / "no-such-java"
    with pytest.raises(DynamoDBLocalError, match="no-such-java") as caught:
        DynamoDBLocal(emulator_dir=emulator_dir, java=str(java)).start()
    assert "openjdk-17-jre-headless" in str(caught.value)


def test_a_missing_jar_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DynamoDBLocalError, match=JAR_NAME):
        DynamoDBLocal(emulator_dir=tmp_path).start()


def test_an_early_exit_reports_the_last_output(emulator_dir: Path, tmp_path: Path) -> None:
    java = _fake_executable(tmp_path / "java", "echo 'Error: something broke' >&2\nexit 3\n")
    server = DynamoDBLocal(emulator_dir=emulator_dir, java=str(java))
    with pytest.raises(DynamoDBLocalError, match=r"(?s)exited early with code 3.*something broke"):
        server.start()
    assert not server.is_running()


def test_a_silent_server_times_out(emulator_dir: Path, tmp_path: Path) -> None:
    java = _fake_executable(tmp_path / "java", "exec sleep 60\n")
    server = DynamoDBLocal(emulator_dir=emulator_dir, java=str(java))
    started = time.monotonic()
    with pytest.raises(DynamoDBLocalError, match="did not answer"):
        server.start(timeout=1)
    assert time.monotonic() - started < 15
    assert not server.is_running()


def test_detached_server_persists_tables_across_stop_and_start(emulator_dir: Path, data_dir: Path) -> None:
    assert status_detached(data_dir) is None
    assert stop_detached(data_dir) is False

    info = start_detached(data_dir, emulator_dir=emulator_dir)
    assert info.endpoint_url == f"http://127.0.0.1:{info.port}"
    assert info.data_dir == data_dir and not info.in_memory
    assert json.loads((data_dir / STATE_FILE_NAME).read_text())["pid"] == info.pid
    assert status_detached(data_dir) == info
    _create_table(_client(info.endpoint_url), "persisted")

    assert stop_detached(data_dir) is True
    assert _pid_gone(info.pid)
    assert status_detached(data_dir) is None
    assert not (data_dir / STATE_FILE_NAME).exists()
    assert stop_detached(data_dir) is False

    again = start_detached(data_dir, emulator_dir=emulator_dir)
    assert again.pid != info.pid
    assert _client(again.endpoint_url).list_tables()["TableNames"] == ["persisted"]


def test_start_detached_twice_returns_the_same_server(emulator_dir: Path, data_dir: Path) -> None:
    first = start_detached(data_dir, emulator_dir=emulator_dir)
    second = start_detached(data_dir, emulator_dir=emulator_dir)
    assert second == first
    assert status_detached(data_dir) == first


def test_detached_start_replaces_a_stale_state_file(emulator_dir: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    stale = {"pid": 2**22 + 12345, "port": 1, "endpoint_url": "http://127.0.0.1:1", "data_dir": str(data_dir)}
    (data_dir / STATE_FILE_NAME).write_text(json.dumps({**stale, "in_memory": False}))
    assert status_detached(data_dir) is None
    info = start_detached(data_dir, port=free_port(), in_memory=True, emulator_dir=emulator_dir)
    assert info.in_memory and info.pid != stale["pid"]
    assert status_detached(data_dir) == info


def _npm_tarball(path: Path) -> None:
    """Write an npm-like tarball: the emulator plus members that must not be extracted."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.linkname = link
            member.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(member, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("package/package.json", b"{}")
        add(f"package/emulator/{JAR_NAME}", b"jar")
        add("package/emulator/DynamoDBLocal_lib/libsqlite4java.so", b"so")
        add("package/emulator/../../escaped.txt")
        add("/absolute.txt")
        add("package/emulator/link", kind=tarfile.SYMTYPE, link="/etc/passwd")


def test_fetch_extracts_only_the_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "npm-args"
    _npm_tarball(tmp_path / "fake.tgz")
    _fake_executable(
        bin_dir / "npm", f'echo "$@" > {log}\ncp {tmp_path / "fake.tgz"} "$PWD/amplify-dynamodb-simulator-9.9.9.tgz"\n'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    dest = tmp_path / "cache" / "dynamodb-local"

    assert fetch(dest, version="9.9.9") == dest
    assert log.read_text().split()[:2] == ["pack", "amplify-dynamodb-simulator@9.9.9"]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        JAR_NAME,
        "DynamoDBLocal_lib",
        "DynamoDBLocal_lib/libsqlite4java.so",
    ]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["dynamodb-local"]  # no staging left
    assert not (tmp_path / "escaped.txt").exists()

    log.unlink()
    assert fetch(dest) == dest  # already there: npm is not run
    assert not log.exists()


def test_fetch_without_npm_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DynamoDBLocalError, match="npm"):
        fetch(tmp_path / "dest")


def test_default_emulator_dir_reads_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_runner.testing import default_emulator_dir

    monkeypatch.setenv("DYNAMODB_LOCAL_DIR", str(tmp_path))
    assert default_emulator_dir() == tmp_path
    monkeypatch.delenv("DYNAMODB_LOCAL_DIR")
    assert default_emulator_dir() == Path.home() / ".cache" / "model-runner-db" / "dynamodb-local"


def test_session_fixtures_give_fake_credentials_and_a_live_endpoint(dynamodb_local_endpoint: str) -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in os.environ and "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ
    assert dynamodb_local_endpoint.startswith("http://")
    client = botocore.session.get_session().create_client("dynamodb", endpoint_url=dynamodb_local_endpoint)
    assert isinstance(client.list_tables()["TableNames"], list)
