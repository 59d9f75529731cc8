"""The ngrok API stand-in's behaviour: the stop/restart/update state machine, injected faults,
rate and concurrency limits, latency, and what the official `ngrok-api` client does against it."""

import json
import threading
import time

import httpx
import ngrok
import pytest

from bot.demo.fleet import LATEST_VERSION
from tests.servers.ngrok_api_fixture import check_error_shape, checked_client


@pytest.fixture
def api(ngrok_api, ngrok_spec):
    with checked_client(ngrok_api, ngrok_spec) as client:
        yield client


def error_of(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    check_error_shape(body, status, response.headers["ngrok-operation-id"])
    assert body.get("error_code") == code
    return body


def pick(server, **wanted):
    """The newest online session whose served fields equal `wanted`; None matches absence."""
    for session_id in server.session_ids():
        session = server.session(session_id)
        if all(session.get(k) == v for k, v in wanted.items()):
            return session
    raise AssertionError(f"no session with {wanted}")


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def action(api, session_id, verb):
    return api.post(f"/tunnel_sessions/{session_id}/{verb}", json={})


def endpoints_of(api, session_id):
    return [
        e
        for e in api.get("/endpoints").json()["endpoints"]
        if e.get("tunnel_session", {}).get("id") == session_id
    ]


# ---- state machine ---------------------------------------------------------------------------


def test_stop_removes_the_session_and_its_endpoints(ngrok_api, api):
    session = ngrok_api.add_session(os="linux", endpoint_count=2)
    assert len(endpoints_of(api, session["id"])) == 2
    response = action(api, session["id"], "stop")
    assert response.status_code == 204 and response.content == b""
    assert "content-type" not in response.headers
    error_of(api.get(f"/tunnel_sessions/{session['id']}"), 404, None)
    assert session["id"] not in ngrok_api.session_ids() and ngrok_api.session(session["id"]) is None
    assert endpoints_of(api, session["id"]) == []
    tunnels = api.get("/tunnels").json()["tunnels"]
    assert all(t["tunnel_session"]["id"] != session["id"] for t in tunnels)
    error_of(action(api, session["id"], "stop"), 404, None)


def test_restart_reconnects_under_a_new_newest_id(ngrok_api, api):
    old = ngrok_api.add_session(
        os="linux",
        metadata='{"env":"prod","host":"web-3"}',
        endpoint_count=2,
        agent_version="3.22.1",
    )
    old_urls = sorted(e["url"] for e in endpoints_of(api, old["id"]))
    before = set(ngrok_api.session_ids())
    assert action(api, old["id"], "restart").status_code == 204
    error_of(api.get(f"/tunnel_sessions/{old['id']}"), 404, None)
    new_id = wait_for(lambda: next((i for i in ngrok_api.session_ids() if i not in before), None))
    assert ngrok_api.session_ids()[0] == new_id and new_id > old["id"]
    new = api.get(f"/tunnel_sessions/{new_id}").json()
    for key in ("credential", "ip", "os", "region", "metadata", "transport", "agent_version"):
        assert new[key] == old[key], key
    assert new["started_at"] >= old["started_at"] and new["uri"].endswith(new_id)
    assert sorted(e["url"] for e in endpoints_of(api, new_id)) == old_urls
    assert endpoints_of(api, old["id"]) == []


def test_update_then_restart_brings_the_latest_version(ngrok_api, api):
    old = ngrok_api.add_session(os="darwin", agent_version="3.20.0")
    assert action(api, old["id"], "update").status_code == 204
    assert ngrok_api.session(old["id"])["agent_version"] == "3.20.0"  # not until restarted
    body = error_of(action(api, old["id"], "update"), 400, "ERR_NGROK_809")
    assert "already in progress" in body["msg"]
    before = set(ngrok_api.session_ids())
    assert action(api, old["id"], "restart").status_code == 204
    new_id = wait_for(lambda: next((i for i in ngrok_api.session_ids() if i not in before), None))
    new = ngrok_api.session(new_id)
    assert new["agent_version"] == LATEST_VERSION and new["credential"] == old["credential"]
    body = error_of(action(api, new_id, "update"), 400, "ERR_NGROK_809")
    assert "no update available" in body["msg"]


def test_windows_cannot_restart_but_can_stop(ngrok_api, api):
    session = ngrok_api.add_session(os="windows", agent_version="3.24.0")
    body = error_of(action(api, session["id"], "restart"), 400, "ERR_NGROK_804")
    assert "Windows" in body["msg"]
    assert ngrok_api.session(session["id"]) is not None
    assert action(api, session["id"], "update").status_code == 204
    assert action(api, session["id"], "stop").status_code == 204


def test_ssh_sessions_can_only_be_stopped(ngrok_api, api):
    session = ngrok_api.add_session(transport="ssh", agent_version=None, os=None)
    error_of(action(api, session["id"], "update"), 400, "ERR_NGROK_1121")
    error_of(action(api, session["id"], "restart"), 400, "ERR_NGROK_1122")
    assert ngrok_api.session(session["id"]) is not None
    assert action(api, session["id"], "stop").status_code == 204


def test_remote_management_off_refuses_every_action(ngrok_api, api):
    session = ngrok_api.add_session(os="linux", agent_version="3.20.0")
    ngrok_api.set_remote_management(session["id"], False)
    for verb, code in (
        ("restart", "ERR_NGROK_804"),
        ("stop", "ERR_NGROK_805"),
        ("update", "ERR_NGROK_806"),
    ):
        body = error_of(action(api, session["id"], verb), 400, code)
        assert body["msg"].endswith("remote management is disabled in the agent configuration")
    ngrok_api.set_remote_management(session["id"], True)
    assert action(api, session["id"], "stop").status_code == 204


def test_legacy_plan_refuses_actions(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=5, legacy_plan=True)
    session = server.add_session(os="linux", agent_version="3.20.0")
    with checked_client(server, ngrok_spec) as api:
        error_of(action(api, session["id"], "stop"), 403, "ERR_NGROK_1701")
        error_of(action(api, session["id"], "restart"), 403, "ERR_NGROK_1701")
        error_of(action(api, session["id"], "update"), 403, "ERR_NGROK_1702")
        assert api.get(f"/tunnel_sessions/{session['id']}").status_code == 200


def test_action_bodies_with_an_id_are_accepted(ngrok_api, api):
    session = ngrok_api.add_session(os="linux")
    response = api.post(
        f"/tunnel_sessions/{session['id']}/stop",
        content=json.dumps({"id": session["id"]}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 204 and ngrok_api.session(session["id"]) is None


# ---- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_error_faults_answer_json_once(kind, ngrok_api, api):
    ngrok_api.inject_fault(kind)
    error_of(api.get("/tunnel_sessions"), int(kind), None)
    assert api.get("/tunnel_sessions").status_code == 200


def test_html_502_is_not_json(ngrok_api, api):
    ngrok_api.inject_fault("html_502", path_contains="/endpoints", times=2)
    assert api.get("/tunnel_sessions").status_code == 200  # does not match the path
    for _ in range(2):
        response = api.get("/endpoints")
        assert response.status_code == 502 and response.headers["content-type"].startswith(
            "text/html"
        )
        with pytest.raises(json.JSONDecodeError):
            response.json()
    assert api.get("/endpoints").status_code == 200


def test_timeout_holds_the_request_then_answers(ngrok_api, ngrok_spec):
    ngrok_api.inject_fault("timeout", delay=1.0)
    with checked_client(ngrok_api, ngrok_spec) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/tunnel_sessions", timeout=0.2)
        held = wait_for(lambda: ngrok_api.log())
        assert held[0].status == 200  # the held request was answered normally, later
        started = time.monotonic()
        ngrok_api.inject_fault("timeout", delay=0.3)
        assert client.get("/tunnel_sessions", timeout=10).status_code == 200
        assert time.monotonic() - started >= 0.3


def test_reset_drops_the_connection(ngrok_api, ngrok_spec):
    ngrok_api.inject_fault("reset", method="POST")
    sid = ngrok_api.session_ids()[0]
    with checked_client(ngrok_api, ngrok_spec) as client:
        assert client.get("/tunnel_sessions").status_code == 200  # GETs do not match
        with pytest.raises(httpx.TransportError):
            client.post(f"/tunnel_sessions/{sid}/stop", json={})
        assert client.get(f"/tunnel_sessions/{sid}").status_code == 200  # not applied
    assert ngrok_api.log()[-2].status == 0


def test_malformed_json_is_truncated(ngrok_api):
    ngrok_api.inject_fault("malformed_json")
    with httpx.Client(base_url=ngrok_api.base_url, headers=ngrok_api.client_headers()) as client:
        response = client.get("/tunnel_sessions")
        assert response.status_code == 200 and response.text.startswith('{"tunnel_sessions":[')
        with pytest.raises(json.JSONDecodeError):
            response.json()


def test_injected_429_even_under_the_limit(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=3, send_retry_after=True)
    server.inject_fault("429")
    with checked_client(server, ngrok_spec) as api:
        response = api.get("/tunnel_sessions")
        body = error_of(response, 429, "ERR_NGROK_226")
        assert "120 API requests per 60s" in body["msg"] and response.headers["retry-after"] == "1"
        assert api.get("/tunnel_sessions").status_code == 200


def test_err_810_applies_the_action_then_fails(ngrok_api, api):
    session = ngrok_api.add_session(os="linux")
    ngrok_api.inject_fault("err_810")
    assert api.get("/tunnel_sessions").status_code == 200  # only action POSTs match
    body = error_of(action(api, session["id"], "stop"), 502, "ERR_NGROK_810")
    assert "may" in body["msg"]
    assert ngrok_api.session(session["id"]) is None  # the stop happened anyway


def test_unknown_fault_kind_is_refused(ngrok_api):
    with pytest.raises(ValueError, match="unknown fault kind"):
        ngrok_api.inject_fault("slow")


# ---- limits and latency ------------------------------------------------------------------


def sleep_until(moment):
    time.sleep(max(0.0, moment - time.monotonic()))


def test_rate_limit_is_a_sliding_window_per_key(ngrok_api_factory, ngrok_spec):
    window = 1.5
    server = ngrok_api_factory(sessions=3, rate_limit=5, rate_window=window)
    with checked_client(server, ngrok_spec) as api:
        anonymous = httpx.Client(base_url=server.base_url, headers={"Ngrok-Version": "2"})
        assert [anonymous.get("/tunnel_sessions").status_code for _ in range(3)] == [401] * 3
        statuses = [api.get("/tunnel_sessions").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]  # the 401s were another key's window
        body = error_of(api.get("/tunnel_sessions"), 429, "ERR_NGROK_226")
        assert "5 API requests per 1.5s" in body["msg"]
        assert "retry-after" not in server.log()[-1].headers
        assert anonymous.get("/tunnel_sessions").status_code == 401
        anonymous.close()
        burst_end = server.log()[-1].at
        sleep_until(burst_end + window / 2)
        assert [api.get("/tunnel_sessions").status_code for _ in range(5)] == [429] * 5
        sleep_until(burst_end + window + 0.1)
        # the first burst has left the window, but the five refused requests still fill it
        assert api.get("/tunnel_sessions").status_code == 429
        sleep_until(server.log()[-2].at + window + 0.1)
        assert api.get("/tunnel_sessions").status_code == 200


def test_retry_after_counts_seconds_until_a_slot_frees(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=3, rate_limit=2, rate_window=30.0, send_retry_after=True)
    with checked_client(server, ngrok_spec) as client:
        assert [client.get("/tunnel_sessions").status_code for _ in range(2)] == [200, 200]
        limited = client.get("/tunnel_sessions")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 30


def test_concurrency_limit(ngrok_api_factory, ngrok_spec):
    server = ngrok_api_factory(sessions=3, max_concurrent=2, latency=2.0)
    statuses = []

    def call():
        with checked_client(server, ngrok_spec) as client:
            statuses.append(client.get("/tunnel_sessions", timeout=30).status_code)

    holders = [threading.Thread(target=call) for _ in range(2)]
    for thread in holders:
        thread.start()
    wait_for(lambda: server._limits._in_flight == 2)  # both inside, sleeping out the latency
    with checked_client(server, ngrok_spec) as client:
        refused = client.get("/tunnel_sessions", timeout=30)
    for thread in holders:
        thread.join()
    body = error_of(refused, 429, "ERR_NGROK_225")
    assert "2 simultaneous" in body["msg"]
    assert statuses == [200, 200]


def test_latency_is_added_to_every_request_and_settable(ngrok_api, ngrok_spec):
    with checked_client(ngrok_api, ngrok_spec) as client:
        ngrok_api.latency = 0.25
        for path in ("/tunnel_sessions", "/nope"):
            started = time.monotonic()
            client.get(path)
            assert time.monotonic() - started >= 0.25
        ngrok_api.latency = 0.0
        assert client.get("/tunnel_sessions").status_code == 200


# ---- fidelity: the official ngrok-api client (PyPI ngrok-api 0.19.0) -----------------------------


@pytest.fixture
def official(ngrok_api):
    return ngrok.Client("ngrok-test-api-key-0123456789", base_url=ngrok_api.base_url)


def test_official_client_lists_every_page_and_gets(ngrok_api, official, ngrok_spec):
    listed = [s.id for s in official.tunnel_sessions.list(limit="7")]
    assert listed == ngrok_api.session_ids()
    assert len(ngrok_api.requests_matching("GET", "/tunnel_sessions")) == 5  # 30 sessions / 7
    first = ngrok_api.session(listed[0])
    got = official.tunnel_sessions.get(listed[0])
    assert (got.id, got.region, got.credential.id) == (
        first["id"],
        first["region"],
        first["credential"]["id"],
    )
    headers = ngrok_api.log()[-1].headers
    assert headers["ngrok-version"] == "2" and headers["user-agent"].startswith("ngrok-api-python/")
    endpoints = list(official.endpoints.list(limit="5"))
    with checked_client(ngrok_api, ngrok_spec) as api:
        served = api.get("/endpoints").json()["endpoints"]
    assert endpoints and [e.id for e in endpoints] == [e["id"] for e in served]


def test_official_client_trips_on_omitted_fields(ngrok_api, official):
    """Its datatypes index `_props[...]`, so an omitted metadata is a KeyError (reference §9)."""
    bare = ngrok_api.add_session(metadata=None, transport="ssh", agent_version=None, os=None)
    got = official.tunnel_sessions.get(bare["id"])
    assert got.transport == "ssh"
    with pytest.raises(KeyError):
        _ = got.metadata
    with pytest.raises(KeyError):
        _ = got.agent_version


def test_official_client_follows_next_page_without_the_filter(ngrok_api_factory):
    for keeps in (False, True):
        server = ngrok_api_factory(sessions=60, next_page_keeps_filter=keeps)
        client = ngrok.Client("ngrok-test-api-key-0123456789", base_url=server.base_url)
        oses = {
            s.os if "os" in s._props else None
            for s in client.tunnel_sessions.list(limit="5", filter='obj.os == "windows"')
        }
        # By default next_page_uri drops the filter, so its iterator leaks other sessions after
        # the first page; with the knob on it stays filtered.
        assert (oses == {"windows"}) is keeps


def test_official_client_actions_fail_like_on_the_real_api(ngrok_api, official):
    session = ngrok_api.add_session(os="linux", agent_version="3.20.0")
    for verb in ("stop", "restart", "update"):
        with pytest.raises(ngrok.Error) as caught:
            getattr(official.tunnel_sessions, verb)(session["id"])
        assert caught.value.error_code == "ERR_NGROK_216" and caught.value.http_status_code == 400
        assert caught.value.operation_id.startswith("op_")
    posted = ngrok_api.requests_matching("POST")
    assert [r.body for r in posted] == [b""] * 3 and all(
        "content-type" not in r.headers for r in posted
    )
    assert ngrok_api.session(session["id"]) is not None
    # With a body it reaches the API, which stops the agent, and then the client raises anyway.
    with pytest.raises(RuntimeError, match="unexpected 204"):
        official.http_client.post(f"/tunnel_sessions/{session['id']}/stop", {"id": session["id"]})
    assert ngrok_api.session(session["id"]) is None


def test_official_client_errors(ngrok_api, official):
    with pytest.raises(ngrok.NotFoundError) as missing:
        official.tunnel_sessions.get("ts_2abcdefghijklmnopqrstuvwxyz")
    assert missing.value.error_code is None and missing.value.http_status_code == 404
    wrong = ngrok.Client("wrong-key-1234", base_url=ngrok_api.base_url)
    with pytest.raises(ngrok.Error) as denied:
        wrong.tunnel_sessions.list()
    assert denied.value.error_code == "ERR_NGROK_203" and "wrong-key-1234" in str(denied.value)
    assert not hasattr(denied.value, "message")
    ngrok_api.inject_fault("503")
    with pytest.raises(RuntimeError, match="Server failed with 503"):
        official.tunnel_sessions.list()
    ngrok_api.inject_fault("html_502")
    with pytest.raises(RuntimeError, match="502 Bad Gateway"):
        official.tunnel_sessions.list()
