"""The feature cache's S3 requests: the one S3 configuration's client, one attempt per request."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mermaid_train.features import FeatureCache, Pin

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class _Busy(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 503 SlowDown and counts them."""

    count = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Busy.lock:
            _Busy.count += 1
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(SLOW_DOWN)))
        self.end_headers()
        self.wfile.write(SLOW_DOWN)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def busy_s3(monkeypatch: pytest.MonkeyPatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Busy.count = 0
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
                        "AWS_ACCESS_KEY_ID": "busy", "AWS_SECRET_ACCESS_KEY": "busy", "AWS_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true", "MERMAID_NETWORK_RETRIES": "3"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_each_fetch_attempt_is_one_request(busy_s3, tmp_path: Path) -> None:
    """Bug pinned: the cache retried on top of a client that retries too (3 attempts x 4 requests each with
    MERMAID_NETWORK_RETRIES=3); its client is the one S3 configuration's with one attempt per request."""
    cache = FeatureCache(tmp_path / "cache", retries=2, workers=1)
    uri = "s3://bucket/s1/features/i1.featurevector"
    report = cache.fetch([uri], pins={uri: Pin(10, "etag")})
    assert report.missing == [uri] and "SlowDown" in report.errors[uri]
    assert _Busy.count == 2
