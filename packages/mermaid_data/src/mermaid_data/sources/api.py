"""MERMAID API adapter: the taxonomy the lake shapes labels with.

Three things come from the MERMAID API (base ``https://api.datamermaid.org/v1/`` by default):

- benthic attributes (BAs), a tree: ``GET benthicattributes/?limit=5000`` (DRF page-number pagination);
- growth forms (GFs): the ``"growthforms"`` entry of ``GET choices/`` (there is no growthforms endpoint);
- the CoralNet label mapping: ``GET classification/labelmappings/?provider=CoralNet&limit=5000``.

``fetch_taxonomy`` reads them either over HTTP(S) with the standard library only or from a local directory
of saved pages, the layout the demo generator writes::

    DIR/benthicattributes.json              {"count", "next", "previous", "results"}
    DIR/choices.json                        [{"name": "growthforms", "data": [...]}, ...]
    DIR/classification/labelmappings.json   {"count", "next", "previous", "results"}

Over HTTP every request has a per-read timeout and a total deadline (connection, headers and body: a server
that trickles bytes cannot hold it longer; a request that runs out of it is not retried), a bounded number
of retries of connection errors, 5xx and 429 with a short backoff, and so an overall bound that the error
states. ``next`` links are followed only on the base URL's scheme, host and
port. In a directory, ``next`` is a file name relative to ``DIR`` (for example
``"benthicattributes.page2.json"``) or null. Everything read is validated; a bad page raises ``SourceFormatError`` naming the URL or file,
the index into that page's ``results`` (``row``, 0-based), the key (``column``) and what to do.
UUIDs are returned lower-cased; CoralNet label ids are returned as canonical decimal strings.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from pathlib import Path
from typing import Any, Self

import pyarrow as pa

from mermaid_data.errors import SourceFormatError, SourceUnreachableError
from mermaid_data.settings import MERMAID_PUBLIC_API_URL, get_settings

__all__ = [
    "BENTHIC_ATTRIBUTES_FILE",
    "BENTHIC_ATTRIBUTES_SCHEMA",
    "BUNDLED",
    "CHOICES_FILE",
    "GROWTH_FORMS_SCHEMA",
    "LABEL_MAPPINGS_FILE",
    "LABEL_MAPPINGS_SCHEMA",
    "LIVE_API_URL",
    "Taxonomy",
    "fetch_taxonomy",
]

LIVE_API_URL = MERMAID_PUBLIC_API_URL
#: ``api`` value that reads the taxonomy bundled with the package instead of pages.
BUNDLED = "bundled"

#: Local-directory layout (relative to the directory passed as ``api``).
BENTHIC_ATTRIBUTES_FILE = "benthicattributes.json"
CHOICES_FILE = "choices.json"
LABEL_MAPPINGS_FILE = "classification/labelmappings.json"

#: HTTP endpoints (relative to the API base URL).
_BA_ENDPOINT = "benthicattributes/?limit=5000"
_CHOICES_ENDPOINT = "choices/"
_LM_ENDPOINT = "classification/labelmappings/?provider=CoralNet&limit=5000"

_GROWTH_FORMS_CHOICE = "growthforms"
_MAX_PAGES = 1000
_BACKOFF_FIRST_S = 0.25
_BACKOFF_MAX_S = 2.0
_RETRY_AFTER_MAX_S = 4.0  # longest wait between two attempts, a server's Retry-After included
_USER_AGENT = "mermaid-data (+https://datamermaid.org)"

BENTHIC_ATTRIBUTES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("parent_id", pa.string(), nullable=True),
    ]
)
GROWTH_FORMS_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("name", pa.string(), nullable=False)]
)
LABEL_MAPPINGS_SCHEMA = pa.schema(
    [
        pa.field("mapping_id", pa.string(), nullable=False),
        pa.field("provider_id", pa.string(), nullable=False),
        pa.field("provider_label", pa.string(), nullable=False),
        pa.field("benthic_attribute_id", pa.string(), nullable=False),
        pa.field("benthic_attribute_name", pa.string(), nullable=False),
        pa.field("growth_form_id", pa.string(), nullable=False),
        pa.field("growth_form_name", pa.string(), nullable=False),
    ]
)

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DIGITS_RE = re.compile(r"^[0-9]+$")

_FIX_SHAPE_HTTP = (
    "check that MERMAID_API_URL (or --api) is the MERMAID API v1 base, e.g. https://api.datamermaid.org/v1/; "
    "if it is, the API changed shape: report it and use --api DIR with saved pages meanwhile"
)
_FIX_SHAPE_DIR = (
    "regenerate the page directory with the demo generator, or fix the file by hand so it matches the "
    "MERMAID API page shape"
)
_FIX_UNREACHABLE = (
    "check the network connection and MERMAID_API_URL (or --api URL); to work offline, pass --api DIR "
    "with a directory of saved API pages"
)


@dataclass(frozen=True)
class Taxonomy:
    """The MERMAID taxonomy as three Arrow tables (rows sorted; see the ``*_SCHEMA`` constants).

    ``benthic_attributes``: ``id``, ``name``, ``parent_id`` (null for the roots of the tree).
    ``growth_forms``: ``id``, ``name``.
    ``label_mappings``: ``mapping_id``, ``provider_id`` (CoralNet label id, digits), ``provider_label``,
    ``benthic_attribute_id``, ``benthic_attribute_name``, ``growth_form_id`` and ``growth_form_name``
    (both ``''`` when the mapping has no growth form). One provider id may appear on several rows;
    resolving that is left to the SQL that shapes labels.
    """

    benthic_attributes: pa.Table
    growth_forms: pa.Table
    label_mappings: pa.Table

    def fingerprint(self) -> str:
        """sha256 (hex) of a canonical serialization: same content, in any row order -> same value."""
        digest = hashlib.sha256(b"mermaid-taxonomy/v1\n")
        for name, table in (
            ("benthic_attributes", self.benthic_attributes),
            ("growth_forms", self.growth_forms),
            ("label_mappings", self.label_mappings),
        ):
            digest.update(json.dumps([name, table.column_names]).encode())
            digest.update(b"\n")
            columns = [table.column(c).to_pylist() for c in table.column_names]
            rows = sorted(
                json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
                for values in zip(*columns)
            )
            for row in rows:
                digest.update(row.encode())
                digest.update(b"\n")
        return digest.hexdigest()


def fetch_taxonomy(
    api: str, *, timeout_s: float = 10.0, retries: int = 3, deadline_s: float | None = None
) -> Taxonomy:
    """Read and validate the taxonomy from the MERMAID API (``http(s)://`` base URL), a page directory, or
    ``"bundled"``: the public taxonomy snapshot shipped with this package (``mermaid_data.taxonomy``).

    ``timeout_s`` bounds every socket operation (connect, each read); ``deadline_s`` (default: the
    ``MERMAID_API_DEADLINE_S`` setting) bounds each request as a whole, body included; ``retries`` is the
    number of extra attempts after a connection error, timeout, HTTP 5xx or 429 (4xx other than 429 is
    not retried). One page therefore takes at most ``(retries + 1) * deadline_s`` plus at most 4 s between
    attempts. Raises ``SourceUnreachableError`` when the API or directory cannot be read and
    ``SourceFormatError`` when what was read does not have the API's shape (a ``next`` link to another
    scheme, host or port included).
    """
    if str(api).strip().lower() == BUNDLED:
        from mermaid_data.taxonomy import load_bundled_taxonomy

        return load_bundled_taxonomy().taxonomy
    if deadline_s is None:
        deadline_s = get_settings().api_deadline_s
    source = _open_source(api, timeout_s=timeout_s, retries=retries, deadline_s=deadline_s)

    ba_pages = list(_paginate(source, source.benthic_attributes_start()))
    body, choices_where = source.get_json(source.choices_start())
    lm_pages = list(_paginate(source, source.label_mappings_start()))

    bas = _parse_benthic_attributes(ba_pages)
    gfs = _parse_growth_forms(body, choices_where, source.fix_shape)
    mappings = _parse_label_mappings(lm_pages, bas, gfs)

    ba_rows = sorted(bas.values(), key=lambda r: r[0])
    gf_rows = sorted(gfs.items())
    benthic_attributes = pa.table(
        {
            "id": [r[0] for r in ba_rows],
            "name": [r[1] for r in ba_rows],
            "parent_id": [r[2] for r in ba_rows],
        },
        schema=BENTHIC_ATTRIBUTES_SCHEMA,
    )
    growth_forms = pa.table(
        {"id": [r[0] for r in gf_rows], "name": [r[1] for r in gf_rows]}, schema=GROWTH_FORMS_SCHEMA
    )
    mappings.sort(key=lambda r: (int(r[1]), r[1], r[0]))
    label_mappings = pa.table(
        {field.name: [r[i] for r in mappings] for i, field in enumerate(LABEL_MAPPINGS_SCHEMA)},
        schema=LABEL_MAPPINGS_SCHEMA,
    )
    return Taxonomy(
        benthic_attributes=benthic_attributes, growth_forms=growth_forms, label_mappings=label_mappings
    )


# --------------------------------------------------------------------------------------------------
# Sources: HTTP and local directory
# --------------------------------------------------------------------------------------------------


class _HttpSource:
    def __init__(self, base: str, *, timeout_s: float, retries: int, deadline_s: float) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.origin = _origin(self.base)
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.deadline_s = deadline_s
        self.fix_shape = _FIX_SHAPE_HTTP

    def benthic_attributes_start(self) -> str:
        return urllib.parse.urljoin(self.base, _BA_ENDPOINT)

    def choices_start(self) -> str:
        return urllib.parse.urljoin(self.base, _CHOICES_ENDPOINT)

    def label_mappings_start(self) -> str:
        return urllib.parse.urljoin(self.base, _LM_ENDPOINT)

    def where(self, location: str) -> str:
        return location

    def page_key(self, location: str) -> tuple[str, ...]:
        """Identity of a page for loop detection: query order does not matter, no ``page`` means page 1."""
        parts = urllib.parse.urlsplit(location)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        query.setdefault("page", "1")
        return (
            parts.scheme.lower(),
            parts.netloc.lower(),
            parts.path,
            *sorted(f"{k}={v}" for k, v in query.items()),
        )

    def resolve_next(self, current: str, next_value: str) -> str:
        url = urllib.parse.urljoin(current, next_value)
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise SourceFormatError(
                f"'next' is not an http(s) URL: {next_value!r}",
                where=current,
                column="next",
                fix=self.fix_shape,
            )
        if _origin(url) != self.origin:
            scheme, host, port = self.origin
            raise SourceFormatError(
                f"'next' points to another origin than the API's {scheme}://{host}:{port}: {next_value!r}",
                where=current,
                column="next",
                fix=f"{self.fix_shape}; links are followed only on the base URL's scheme, host and port",
            )
        return url

    def get_json(self, location: str) -> tuple[Any, str]:
        body = _http_get(location, timeout_s=self.timeout_s, retries=self.retries, deadline_s=self.deadline_s)
        return _parse_json(body, location, self.fix_shape), location


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, lower-cased, the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: no origin matches it
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _DirSource:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise SourceUnreachableError(
                "the MERMAID API page directory does not exist"
                if not root.exists()
                else "the MERMAID API page location is not a directory",
                where=str(root),
                fix=(
                    "pass --api (or MERMAID_API_URL) an http(s) URL of the MERMAID API, or a directory "
                    f"holding {BENTHIC_ATTRIBUTES_FILE}, {CHOICES_FILE} and {LABEL_MAPPINGS_FILE} "
                    "(the demo generator writes one)"
                ),
            )
        self.root = root.resolve()
        self.fix_shape = _FIX_SHAPE_DIR

    def benthic_attributes_start(self) -> Path:
        return self.root / BENTHIC_ATTRIBUTES_FILE

    def choices_start(self) -> Path:
        return self.root / CHOICES_FILE

    def label_mappings_start(self) -> Path:
        return self.root / LABEL_MAPPINGS_FILE

    def where(self, location: Path) -> str:
        return str(location)

    def page_key(self, location: Path) -> tuple[str, ...]:
        return (str(location.resolve()),)

    def resolve_next(self, current: Path, next_value: str) -> Path:
        if "://" in next_value or Path(next_value).is_absolute():
            raise SourceFormatError(
                f"'next' must be a file name relative to {self.root}, got {next_value!r}",
                where=str(current),
                column="next",
                fix=self.fix_shape,
            )
        candidate = (self.root / next_value).resolve()
        beside = (current.parent / next_value).resolve()
        if not candidate.is_file() and beside.is_file():
            candidate = beside  # tolerate names relative to the current page's folder
        if not candidate.is_relative_to(self.root):
            raise SourceFormatError(
                f"'next' points outside the page directory: {next_value!r}",
                where=str(current),
                column="next",
                fix=self.fix_shape,
            )
        return candidate

    def get_json(self, location: Path) -> tuple[Any, str]:
        where = str(location)
        if not location.is_file():
            raise SourceFormatError(
                "page file is missing from the MERMAID API page directory",
                where=where,
                fix=(
                    f"the directory must hold {BENTHIC_ATTRIBUTES_FILE}, {CHOICES_FILE}, "
                    f"{LABEL_MAPPINGS_FILE} and every page their 'next' links name; {_FIX_SHAPE_DIR}"
                ),
            )
        try:
            body = location.read_bytes()
        except OSError as exc:
            raise SourceUnreachableError(
                f"cannot read page file: {exc}", where=where, fix="check the file's permissions"
            ) from exc
        return _parse_json(body, where, self.fix_shape), where


_Source = _HttpSource | _DirSource


def _open_source(api: str, *, timeout_s: float, retries: int, deadline_s: float) -> _Source:
    text = str(api).strip()
    if not text:
        raise SourceUnreachableError(
            "no MERMAID API location given",
            fix=f"set MERMAID_API_URL or pass --api (the live API is {LIVE_API_URL})",
        )
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return _HttpSource(text, timeout_s=timeout_s, retries=retries, deadline_s=deadline_s)
    if scheme == "file":
        return _DirSource(Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path)))
    if "://" in text:
        raise SourceUnreachableError(
            f"unsupported scheme {scheme!r} for the MERMAID API",
            where=text,
            fix="use an http(s) URL of the MERMAID API or a local directory of saved pages",
        )
    return _DirSource(Path(text).expanduser())


def _http_get(url: str, *, timeout_s: float, retries: int, deadline_s: float) -> bytes:
    """GET ``url``; retry connection errors, timeouts, 5xx and 429 with a short exponential backoff.

    Each attempt ends after ``deadline_s`` whatever the server does, and one that runs out of it ends the
    call (a trickling server is never waited for twice); waits between attempts are at most
    ``_RETRY_AFTER_MAX_S``; so the whole call ends within the bound the error message states.
    """
    attempts = retries + 1
    bound_s = attempts * deadline_s + retries * _RETRY_AFTER_MAX_S
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": _USER_AGENT})
    last_problem = "no attempt made"
    fix = _FIX_UNREACHABLE
    for attempt in range(attempts):
        wait_s = min(_BACKOFF_FIRST_S * (2**attempt), _BACKOFF_MAX_S)
        try:
            return _get_once(request, timeout_s=timeout_s, deadline_s=deadline_s)
        except _DeadlineExceeded:
            # not retried: a server too slow for one deadline is as slow the next time, and retrying
            # would multiply the wait (4 attempts of 60 s by default)
            raise SourceUnreachableError(
                f"GET failed: no complete response within the {deadline_s:g} s deadline (attempt {attempt + 1}; "
                "a request that runs out of its deadline is not retried)",
                where=url,
                fix=f"{_FIX_UNREACHABLE}; if the API is only slow, raise MERMAID_API_DEADLINE_S",
            ) from None
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 429 or exc.code >= 500:
                last_problem = f"HTTP {exc.code} {exc.reason}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.strip().isdigit():
                    wait_s = min(float(retry_after.strip()), _RETRY_AFTER_MAX_S)
            else:
                raise SourceUnreachableError(
                    f"HTTP {exc.code} {exc.reason} (not retried)",
                    where=url,
                    fix=(
                        "check that MERMAID_API_URL (or --api) is the MERMAID API v1 base, e.g. "
                        f"{LIVE_API_URL}, or pass --api DIR with a directory of saved API pages"
                    ),
                ) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise SourceUnreachableError(
                    f"TLS certificate verification failed: {exc.reason}",
                    where=url,
                    fix="install the system CA certificates (or set SSL_CERT_FILE), or pass --api DIR",
                ) from exc
            last_problem = _describe(exc.reason)
        except (TimeoutError, ConnectionError, HTTPException, OSError) as exc:
            last_problem = _describe(exc)
        if attempt + 1 < attempts:
            time.sleep(wait_s)
    raise SourceUnreachableError(
        f"GET failed after {attempts} attempt(s) (each at most {deadline_s:g} s in total, {timeout_s:g} s "
        f"per network read; at most {bound_s:g} s in all): {last_problem}",
        where=url,
        fix=fix,
    )


class _DeadlineExceeded(Exception):
    """One attempt ran out of its total deadline."""


def _get_once(request: urllib.request.Request, *, timeout_s: float, deadline_s: float) -> bytes:
    """One GET whose connection, headers and body together take at most ``deadline_s``.

    A per-read socket timeout cannot stop a server that sends a byte now and then, so a timer shuts the
    request's sockets down when the deadline passes: the blocked read returns at once and the attempt
    ends with ``_DeadlineExceeded``. (Name lookups are bounded by the system resolver, not by this.)
    """
    with _Deadline(deadline_s) as deadline:
        opener = urllib.request.build_opener(
            _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
        )
        try:
            with opener.open(request, timeout=min(timeout_s, deadline_s)) as response:
                body = response.read()
        except Exception as exc:
            if deadline.expired:
                raise _DeadlineExceeded from exc
            raise
        if deadline.expired:  # the shutdown may look like the end of a body without a length
            raise _DeadlineExceeded
        return body


class _Deadline:
    """A timer that shuts down every socket registered with ``watch`` once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Register ``sock`` (a duplicate is kept: TLS wrapping detaches the original object)."""
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def connection(self, base: type[HTTPConnection]) -> Any:
        """A factory for urllib's ``do_open`` making ``base`` connections whose sockets are watched."""

        def make(host: str, **kwargs: Any) -> HTTPConnection:
            conn = base(host, **kwargs)
            create = conn._create_connection
            conn._create_connection = lambda *a, **k: self.watch(create(*a, **k))
            return conn

        return make


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self._deadline.connection(HTTPConnection), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self._deadline.connection(HTTPSConnection), req, context=self._context)


def _describe(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    text = str(reason) or type(reason).__name__
    return text if isinstance(reason, str) else f"{type(reason).__name__}: {text}"


def _parse_json(body: bytes, where: str, fix: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        start = body[:60].decode("utf-8", errors="replace")
        raise SourceFormatError(f"not JSON ({exc}); it starts with {start!r}", where=where, fix=fix) from exc


def _paginate(source: _Source, start: Any) -> Iterator[tuple[str, list[Any], str]]:
    """Yield ``(where, results, fix)`` for each page of a DRF-paginated listing, following ``next``."""
    seen: set[tuple[str, ...]] = set()
    location = start
    pages = 0
    while True:
        key = source.page_key(location)
        if key in seen:
            raise SourceFormatError(
                "pagination loops: 'next' points back at a page already read",
                where=source.where(location),
                column="next",
                fix=source.fix_shape,
            )
        seen.add(key)
        pages += 1
        if pages > _MAX_PAGES:
            raise SourceFormatError(
                f"more than {_MAX_PAGES} pages; 'next' never becomes null",
                where=source.where(location),
                column="next",
                fix=source.fix_shape,
            )
        body, where = source.get_json(location)
        if not isinstance(body, dict):
            raise SourceFormatError(
                f"expected a page object with 'results', got a JSON {type(body).__name__}",
                where=where,
                fix=source.fix_shape,
            )
        if "results" not in body:
            raise SourceFormatError(
                "page has no 'results'", where=where, column="results", fix=source.fix_shape
            )
        results = body["results"]
        if not isinstance(results, list):
            raise SourceFormatError(
                f"'results' is a {type(results).__name__}, not a list",
                where=where,
                column="results",
                fix=source.fix_shape,
            )
        yield where, results, source.fix_shape
        next_value = body.get("next")
        if next_value is None:
            return
        if not isinstance(next_value, str) or not next_value.strip():
            raise SourceFormatError(
                f"'next' must be a link or null, got {next_value!r}",
                where=where,
                column="next",
                fix=source.fix_shape,
            )
        location = source.resolve_next(location, next_value.strip())


# --------------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------------


def _record(item: Any, where: str, row: int, fix: str, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise SourceFormatError(
            f"{what} is a JSON {type(item).__name__}, not an object", where=where, row=row, fix=fix
        )
    return item


def _required(item: dict[str, Any], key: str, where: str, row: int, fix: str, what: str) -> Any:
    if key not in item:
        raise SourceFormatError(f"{what} has no {key!r}", where=where, row=row, column=key, fix=fix)
    return item[key]


def _uuid(value: Any, key: str, where: str, row: int, fix: str, what: str) -> str:
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise SourceFormatError(
            f"{what} {key!r} is not a UUID: {value!r}", where=where, row=row, column=key, fix=fix
        )
    return value.lower()


def _name(value: Any, key: str, where: str, row: int, fix: str, what: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not empty_ok and not value.strip()):
        raise SourceFormatError(
            f"{what} {key!r} must be a {'' if empty_ok else 'non-empty '}string, got {value!r}",
            where=where,
            row=row,
            column=key,
            fix=fix,
        )
    return value


def _parse_benthic_attributes(
    pages: list[tuple[str, list[Any], str]],
) -> dict[str, tuple[str, str, str | None]]:
    """Validate BA results: ``{id: (id, name, parent_id)}``; every parent known, no cycles."""
    what = "benthic attribute"
    bas: dict[str, tuple[str, str, str | None]] = {}
    seen_at: dict[str, tuple[str, int]] = {}
    fix = _FIX_SHAPE_HTTP
    for where, results, fix in pages:
        for row, raw in enumerate(results):
            item = _record(raw, where, row, fix, what)
            ba_id = _uuid(_required(item, "id", where, row, fix, what), "id", where, row, fix, what)
            name = _name(_required(item, "name", where, row, fix, what), "name", where, row, fix, what)
            parent = _required(item, "parent", where, row, fix, what)
            parent_id = None if parent is None else _uuid(parent, "parent", where, row, fix, what)
            if ba_id in bas:
                first_where, first_row = seen_at[ba_id]
                raise SourceFormatError(
                    f"benthic attribute {ba_id} appears twice (first at {first_where}, row {first_row})",
                    where=where,
                    row=row,
                    column="id",
                    fix=fix + "; if reading the live API, retry (it may have changed while paging)",
                )
            bas[ba_id] = (ba_id, name, parent_id)
            seen_at[ba_id] = (where, row)
    if not bas:
        where = pages[0][0] if pages else "benthicattributes"
        raise SourceFormatError("no benthic attributes at all", where=where, column="results", fix=fix)
    for ba_id, (_, name, parent_id) in bas.items():
        if parent_id is not None and parent_id not in bas:
            where, row = seen_at[ba_id]
            raise SourceFormatError(
                f"benthic attribute {ba_id} ({name!r}) has parent {parent_id}, which is no known benthic attribute",
                where=where,
                row=row,
                column="parent",
                fix=fix,
            )
    _check_acyclic(bas, seen_at, fix)
    return bas


def _check_acyclic(
    bas: dict[str, tuple[str, str, str | None]], seen_at: dict[str, tuple[str, int]], fix: str
) -> None:
    reaches_root: set[str] = set()
    for start in bas:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in reaches_root:
            if node in on_path:
                where, row = seen_at[node]
                cycle = path[path.index(node) :]
                raise SourceFormatError(
                    f"benthic attribute parents form a cycle: {' -> '.join(cycle + [node])}",
                    where=where,
                    row=row,
                    column="parent",
                    fix=fix,
                )
            path.append(node)
            on_path.add(node)
            node = bas[node][2]
        reaches_root.update(path)


def _parse_growth_forms(body: Any, where: str, fix: str) -> dict[str, str]:
    """Pick the ``growthforms`` entry of ``choices/``: ``{id: name}``."""
    if not isinstance(body, list):
        raise SourceFormatError(
            f"choices must be a JSON list of {{'name', 'data'}} objects, got a JSON {type(body).__name__}",
            where=where,
            fix=fix,
        )
    entry = None
    for index, candidate in enumerate(body):
        if isinstance(candidate, dict) and candidate.get("name") == _GROWTH_FORMS_CHOICE:
            entry = (index, candidate)
            break
    if entry is None:
        raise SourceFormatError(
            f"choices has no entry named {_GROWTH_FORMS_CHOICE!r}", where=where, column="name", fix=fix
        )
    index, choice = entry
    data = choice.get("data")
    entry_where = f"{where} [{index}] {_GROWTH_FORMS_CHOICE}"
    if not isinstance(data, list):
        raise SourceFormatError(
            f"the {_GROWTH_FORMS_CHOICE!r} choice has no 'data' list",
            where=entry_where,
            column="data",
            fix=fix,
        )
    what = "growth form"
    gfs: dict[str, str] = {}
    for row, raw in enumerate(data):
        item = _record(raw, entry_where, row, fix, what)
        gf_id = _uuid(_required(item, "id", entry_where, row, fix, what), "id", entry_where, row, fix, what)
        name = _name(
            _required(item, "name", entry_where, row, fix, what), "name", entry_where, row, fix, what
        )
        if gf_id in gfs:
            raise SourceFormatError(
                f"growth form {gf_id} appears twice", where=entry_where, row=row, column="id", fix=fix
            )
        gfs[gf_id] = name
    return gfs


def _provider_id(value: Any, where: str, row: int, fix: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return str(int(value.strip()))
    raise SourceFormatError(
        f"label mapping 'provider_id' must be a CoralNet label id (an integer string), got {value!r}",
        where=where,
        row=row,
        column="provider_id",
        fix=fix,
    )


def _parse_label_mappings(
    pages: list[tuple[str, list[Any], str]],
    bas: dict[str, tuple[str, str, str | None]],
    gfs: dict[str, str],
) -> list[tuple[str, str, str, str, str, str, str]]:
    what = "label mapping"
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    seen: set[str] = set()
    for where, results, fix in pages:
        for row, raw in enumerate(results):
            item = _record(raw, where, row, fix, what)
            mapping_id = _uuid(_required(item, "id", where, row, fix, what), "id", where, row, fix, what)
            if mapping_id in seen:
                raise SourceFormatError(
                    f"label mapping {mapping_id} appears twice",
                    where=where,
                    row=row,
                    column="id",
                    fix=fix + "; if reading the live API, retry (it may have changed while paging)",
                )
            seen.add(mapping_id)
            provider_id = _provider_id(_required(item, "provider_id", where, row, fix, what), where, row, fix)
            provider_label = _name(
                _required(item, "provider_label", where, row, fix, what),
                "provider_label",
                where,
                row,
                fix,
                what,
                empty_ok=True,
            )
            ba_id = _uuid(
                _required(item, "benthic_attribute_id", where, row, fix, what),
                "benthic_attribute_id",
                where,
                row,
                fix,
                what,
            )
            if ba_id not in bas:
                raise SourceFormatError(
                    f"label mapping for CoralNet label {provider_id} points at benthic attribute {ba_id}, "
                    "which is not among the benthic attributes",
                    where=where,
                    row=row,
                    column="benthic_attribute_id",
                    fix=fix,
                )
            ba_name = item.get("benthic_attribute_name")
            if ba_name is None:
                ba_name = bas[ba_id][1]
            ba_name = _name(ba_name, "benthic_attribute_name", where, row, fix, what, empty_ok=True)
            gf_raw = item.get("growth_form_id")
            if gf_raw is None or gf_raw == "":
                gf_id, gf_name = "", ""
            else:
                gf_id = _uuid(gf_raw, "growth_form_id", where, row, fix, what)
                if gf_id not in gfs:
                    raise SourceFormatError(
                        f"label mapping for CoralNet label {provider_id} points at growth form {gf_id}, "
                        "which is not among the growth forms of choices/",
                        where=where,
                        row=row,
                        column="growth_form_id",
                        fix=fix,
                    )
                gf_name = item.get("growth_form_name")
                if gf_name is None:
                    gf_name = gfs[gf_id]
                gf_name = _name(gf_name, "growth_form_name", where, row, fix, what, empty_ok=True)
            rows.append((mapping_id, provider_id, provider_label, ba_id, ba_name, gf_id, gf_name))
    return rows
