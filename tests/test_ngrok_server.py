"""The ngrok API stand-in itself: shapes (checked against the official spec), request
validation and error codes, paging, the CEL filter, endpoints and tunnels, the request log,
TLS and the command-line entry point. Actions, faults, limits and the official client are
in test_ngrok_server_behaviour.py."""

import itertools
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest

from bot.demo.cel import CelError, compile_filter, tokenize
from bot.demo.fleet import LATEST_VERSION
from tests.servers.ngrok_api_fixture import check_error_shape, checked_client

REPO = Path(__file__).resolve().parents[1]
TS_ID = re.compile(r"ts_[0-9A-Za-z]{27}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def api(ngrok_api, ngrok_spec):
    with checked_client(ngrok_api, ngrok_spec) as client:
        yield client


def error_of(response, status, code):
    """Asserts an error response and returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    check_error_shape(body, status, response.headers["ngrok-operation-id"])
    assert body.get("error_code") == code
    return body


def all_pages(client, first_url, params=None):
    """Follows next_page_uri exactly as given; returns the pages' bodies."""
    pages = [client.get(first_url, params=params).json()]
    while pages[-1]["next_page_uri"] is not None:
        pages.append(client.get(pages[-1]["next_page_uri"]).json())
    return pages


# ---- shapes ------------------------------------------------------------------------------


def test_list_and_get_have_the_documented_shape(ngrok_api, api):
    response = api.get("/tunnel_sessions")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["ngrok-operation-id"].startswith("op_")
    body = response.json()
    assert body["uri"] == f"{ngrok_api.base_url}/tunnel_sessions"
    assert body["next_page_uri"] is None
    sessions = body["tunnel_sessions"]
    assert [s["id"] for s in sessions] == ngrok_api.session_ids()
    assert len(sessions) == 30
    for session in sessions:
        assert TS_ID.fullmatch(session["id"])
        assert session["uri"] == f"{ngrok_api.base_url}/tunnel_sessions/{session['id']}"
        assert RFC3339.fullmatch(session["started_at"])
        assert session["transport"] in ("ngrok/2", "ssh")
        assert re.fullmatch(r"(ssh)?cr_[0-9A-Za-z]{27}", session["credential"]["id"])
        assert session["credential"]["uri"].startswith(ngrok_api.base_url + "/")
        assert session["region"] and session["ip"]
        assert "" not in session.values()  # empty fields are omitted, never ""
        single = api.get(f"/tunnel_sessions/{session['id']}")
        assert single.json() == session == ngrok_api.session(session["id"])


def test_fleet_is_varied_like_a_real_account(ngrok_api_factory):
    server = ngrok_api_factory(sessions=300)
    sessions = [server.session(i) for i in server.session_ids()]
    now = datetime.now(UTC)
    oses = [s.get("os") for s in sessions]
    assert oses.count("linux") > len(sessions) / 2
    assert {"windows", "darwin"} <= set(oses)
    assert len({s["region"] for s in sessions}) >= 6
    ssh = [s for s in sessions if s["transport"] == "ssh"]
    assert ssh and all(s["credential"]["id"].startswith("sshcr_") for s in ssh)
    versions = {s.get("agent_version") for s in sessions if s["transport"] != "ssh"}
    assert LATEST_VERSION in versions and len(versions) >= 5
    starts = [datetime.fromisoformat(s["started_at"].replace("Z", "+00:00")) for s in sessions]
    assert all(now - timedelta(days=61) < t <= now for t in starts)
    assert max(starts) - min(starts) > timedelta(days=30)
    metadata = [s.get("metadata") for s in sessions]
    assert any(m is None for m in metadata) and all(m != "" for m in metadata)
    present = [m for m in metadata if m is not None]
    assert sum(len(m) == 4096 for m in present) >= 2
    assert max(len(m) for m in present) == 4096
    for needle in ("<!channel>", "&", "<@U123>", "🔥"):
        assert any(needle in m for m in present), needle
    as_json = [json.loads(m) for m in present if m.startswith('{"env"')]
    assert as_json and all({"env", "team", "host"} <= set(j) for j in as_json)
    assert any(set(s) - set(SESSION_KEYS) for s in sessions)  # an unknown extra field
    assert len({s["credential"]["id"] for s in sessions}) < len(sessions)  # shared authtokens


SESSION_KEYS = ("agent_version", "credential", "id", "ip", "metadata", "os", "region")
SESSION_KEYS += ("started_at", "transport", "uri")


def test_same_seed_gives_the_same_fleet(ngrok_api_factory):
    anchor = datetime(2025, 9, 22, tzinfo=UTC).timestamp()
    servers = [ngrok_api_factory(sessions=40, seed=s, anchor_time=anchor) for s in (3, 3, 4)]

    def fleet(server):
        text = json.dumps([server.session(i) for i in server.session_ids()])
        return text.replace(server.base_url, "BASE")

    assert fleet(servers[0]) == fleet(servers[1])
    assert fleet(servers[0]) != fleet(servers[2])


def test_ids_sort_by_start_time(ngrok_api_factory):
    server = ngrok_api_factory(sessions=200)
    starts = [server.session(i)["started_at"] for i in server.session_ids()]
    assert starts == sorted(starts, reverse=True)
    newest = server.add_session(region="eu")
    assert server.session_ids()[0] == newest["id"] > server.session_ids()[1]


def test_add_session_overrides_and_removes_fields(ngrok_api, api):
    added = ngrok_api.add_session(
        os="windows", metadata=None, credential="cr_2abcdefghijklmnopqrstuvwxyz", endpoint_count=2
    )
    served = api.get(f"/tunnel_sessions/{added['id']}").json()
    assert served == added
    assert served["os"] == "windows" and "metadata" not in served
    assert served["credential"] == {
        "id": "cr_2abcdefghijklmnopqrstuvwxyz",
        "uri": f"{ngrok_api.base_url}/credentials/cr_2abcdefghijklmnopqrstuvwxyz",
    }
    endpoints = api.get("/endpoints").json()["endpoints"]
    assert sum(e.get("tunnel_session", {}).get("id") == added["id"] for e in endpoints) == 2


def test_spec_checks_are_live(ngrok_api, ngrok_spec):
    """The validator the other tests rely on does reject wrong shapes."""
    served = ngrok_api.session(ngrok_api.session_ids()[0])
    ngrok_spec.validate("TunnelSession", served)
    with pytest.raises(jsonschema.ValidationError):
        ngrok_spec.validate("TunnelSession", {**served, "started_at": 1758565200})
    with pytest.raises(jsonschema.ValidationError):
        ngrok_spec.validate("TunnelSessionList", {"tunnel_sessions": [{"credential": "cr_1"}]})
    ngrok_spec.validate("TunnelSessionList", {"tunnel_sessions": [], "next_page_uri": None})
    with pytest.raises(AssertionError):
        check_error_shape({"status_code": 400, "msg": "x", "details": {}}, 400)


# ---- endpoints and tunnels ----------------------------------------------------------------


def test_endpoints_and_tunnels_belong_to_online_sessions(ngrok_api, api):
    online = set(ngrok_api.session_ids())
    endpoints = [e for p in all_pages(api, "/endpoints", {"limit": "7"}) for e in p["endpoints"]]
    tunnels = [t for p in all_pages(api, "/tunnels", {"limit": "7"}) for t in p["tunnels"]]
    agent = [e for e in endpoints if e["type"] == "ephemeral"]
    cloud = [e for e in endpoints if e["type"] == "cloud"]
    assert agent and cloud and len(agent) + len(cloud) == len(endpoints)
    assert all("tunnel_session" not in e and e["uri"].endswith(e["id"]) for e in cloud)
    per_session = {}
    for endpoint in agent:
        session_id = endpoint["tunnel_session"]["id"]
        assert session_id in online
        per_session[session_id] = per_session.get(session_id, 0) + 1
        assert endpoint["id"].startswith("ep_") and endpoint["url"] == endpoint["public_url"]
        assert endpoint["tunnel"]["id"] == "tn_" + endpoint["id"][3:]
        assert api.get(f"/endpoints/{endpoint['id']}").json() == endpoint
    assert max(per_session.values()) <= 3 and len(per_session) < len(online)
    assert sorted(t["id"] for t in tunnels) == sorted(e["tunnel"]["id"] for e in agent)
    for tunnel in tunnels:
        endpoint = next(e for e in agent if e["id"] == tunnel["endpoint"]["id"])
        assert tunnel["tunnel_session"] == endpoint["tunnel_session"]
        assert tunnel["public_url"] == endpoint["url"]
        assert tunnel["forwards_to"] == endpoint["upstream_url"]
        assert api.get(f"/tunnels/{tunnel['id']}").json() == tunnel


def test_endpoint_type_knob_and_filters(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=20, endpoint_type="agent")
    with checked_client(server, ngrok_spec) as api:
        everything = api.get("/endpoints").json()["endpoints"]
        agent = api.get("/endpoints", params={"filter": 'obj.type == "agent"'}).json()
        assert agent["endpoints"] == [e for e in everything if e["type"] == "agent"]
        assert agent["endpoints"] and len(agent["endpoints"]) < len(everything)
        some = [everything[0]["id"], everything[-1]["id"]]
        by_ids = api.get("/endpoints", params={"ids": ",".join(some)}).json()["endpoints"]
        assert [e["id"] for e in by_ids] == some
        error_of(api.get("/tunnels", params={"filter": 'obj.id == "x"'}), 400, "ERR_NGROK_231")
        error_of(api.get("/endpoints/ts_1"), 400, "ERR_NGROK_227")
        error_of(api.get("/tunnels", params={"before_id": "ep_1"}), 400, "ERR_NGROK_223")
        missing = api.get("/tunnels/tn_2abcdefghijklmnopqrstuvwxyz")
        assert missing.status_code == 404 and "error_code" not in missing.json()


# ---- request validation and error codes ------------------------------------------------------


def test_authentication_errors(ngrok_api):
    url = f"{ngrok_api.base_url}/tunnel_sessions"
    body = error_of(httpx.get(url, headers={"Ngrok-Version": "2"}), 401, "ERR_NGROK_200")
    assert "Authorization" in body["msg"]
    wrong = {"Authorization": "Bearer not-the-key-42", "Ngrok-Version": "2"}
    body = error_of(httpx.get(url, headers=wrong), 401, "ERR_NGROK_203")
    assert body["msg"].endswith("Your credential: not-the-key-42")  # echoed, like the real API
    basic = {"Authorization": "Basic abc", "Ngrok-Version": "2"}
    error_of(httpx.get(url, headers=basic), 401, "ERR_NGROK_201")


def test_version_header_errors(ngrok_api, ngrok_spec):
    url = f"{ngrok_api.base_url}/tunnel_sessions"
    auth = {"Authorization": ngrok_api.client_headers()["Authorization"]}
    body = error_of(httpx.get(url, headers=auth), 400, "ERR_NGROK_218")
    assert "Ngrok-Version" in body["msg"]
    error_of(httpx.get(url, headers={**auth, "Ngrok-Version": "3"}), 400, "ERR_NGROK_217")
    ok = httpx.get(url, headers={**auth, "ngrok-version": "2"})
    assert ok.status_code == 200  # header names are case-insensitive
    ngrok_spec.validate("TunnelSessionList", ok.json())


def test_unknown_session_gives_the_exact_documented_404(ngrok_api, api):
    for response in (
        api.get("/tunnel_sessions/ts_2abcdefghijklmnopqrstuvwxyz"),
        api.post("/tunnel_sessions/ts_2abcdefghijklmnopqrstuvwxyz/stop", json={}),
    ):
        body = error_of(response, 404, None)
        assert set(body) == {"details", "msg", "status_code"}
        assert body["msg"] == "Resource not found" and set(body["details"]) == {"operation_id"}


def test_request_validation_codes(ngrok_api, api):
    sid = ngrok_api.session_ids()[0]
    cases = [
        (api.request("GET", "/tunnel_sessions", content=b"{}"), 400, "ERR_NGROK_211"),
        (api.get("/tunnel_sessions", params={"limt": "5"}), 400, "ERR_NGROK_231"),
        (api.get(f"/tunnel_sessions/{sid}", params={"limit": "5"}), 400, "ERR_NGROK_231"),
        (api.get("/tunnel_sessions?limit=5&limit=6"), 400, "ERR_NGROK_232"),
        (api.get("/tunnel_sessions/cr_2abcdefghijklmnopqrstuvwxyz"), 400, "ERR_NGROK_227"),
        (api.post("/tunnel_sessions/tn_1/restart", json={}), 400, "ERR_NGROK_227"),
        (api.post(f"/tunnel_sessions/{sid}/stop"), 400, "ERR_NGROK_216"),
        (
            api.post(
                f"/tunnel_sessions/{sid}/stop",
                content=b"{}",
                headers={"Content-Type": "text/plain"},
            ),
            415,
            "ERR_NGROK_210",
        ),
    ]
    for raw in (b"", b"not json", b'"' + sid.encode() + b'"', b"[]", b"\xff"):
        response = api.post(
            f"/tunnel_sessions/{sid}/stop",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        cases.append((response, 400, "ERR_NGROK_213"))
    for limit in ("0", "101", "abc", "-1", "", "²", "1.5"):
        cases.append((api.get("/tunnel_sessions", params={"limit": limit}), 400, "ERR_NGROK_233"))
    for before_id in ("nope", "ts_short", "ep_2abcdefghijklmnopqrstuvwxyz"):
        response = api.get("/tunnel_sessions", params={"before_id": before_id})
        cases.append((response, 400, "ERR_NGROK_223"))
    for response, status, code in cases:
        error_of(response, status, code)
    assert ngrok_api.session(sid) is not None  # none of those stopped it
    for path in ("/agents", "/tunnel_sessions/", f"/tunnel_sessions/{sid}/reboot"):
        body = error_of(api.get(path), 404, None)
        assert body["details"]["path"] == path


# ---- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 37, 100])
def test_paging_returns_every_session_once_newest_first(limit, ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=1003, rate_limit=None)
    with checked_client(server, ngrok_spec) as api:
        pages = all_pages(api, "/tunnel_sessions", {"limit": str(limit)})
    ids = [s["id"] for p in pages for s in p["tunnel_sessions"]]
    assert ids == server.session_ids() and len(set(ids)) == 1003
    assert ids == sorted(ids, reverse=True)
    assert all(len(p["tunnel_sessions"]) == limit for p in pages[:-1])
    assert 1 <= len(pages[-1]["tunnel_sessions"]) <= limit
    for page, following in itertools.pairwise(pages):
        link = urlsplit(page["next_page_uri"])
        assert (
            f"{link.scheme}://{link.netloc}" == server.base_url and link.path == "/tunnel_sessions"
        )
        query = parse_qs(link.query)
        assert query == {"before_id": [page["tunnel_sessions"][-1]["id"]], "limit": [str(limit)]}
        assert following["tunnel_sessions"][0]["id"] < page["tunnel_sessions"][-1]["id"]


def test_default_limit_is_100_and_next_page_carries_it(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=150)
    with checked_client(server, ngrok_spec) as api:
        first = api.get("/tunnel_sessions").json()
        assert len(first["tunnel_sessions"]) == 100
        assert parse_qs(urlsplit(first["next_page_uri"]).query)["limit"] == ["100"]
        before = api.get("/tunnel_sessions", params={"before_id": server.session_ids()[10]}).json()
        assert [s["id"] for s in before["tunnel_sessions"]] == server.session_ids()[11:111]


def test_filter_applies_before_paging_and_next_page_drops_it(ngrok_api_factory, ngrok_spec):
    expression = 'obj.region in ["us", "eu"]'
    for keeps in (False, True):
        server = ngrok_api_factory(sessions=120, next_page_keeps_filter=keeps)
        expected = [i for i in server.session_ids() if server.session(i)["region"] in ("us", "eu")]
        with checked_client(server, ngrok_spec) as api:
            first = api.get("/tunnel_sessions", params={"filter": expression, "limit": "10"}).json()
            assert [s["id"] for s in first["tunnel_sessions"]] == expected[:10]
            assert ("filter" in parse_qs(urlsplit(first["next_page_uri"]).query)) is keeps
            ids, url = [], httpx.URL("/tunnel_sessions", params={"limit": "10"})
            while url:  # a careful client merges the filter back into every next page
                body = api.get(httpx.URL(url).copy_merge_params({"filter": expression})).json()
                ids += [s["id"] for s in body["tunnel_sessions"]]
                url = body["next_page_uri"]
        assert ids == expected


# ---- CEL filter ----------------------------------------------------------------------------------


@pytest.fixture
def cel_server(ngrok_api_factory):
    server = ngrok_api_factory(sessions=80, rate_limit=None)
    server.add_session(metadata='say "hi" \\ bye', region="jp")
    server.add_session(metadata='" || obj.id != "', region="jp")
    return server


def filtered(server, spec, expression):
    with checked_client(server, spec) as api:
        response = api.get("/tunnel_sessions", params={"filter": expression})
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["tunnel_sessions"]]


def expect(server, predicate):
    return [i for i in server.session_ids() if predicate(server.session(i))]


def test_cel_operators(cel_server, ngrok_spec):
    srv, spec = cel_server, ngrok_spec
    first = srv.session(srv.session_ids()[5])
    cutoff = datetime.now(UTC) - timedelta(days=20)

    def started(s):
        return datetime.fromisoformat(s["started_at"].replace("Z", "+00:00"))

    cases = {
        'obj.os == "windows"': lambda s: s.get("os") == "windows",
        'obj.region != "us"': lambda s: s["region"] != "us",
        'obj.region in ["eu", "ap", "jp"]': lambda s: s["region"] in ("eu", "ap", "jp"),
        "obj.region in []": lambda s: False,
        'obj.agent_version < "3.23.0"': lambda s: s.get("agent_version", "") < "3.23.0",
        'obj.agent_version > "3.23.0"': lambda s: s.get("agent_version", "") > "3.23.0",
        f'obj.id == "{first["id"]}"': lambda s: s["id"] == first["id"],
        f'obj.ip == "{first["ip"]}"': lambda s: s["ip"] == first["ip"],
        f'obj.credential.id == "{first["credential"]["id"]}"': lambda s: (
            s["credential"] == first["credential"]
        ),
        'obj.metadata == ""': lambda s: "metadata" not in s,
        f'obj.started_at > timestamp("{cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")}")': lambda s: (
            started(s) > cutoff
        ),
        f'obj.started_at < timestamp("{cutoff.isoformat()}")': lambda s: started(s) < cutoff,
        'obj.started_at > "2000"': lambda s: True,  # a plain string compares as a string
    }
    for expression, predicate in cases.items():
        wanted = expect(srv, predicate)
        assert filtered(srv, spec, expression) == wanted, expression
    assert expect(srv, lambda s: s.get("os") == "windows")  # the cases are not all empty


def test_cel_precedence_and_parentheses(cel_server, ngrok_spec):
    srv = cel_server
    a, b, c = 'obj.os == "darwin"', 'obj.region == "eu"', 'obj.os == "windows"'
    loose = expect(
        srv, lambda s: s.get("os") == "darwin" or (s["region"] == "eu" and s.get("os") == "windows")
    )
    tight = expect(srv, lambda s: (s.get("os") in ("darwin", "windows")) and s["region"] == "eu")
    assert loose != tight
    assert filtered(srv, ngrok_spec, f"{a} || {b} && {c}") == loose
    assert filtered(srv, ngrok_spec, f"({a} || {c}) && {b}") == tight
    assert filtered(srv, ngrok_spec, f"(({a}))") == expect(srv, lambda s: s.get("os") == "darwin")


def test_cel_string_escapes_and_injection(cel_server, ngrok_spec):
    srv = cel_server
    quoted = expect(srv, lambda s: s.get("metadata") == 'say "hi" \\ bye')
    assert len(quoted) == 1
    assert filtered(srv, ngrok_spec, r'obj.metadata == "say \"hi\" \\ bye"') == quoted
    # The classic injection stays one literal: it matches only the session whose metadata
    # is literally that text, and nothing when no such session exists.
    injected = r'obj.metadata == "\" || obj.id != \""'
    assert filtered(srv, ngrok_spec, injected) == expect(
        srv, lambda s: s.get("metadata") == '" || obj.id != "'
    )
    assert len(filtered(srv, ngrok_spec, injected)) == 1
    assert filtered(srv, ngrok_spec, r'obj.region == "\" || obj.id != \""') == []


@pytest.mark.parametrize(
    "expression",
    [
        'obj.region = "us"',
        "obj.region == 'us'",
        'obj.hostname == "x"',
        'obj.credential == "cr_1"',
        "obj.region ==",
        'obj.region.startsWith("u")',
        'obj.region.contains("u")',
        '(obj.region == "us"',
        'obj.region == "us")',
        'obj.region == "us" obj.os == "linux"',
        'region == "us"',
        '"us" == obj.region',
        'obj.region >= "us"',
        '!(obj.region == "us")',
        'obj.region == "unterminated',
        r'obj.region == "bad \q escape"',
        'obj.region == timestamp("2024-01-01T00:00:00Z")',
        'obj.started_at > timestamp("yesterday")',
        'obj.region matches "u.*"',
        'obj.region == "us" &&',
        'obj.region in ["us",]',
        "obj.started_at > timestamp(time.now)",
        'obj.region == "us" & obj.os == "linux"',
    ],
)
def test_invalid_cel_expressions_are_rejected(expression, ngrok_api, api):
    body = error_of(
        api.get("/tunnel_sessions", params={"filter": expression}), 400, "invalid_cel_expression"
    )
    assert body["msg"].startswith("invalid CEL expression")


def test_cel_tokenizer_keeps_quoted_operators_inside_one_literal():
    tokens = tokenize(r'obj.metadata == "a \" && b" || obj.id != "x"')
    kinds = ["name", "symbol", "name", "symbol", "string", "symbol"]
    assert [t.kind for t in tokens] == [*kinds, *kinds[:-1], "end"]
    assert tokens[4].text == 'a " && b'
    with pytest.raises(CelError):
        compile_filter('obj.metadata == "x"', fields=("id",))


# ---- request log, TLS, entry point -------------------------------------------------------


def test_request_log_records_everything(ngrok_api, api):
    sid = ngrok_api.session_ids()[0]
    ngrok_api.clear_log()
    api.get("/tunnel_sessions", params={"limit": "2", "filter": 'obj.os == "linux"'})
    httpx.get(f"{ngrok_api.base_url}/tunnel_sessions")  # no credentials: rejected, still logged
    api.post(f"/tunnel_sessions/{sid}/stop", json={"id": sid})
    ngrok_api.inject_fault("reset", path_contains="/endpoints")
    with pytest.raises(httpx.TransportError):
        api.get("/endpoints")
    log = ngrok_api.log()
    assert [(r.method, r.path, r.status) for r in log] == [
        ("GET", "/tunnel_sessions", 200),
        ("GET", "/tunnel_sessions", 401),
        ("POST", f"/tunnel_sessions/{sid}/stop", 204),
        ("GET", "/endpoints", 0),
    ]
    assert log[0].query == {"limit": ["2"], "filter": ['obj.os == "linux"']}
    assert log[0].headers["ngrok-version"] == "2" and "authorization" not in log[1].headers
    assert json.loads(log[2].body) == {"id": sid}
    assert log[0].body == b"" and log[0].at <= log[1].at <= log[2].at <= log[3].at
    assert [r.path for r in ngrok_api.requests_matching("POST")] == [f"/tunnel_sessions/{sid}/stop"]
    assert len(ngrok_api.requests_matching(path_prefix="/tunnel_sessions")) == 3
    assert len(ngrok_api.requests_matching("get", "/tunnel_sessions")) == 2
    log.clear()  # a copy: the server's log is untouched
    assert len(ngrok_api.log()) == 4
    ngrok_api.clear_log()
    assert ngrok_api.log() == []


def test_tls_with_the_ca_bundle(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=5, tls=True)
    assert server.base_url.startswith("https://127.0.0.1:")
    bundle = Path(server.ca_bundle_path)
    assert "BEGIN CERTIFICATE" in bundle.read_text()
    with checked_client(server, ngrok_spec) as api:
        assert len(api.get("/tunnel_sessions").json()["tunnel_sessions"]) == 5
        first = api.get("/tunnel_sessions", params={"limit": "2"}).json()
        assert first["next_page_uri"].startswith(server.base_url + "/tunnel_sessions?")
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/tunnel_sessions", headers=server.client_headers())
    server.stop()
    assert not bundle.exists()


def test_module_entry_point_serves_until_terminated(ngrok_spec):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.servers.ngrok_api",
            "--port",
            "0",
            "--sessions",
            "7",
            "--seed",
            "3",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        headers = {"Authorization": "Bearer ngrok-test-api-key-0123456789", "Ngrok-Version": "2"}
        body = httpx.get(f"{base_url}/tunnel_sessions", headers=headers, timeout=10).json()
        ngrok_spec.validate("TunnelSessionList", body)
        assert len(body["tunnel_sessions"]) == 7
        assert body["uri"] == f"{base_url}/tunnel_sessions"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
