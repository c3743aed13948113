"""Running DynamoDB Local in the background, for ``model-runner-db local``: a server that outlives the caller,
persistent in a data directory that also holds its state file and log, found again from any shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .emulator import JAR_NAME, DynamoDBLocalError, _last_lines, default_emulator_dir
from .local_server import (
    _POLL_INTERVAL,
    _PORT_ATTEMPTS,
    LOG_FILE_NAME,
    PortInUseError,
    _answers,
    _check_emulator,
    _endpoint,
    _java_command,
    _resolve_java,
    _wait_ready,
    free_port,
)

#: The state file :func:`start_detached` writes into its data directory.
STATE_FILE_NAME = "dynamodb-local.json"
_LOCK_FILE_NAME = ".dynamodb-local.lock"

# Runs in a short-lived python: starts java in its own session, prints its pid and exits, so java is re-parented and
# is never a child (nor a zombie) of the caller.
_LAUNCHER = """\
import json, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(spec["cmd"], cwd=spec["cwd"], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid)
"""


@dataclass(frozen=True)
class LocalServerInfo:
    """A detached DynamoDB Local server, as recorded in the state file of its data directory."""

    pid: int
    port: int
    endpoint_url: str
    data_dir: Path
    in_memory: bool

    def to_json(self) -> dict[str, Any]:
        """Return the state file form.

        :return: dict[str, Any] = JSON-serialisable fields
        """
        return {
            "pid": self.pid,
            "port": self.port,
            "endpoint_url": self.endpoint_url,
            "data_dir": str(self.data_dir),
            "in_memory": self.in_memory,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalServerInfo:
        """Read the state file form.

        :param data: dict[str, Any] = what :meth:`to_json` returned
        :return: LocalServerInfo = the server it describes
        :raises KeyError, TypeError, ValueError: when a field is missing or malformed
        """
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            endpoint_url=str(data["endpoint_url"]),
            data_dir=Path(str(data["data_dir"])),
            in_memory=bool(data["in_memory"]),
        )


def _pid_alive(pid: int) -> bool:
    """Return whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state not in (["Z"], ["X"])


def _is_dynamodb_local(pid: int) -> bool:
    """Return whether ``pid`` runs DynamoDB Local; True when /proc cannot tell."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and _pid_alive(pid)
    except OSError:
        return True
    return JAR_NAME.encode() in command


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _terminate_pid(pid: int, timeout: float) -> None:
    """Send SIGTERM, then SIGKILL after ``timeout``, and wait until the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not _pid_alive(pid):
                return
            time.sleep(_POLL_INTERVAL)
    if _pid_alive(pid):
        raise DynamoDBLocalError(f"DynamoDB Local (pid {pid}) did not exit after SIGKILL")


def _state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE_NAME


def _read_state(data_dir: Path) -> LocalServerInfo | None:
    try:
        return LocalServerInfo.from_json(json.loads(_state_path(data_dir).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(info: LocalServerInfo) -> None:
    path = _state_path(info.data_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(info.to_json(), indent=2) + "\n")
    os.replace(temporary, path)


def _remove_state(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _state_path(data_dir).unlink()


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data directory (POSIX ``flock``; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(data_dir / _LOCK_FILE_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _server_alive(info: LocalServerInfo) -> bool:
    return _pid_alive(info.pid) and _is_dynamodb_local(info.pid)


def status_detached(data_dir: Path) -> LocalServerInfo | None:
    """Return the detached server of a data directory when it runs and answers.

    :param data_dir: Path = the data directory given to :func:`start_detached`
    :return: LocalServerInfo | None = the server, None when none runs (a stale state file is left alone)
    """
    info = _read_state(data_dir.expanduser().absolute())
    if info is None or not _server_alive(info) or not _answers(info.endpoint_url):
        return None
    return info


def start_detached(
    data_dir: Path,
    port: int | None = None,
    in_memory: bool = False,
    *,
    emulator_dir: Path | None = None,
    java: str = "java",
    shared_db: bool = True,
    timeout: float = 30,
) -> LocalServerInfo:
    """Start DynamoDB Local in its own session, so that it outlives the caller, or return the one already running.

    The store is persistent in ``data_dir`` unless ``in_memory``; ``data_dir`` also holds the state file
    ``dynamodb-local.json`` and the log ``dynamodb-local.log``. When the state file names a server that runs and
    answers, that server is returned as it is, whatever ``port`` and ``in_memory`` say.

    :param data_dir: Path = the data directory, created if needed
    :param port: int = the port to listen on, a free one when None
    :param in_memory: bool = keep tables in memory only (lost at stop)
    :param emulator_dir: Path = the directory holding ``DynamoDBLocal.jar``, :func:`default_emulator_dir` when None
    :param java: str = the java executable, a name looked up on PATH or a path
    :param shared_db: bool = one database for every credential and region (``-sharedDb``)
    :param timeout: float = seconds to wait for the server to answer
    :return: LocalServerInfo = the running server
    :raises DynamoDBLocalError: when java or the jar is missing, the port is taken, the process exits early or does
        not answer in time
    """
    data_dir = data_dir.expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        running = status_detached(data_dir)
        if running is not None:
            return running
        stale = _read_state(data_dir)
        if stale is not None and _server_alive(stale):
            if _answers(stale.endpoint_url, timeout=5):  # only slow to answer
                return stale
            _terminate_pid(stale.pid, 10)  # alive but not answering: hung, and it holds the store
        _remove_state(data_dir)
        java_path = _resolve_java(java)
        emulator = _check_emulator(emulator_dir if emulator_dir is not None else default_emulator_dir())
        log_path = data_dir / LOG_FILE_NAME
        attempts = _PORT_ATTEMPTS if port is None else 1
        for attempt in range(1, attempts + 1):
            chosen = port if port is not None else free_port()
            command = _java_command(java_path, emulator, chosen, None if in_memory else data_dir, shared_db)
            with open(log_path, "ab") as log:
                log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log_start = log_path.stat().st_size
            pid = _launch_detached(command, emulator, log_path)

            def exit_code(pid: int = pid) -> int | None:
                return None if _pid_alive(pid) else -1

            try:
                _wait_ready(chosen, pid, exit_code, log_path, log_start, timeout)
            except PortInUseError:
                _terminate_pid(pid, 5)
                if attempt == attempts:
                    raise
            except BaseException:
                with contextlib.suppress(DynamoDBLocalError):
                    _terminate_pid(pid, 5)
                raise
            else:
                info = LocalServerInfo(pid, chosen, _endpoint(chosen), data_dir, in_memory)
                _write_state(info)
                return info
    raise AssertionError("unreachable")  # pragma: no cover


def _launch_detached(command: list[str], cwd: Path, log_path: Path) -> int:
    spec = json.dumps({"cmd": command, "cwd": str(cwd), "log": str(log_path)})
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-c", _LAUNCHER, spec],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DynamoDBLocalError(f"cannot launch DynamoDB Local: {exc}") from exc
    try:
        return int(result.stdout.strip())
    except ValueError:
        raise DynamoDBLocalError(
            f"cannot launch DynamoDB Local (exit code {result.returncode}): {_last_lines(result.stderr)}"
        ) from None


def stop_detached(data_dir: Path, timeout: float = 10) -> bool:
    """Stop the detached server of a data directory and remove its state file.

    :param data_dir: Path = the data directory given to :func:`start_detached`
    :param timeout: float = seconds to wait after SIGTERM before SIGKILL
    :return: bool = True when a server was running and is now stopped, False when none ran
    :raises DynamoDBLocalError: when the process survives SIGKILL
    """
    data_dir = data_dir.expanduser().absolute()
    if not data_dir.is_dir():
        return False
    with _locked(data_dir):
        info = _read_state(data_dir)
        if info is None:
            return False
        was_running = _server_alive(info)
        if was_running:
            _terminate_pid(info.pid, timeout)
        _remove_state(data_dir)
        return was_running
