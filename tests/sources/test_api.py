"""The MERMAID API adapter against a real local HTTP server (real taxonomy) and against page directories."""

from __future__ import annotations

import copy
import json
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from mermaid_data.errors import SourceFormatError, SourceUnreachableError
from mermaid_data.sources.api import (
    BENTHIC_ATTRIBUTES_SCHEMA,
    GROWTH_FORMS_SCHEMA,
    LABEL_MAPPINGS_SCHEMA,
    Taxonomy,
    fetch_taxonomy,
)

from tests.support.api_server import ApiServer
from tests.support.reference import BA_ROOT_NAMES, load_reference_payloads

Payloads = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]

TURF_ALGAE_BA = "20090bf4-868e-431b-974c-ab9be5bbdb5f"


@pytest.fixture(scope="module")
def reference() -> Payloads:
    return load_reference_payloads()


@pytest.fixture
def payloads(reference: Payloads) -> Payloads:
    """A private deep copy the test may break."""
    return copy.deepcopy(reference)


@pytest.fixture
def server(reference: Payloads) -> Any:
    with ApiServer(*reference, page_size_cap=200) as srv:
        yield srv


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


# ------------------------------------------------------------------------------------------------
# The real taxonomy over HTTP
# ------------------------------------------------------------------------------------------------


def test_fetch_real_reference_taxonomy(server: ApiServer) -> None:
    taxonomy = fetch_taxonomy(server.base_url, timeout_s=5, retries=0)

    assert taxonomy.benthic_attributes.schema == BENTHIC_ATTRIBUTES_SCHEMA
    assert taxonomy.growth_forms.schema == GROWTH_FORMS_SCHEMA
    assert taxonomy.label_mappings.schema == LABEL_MAPPINGS_SCHEMA
    assert taxonomy.benthic_attributes.num_rows == 738
    assert taxonomy.growth_forms.num_rows == 11
    assert taxonomy.label_mappings.num_rows == 711

    bas = _rows(taxonomy.benthic_attributes)
    roots = {r["name"] for r in bas if r["parent_id"] is None}
    assert roots == BA_ROOT_NAMES and len(roots) == 12
    by_id = {r["id"]: r for r in bas}
    assert by_id[TURF_ALGAE_BA]["name"] == "Turf algae"
    assert by_id[TURF_ALGAE_BA]["parent_id"] is None
    assert all(r["parent_id"] is None or r["parent_id"] in by_id for r in bas)
    assert [r["id"] for r in bas] == sorted(by_id)  # deterministic order

    gfs = {r["name"] for r in _rows(taxonomy.growth_forms)}
    assert {"Branching", "Massive", "Plates or tables", "Mushroom coral"} <= gfs

    mappings = _rows(taxonomy.label_mappings)
    turf = [m for m in mappings if m["provider_id"] == "82"]
    assert len(turf) == 1
    assert turf[0]["benthic_attribute_id"] == TURF_ALGAE_BA
    assert turf[0]["benthic_attribute_name"] == "Turf algae"
    assert turf[0]["provider_label"] == "Turf algae"
    assert turf[0]["growth_form_id"] == "" and turf[0]["growth_form_name"] == ""  # null GF -> ''
    with_gf = [m for m in mappings if m["growth_form_id"]]
    assert len(with_gf) == 81
    gf_names = {r["id"]: r["name"] for r in _rows(taxonomy.growth_forms)}
    assert all(gf_names[m["growth_form_id"]] == m["growth_form_name"] for m in with_gf)
    assert all(m["provider_id"].isdigit() for m in mappings)
    assert all(m["benthic_attribute_id"] in by_id for m in mappings)


def test_pagination_follows_next_links(server: ApiServer) -> None:
    fetch_taxonomy(server.base_url, timeout_s=5, retries=0)
    ba_requests = server.requests_to("benthicattributes/")
    lm_requests = server.requests_to("classification/labelmappings/")
    assert len(ba_requests) == 4  # 738 rows, 200 per page
    assert len(lm_requests) == 4  # 711 rows, 200 per page
    assert "page=" not in ba_requests[0] and "limit=5000" in ba_requests[0]
    assert [r for r in ba_requests if "page=4" in r]
    assert all("provider=CoralNet" in r for r in lm_requests)
    assert len(server.requests_to("choices/")) == 1


def test_base_url_without_trailing_slash(server: ApiServer) -> None:
    taxonomy = fetch_taxonomy(server.base_url.rstrip("/"), timeout_s=5, retries=0)
    assert taxonomy.benthic_attributes.num_rows == 738


def test_unknown_keys_are_ignored(payloads: Payloads) -> None:
    bas, choices, mappings = payloads
    for item in bas:
        item["future_field"] = {"nested": [1, 2, 3]}
    for item in mappings:
        item["confidence"] = 0.5
    choices[1]["extra"] = "ignored"
    choices[1]["data"][0]["color"] = "#fff"
    with ApiServer(bas, choices, mappings) as srv:
        taxonomy = fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
    assert taxonomy.benthic_attributes.column_names == ["id", "name", "parent_id"]
    assert taxonomy.label_mappings.num_rows == 711


def test_retries_after_503_then_succeeds(reference: Payloads) -> None:
    with ApiServer(*reference, fail_first_n=2) as srv:
        taxonomy = fetch_taxonomy(srv.base_url, timeout_s=5, retries=3)
        assert taxonomy.benthic_attributes.num_rows == 738
        assert len(srv.requests_to("benthicattributes/")) == 3  # 2 failures, then the single page


def test_persistent_503_gives_up_with_a_clear_error(reference: Payloads) -> None:
    with ApiServer(*reference, fail_first_n=1000) as srv:
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError) as caught:
            fetch_taxonomy(srv.base_url, timeout_s=2, retries=2)
        assert time.monotonic() - started < 5
        assert len(srv.requests) == 3
    message = str(caught.value)
    assert srv.base_url + "benthicattributes/" in message
    assert "503" in message and "MERMAID_API_URL" in message and "--api DIR" in message


def test_4xx_is_not_retried(server: ApiServer) -> None:
    with pytest.raises(SourceUnreachableError) as caught:
        fetch_taxonomy(server.base_url + "wrong/", timeout_s=5, retries=3)
    assert len(server.requests) == 1
    assert "404" in str(caught.value) and "wrong/benthicattributes/" in str(caught.value)


def test_closed_port_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/"
    started = time.monotonic()
    with pytest.raises(SourceUnreachableError) as caught:
        fetch_taxonomy(url, timeout_s=1, retries=2)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"{url}benthicattributes/" in message
    assert "3 attempt" in message and "MERMAID_API_URL" in message and "--api DIR" in message


def test_slow_server_times_out_fast(reference: Payloads) -> None:
    with ApiServer(*reference, delay_s=5) as srv:
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError) as caught:
            fetch_taxonomy(srv.base_url, timeout_s=0.5, retries=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert "timed out" in str(caught.value)
    assert "benthicattributes/" in str(caught.value)


# A small but valid first page: trickled at 0.05 s a byte it takes ~10 s (headers ~5 s more), far past
# the 1 s deadline, yet the server is never silent for the 1 s per-read timeout.
_SLOW_PAGE = json.dumps({"count": 1, "next": None, "previous": None, "results": [{"id": "x" * 150}]}).encode()


@pytest.mark.parametrize("trickle_headers", [False, True], ids=["body", "headers"])
def test_trickling_server_hits_the_total_deadline(reference: Payloads, trickle_headers: bool) -> None:
    """Bug pinned: a server sending one byte every 2 s kept the taxonomy fetch going past 150 s (the
    timeout was per socket read). Each request now has a total deadline, body and headers included."""
    with ApiServer(*reference) as srv:
        srv.raw_responses["benthicattributes/"] = _SLOW_PAGE
        srv.trickle_s = 0.05
        srv.trickle_headers = trickle_headers
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError) as caught:
            fetch_taxonomy(srv.base_url, timeout_s=1, retries=1, deadline_s=1)
        elapsed = time.monotonic() - started
        assert len(srv.requests_to("benthicattributes/")) == 1  # a deadline is not retried
    assert elapsed < 2.5
    message = str(caught.value)
    assert f"{srv.base_url}benthicattributes/" in message
    assert "no complete response within the 1 s deadline" in message and "not retried" in message
    assert "\n" not in message and "MERMAID_API_URL" in message and "MERMAID_API_DEADLINE_S" in message


def test_a_deadline_is_not_retried_so_the_default_bound_stays_under_the_hang(reference: Payloads) -> None:
    """Bug pinned: with retries the deadline was per attempt, so the defaults (60 s, 3 retries) let one
    trickling page take 4 x 60 + 3 x 4 = 252 s, longer than the 150 s hang of the issue. Retries are
    left for errors that end at once (connection refused, 5xx, 429)."""
    with ApiServer(*reference) as srv:
        srv.raw_responses["benthicattributes/"] = _SLOW_PAGE
        srv.trickle_s = 0.05
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError, match="attempt 1;"):
            fetch_taxonomy(srv.base_url, timeout_s=1, retries=3, deadline_s=0.5)
        elapsed = time.monotonic() - started
        assert len(srv.requests_to("benthicattributes/")) == 1
    assert elapsed < 0.5 + 1.0


def test_fast_pages_are_not_cut_by_the_deadline(server: ApiServer) -> None:
    """The deadline is per request: a fetch of many pages may take longer than one deadline in all."""
    server.delay_s = 0.15  # 9 requests -> ~1.4 s in all, each well under the 0.6 s deadline
    taxonomy = fetch_taxonomy(server.base_url, timeout_s=5, retries=0, deadline_s=0.6)
    assert taxonomy.benthic_attributes.num_rows == 738 and len(server.requests) == 9


def test_deadline_defaults_to_the_setting(reference: Payloads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERMAID_API_DEADLINE_S", "0.7")
    with ApiServer(*reference) as srv:
        srv.raw_responses["benthicattributes/"] = _SLOW_PAGE
        srv.trickle_s = 0.05
        with pytest.raises(SourceUnreachableError, match="within the 0.7 s deadline"):
            fetch_taxonomy(srv.base_url, timeout_s=1, retries=0)


# ------------------------------------------------------------------------------------------------
# 'next' links stay on the API's origin
# ------------------------------------------------------------------------------------------------


def _next_elsewhere(srv: ApiServer, other: ApiServer, kind: str) -> str:
    port = srv.base_url.split(":")[2].split("/")[0]
    query = "benthicattributes/?limit=5000&page=2"
    return {
        "host": f"http://localhost:{port}/v1/{query}",  # same server under another name: still refused
        "port": f"{other.base_url}{query}",
        "scheme": f"https://127.0.0.1:{port}/v1/{query}",
    }[kind]


@pytest.mark.parametrize("kind", ["host", "port", "scheme"])
def test_next_link_to_another_origin_is_refused(reference: Payloads, kind: str) -> None:
    """Bug pinned: a 'next' link to another host was followed. Only the base URL's scheme, host and port
    are, and the error names the page and the link."""
    with ApiServer(*reference) as srv, ApiServer(*reference) as other:
        link = _next_elsewhere(srv, other, kind)
        srv.raw_responses["benthicattributes/"] = json.dumps({"count": 2, "next": link, "results": []}).encode()
        with pytest.raises(SourceFormatError) as caught:
            fetch_taxonomy(srv.base_url, timeout_s=2, retries=0)
        assert other.requests == []
        assert len(srv.requests_to("benthicattributes/")) == 1
    error = caught.value
    assert error.where.startswith(f"{srv.base_url}benthicattributes/") and error.column == "next"
    assert link in str(error) and "another origin" in str(error)
    assert "\n" not in str(error) and "Fix: " in str(error)


@pytest.mark.parametrize(
    ("base", "link", "same"),
    [
        ("http://api.example/v1/", "http://API.example:80/v1/x/?page=2", True),
        ("https://api.example/v1/", "https://api.example:443/v1/x/?page=2", True),
        ("http://api.example:8000/v1/", "/v1/x/?page=2", True),
        ("http://api.example/v1/", "http://api.example:8080/v1/x/", False),
        ("http://api.example/v1/", "https://api.example/v1/x/", False),
        ("http://api.example/v1/", "//evil.example/v1/x/", False),
        ("http://api.example/v1/", "http://api.example.evil.example/v1/x/", False),
        ("http://api.example/v1/", "http://user@evil.example/v1/x/", False),
    ],
)
def test_same_origin_rule(base: str, link: str, same: bool) -> None:
    """Default ports and host case do not matter; anything else about scheme, host or port does."""
    from mermaid_data.sources.api import _HttpSource

    source = _HttpSource(base, timeout_s=1, retries=0, deadline_s=1)
    current = source.benthic_attributes_start()
    if same:
        assert source.resolve_next(current, link).endswith("/v1/x/?page=2")
    else:
        with pytest.raises(SourceFormatError, match="another origin"):
            source.resolve_next(current, link)


# ------------------------------------------------------------------------------------------------
# Bad page shapes
# ------------------------------------------------------------------------------------------------


def _break_ba(index: int, key: str, value: Any) -> Any:
    def apply(payloads: Payloads, srv: ApiServer) -> None:
        if value is _DELETE:
            del payloads[0][index][key]
        else:
            payloads[0][index][key] = value

    return apply


def _break_lm(index: int, key: str, value: Any) -> Any:
    def apply(payloads: Payloads, srv: ApiServer) -> None:
        if value is _DELETE:
            del payloads[2][index][key]
        else:
            payloads[2][index][key] = value

    return apply


def _raw(route: str, body: Any) -> Any:
    def apply(payloads: Payloads, srv: ApiServer) -> None:
        data = body(srv) if callable(body) else body
        srv.raw_responses[route] = data if isinstance(data, bytes) else json.dumps(data).encode()

    return apply


def _drop_growthforms(payloads: Payloads, srv: ApiServer) -> None:
    payloads[1][:] = [c for c in payloads[1] if c["name"] != "growthforms"]


_DELETE = object()
_UNKNOWN_UUID = "11111111-2222-4333-8444-555555555555"

# (id, breakage, route fetched, page of the broken row or None, row, column, words in the message)
BAD_SHAPES = [
    ("not-json", _raw("benthicattributes/", b"<html>Bad gateway</html>"), "benthicattributes/", None, None, None, "not JSON"),
    ("no-results", _raw("benthicattributes/", {"count": 0, "next": None}), "benthicattributes/", None, None, "results", "no 'results'"),
    ("results-not-list", _raw("benthicattributes/", {"results": {"a": 1}}), "benthicattributes/", None, None, "results", "not a list"),
    ("page-is-list", _raw("benthicattributes/", [1, 2]), "benthicattributes/", None, None, None, "page object"),
    ("ba-missing-id", _break_ba(3, "id", _DELETE), "benthicattributes/", 1, 3, "id", "has no 'id'"),
    ("ba-missing-name", _break_ba(205, "name", _DELETE), "benthicattributes/", 2, 5, "name", "has no 'name'"),
    ("ba-id-not-uuid", _break_ba(10, "id", "42"), "benthicattributes/", 1, 10, "id", "not a UUID"),
    ("ba-parent-not-uuid", _break_ba(450, "parent", "Hard coral"), "benthicattributes/", 3, 50, "parent", "not a UUID"),
    ("ba-parent-missing", _break_ba(0, "parent", _DELETE), "benthicattributes/", 1, 0, "parent", "has no 'parent'"),
    ("ba-parent-unknown", _break_ba(7, "parent", _UNKNOWN_UUID), "benthicattributes/", 1, 7, "parent", _UNKNOWN_UUID),
    ("lm-missing-id", _break_lm(1, "id", _DELETE), "classification/labelmappings/", 1, 1, "id", "has no 'id'"),
    ("lm-id-not-uuid", _break_lm(2, "id", "not-a-uuid"), "classification/labelmappings/", 1, 2, "id", "not a UUID"),
    ("lm-provider-id-text", _break_lm(600, "provider_id", "82a"), "classification/labelmappings/", 4, 0, "provider_id", "integer string"),
    ("lm-provider-id-missing", _break_lm(4, "provider_id", _DELETE), "classification/labelmappings/", 1, 4, "provider_id", "no 'provider_id'"),
    ("lm-ba-unknown", _break_lm(5, "benthic_attribute_id", _UNKNOWN_UUID), "classification/labelmappings/", 1, 5, "benthic_attribute_id", _UNKNOWN_UUID),
    ("lm-gf-not-uuid", _break_lm(6, "growth_form_id", "Massive"), "classification/labelmappings/", 1, 6, "growth_form_id", "not a UUID"),
    ("choices-no-growthforms", _drop_growthforms, "choices/", None, None, "name", "growthforms"),
    ("choices-not-list", _raw("choices/", {"growthforms": []}), "choices/", None, None, None, "JSON list"),
    (
        "next-loops",
        _raw("benthicattributes/", lambda srv: {"count": 1, "next": srv.base_url + "benthicattributes/?page=1&limit=5000", "results": []}),
        "benthicattributes/",
        None,
        None,
        "next",
        "loops",
    ),
    ("next-not-link", _raw("benthicattributes/", {"next": 3, "results": []}), "benthicattributes/", None, None, "next", "link or null"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "route", "page", "row", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_SHAPES],
)
def test_bad_page_shape_is_a_source_format_error(
    payloads: Payloads,
    breakage: Any,
    route: str,
    page: int | None,
    row: int | None,
    column: str | None,
    words: str,
) -> None:
    srv = ApiServer(*payloads, page_size_cap=200)
    with srv:
        breakage(payloads, srv)
        srv.benthic_attributes, srv.choices, srv.label_mappings = payloads
        with pytest.raises(SourceFormatError) as caught:
            fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
    error = caught.value
    message = str(error)
    assert srv.base_url + route in error.where
    if page is not None and page > 1:
        assert f"page={page}" in error.where
    assert error.row == row
    assert error.column == column
    assert words in message
    assert "Fix: " in message and error.fix


def test_duplicate_provider_id_is_kept_as_two_rows(payloads: Payloads) -> None:
    bas, choices, mappings = payloads
    macroalgae = next(b["id"] for b in bas if b["name"] == "Macroalgae" and b["parent"] is None)
    extra = dict(mappings[0])
    turf = next(m for m in mappings if m["provider_id"] == "82")
    extra.update(
        id="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        provider_id="82",
        provider_label=turf["provider_label"],
        benthic_attribute_id=macroalgae,
        benthic_attribute_name="Macroalgae",
        growth_form_id=None,
        growth_form_name=None,
    )
    mappings.append(extra)
    with ApiServer(bas, choices, mappings, page_size_cap=200) as srv:
        taxonomy = fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
    assert taxonomy.label_mappings.num_rows == 712
    rows = [r for r in _rows(taxonomy.label_mappings) if r["provider_id"] == "82"]
    assert sorted(r["benthic_attribute_name"] for r in rows) == ["Macroalgae", "Turf algae"]


def test_fingerprint_is_stable_and_tracks_content(payloads: Payloads) -> None:
    bas, choices, mappings = payloads
    with ApiServer(bas, choices, mappings, page_size_cap=200) as srv:
        first = fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
        second = fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
        assert first.fingerprint() == second.fingerprint()
        assert len(first.fingerprint()) == 64

        srv.benthic_attributes.reverse()  # order of results does not matter
        srv.label_mappings.reverse()
        assert fetch_taxonomy(srv.base_url, timeout_s=5, retries=0).fingerprint() == first.fingerprint()

        turf = next(b for b in srv.benthic_attributes if b["id"] == TURF_ALGAE_BA)
        turf["name"] = "Turf algae (renamed)"
        renamed = fetch_taxonomy(srv.base_url, timeout_s=5, retries=0)
    assert renamed.fingerprint() != first.fingerprint()


def test_fingerprint_ignores_table_row_order(server: ApiServer) -> None:
    taxonomy = fetch_taxonomy(server.base_url, timeout_s=5, retries=0)
    shuffled = Taxonomy(
        benthic_attributes=taxonomy.benthic_attributes.take(list(reversed(range(738)))),
        growth_forms=taxonomy.growth_forms,
        label_mappings=taxonomy.label_mappings.take(list(reversed(range(711)))),
    )
    assert shuffled.fingerprint() == taxonomy.fingerprint()


# ------------------------------------------------------------------------------------------------
# Local page directories
# ------------------------------------------------------------------------------------------------

ROOT = "0a000000-0000-4000-8000-000000000001"
CHILD = "0a000000-0000-4000-8000-000000000002"
GRANDCHILD = "0a000000-0000-4000-8000-000000000003"
SAND = "0a000000-0000-4000-8000-000000000004"
BRANCHING = "0b000000-0000-4000-8000-000000000001"
MAP_1 = "0c000000-0000-4000-8000-000000000001"
MAP_2 = "0c000000-0000-4000-8000-000000000002"
MAP_3 = "0c000000-0000-4000-8000-000000000003"


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _page_dir(root: Path) -> Path:
    """A hand-written page set: 4 BAs over a 2-page chain, 1 GF, 3 label mappings (one GF)."""
    _write(
        root / "benthicattributes.json",
        {
            "count": 4,
            "next": "benthicattributes.page2.json",
            "previous": None,
            "results": [
                {"id": ROOT, "name": "Hard coral", "parent": None, "status": 90},
                {"id": CHILD, "name": "Acroporidae", "parent": ROOT},
            ],
        },
    )
    _write(
        root / "benthicattributes.page2.json",
        {
            "count": 4,
            "next": None,
            "previous": "benthicattributes.json",
            "results": [
                {"id": GRANDCHILD, "name": "Acropora", "parent": CHILD, "regions": []},
                {"id": SAND, "name": "Sand", "parent": None},
            ],
        },
    )
    _write(
        root / "choices.json",
        [
            {"name": "countries", "data": []},
            {"name": "growthforms", "data": [{"id": BRANCHING, "name": "Branching", "updated_on": None}]},
        ],
    )
    _write(
        root / "classification" / "labelmappings.json",
        {
            "count": 3,
            "next": None,
            "previous": None,
            "results": [
                {
                    "id": MAP_1,
                    "provider": "CoralNet",
                    "provider_id": "1001",
                    "provider_label": "Acropora branching",
                    "benthic_attribute_id": GRANDCHILD,
                    "benthic_attribute_name": "Acropora",
                    "growth_form_id": BRANCHING,
                    "growth_form_name": "Branching",
                },
                {
                    "id": MAP_2,
                    "provider_id": "12",
                    "provider_label": "Sand",
                    "benthic_attribute_id": SAND,
                    "benthic_attribute_name": "Sand",
                    "growth_form_id": None,
                    "growth_form_name": None,
                },
                {
                    "id": MAP_3,
                    "provider_id": "12",
                    "provider_label": "Sand",
                    "benthic_attribute_id": ROOT,
                    "growth_form_id": None,
                },
            ],
        },
    )
    return root


def test_local_directory_with_two_page_chain(tmp_path: Path) -> None:
    taxonomy = fetch_taxonomy(str(_page_dir(tmp_path / "pages")))
    assert _rows(taxonomy.benthic_attributes) == [
        {"id": ROOT, "name": "Hard coral", "parent_id": None},
        {"id": CHILD, "name": "Acroporidae", "parent_id": ROOT},
        {"id": GRANDCHILD, "name": "Acropora", "parent_id": CHILD},
        {"id": SAND, "name": "Sand", "parent_id": None},
    ]
    assert _rows(taxonomy.growth_forms) == [{"id": BRANCHING, "name": "Branching"}]
    assert _rows(taxonomy.label_mappings) == [
        {
            "mapping_id": MAP_2,
            "provider_id": "12",
            "provider_label": "Sand",
            "benthic_attribute_id": SAND,
            "benthic_attribute_name": "Sand",
            "growth_form_id": "",
            "growth_form_name": "",
        },
        {
            "mapping_id": MAP_3,
            "provider_id": "12",
            "provider_label": "Sand",
            "benthic_attribute_id": ROOT,
            "benthic_attribute_name": "Hard coral",  # filled from the BA table when the page omits it
            "growth_form_id": "",
            "growth_form_name": "",
        },
        {
            "mapping_id": MAP_1,
            "provider_id": "1001",
            "provider_label": "Acropora branching",
            "benthic_attribute_id": GRANDCHILD,
            "benthic_attribute_name": "Acropora",
            "growth_form_id": BRANCHING,
            "growth_form_name": "Branching",
        },
    ]
    assert fetch_taxonomy(f"file://{tmp_path / 'pages'}").fingerprint() == taxonomy.fingerprint()


def test_local_directory_matches_http(tmp_path: Path, server: ApiServer, reference: Payloads) -> None:
    bas, choices, mappings = reference
    half = len(bas) // 2
    _write(tmp_path / "benthicattributes.json", {"count": len(bas), "next": "benthicattributes.page2.json", "previous": None, "results": bas[:half]})  # fmt: skip
    _write(tmp_path / "benthicattributes.page2.json", {"count": len(bas), "next": None, "previous": "benthicattributes.json", "results": bas[half:]})  # fmt: skip
    _write(tmp_path / "choices.json", choices)
    _write(tmp_path / "classification" / "labelmappings.json", {"count": len(mappings), "next": None, "previous": None, "results": mappings})  # fmt: skip
    local = fetch_taxonomy(str(tmp_path))
    remote = fetch_taxonomy(server.base_url, timeout_s=5, retries=0)
    assert local.fingerprint() == remote.fingerprint()
    assert local.label_mappings.equals(remote.label_mappings)


def test_local_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceUnreachableError) as caught:
        fetch_taxonomy(str(missing))
    assert str(missing) in str(caught.value) and "Fix: " in str(caught.value)


def test_local_missing_file(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    (pages / "choices.json").unlink()
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert str(pages / "choices.json") in str(caught.value)


def test_local_missing_next_page(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    (pages / "benthicattributes.page2.json").unlink()
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert "benthicattributes.page2.json" in str(caught.value)


def test_local_next_loop(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    page2 = json.loads((pages / "benthicattributes.page2.json").read_text())
    page2["next"] = "benthicattributes.json"
    _write(pages / "benthicattributes.page2.json", page2)
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert caught.value.column == "next" and "loops" in str(caught.value)
    assert str(pages / "benthicattributes.json") in str(caught.value)


def test_local_not_json_names_the_file(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    (pages / "classification" / "labelmappings.json").write_text("{oops")
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert str(pages / "classification" / "labelmappings.json") in str(caught.value)
    assert "not JSON" in str(caught.value)


def test_local_next_outside_directory(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    (tmp_path / "outside.json").write_text(json.dumps({"next": None, "results": []}))
    page1 = json.loads((pages / "benthicattributes.json").read_text())
    page1["next"] = "../outside.json"
    _write(pages / "benthicattributes.json", page1)
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert "outside the page directory" in str(caught.value)


def test_local_parent_cycle(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    page1 = json.loads((pages / "benthicattributes.json").read_text())
    page1["results"][0]["parent"] = GRANDCHILD  # Hard coral -> Acropora -> Acroporidae -> Hard coral
    _write(pages / "benthicattributes.json", page1)
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert "cycle" in str(caught.value) and caught.value.column == "parent"


def test_local_duplicate_ba_id(tmp_path: Path) -> None:
    pages = _page_dir(tmp_path / "pages")
    page2 = json.loads((pages / "benthicattributes.page2.json").read_text())
    page2["results"].append({"id": ROOT, "name": "Hard coral again", "parent": None})
    _write(pages / "benthicattributes.page2.json", page2)
    with pytest.raises(SourceFormatError) as caught:
        fetch_taxonomy(str(pages))
    assert "appears twice" in str(caught.value)
    assert str(pages / "benthicattributes.page2.json") in caught.value.where and caught.value.row == 2
