"""NgrokClient against the local ngrok API stand-in over real HTTP: every endpoint, paging,
filters, each error class, TLS and redaction."""

import logging
import time

import httpx
import pytest

from bot.ngrok.cel import SessionFilter, cel_string
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import (
    AgentFailed,
    BadRequest,
    ConnectFailed,
    NotFound,
    RateLimited,
    Unauthorized,
    Unsupported,
)
from bot.ngrok.pacing import Backoff, Pacer

HOSTILE = 'x" || obj.id != "'
UNKNOWN_ID = "ts_" + "0" * 27


class CountingTransport(httpx.HTTPTransport):
    """A real transport that records what the client actually sent (no server-side races)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent = []

    def handle_request(self, request):
        self.sent.append((request.method, request.url))
        return super().handle_request(request)

    def paths(self, method=None):
        return [url.path for m, url in self.sent if method in (None, m)]


def settled_log(server, count, timeout=10.0):
    """The stand-in logs a request after answering it, so wait until `count` entries are in."""
    deadline = time.monotonic() + timeout
    while len(server.log()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.log()


def client_for(server, api_key=None, **kwargs):
    kwargs.setdefault("pacer", Pacer(max_requests=10_000, per_seconds=1.0))
    kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.05))
    if server.ca_bundle_path and "verify" not in kwargs:
        kwargs["verify"] = server.ca_bundle_path
    return NgrokClient(api_key or server._api_key, base_url=server.base_url, **kwargs)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_list_and_get_match_the_server(ngrok_api):
    with client_for(ngrok_api) as client:
        first = client.list_sessions_page(limit=10)
        got = client.get_session(first.sessions[3].id)
    ids = ngrok_api.session_ids()
    assert [s.id for s in first.sessions] == ids[:10]
    assert first.next_page_uri.startswith(ngrok_api.base_url + "/tunnel_sessions?")
    raw = ngrok_api.session(ids[3])
    assert got == first.sessions[3]
    assert (got.id, got.region, got.ip, got.transport) == (
        raw["id"],
        raw["region"],
        raw["ip"],
        raw["transport"],
    )
    assert got.metadata == raw.get("metadata", "")
    assert got.credential.id == raw["credential"]["id"]
    assert got.started_at is not None
    log = settled_log(ngrok_api, 2)
    assert len(log) == 2
    for request in log:
        assert request.method == "GET"
        assert request.body == b""
        assert request.headers["ngrok-version"] == "2"
        assert request.headers["accept"] == "application/json"
        assert request.headers["user-agent"].startswith("ngrok-ops")
        assert request.status == 200


def test_actions_post_empty_json_and_change_the_fleet(ngrok_api):
    stopped = ngrok_api.add_session(os="linux", metadata="stop-me")
    restarted = ngrok_api.add_session(os="linux", metadata="restart-me")
    updated = ngrok_api.add_session(os="linux", agent_version="3.20.0", metadata="update-me")
    transport = CountingTransport()
    with client_for(ngrok_api, transport=transport) as client:
        client.act("stop", stopped["id"])
        client.act("restart", restarted["id"])
        client.act("update", updated["id"])
        with pytest.raises(NotFound):
            client.get_session(stopped["id"])
        with pytest.raises(AgentFailed) as already:
            client.act("update", updated["id"])
    assert already.value.error_code == "ERR_NGROK_809"
    assert len(transport.paths("POST")) == 4
    posts = [r for r in settled_log(ngrok_api, 5) if r.method == "POST"]
    assert [(p.path, p.status) for p in posts[:3]] == [
        (f"/tunnel_sessions/{stopped['id']}/stop", 204),
        (f"/tunnel_sessions/{restarted['id']}/restart", 204),
        (f"/tunnel_sessions/{updated['id']}/update", 204),
    ]
    for post in posts:
        assert post.body == b"{}"
        assert post.headers["content-type"] == "application/json"
    assert ngrok_api.session(stopped["id"]) is None
    # A restart brings the agent back under a NEW id with the same metadata.
    back = wait_for(
        lambda: [
            sid
            for sid in ngrok_api.session_ids()
            if (ngrok_api.session(sid) or {}).get("metadata") == "restart-me"
        ]
    )
    assert back != [restarted["id"]]
    assert ngrok_api.session(restarted["id"]) is None


def test_session_endpoints_groups_by_session(ngrok_api):
    two = ngrok_api.add_session(endpoint_count=2)
    none = ngrok_api.add_session(endpoint_count=0)
    with client_for(ngrok_api) as client:
        some = client.session_endpoints([two["id"], none["id"]])
        everything = client.session_endpoints()
    assert set(some) == {two["id"], none["id"]}
    assert some[none["id"]] == []
    assert len(some[two["id"]]) == 2
    for endpoint in some[two["id"]]:
        assert endpoint.tunnel_session.id == two["id"]
        assert endpoint.url
        assert endpoint.type == "ephemeral"
    assert everything[two["id"]] == some[two["id"]]
    assert set(everything) <= set(ngrok_api.session_ids())
    assert all(e.type != "cloud" for eps in everything.values() for e in eps)


def test_paging_1200_sessions_yields_each_once_newest_first(ngrok_api_factory):
    server = ngrok_api_factory(sessions=1200)
    transport = CountingTransport()
    with client_for(server, transport=transport) as client:
        ids = [s.id for s in client.iter_sessions()]
        grouped = client.session_endpoints()
    assert len(ids) == 1200
    assert len(set(ids)) == 1200
    assert ids == server.session_ids()
    pages = [url for _, url in transport.sent if url.path == "/tunnel_sessions"]
    assert len(pages) == 12
    assert all(url.params["limit"] == "100" for url in pages)
    assert sum(len(eps) for eps in grouped.values()) > 100  # more than one /endpoints page
    assert transport.paths().count("/endpoints") > 1
    assert set(grouped) <= set(ids)


def matching(server, predicate):
    return [sid for sid in server.session_ids() if predicate(server.session(sid))]


@pytest.mark.parametrize("keeps_filter", [False, True])
def test_filters_select_the_right_subset_across_pages(ngrok_api_factory, keeps_filter):
    server = ngrok_api_factory(sessions=150, next_page_keeps_filter=keeps_filter)
    flt = SessionFilter(regions=("us", "eu"), oses=("linux",))
    expected = matching(
        server, lambda s: s.get("region") in ("us", "eu") and s.get("os") == "linux"
    )
    assert len(expected) > 12
    transport = CountingTransport()
    with client_for(server, transport=transport) as client:
        got = [s.id for s in client.iter_sessions(filter=flt.to_cel(), page_size=5)]
    assert got == expected
    gets = settled_log(server, len(transport.sent))
    assert all(g.status == 200 for g in gets)
    assert len(gets) > 2
    assert all(g.query["filter"] == [flt.to_cel()] for g in gets)


def test_raw_cel_on_time_credential_and_metadata(ngrok_api_factory):
    server = ngrok_api_factory(sessions=80)
    sessions = [server.session(sid) for sid in server.session_ids()]
    middle = sessions[40]["started_at"]
    stamp = f"timestamp({cel_string(middle)})"
    cred = sessions[5]["credential"]["id"]
    meta = next(s["metadata"] for s in sessions if '"' in s.get("metadata", ""))
    cases = [
        (f"obj.started_at < {stamp}", lambda s: s["started_at"] < middle),
        (f"obj.started_at > {stamp}", lambda s: s["started_at"] > middle),
        (f"obj.credential.id == {cel_string(cred)}", lambda s: s["credential"]["id"] == cred),
        (f"obj.metadata == {cel_string(meta)}", lambda s: s.get("metadata") == meta),
    ]
    with client_for(server) as client:
        for cel, predicate in cases:
            expected = matching(server, predicate)
            assert expected, cel
            assert [s.id for s in client.iter_sessions(filter=cel)] == expected


@pytest.mark.parametrize(
    "flt",
    [
        SessionFilter(agent_versions=(HOSTILE,)),
        SessionFilter(regions=(HOSTILE, 'us"]  || true || obj.region in ["')),
        SessionFilter(ips=("\\",), oses=('"',)),
    ],
)
def test_hostile_filter_values_match_nothing(ngrok_api, flt):
    with client_for(ngrok_api) as client:
        assert list(client.iter_sessions(filter=flt.to_cel())) == []
    (request,) = settled_log(ngrok_api, 1)
    assert request.status == 200


def test_invalid_filter_and_limit_are_bad_requests(ngrok_api):
    transport = CountingTransport()
    with client_for(ngrok_api, transport=transport) as client:
        with pytest.raises(BadRequest) as cel:
            client.list_sessions_page(filter="obj.nope == 1")
        with pytest.raises(BadRequest) as limit:
            client.list_sessions_page(limit=500)
    assert cel.value.error_code == "invalid_cel_expression"
    assert cel.value.status == 400
    assert limit.value.error_code == "ERR_NGROK_233"
    assert len(transport.sent) == 2  # not retried


def test_not_found_end_to_end(ngrok_api):
    with client_for(ngrok_api) as client:
        with pytest.raises(NotFound) as got:
            client.get_session(UNKNOWN_ID)
        with pytest.raises(NotFound) as posted:
            client.act("restart", UNKNOWN_ID)
    for caught in (got, posted):
        assert caught.value.status == 404
        assert caught.value.error_code is None
        assert caught.value.operation_id.startswith("op_")
        assert caught.value.may_have_been_applied is False


def test_unsupported_end_to_end(ngrok_api):
    windows = ngrok_api.add_session(os="windows")
    ssh = ngrok_api.add_session(transport="ssh", os=None, agent_version=None)
    managed_off = ngrok_api.add_session(os="linux")
    ngrok_api.set_remote_management(managed_off["id"], False)
    transport = CountingTransport()
    with client_for(ngrok_api, transport=transport) as client:
        cases = [
            (lambda: client.act("restart", windows["id"]), "ERR_NGROK_804"),
            (lambda: client.act("update", ssh["id"]), "ERR_NGROK_1121"),
            (lambda: client.act("restart", ssh["id"]), "ERR_NGROK_1122"),
            (lambda: client.act("stop", managed_off["id"]), "ERR_NGROK_805"),
        ]
        for call, code in cases:
            with pytest.raises(Unsupported) as caught:
                call()
            assert caught.value.error_code == code
            assert caught.value.message
    assert len(transport.paths("POST")) == 4  # none retried
    assert ngrok_api.session(managed_off["id"]) is not None


def test_legacy_plan_is_unsupported(ngrok_api_factory):
    server = ngrok_api_factory(sessions=3, legacy_plan=True)
    sid = server.session_ids()[0]
    with client_for(server) as client:
        with pytest.raises(Unsupported) as stop:
            client.act("stop", sid)
        with pytest.raises(Unsupported) as update:
            client.act("update", sid)
    assert (stop.value.error_code, update.value.error_code) == ("ERR_NGROK_1701", "ERR_NGROK_1702")


def test_agent_failed_when_no_update_is_available(ngrok_api):
    latest = ngrok_api.add_session(os="linux", agent_version="3.26.1")
    with client_for(ngrok_api) as client, pytest.raises(AgentFailed) as caught:
        client.act("update", latest["id"])
    assert "no update available" in caught.value.message


def test_rate_limited_when_the_budget_allows_no_retry(ngrok_api_factory):
    server = ngrok_api_factory(sessions=3, rate_limit=2, rate_window=60.0, send_retry_after=True)
    with client_for(server, retry_budget=0.0) as client:
        client.list_sessions_page()
        client.list_sessions_page()
        with pytest.raises(RateLimited) as caught:
            client.list_sessions_page()
    assert caught.value.error_code == "ERR_NGROK_226"
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 1.0


def test_wrong_key_is_unauthorized_and_never_leaks(ngrok_api, caplog):
    wrong = "2WrongKeyWrongKeyWrongKeyWro_abcdefghijklmnopq"
    caplog.set_level(logging.DEBUG)
    with client_for(ngrok_api, api_key=wrong) as client, pytest.raises(Unauthorized) as caught:
        client.list_sessions_page()
    err = caught.value
    assert err.status == 401
    assert err.error_code == "ERR_NGROK_203"
    assert "Your credential: [REDACTED]" in err.message
    (request,) = settled_log(ngrok_api, 1)
    assert request.status == 401
    for text in (str(err), repr(err), err.message, repr(err.args), caplog.text):
        assert wrong not in text
    assert any("op_" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for record in caplog.records:
        assert wrong not in record.getMessage()


def test_tls_with_the_servers_ca(ngrok_api_factory):
    server = ngrok_api_factory(sessions=5, tls=True)
    assert server.base_url.startswith("https://")
    with client_for(server, verify=server.ca_bundle_path) as client:
        assert len(client.list_sessions_page().sessions) == 5
    untrusting = client_for(server, verify=True, retry_budget=0.0)
    with untrusting, pytest.raises(ConnectFailed):
        untrusting.list_sessions_page()
