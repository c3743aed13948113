"""The monitor's HTTP server: the standard library's ThreadingHTTPServer, read-only routes, pages and a JSON API.

Routes (GET and HEAD only; every other method answers 405):

=====================================================  ================================================================
``/``                                                  the jobs page
``/jobs/{image_id}``                                   the job page (404 page for an unknown image id)
``/static/{file}``                                     the page's script and style, shipped in the package
``/api``                                               this list, as JSON
``/api/jobs?limit=N``                                  recent jobs, newest first, with the scan's cost
``/api/jobs/{image_id}``                               one job
``/api/jobs/{image_id}/regions``                       its regions (state, tile counts, retries, duration, bounds)
``/api/jobs/{image_id}/regions/{region_id}``           one region with its tiles
``/api/jobs/{image_id}/features/overview``             feature density per tile cell, a capped sample of boxes, tiles
``/api/jobs/{image_id}/features.geojson``              the features as one GeoJSON FeatureCollection (``features -o``)
=====================================================  ================================================================

Path segments are percent-encoded (an image id holding ``/`` is one segment). Errors are JSON ``{"error": ...}`` on
the API and a short page elsewhere: 404 for an unknown id or a missing table, 503 when DynamoDB cannot be read, 500
(no traceback) for anything else. The server keeps serving after any of them.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .data import MonitorData, NotFound, Unavailable

#: Static files served from the package (nothing is fetched from the internet).
STATIC_FILES = {
    "monitor.js": "text/javascript; charset=utf-8",
    "monitor.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Only our own script and style may run or load on the pages: a value that escaped escaping still cannot run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
API_ROUTES = {
    "/api/jobs?limit=N": "recent jobs, newest first (bounded scan, cached 5 s), with the scan's read units",
    "/api/jobs/{image_id}": "one job: state, progress, times, size, tiling",
    "/api/jobs/{image_id}/regions": "the job's regions: state, tile counts, retries, duration, bounds, message",
    "/api/jobs/{image_id}/regions/{region_id}": "one region with its tiles",
    "/api/jobs/{image_id}/features/overview": "feature density per tile cell, a capped sample of boxes, tiles",
    "/api/jobs/{image_id}/features.geojson": "the job's features as a GeoJSON FeatureCollection",
}


def _static(name: str) -> bytes:
    return resources.files("model_runner.monitor").joinpath("static").joinpath(name).read_bytes()


def _template(name: str) -> str:
    return _static(name).decode("utf-8")


def _filename(image_id: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._") or "features")[:100] + ".geojson"


class MonitorServer(ThreadingHTTPServer):
    """A threading HTTP server that answers with one :class:`MonitorData`.

    :param address: Tuple[str, int] = host and port to listen on (port 0: any free port)
    :param data: MonitorData = the reads
    :param refresh_seconds: float = how often the pages refresh while a job runs
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], data: MonitorData, refresh_seconds: float = 3.0) -> None:
        host = address[0]
        if ":" in host:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, MonitorHandler)
        self.data = data
        self.refresh_seconds = refresh_seconds
        self.log_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


class MonitorHandler(BaseHTTPRequestHandler):
    """Answers one request of the monitor (read-only)."""

    server: MonitorServer
    server_version = "model-runner-monitor"

    # -- plumbing ----------------------------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Log errors only (one line on stderr); successful requests are not logged.

        :param format: str = the message format
        :param args: Any = its values
        """

    def _log_failure(self, text: str) -> None:
        with self.server.log_lock:
            print(f"model-runner-db serve: {text}", file=sys.stderr, flush=True)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json; charset=utf-8")

    def _page(self, status: int, title: str, message: str) -> None:
        body = (
            _template("message.html")
            .replace("{{title}}", html.escape(title))
            .replace("{{message}}", html.escape(message))
            .replace("{{status}}", str(int(status)))
        )
        self._send(status, body.encode("utf-8"), "text/html; charset=utf-8")

    def _not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        body = json.dumps({"error": "the monitor is read-only: GET and HEAD only"}).encode("utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def do_HEAD(self) -> None:
        """Answer a HEAD request like a GET, without the body."""
        self.do_GET()

    def do_GET(self) -> None:
        """Route a GET request; every failure becomes a clear answer, never a traceback."""
        parts = urlsplit(self.path)
        segments = [unquote(part) for part in parts.path.split("/")[1:]]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]
        api = bool(segments) and segments[0] == "api"
        try:
            self._route(segments, parse_qs(parts.query))
        except NotFound as err:
            self._fail(HTTPStatus.NOT_FOUND, "Not found", str(err), api)
        except Unavailable as err:
            self._log_failure(str(err))
            self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "DynamoDB unavailable", str(err), api)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # a bug: say so without a traceback, keep serving
            self._log_failure(f"{self.command} {parts.path}: {type(err).__name__}: {err}")
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error", f"{type(err).__name__}: {err}", api)

    def _fail(self, status: int, title: str, message: str, api: bool) -> None:
        try:
            if api:
                self._json(status, {"error": message, "status": int(status)})
            else:
                self._page(status, title, message)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- routes ------------------------------------------------------------------------------------------------------

    def _route(self, segments: list[str], query: dict[str, list[str]]) -> None:
        data = self.server.data
        match segments:
            case [] | [""]:
                self._send(HTTPStatus.OK, _static("jobs.html"), "text/html; charset=utf-8")
            case ["favicon.ico"]:
                self._send(HTTPStatus.OK, _static("favicon.svg"), STATIC_FILES["favicon.svg"])
            case ["static", name] if name in STATIC_FILES:
                self._send(HTTPStatus.OK, _static(name), STATIC_FILES[name])
            case ["jobs", image_id] if image_id:
                self._job_page(image_id)
            case ["api"]:
                self._json(HTTPStatus.OK, {"routes": API_ROUTES})
            case ["api", "jobs"]:
                self._json(HTTPStatus.OK, data.list_jobs(_limit(query)))
            case ["api", "jobs", image_id] if image_id:
                self._json(HTTPStatus.OK, data.job(image_id))
            case ["api", "jobs", image_id, "regions"] if image_id:
                self._json(HTTPStatus.OK, {"regions": data.region_list(image_id)})
            case ["api", "jobs", image_id, "regions", region_id] if image_id and region_id:
                self._json(HTTPStatus.OK, data.region(image_id, region_id))
            case ["api", "jobs", image_id, "features", "overview"] if image_id:
                self._json(HTTPStatus.OK, data.feature_overview(image_id))
            case ["api", "jobs", image_id, "features.geojson"] if image_id:
                self._download(image_id)
            case _:
                raise NotFound(f"no page at {urlsplit(self.path).path}")

    def _job_page(self, image_id: str) -> None:
        status, banner = HTTPStatus.OK, ""
        try:
            self.server.data.job_item(image_id)
        except Unavailable as err:  # the page still loads and keeps trying
            self._log_failure(str(err))
            status, banner = HTTPStatus.SERVICE_UNAVAILABLE, str(err)
        body = (
            _template("job.html")
            .replace("{{image_id}}", html.escape(image_id, quote=True))
            .replace("{{banner}}", html.escape(banner))
            .replace("{{banner_hidden}}", "" if banner else "hidden")
            .replace("{{refresh_ms}}", str(int(self.server.refresh_seconds * 1000)))
        )
        self._send(status, body.encode("utf-8"), "text/html; charset=utf-8")

    def _download(self, image_id: str) -> None:
        data = self.server.data
        data.job_item(image_id)  # 404 before any byte is sent
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Disposition", f'attachment; filename="{_filename(image_id)}"')
        self.send_header("Connection", "close")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        writer: Callable[[bytes], Any] = self.wfile.write

        class _Binary:
            mode = "wb"

            def write(self, chunk: bytes) -> Any:
                return writer(chunk)

        try:
            data.features.write_feature_collection(image_id, _Binary())
        except Exception as err:  # headers are gone: the client sees a truncated file (invalid JSON), we log it
            self._log_failure(f"download of {image_id!r} stopped: {err}")


def _limit(query: dict[str, list[str]]) -> int:
    try:
        return max(1, min(1000, int(query.get("limit", ["50"])[0])))
    except ValueError:
        return 50


def make_server(
    data: MonitorData, host: str = "127.0.0.1", port: int = 8765, refresh_seconds: float = 3.0
) -> MonitorServer:
    """Build the monitor's server (not yet serving: call ``serve_forever``).

    :param data: MonitorData = the reads
    :param host: str = address to listen on (loopback by default)
    :param port: int = port (0: any free port)
    :param refresh_seconds: float = how often the job page refreshes while the job runs
    :return: MonitorServer = the server
    :raises OSError: when the address cannot be bound
    """
    return MonitorServer((host, port), data, refresh_seconds)


@contextlib.contextmanager
def serving(
    data: MonitorData, host: str = "127.0.0.1", port: int = 0, refresh_seconds: float = 3.0
) -> Iterator[MonitorServer]:
    """Serve the monitor from a background thread for the duration of a block (tests, scripts, notebooks).

    :param data: MonitorData = the reads
    :param host: str = address to listen on (loopback by default)
    :param port: int = port (0: any free port; the server's ``url`` says which)
    :param refresh_seconds: float = how often the job page refreshes while the job runs
    :return: Iterator[MonitorServer] = the running server
    """
    server = make_server(data, host, port, refresh_seconds)
    thread = threading.Thread(target=server.serve_forever, name="monitor-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
