"""Fetch, start and stop DynamoDB Local, the official AWS emulator, for tests, demos and benchmarks.

DynamoDB Local (a Java program) ships in the npm package ``amplify-dynamodb-simulator``, in its folder
``emulator/``: :func:`fetch` downloads that package with ``npm pack`` and keeps only the emulator.

Two ways to run it:

* :class:`DynamoDBLocal` owns a child process (in memory by default) and stops it on :meth:`DynamoDBLocal.stop` or
  when the ``with`` block is left; the pytest plugin uses it.
* :func:`start_detached`, :func:`status_detached` and :func:`stop_detached` run a server that outlives the caller,
  persistent in a data directory that also holds its state file and log; the ``model-runner-db local`` CLI uses them.

DynamoDB Local 1.25 has no option to choose the listening interface: it listens on every interface, and clients here
always reach it at ``http://127.0.0.1:PORT``.

Command line: ``python -m model_runner.testing.dynamodb_local fetch [--dest DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

__all__ = [
    "DEFAULT_SIMULATOR_VERSION",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "LocalServerInfo",
    "default_emulator_dir",
    "ensure_emulator",
    "extract_emulator",
    "fetch",
    "free_port",
    "main",
    "start_detached",
    "status_detached",
    "stop_detached",
]

#: The npm package that carries DynamoDB Local in its folder ``emulator/``.
NPM_PACKAGE = "amplify-dynamodb-simulator"
#: The pinned version of :data:`NPM_PACKAGE`; it carries DynamoDB Local 1.25.x.
DEFAULT_SIMULATOR_VERSION = "2.9.30"
#: The environment variable naming the emulator directory, read at call time.
EMULATOR_DIR_ENV = "DYNAMODB_LOCAL_DIR"
#: The host every client uses to reach the emulator.
HOST = "127.0.0.1"
JAR_NAME = "DynamoDBLocal.jar"
LIB_DIR_NAME = "DynamoDBLocal_lib"
#: The state file :func:`start_detached` writes into its data directory.
STATE_FILE_NAME = "dynamodb-local.json"
#: The log file of the java process, in the data directory (detached or persistent) or in a temporary directory.
LOG_FILE_NAME = "dynamodb-local.log"

_ARCHIVE_PREFIX = PurePosixPath("package/emulator")
_LOCK_FILE_NAME = ".dynamodb-local.lock"
_BIND_FAILURE_MARKERS = ("Address already in use", "BindException")
_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.1
_TAIL_LINES = 30

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


class DynamoDBLocalError(Exception):
    """DynamoDB Local could not be fetched, started, reached or stopped; the message says why."""


class _PortInUseError(DynamoDBLocalError):
    """The java process could not bind its port."""


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


def _progress(message: str) -> None:
    print(f"[dynamodb-local] {message}", file=sys.stderr, flush=True)


def default_emulator_dir() -> Path:
    """Return where the emulator lives: ``$DYNAMODB_LOCAL_DIR``, else ``~/.cache/model-runner-db/dynamodb-local``.

    :return: Path = the emulator directory (it may not exist yet)
    """
    configured = os.environ.get(EMULATOR_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "model-runner-db" / "dynamodb-local"


def _member_target(name: str) -> PurePosixPath | None:
    """Return a member's path relative to ``package/emulator/``, or None when it lies elsewhere or escapes."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return None
    parts = tuple(part for part in path.parts if part not in ("", "."))
    prefix = _ARCHIVE_PREFIX.parts
    if len(parts) <= len(prefix) or parts[: len(prefix)] != prefix:
        return None
    return PurePosixPath(*parts[len(prefix) :])


def extract_emulator(archive: Path, dest: Path) -> Path:
    """Extract ``package/emulator/*`` of an npm tarball into a new directory.

    Only regular files and directories under ``package/emulator/`` are written; other members, links, devices and
    paths that are absolute or contain ``..`` are skipped.

    :param archive: Path = the ``.tgz`` written by ``npm pack``
    :param dest: Path = the directory to create and fill; it must not exist
    :return: Path = dest
    :raises DynamoDBLocalError: when the archive cannot be read or holds no ``DynamoDBLocal.jar``
    """
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                relative = _member_target(member.name)
                if relative is None or not (member.isfile() or member.isdir()):
                    continue
                target = root.joinpath(*relative.parts)
                if not target.resolve().is_relative_to(root):
                    continue
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod((member.mode & 0o755) | 0o600)
    except (tarfile.TarError, OSError) as exc:
        raise DynamoDBLocalError(f"cannot extract the emulator from {archive}: {exc}") from exc
    if not (dest / JAR_NAME).is_file():
        raise DynamoDBLocalError(f"{archive} holds no {_ARCHIVE_PREFIX}/{JAR_NAME}")
    return dest


def fetch(dest: Path | None = None, version: str = DEFAULT_SIMULATOR_VERSION) -> Path:
    """Download DynamoDB Local with ``npm pack`` unless ``dest`` already holds it.

    The emulator is extracted into a temporary sibling of ``dest`` and renamed into place, so ``dest`` is either
    absent or complete, also when several processes fetch at once.

    :param dest: Path = where the emulator goes, :func:`default_emulator_dir` when None
    :param version: str = the version of the npm package ``amplify-dynamodb-simulator``
    :return: Path = the emulator directory, holding ``DynamoDBLocal.jar`` and ``DynamoDBLocal_lib/``
    :raises DynamoDBLocalError: when npm is missing, ``npm pack`` fails or the package holds no emulator
    """
    dest = (dest if dest is not None else default_emulator_dir()).expanduser().absolute()
    if (dest / JAR_NAME).is_file():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalError(
            f"npm is not on PATH: install Node.js and npm (e.g. `apt-get install npm`) to fetch DynamoDB Local, "
            f"or put {JAR_NAME} and {LIB_DIR_NAME}/ into {dest} yourself"
        )
    package = f"{NPM_PACKAGE}@{version}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-fetch-", dir=dest.parent) as work:
        work_dir = Path(work)
        pack_dir = work_dir / "pack"
        pack_dir.mkdir()
        _progress(f"downloading {package} with npm pack ...")
        started = time.monotonic()
        try:
            result = subprocess.run(
                [npm, "pack", package, "--silent"],
                cwd=pack_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DynamoDBLocalError(f"npm pack {package} failed: {exc}") from exc
        if result.returncode != 0:
            raise DynamoDBLocalError(
                f"npm pack {package} failed with exit code {result.returncode}: "
                f"{_last_lines(result.stderr or result.stdout)}"
            )
        archives = sorted(pack_dir.glob("*.tgz"))
        if len(archives) != 1:
            raise DynamoDBLocalError(f"npm pack {package} left {len(archives)} archives in {pack_dir}, expected 1")
        _progress(
            f"downloaded {archives[0].name} ({archives[0].stat().st_size / 1e6:.0f} MB) in "
            f"{time.monotonic() - started:.1f}s; extracting the emulator ..."
        )
        staging = extract_emulator(archives[0], work_dir / "emulator")
        if dest.exists() and not (dest / JAR_NAME).is_file():
            # an empty or partial directory left by hand: move it aside, it goes away with the temporary directory
            dest.rename(work_dir / "previous")
        try:
            staging.rename(dest)
        except OSError as exc:
            if (dest / JAR_NAME).is_file():  # another process fetched it meanwhile
                return dest
            raise DynamoDBLocalError(f"cannot move the emulator into {dest}: {exc}") from exc
    _progress(f"DynamoDB Local is in {dest}")
    return dest


def ensure_emulator(dest: Path | None = None) -> Path:
    """Return the emulator directory, fetching DynamoDB Local first when it is missing.

    :param dest: Path = the emulator directory, :func:`default_emulator_dir` when None
    :return: Path = the emulator directory, holding ``DynamoDBLocal.jar``
    :raises DynamoDBLocalError: when it is missing and cannot be fetched
    """
    dest = dest if dest is not None else default_emulator_dir()
    if (dest / JAR_NAME).is_file():
        return dest
    return fetch(dest)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now.

    :return: int = the port number
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _endpoint(port: int) -> str:
    return f"http://{HOST}:{port}"


def _last_lines(text: str, count: int = _TAIL_LINES) -> str:
    lines = text.strip().splitlines()[-count:]
    return "\n".join(lines) if lines else "(no output)"


def _read_log(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _resolve_java(java: str) -> str:
    resolved = shutil.which(java)
    if resolved is None:
        raise DynamoDBLocalError(
            f"java executable {java!r} not found: DynamoDB Local needs a Java 17+ runtime, "
            f"install it with `apt-get install openjdk-17-jre-headless` (or pass java=PATH)"
        )
    return resolved


def _check_emulator(emulator_dir: Path) -> Path:
    emulator_dir = emulator_dir.expanduser().absolute()
    if not (emulator_dir / JAR_NAME).is_file():
        raise DynamoDBLocalError(
            f"{JAR_NAME} not found in {emulator_dir}: fetch it with "
            f"`python -m model_runner.testing.dynamodb_local fetch --dest {emulator_dir}`"
        )
    return emulator_dir


def _java_command(java: str, emulator_dir: Path, port: int, db_path: Path | None, shared_db: bool) -> list[str]:
    command = [
        java,
        f"-Djava.library.path={emulator_dir / LIB_DIR_NAME}",
        "-jar",
        str(emulator_dir / JAR_NAME),
        "-port",
        str(port),
        "-disableTelemetry",
    ]
    command += ["-inMemory"] if db_path is None else ["-dbPath", str(db_path)]
    if shared_db:
        command.append("-sharedDb")
    return command


def _answers(endpoint_url: str, timeout: float = 1.0) -> bool:
    """Return whether an HTTP server answers a POST at the endpoint (any status counts), bypassing proxies."""
    request = urllib.request.Request(
        endpoint_url + "/",
        data=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.0"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):
        return False


def _listening_inodes(port: int) -> set[str] | None:
    """Return the socket inodes listening on a TCP port, None when /proc cannot tell."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes if found_table else None


def _owns_listener(pid: int, port: int) -> bool | None:
    """Return whether process ``pid`` holds the socket listening on ``port``, None when that cannot be told."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return None
    for name in names:
        with contextlib.suppress(OSError):
            link = os.readlink(fd_dir / name)
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def _wait_ready(
    port: int,
    pid: int,
    exit_code: Callable[[], int | None],
    log_path: Path,
    log_offset: int,
    timeout: float,
) -> None:
    """Wait until the java process ``pid`` answers on ``port``; its output is in ``log_path`` from ``log_offset``.

    :raises _PortInUseError: when the process reports that its port is taken
    :raises DynamoDBLocalError: when it exits or does not answer in time
    """
    endpoint_url = _endpoint(port)
    deadline = time.monotonic() + timeout
    while True:
        output = _read_log(log_path, log_offset)
        if any(marker in output for marker in _BIND_FAILURE_MARKERS):
            raise _PortInUseError(
                f"DynamoDB Local could not listen on port {port}, it is in use:\n{_last_lines(output, 8)}"
            )
        code = exit_code()
        if code is not None:
            raise DynamoDBLocalError(
                f"DynamoDB Local exited early with code {code}; last lines of {log_path}:\n{_last_lines(output)}"
            )
        # answering is not enough: another server may hold the port while ours fails to bind it
        if _answers(endpoint_url) and _owns_listener(pid, port) is not False:
            return
        if time.monotonic() >= deadline:
            raise DynamoDBLocalError(
                f"DynamoDB Local (pid {pid}) did not answer on {endpoint_url} within {timeout:g}s; "
                f"last lines of {log_path}:\n{_last_lines(_read_log(log_path, log_offset))}"
            )
        time.sleep(_POLL_INTERVAL)


def _stop_popen(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    process.wait()


class DynamoDBLocal:
    """A DynamoDB Local child process, in memory by default.

    Example::

        with DynamoDBLocal() as server:
            client = session.create_client("dynamodb", endpoint_url=server.endpoint_url, ...)

    The java output goes to ``dynamodb-local.log``: in ``db_path`` for a persistent store given there, else in a
    temporary directory removed by :meth:`stop`.
    """

    def __init__(
        self,
        emulator_dir: Path | None = None,
        port: int | None = None,
        in_memory: bool = True,
        db_path: Path | None = None,
        shared_db: bool = True,
        java: str = "java",
    ) -> None:
        """Configure a server; nothing starts before :meth:`start`.

        :param emulator_dir: Path = the directory holding ``DynamoDBLocal.jar``, :func:`default_emulator_dir` when None
        :param port: int = the port to listen on, a free one (chosen at each start) when None
        :param in_memory: bool = keep tables in memory only; when False without ``db_path``, the store is a
            temporary directory removed by :meth:`stop`
        :param db_path: Path = the directory of a persistent store (created if needed); giving it implies a
            persistent store whatever ``in_memory`` says
        :param shared_db: bool = one database for every credential and region (``-sharedDb``)
        :param java: str = the java executable, a name looked up on PATH or a path
        """
        self.emulator_dir = emulator_dir
        self.port = port
        self.in_memory = in_memory and db_path is None
        self.db_path = db_path
        self.shared_db = shared_db
        self.java = java
        self._process: subprocess.Popen[bytes] | None = None
        self._bound_port: int | None = None
        self._work_dir: Path | None = None
        self._log_path: Path | None = None
        self._log_file: IO[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def endpoint_url(self) -> str:
        """The endpoint of the running server, ``http://127.0.0.1:PORT``.

        :raises DynamoDBLocalError: when the server was not started
        """
        if self._bound_port is None:
            raise DynamoDBLocalError("DynamoDB Local is not started")
        return _endpoint(self._bound_port)

    @property
    def pid(self) -> int | None:
        """The pid of the java process, None when not started."""
        return self._process.pid if self._process is not None else None

    @property
    def bound_port(self) -> int | None:
        """The port the server listens on, None when not started."""
        return self._bound_port

    @property
    def log_path(self) -> Path | None:
        """The log file of the java process, None when not started."""
        return self._log_path

    def is_running(self) -> bool:
        """Return whether the java process was started and has not exited.

        :return: bool = True while the process lives
        """
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30) -> str:
        """Start DynamoDB Local and wait until it answers; do nothing when it already runs.

        :param timeout: float = seconds to wait for the server to answer
        :return: str = the endpoint URL, ``http://127.0.0.1:PORT``
        :raises DynamoDBLocalError: when java or the jar is missing, the port is taken, the process exits early or
            does not answer in time
        """
        if self.is_running():
            return self.endpoint_url
        self.stop()
        java = _resolve_java(self.java)
        emulator_dir = _check_emulator(self.emulator_dir if self.emulator_dir is not None else default_emulator_dir())
        attempts = _PORT_ATTEMPTS if self.port is None else 1
        for attempt in range(1, attempts + 1):
            port = self.port if self.port is not None else free_port()
            try:
                process, log_path, log_offset = self._launch(java, emulator_dir, port)
                _wait_ready(port, process.pid, process.poll, log_path, log_offset, timeout)
            except _PortInUseError:
                self.stop()
                if attempt == attempts:
                    raise
            except BaseException:
                self.stop()
                raise
            else:
                self._bound_port = port
                return self.endpoint_url
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, java: str, emulator_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], Path, int]:
        """Start the java process; return it, its log file and where this run's output starts in that file."""
        db_path: Path | None = None
        if self.db_path is not None:
            db_path = log_dir = self.db_path.expanduser().absolute()
            db_path.mkdir(parents=True, exist_ok=True)
        else:
            self._work_dir = log_dir = Path(tempfile.mkdtemp(prefix="dynamodb-local-"))
            if not self.in_memory:
                db_path = self._work_dir / "db"
                db_path.mkdir()
        log_path = self._log_path = log_dir / LOG_FILE_NAME
        log_file = self._log_file = open(log_path, "ab")  # noqa: SIM115 - closed by stop()
        log_offset = log_file.tell()
        command = _java_command(java, emulator_dir, port, db_path, self.shared_db)
        try:
            # a session of its own: a Ctrl-C in the terminal reaches the Python program only, which then gives back
            # what it holds in the tables before it stops this server itself (a weakref finalizer, or stop())
            process = subprocess.Popen(
                command,
                cwd=emulator_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise DynamoDBLocalError(f"cannot run {java}: {exc}") from exc
        self._process = process
        # never leave java behind when this object is dropped or the interpreter exits without stop()
        self._finalizer = weakref.finalize(self, _stop_popen, process, 5.0)
        return process, log_path, log_offset

    def stop(self, timeout: float = 10) -> None:
        """Stop the server: terminate, kill after ``timeout``, always reap; do nothing when it does not run.

        :param timeout: float = seconds to wait after terminating before killing
        """
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _stop_popen(process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._log_path = None
        self._bound_port = None

    def __enter__(self) -> DynamoDBLocal:
        """Start the server (see :meth:`start`).

        :return: DynamoDBLocal = self, running
        """
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server (see :meth:`stop`)."""
        self.stop()

    def __repr__(self) -> str:
        """Describe the server and its state."""
        state = f"running at {_endpoint(self._bound_port)}" if self._bound_port is not None else "stopped"
        return f"<DynamoDBLocal pid={self.pid} {state}>"


# --- detached servers ---


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
            except _PortInUseError:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: ``fetch [--dest DIR] [--version V]``.

    :param argv: Sequence[str] = the arguments, ``sys.argv[1:]`` when None
    :return: int = the exit code, 0 on success
    """
    parser = argparse.ArgumentParser(
        prog="python -m model_runner.testing.dynamodb_local", description="Manage the DynamoDB Local emulator."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download DynamoDB Local unless it is already there")
    fetch_parser.add_argument(
        "--dest", type=Path, default=None, help=f"emulator directory (default: ${EMULATOR_DIR_ENV} or ~/.cache/...)"
    )
    fetch_parser.add_argument(
        "--version", default=DEFAULT_SIMULATOR_VERSION, help=f"{NPM_PACKAGE} version (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        path = fetch(args.dest, args.version)
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
