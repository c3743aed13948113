"""A read-only job monitor in the browser: ``model-runner-db serve``.

:mod:`.data` reads the tables through the public repositories (jobs, regions, tiles, a bounded overview of the
features); :mod:`.server` serves the pages and a small JSON API with the standard library's ThreadingHTTPServer;
``static/`` holds the page's HTML, script and style (shipped in the package: nothing comes from the internet).
"""

from .data import MonitorData, NotFound, Unavailable
from .server import MonitorServer, make_server, serving

__all__ = ["MonitorData", "MonitorServer", "NotFound", "Unavailable", "make_server", "serving"]
