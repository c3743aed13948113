"""Running DynamoDB Local as a child process (:class:`DynamoDBLocal`), and what every way of running it shares: a free
port, the java command line, waiting until it answers, telling a busy port apart.

DynamoDB Local 1.25 has no option to choose the listening interface: it listens on every interface, and clients here
always reach it at ``http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .emulator import JAR_NAME, LIB_DIR_NAME, DynamoDBLocalError, _last_lines, default_emulator_dir

#: The host every client uses to reach the emulator.
HOST = "127.0.0.1"
#: The log file of the java process, in the data directory (detached or persistent) or in a temporary directory.
LOG_FILE_NAME = "dynamodb-local.log"

_BIND_FAILURE_MARKERS = ("Address already in use", "BindException")
_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.1


class PortInUseError(DynamoDBLocalError):
    """The port DynamoDB Local was to listen on is taken by another program.

    :param port: int = the port
    """

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use by another program")
        self.port = port


def port_in_use(port: int, checks: int = 3, interval: float = 0.3) -> bool:
    """Tell whether a program listens on a TCP port of this machine: connections to 127.0.0.1 are accepted each time.

    Sockets of a server that just stopped (TIME_WAIT, FIN_WAIT) do not count, and neither does a connection accepted
    once and then no more (a server on its way out, or a TCP self-connect to a port of the ephemeral range).

    :param port: int = the port
    :param checks: int = connection attempts, all of which must be accepted
    :param interval: float = seconds between attempts
    :return: bool = True when something keeps accepting connections there
    """
    for attempt in range(checks):
        if attempt:
            time.sleep(interval)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((HOST, port)) != 0:
                return False
    return True


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


def _read_log(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


#: JVM options of the servers the test harness starts: tables live in SQLite's native memory, so the Java heap only
#: holds requests in flight; a bounded heap and the serial collector keep each server near 0.25 GB instead of letting
#: the JVM grow toward a quarter of the machine (several servers run at once under pytest-xdist).
BOUNDED_HEAP_OPTIONS: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC")


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


def _java_command(
    java: str,
    emulator_dir: Path,
    port: int,
    db_path: Path | None,
    shared_db: bool,
    java_options: Sequence[str] = (),
) -> list[str]:
    command = [
        java,
        *java_options,
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

    :raises PortInUseError: when the process reports that its port is taken
    :raises DynamoDBLocalError: when it exits or does not answer in time
    """
    endpoint_url = _endpoint(port)
    deadline = time.monotonic() + timeout
    while True:
        output = _read_log(log_path, log_offset)
        if any(marker in output for marker in _BIND_FAILURE_MARKERS):
            raise PortInUseError(port)
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
        java_options: Sequence[str] = (),
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
        :param java_options: Sequence[str] = options for the JVM, before ``-jar`` (for example
            :data:`BOUNDED_HEAP_OPTIONS`); none by default, so the JVM sizes its heap from the machine's memory
        """
        self.emulator_dir = emulator_dir
        self.port = port
        self.in_memory = in_memory and db_path is None
        self.db_path = db_path
        self.shared_db = shared_db
        self.java = java
        self.java_options = tuple(java_options)
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
            except PortInUseError:
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
        command = _java_command(java, emulator_dir, port, db_path, self.shared_db, self.java_options)
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
