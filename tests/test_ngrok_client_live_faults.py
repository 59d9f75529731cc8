"""NgrokClient against the stand-in's injected faults and limits: retries, their bounds, POSTs
never re-sent, and pacing that never trips the server's rolling window."""

import threading

import pytest

from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import ConnectFailed, MayHaveBeenApplied, Unavailable
from bot.ngrok.pacing import Backoff, Pacer
from tests.test_ngrok_client_live import CountingTransport, settled_log


def client_for(server, **kwargs):
    kwargs.setdefault("pacer", Pacer(max_requests=10_000, per_seconds=1.0))
    kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.05))
    return NgrokClient(server._api_key, base_url=server.base_url, **kwargs)


READ_FAULTS = ["500", "502", "503", "html_502", "malformed_json", "reset", "429", "timeout"]


@pytest.mark.parametrize("kind", READ_FAULTS)
def test_reads_recover_from_each_fault(ngrok_api, kind):
    ngrok_api.inject_fault(kind, method="GET", times=2, delay=1.0)
    sid = ngrok_api.session_ids()[0]
    transport = CountingTransport()
    with client_for(ngrok_api, timeout=0.3, transport=transport) as client:
        assert client.get_session(sid).id == sid
    assert transport.paths() == [f"/tunnel_sessions/{sid}"] * 3
    log = settled_log(ngrok_api, 3)
    assert len(log) == 3
    assert 200 in [r.status for r in log]


def test_retry_after_from_the_server_is_honoured(ngrok_api_factory):
    server = ngrok_api_factory(sessions=3, send_retry_after=True)
    server.inject_fault("429", method="GET")
    with client_for(server) as client:
        client.list_sessions_page()
    first, second = settled_log(server, 2)
    assert first.status == 429
    assert second.status == 200
    assert second.at - first.at >= 0.95  # the server asked for 1 s


def test_reads_give_up_when_the_budget_is_spent(ngrok_api):
    ngrok_api.inject_fault("503", method="GET", times=1000)
    transport = CountingTransport()
    client = client_for(
        ngrok_api,
        retry_budget=1.0,
        backoff=Backoff(base=0.05, cap=0.2),
        rand=lambda: 1.0,
        transport=transport,
    )
    with client, pytest.raises(Unavailable) as caught:
        client.list_sessions_page()
    assert caught.value.status == 503
    attempts = len(transport.sent)
    # Sleeps are 0.05, 0.1, 0.2, 0.2, ... (the last one cut to what is left), summing to at most
    # the 1 s budget: at most 3 + 3 full sleeps + 1 cut one, so at most 8 attempts.
    assert 2 <= attempts <= 8


POST_FAULTS = ["500", "502", "503", "html_502", "reset", "timeout", "err_810"]


@pytest.mark.parametrize("kind", POST_FAULTS)
def test_posts_are_sent_once_when_they_may_have_arrived(ngrok_api, kind):
    sid = ngrok_api.add_session(os="linux")["id"]
    ngrok_api.inject_fault(kind, method="POST", times=5, delay=1.0)
    transport = CountingTransport()
    client = client_for(ngrok_api, timeout=0.3, transport=transport)
    with client, pytest.raises(MayHaveBeenApplied) as caught:
        client.act("stop", sid)
    assert caught.value.may_have_been_applied is True
    assert "outcome is unknown" in caught.value.message
    assert transport.paths() == [f"/tunnel_sessions/{sid}/stop"]


def test_err_810_applied_the_action_although_it_failed(ngrok_api):
    sid = ngrok_api.add_session(os="linux")["id"]
    ngrok_api.inject_fault("err_810", method="POST")
    with client_for(ngrok_api) as client, pytest.raises(MayHaveBeenApplied) as caught:
        client.act("stop", sid)
    assert caught.value.error_code == "ERR_NGROK_810"
    assert caught.value.status == 502
    assert ngrok_api.session(sid) is None


def test_posts_are_retried_after_a_429(ngrok_api):
    sid = ngrok_api.add_session(os="linux")["id"]
    ngrok_api.inject_fault("429", method="POST")
    with client_for(ngrok_api) as client:
        client.act("stop", sid)
    assert [(r.method, r.status) for r in settled_log(ngrok_api, 2)] == [
        ("POST", 429),
        ("POST", 204),
    ]
    assert ngrok_api.session(sid) is None


def test_posts_to_a_closed_port_fail_without_maybe(ngrok_api_factory):
    server = ngrok_api_factory(sessions=1)
    base_url, key = server.base_url, server._api_key
    server.stop()
    client = NgrokClient(
        key,
        base_url=base_url,
        pacer=Pacer(max_requests=10_000, per_seconds=1.0),
        backoff=Backoff(base=0.01, cap=0.02),
        retry_budget=0.2,
    )
    with client, pytest.raises(ConnectFailed) as caught:
        client.act("restart", "ts_1")
    assert caught.value.may_have_been_applied is False


def test_pacer_keeps_four_threads_under_the_servers_rolling_window(ngrok_api_factory):
    server = ngrok_api_factory(sessions=10, rate_limit=20, rate_window=2.0)
    pacer = Pacer(max_requests=20, per_seconds=2.0, max_in_flight=4)
    ids = server.session_ids()
    failures = []
    with client_for(server, pacer=pacer, retry_budget=0.0) as client:

        def worker(offset):
            try:
                for n in range(16):
                    client.get_session(ids[(offset + n) % len(ids)])
            except Exception as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    log = settled_log(server, 64)
    assert len(log) == 64
    assert [r for r in log if r.status == 429] == []
    assert all(r.status == 200 for r in log)
