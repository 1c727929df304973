"""A real HTTP server on 127.0.0.1 that serves MERMAID-API-shaped pages from Python data.

Routes (under ``/v1/``), like the live API:

- ``benthicattributes/``            DRF page-number pagination (``page``, ``limit``)
- ``choices/``                      the ``choices`` list as given (not paginated)
- ``classification/labelmappings/`` DRF page-number pagination, filtered by ``provider=``

``next``/``previous`` are absolute URLs (built from the request's ``Host``) or null; ``limit`` defaults to
100 and is capped at 5000 (and at ``page_size_cap`` when set, so that even ``limit=5000`` paginates).
Unknown keys in the results are passed through untouched.

Test knobs (attributes, can be changed while running): ``fail_first_n`` (answer 503 to the first n
requests), ``delay_s`` (sleep before answering), ``trickle_s`` (send the response one byte at a time, this
many seconds apart: a server that is never silent long enough for a per-read timeout), ``trickle_headers``
(trickle the status line and headers too, not only the body), ``page_size_cap``, ``raw_responses`` (route ->
body bytes or ``(status, body)``, served instead of the real page). ``requests`` logs every request's path
and query.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

DEFAULT_LIMIT = 100
MAX_LIMIT = 5000
PREFIX = "/v1/"

ROUTE_BENTHIC_ATTRIBUTES = "benthicattributes/"
ROUTE_CHOICES = "choices/"
ROUTE_LABEL_MAPPINGS = "classification/labelmappings/"


class ApiServer:
    def __init__(
        self,
        benthic_attributes: list[dict[str, Any]],
        choices: list[dict[str, Any]],
        label_mappings: list[dict[str, Any]],
        *,
        fail_first_n: int = 0,
        delay_s: float = 0.0,
        page_size_cap: int | None = None,
    ) -> None:
        self.benthic_attributes = copy.deepcopy(benthic_attributes)
        self.choices = copy.deepcopy(choices)
        self.label_mappings = copy.deepcopy(label_mappings)
        self.fail_first_n = fail_first_n
        self.delay_s = delay_s
        self.trickle_s = 0.0
        self.trickle_headers = False
        self.page_size_cap = page_size_cap
        self.raw_responses: dict[str, bytes | tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self._served = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1/`` (still readable after ``stop()``, for assertions on messages)."""
        if self._base_url is None:
            raise RuntimeError("ApiServer is not started")
        return self._base_url

    def start(self) -> str:
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
            host, port = self._httpd.server_address[:2]
            self._base_url = f"http://{host}:{port}{PREFIX}"
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_to(self, route: str) -> list[str]:
        """Logged requests whose path is ``/v1/<route>`` (e.g. ``"benthicattributes/"``)."""
        with self._lock:
            return [r for r in self.requests if urllib.parse.urlsplit(r).path == PREFIX + route]

    # ---------------------------------------------------------------- serving

    def _respond(self, target: str, host: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(target)
            self._served += 1
            failing = self._served <= self.fail_first_n
        if self.delay_s:
            time.sleep(self.delay_s)
        if failing:
            return 503, _dumps({"detail": "Service temporarily unavailable."})

        parts = urllib.parse.urlsplit(target)
        if not parts.path.startswith(PREFIX):
            return 404, _dumps({"detail": "Not found."})
        route = parts.path[len(PREFIX) :]
        if route in self.raw_responses:
            raw = self.raw_responses[route]
            return raw if isinstance(raw, tuple) else (200, raw)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)

        if route == ROUTE_CHOICES:
            return 200, _dumps(self.choices)
        if route == ROUTE_BENTHIC_ATTRIBUTES:
            items = self.benthic_attributes
        elif route == ROUTE_LABEL_MAPPINGS:
            items = self.label_mappings
            provider = query.get("provider", [None])[-1]
            if provider:
                items = [m for m in items if m.get("provider") == provider]
        else:
            return 404, _dumps({"detail": "Not found."})
        return self._paginate(items, parts, query, host)

    def _paginate(
        self,
        items: list[dict[str, Any]],
        parts: urllib.parse.SplitResult,
        query: dict[str, list[str]],
        host: str,
    ) -> tuple[int, bytes]:
        try:
            limit = int(query.get("limit", [DEFAULT_LIMIT])[-1])
            page = int(query.get("page", ["1"])[-1])
        except ValueError:
            return 404, _dumps({"detail": "Invalid page."})
        limit = max(1, min(limit, MAX_LIMIT))
        if self.page_size_cap:
            limit = min(limit, self.page_size_cap)
        pages = max(1, -(-len(items) // limit))
        if page < 1 or page > pages:
            return 404, _dumps({"detail": "Invalid page."})
        start = (page - 1) * limit

        def link(page_number: int) -> str:
            params = [(k, v) for k, values in query.items() if k != "page" for v in values]
            if page_number > 1:
                params.append(("page", str(page_number)))
            return urllib.parse.urlunsplit(("http", host, parts.path, urllib.parse.urlencode(params), ""))

        body = {
            "count": len(items),
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": items[start : start + limit],
        }
        return 200, _dumps(body)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def _make_handler(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
            status, body = server._respond(self.path, host)
            try:
                if server.trickle_s and server.trickle_headers:
                    head = (
                        f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    )
                    self._trickle(head.encode() + body)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.trickle_s:
                    self._trickle(body)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def _trickle(self, data: bytes) -> None:
            for index in range(len(data)):
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                time.sleep(server.trickle_s)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
