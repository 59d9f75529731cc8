"""NgrokClient on httpx.MockTransport: exact requests, parsing, paging, endpoints, redaction."""

import json
import logging

import httpx
import pytest

from bot import __version__
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import BadRequest, NotFound, Unauthorized, Unavailable
from bot.ngrok.pacing import Pacer

KEY = "2Zk9qLmNoPqRsTuVwXyZaBcDeFg_7hIjKlMnOpQrStUvWx"
BASE = "https://api.example.test"


class FakeApi:
    """Answers each request with the next reply: a Response, an exception, or a callable."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply) and not isinstance(reply, httpx.Response):
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        return reply


def ok(payload, status=200):
    return httpx.Response(status, json=payload)


def session(sid, **extra):
    return {"id": sid, "uri": f"{BASE}/tunnel_sessions/{sid}", "region": "us", **extra}


def page(ids, next_uri=None):
    return ok({"tunnel_sessions": [session(i) for i in ids], "next_page_uri": next_uri})


def make_client(api, **kwargs):
    kwargs.setdefault("pacer", Pacer(max_requests=1000, per_seconds=1.0))
    kwargs.setdefault("sleep", lambda seconds: None)
    kwargs.setdefault("user_agent", f"ngrok-ops/{__version__}")
    return NgrokClient(KEY, base_url=BASE, transport=httpx.MockTransport(api), **kwargs)


def test_every_get_carries_the_headers_and_no_body():
    api = FakeApi(page(["ts_1"]))
    with make_client(api) as client:
        client.list_sessions_page()
    (request,) = api.requests
    assert request.method == "GET"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["ngrok-version"] == "2"
    assert request.headers["user-agent"] == f"ngrok-ops/{__version__}"
    assert request.headers["accept"] == "application/json"
    assert request.content == b""
    assert "content-type" not in request.headers
    assert request.extensions["timeout"] == {
        "connect": 10.0,
        "read": 10.0,
        "write": 10.0,
        "pool": 10.0,
    }


def test_timeout_is_explicit_and_configurable():
    api = FakeApi(page([]))
    with make_client(api, timeout=2.5) as client:
        client.list_sessions_page()
    assert set(api.requests[0].extensions["timeout"].values()) == {2.5}


def test_list_page_query_and_parsing():
    nxt = f"{BASE}/tunnel_sessions?before_id=ts_2&limit=2"
    raw = {
        "tunnel_sessions": [
            session("ts_3", agent_version="3.1.0", unknown_field=1),
            {"id": "ts_2"},
            "junk",
        ],
        "next_page_uri": nxt,
        "uri": f"{BASE}/tunnel_sessions",
    }
    api = FakeApi(ok(raw))
    with make_client(api) as client:
        result = client.list_sessions_page(limit=2, before_id="ts_9", filter='obj.region == "us"')
    url = api.requests[0].url
    assert url.path == "/tunnel_sessions"
    assert dict(url.params) == {"limit": "2", "before_id": "ts_9", "filter": 'obj.region == "us"'}
    assert b"obj.region+%3D%3D+%22us%22" in url.query
    assert [s.id for s in result.sessions] == ["ts_3", "ts_2"]
    assert result.sessions[0].agent_version == "3.1.0"
    assert result.sessions[1].region == ""
    assert result.next_page_uri == nxt


def test_first_page_sends_only_limit():
    api = FakeApi(page([]))
    with make_client(api) as client:
        assert client.list_sessions_page().next_page_uri is None
    assert dict(api.requests[0].url.params) == {"limit": "100"}


def test_next_page_is_fetched_exactly_as_given():
    nxt = f"{BASE}/tunnel_sessions?limit=1&before_id=ts_2&filter=obj.os+%3D%3D+%22linux%22&x=%2C"
    api = FakeApi(page(["ts_2"], nxt), page(["ts_1"]))
    with make_client(api) as client:
        first = client.list_sessions_page(limit=1, filter='obj.os == "linux"')
        second = client.next_sessions_page(first, filter='obj.os == "linux"')
    assert str(api.requests[1].url) == nxt
    assert [s.id for s in second.sessions] == ["ts_1"]


def test_next_page_gets_the_filter_back_only_when_the_api_dropped_it():
    nxt = f"{BASE}/tunnel_sessions?before_id=ts_2&limit=1"
    api = FakeApi(page(["ts_2"], nxt), page(["ts_1"]))
    with make_client(api) as client:
        first = client.list_sessions_page(limit=1, filter='obj.region in ["us", "eu"]')
        client.next_sessions_page(first, filter='obj.region in ["us", "eu"]')
    url = api.requests[1].url
    assert str(url).startswith(nxt + "&filter=")
    assert url.params.get_list("filter") == ['obj.region in ["us", "eu"]']
    assert url.params["before_id"] == "ts_2"


def test_next_page_is_none_on_the_last_or_an_empty_page():
    with make_client(FakeApi(page([]))) as client:
        last = client.list_sessions_page()
        assert client.next_sessions_page(last) is None
    empty_with_next = FakeApi(page([], f"{BASE}/tunnel_sessions?before_id=ts_1"))
    with make_client(empty_with_next) as client:
        assert client.next_sessions_page(client.list_sessions_page()) is None
    assert len(empty_with_next.requests) == 1


def test_next_page_on_another_host_is_refused_so_the_key_stays_home():
    api = FakeApi(page(["ts_2"], "https://evil.example/tunnel_sessions?before_id=ts_2"))
    with make_client(api) as client:
        first = client.list_sessions_page()
        with pytest.raises(Unavailable):
            client.next_sessions_page(first)
    assert len(api.requests) == 1


def test_iter_sessions_follows_every_page_in_order():
    p2 = f"{BASE}/tunnel_sessions?before_id=ts_4&limit=2"
    p3 = f"{BASE}/tunnel_sessions?before_id=ts_2&limit=2"
    api = FakeApi(page(["ts_5", "ts_4"], p2), page(["ts_3", "ts_2"], p3), page(["ts_1"]))
    with make_client(api) as client:
        ids = [s.id for s in client.iter_sessions(page_size=2)]
    assert ids == ["ts_5", "ts_4", "ts_3", "ts_2", "ts_1"]
    assert [str(r.url) for r in api.requests[1:]] == [p2, p3]


def test_iter_sessions_stops_when_the_api_repeats_a_page():
    loop = f"{BASE}/tunnel_sessions?before_id=ts_2"
    api = FakeApi(page(["ts_2"], loop), page(["ts_1"], loop))
    with make_client(api) as client, pytest.raises(Unavailable):
        list(client.iter_sessions())
    assert len(api.requests) == 2


def test_get_session_parses_and_tolerates_missing_fields():
    api = FakeApi(ok({"id": "ts_1", "os": "windows", "credential": {"id": "cr_1"}, "new": {}}))
    with make_client(api) as client:
        got = client.get_session("ts_1")
    assert api.requests[0].url.path == "/tunnel_sessions/ts_1"
    assert got.id == "ts_1"
    assert got.is_windows
    assert got.credential.id == "cr_1"
    assert got.metadata == ""


@pytest.mark.parametrize("bad", ["", "../x", "ts_1/stop", "..", "ts 1", "ts_1?x=1", "a" * 200])
def test_malformed_session_ids_never_reach_the_network(bad):
    api = FakeApi(ok({}))
    with make_client(api) as client:
        with pytest.raises(BadRequest):
            client.get_session(bad)
        with pytest.raises(BadRequest):
            client.act("stop", bad)
    assert api.requests == []


@pytest.mark.parametrize("op", ["restart", "stop", "update"])
def test_actions_post_an_empty_json_object_and_accept_204(op):
    api = FakeApi(httpx.Response(204))
    with make_client(api) as client:
        assert client.act(op, "ts_abc") is None
    for request in api.requests:
        assert request.method == "POST"
        assert request.url.path == f"/tunnel_sessions/ts_abc/{op}"
        assert request.content == b"{}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["ngrok-version"] == "2"
        assert request.headers["authorization"] == f"Bearer {KEY}"
    assert len(api.requests) == 1


def test_act_refuses_unknown_operations():
    api = FakeApi(httpx.Response(204))
    with make_client(api) as client, pytest.raises(ValueError):
        client.act("delete", "ts_1")
    assert api.requests == []


def endpoint(eid, sid=None, **extra):
    raw = {"id": eid, "url": f"https://{eid}.ngrok.app", "type": "ephemeral", **extra}
    if sid:
        raw["tunnel_session"] = {"id": sid, "uri": f"{BASE}/tunnel_sessions/{sid}"}
    return raw


def test_session_endpoints_pages_and_groups_by_session():
    nxt = f"{BASE}/endpoints?before_id=ep_3&limit=100"
    api = FakeApi(
        ok({"endpoints": [endpoint("ep_4", "ts_1"), endpoint("ep_3", None)], "next_page_uri": nxt}),
        ok(
            {
                "endpoints": [endpoint("ep_2", "ts_2"), endpoint("ep_1", "ts_1")],
                "next_page_uri": None,
            }
        ),
    )
    with make_client(api) as client:
        grouped = client.session_endpoints()
    assert {sid: [e.id for e in eps] for sid, eps in grouped.items()} == {
        "ts_1": ["ep_4", "ep_1"],
        "ts_2": ["ep_2"],
    }
    assert api.requests[0].url.path == "/endpoints"
    assert str(api.requests[1].url) == nxt


def test_session_endpoints_for_some_sessions_lists_each_of_them():
    api = FakeApi(ok({"endpoints": [endpoint("ep_1", "ts_1"), endpoint("ep_2", "ts_2")]}))
    with make_client(api) as client:
        grouped = client.session_endpoints(["ts_2", "ts_9"])
    assert {sid: [e.id for e in eps] for sid, eps in grouped.items()} == {
        "ts_2": ["ep_2"],
        "ts_9": [],
    }


@pytest.mark.parametrize("status", [404, 403])
def test_session_endpoints_falls_back_to_tunnels(status):
    tunnel = {
        "id": "tn_1",
        "public_url": "https://a.ngrok.app",
        "forwards_to": "http://localhost:80",
        "tunnel_session": {"id": "ts_1", "uri": ""},
    }
    api = FakeApi(
        httpx.Response(status, json={"status_code": status, "msg": "no"}),
        ok({"tunnels": [tunnel], "next_page_uri": None}),
    )
    with make_client(api) as client:
        grouped = client.session_endpoints()
    assert [r.url.path for r in api.requests] == ["/endpoints", "/tunnels"]
    (only,) = grouped["ts_1"]
    assert (only.id, only.url, only.upstream_url) == (
        "tn_1",
        "https://a.ngrok.app",
        "http://localhost:80",
    )


def test_session_endpoints_does_not_hide_other_errors():
    api = FakeApi(httpx.Response(400, json={"error_code": "ERR_NGROK_231", "msg": "bad"}))
    with make_client(api) as client, pytest.raises(BadRequest):
        client.session_endpoints()
    assert len(api.requests) == 1


def test_not_found_has_no_code_and_keeps_the_operation_id():
    body = {"details": {"operation_id": "op_334"}, "msg": "Resource not found", "status_code": 404}
    api = FakeApi(httpx.Response(404, json=body))
    with make_client(api) as client, pytest.raises(NotFound) as caught:
        client.get_session("ts_gone")
    assert caught.value.error_code is None
    assert caught.value.operation_id == "op_334"
    assert caught.value.status == 404


def test_key_and_echoed_token_never_reach_messages_or_logs(caplog):
    echo = f"The authentication you specified is invalid. Your credential: {KEY}"
    body = {
        "error_code": "ERR_NGROK_203",
        "status_code": 401,
        "msg": echo,
        "details": {"operation_id": "op_9"},
    }
    api = FakeApi(page(["ts_1"]), httpx.Response(401, json=body))
    caplog.set_level(logging.DEBUG)
    with make_client(api) as client:
        client.list_sessions_page()
        with pytest.raises(Unauthorized) as caught:
            client.get_session("ts_1")
        assert KEY not in repr(client)
    err = caught.value
    assert err.operation_id == "op_9"
    for text in (str(err), repr(err), err.message, repr(err.args)):
        assert KEY not in text
    assert "Your credential: [REDACTED]" in err.message
    assert caplog.records, "nothing was logged"
    assert any(r.levelno == logging.WARNING and "op_9" in r.getMessage() for r in caplog.records)
    assert any(
        r.levelno == logging.DEBUG and "/tunnel_sessions" in r.getMessage() for r in caplog.records
    )
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)
    assert KEY not in caplog.text


def test_a_custom_logger_is_used():
    logger = logging.getLogger("test.ngrok.custom")
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with make_client(FakeApi(page([])), logger=logger) as client:
            client.list_sessions_page()
    finally:
        logger.removeHandler(handler)
    assert any("GET" in line and "/tunnel_sessions" in line for line in seen)


def test_non_object_json_answer_is_unavailable_not_a_crash():
    api = FakeApi(httpx.Response(200, content=json.dumps([1, 2]).encode()))
    with make_client(api, retry_budget=0.0) as client, pytest.raises(Unavailable):
        client.get_session("ts_1")


def test_session_endpoints_does_not_fall_back_on_a_bad_key():
    body = {"error_code": "ERR_NGROK_203", "status_code": 401, "msg": "bad key"}
    api = FakeApi(httpx.Response(401, json=body), ok({"tunnels": []}))
    with make_client(api) as client, pytest.raises(Unauthorized):
        client.session_endpoints()
    assert [r.url.path for r in api.requests] == ["/endpoints"]


def test_a_blank_filter_in_next_page_uri_counts_as_present():
    nxt = f"{BASE}/tunnel_sessions?before_id=ts_2&filter="
    api = FakeApi(page(["ts_2"], nxt), page(["ts_1"]))
    with make_client(api) as client:
        client.next_sessions_page(client.list_sessions_page(), filter='obj.os == "linux"')
    assert str(api.requests[1].url) == nxt
