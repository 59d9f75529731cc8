"""Retries: reads retry within a budget; a POST is re-sent only when it surely was not applied."""

import httpx
import pytest

from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import (
    AgentFailed,
    BadRequest,
    ConnectFailed,
    MayHaveBeenApplied,
    NotFound,
    RateLimited,
    Unavailable,
    Unsupported,
)
from bot.ngrok.pacing import Backoff, Pacer

KEY = "ngrok-unit-test-key-abcdef"
BASE = "https://api.example.test"


class FakeClock:
    def __init__(self):
        self.now = 500.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """Replies in order; the last reply repeats. Exceptions are raised, callables called."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, type) and issubclass(reply, Exception):
            raise reply("scripted failure", request=request)
        return reply


def err(status, code=None, headers=None):
    body = {"status_code": status, "msg": f"failure {status}", "details": {"operation_id": "op_x"}}
    if code:
        body["error_code"] = code
    return httpx.Response(status, json=body, headers=headers)


SESSION = httpx.Response(200, json={"id": "ts_1", "region": "eu"})
NO_CONTENT = httpx.Response(204)


def make_client(script, clock=None, rand=lambda: 1.0, **kwargs):
    clock = clock or FakeClock()
    pacer = kwargs.pop("pacer", None) or Pacer(
        max_requests=10_000, per_seconds=60.0, clock=clock, sleep=clock.sleep
    )
    return NgrokClient(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(script),
        pacer=pacer,
        clock=clock,
        sleep=clock.sleep,
        rand=rand,
        **kwargs,
    )


GET_TRANSIENT = [
    err(500),
    err(502),
    err(503, "ERR_NGROK_999"),
    httpx.Response(502, content=b"<html>Bad Gateway</html>", headers={"content-type": "text/html"}),
    err(429, "ERR_NGROK_226"),
    err(429, "ERR_NGROK_225"),
    err(502, "ERR_NGROK_810"),
    httpx.Response(200, content=b"{not json"),
    httpx.Response(200, content=b"<html>ok</html>"),
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
]


@pytest.mark.parametrize("failure", GET_TRANSIENT, ids=lambda f: getattr(f, "__name__", repr(f)))
def test_reads_retry_transient_failures(failure):
    script = Script(failure, failure, SESSION)
    with make_client(script) as client:
        assert client.get_session("ts_1").region == "eu"
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (err(404), NotFound),
        (err(400, "invalid_cel_expression"), BadRequest),
        (err(400, "ERR_NGROK_804"), Unsupported),
        (err(400, "ERR_NGROK_809"), AgentFailed),
    ],
)
def test_reads_do_not_retry_client_errors(reply, expected):
    script = Script(reply, SESSION)
    with make_client(script) as client, pytest.raises(expected):
        client.get_session("ts_1")
    assert len(script.requests) == 1


def test_read_backoff_doubles_to_the_cap_and_stops_at_the_budget():
    clock = FakeClock()
    script = Script(err(503))
    with make_client(script, clock, retry_budget=30.0) as client:
        start = clock.now
        with pytest.raises(Unavailable) as caught:
            client.get_session("ts_1")
    assert caught.value.status == 503
    # rand() == 1.0 gives the full ceiling each time, until the remaining budget caps it.
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 6.25]
    assert clock.now - start == pytest.approx(30.0)
    assert len(script.requests) == len(clock.sleeps) + 1


def test_read_backoff_is_jittered_within_bounds():
    clock = FakeClock()
    rolls = iter([0.0, 0.5, 0.1, 0.9, 0.3] * 20)
    script = Script(err(500))
    client = make_client(script, clock, rand=lambda: next(rolls), retry_budget=20.0)
    with client, pytest.raises(Unavailable):
        client.get_session("ts_1")
    backoff = Backoff()
    assert clock.sleeps[:5] == [0.0, 0.25, 0.1, 1.8, 1.2]
    for attempt, slept in enumerate(clock.sleeps):
        assert 0.0 <= slept <= backoff.ceiling(attempt)
    assert sum(clock.sleeps) <= 20.0 + 1e-9


def test_zero_budget_means_one_attempt():
    script = Script(err(502), SESSION)
    with make_client(script, retry_budget=0.0) as client, pytest.raises(Unavailable):
        client.get_session("ts_1")
    assert len(script.requests) == 1


def test_retry_after_is_waited_exactly():
    clock = FakeClock()
    script = Script(err(429, "ERR_NGROK_226", {"Retry-After": "3"}), SESSION)
    with make_client(script, clock) as client:
        client.get_session("ts_1")
    assert clock.sleeps == [3.0]
    assert len(script.requests) == 2


def test_retry_after_beyond_the_budget_gives_up_at_once():
    clock = FakeClock()
    script = Script(err(429, "ERR_NGROK_226", {"Retry-After": "120"}), SESSION)
    client = make_client(script, clock, retry_budget=30.0)
    with client, pytest.raises(RateLimited) as caught:
        client.get_session("ts_1")
    assert caught.value.retry_after == 120.0
    assert clock.sleeps == []
    assert len(script.requests) == 1


def test_every_attempt_takes_a_pacer_slot():
    clock = FakeClock()
    pacer = Pacer(max_requests=3, per_seconds=1000.0, clock=clock, sleep=clock.sleep)
    script = Script(err(500), err(500), SESSION)
    with make_client(script, clock, pacer=pacer) as client:
        client.get_session("ts_1")
    assert len(script.requests) == 3
    backoffs = len(clock.sleeps)
    with pacer.slot():  # the three attempts filled the window of three
        pass
    assert len(clock.sleeps) == backoffs + 1 and clock.sleeps[-1] > 900


MAY_HAVE_BEEN_APPLIED = [
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    err(500),
    err(502),
    err(503),
    err(504),
    err(502, "ERR_NGROK_810"),
    httpx.Response(502, content=b"<html>Bad Gateway</html>"),
]


@pytest.mark.parametrize("op", ["restart", "stop", "update"])
@pytest.mark.parametrize(
    "failure", MAY_HAVE_BEEN_APPLIED, ids=lambda f: getattr(f, "__name__", repr(f))
)
def test_posts_are_never_resent_once_they_may_have_arrived(op, failure):
    script = Script(failure, NO_CONTENT)
    with make_client(script) as client, pytest.raises(MayHaveBeenApplied) as caught:
        client.act(op, "ts_1")
    assert len(script.requests) == 1
    assert caught.value.may_have_been_applied is True
    assert "outcome is unknown" in caught.value.message
    assert "session list" in caught.value.message
    assert KEY not in str(caught.value) + repr(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        err(429, "ERR_NGROK_226"),
        err(429, "ERR_NGROK_225"),
    ],
    ids=lambda f: getattr(f, "__name__", repr(f)),
)
def test_posts_are_retried_when_surely_not_applied(failure):
    script = Script(failure, NO_CONTENT)
    with make_client(script) as client:
        client.act("restart", "ts_1")
    assert len(script.requests) == 2
    assert all(r.content == b"{}" for r in script.requests)


def test_post_that_never_connects_fails_as_connect_failed_after_the_budget():
    clock = FakeClock()
    script = Script(httpx.ConnectError)
    client = make_client(script, clock, retry_budget=5.0)
    with client, pytest.raises(ConnectFailed) as caught:
        client.act("stop", "ts_1")
    assert isinstance(caught.value, Unavailable)
    assert caught.value.may_have_been_applied is False
    assert sum(clock.sleeps) == pytest.approx(5.0)
    assert len(script.requests) == len(clock.sleeps) + 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (err(404), NotFound),
        (err(400, "ERR_NGROK_804"), Unsupported),
        (err(400, "ERR_NGROK_1122"), Unsupported),
        (err(400, "ERR_NGROK_809"), AgentFailed),
        (err(400, "ERR_NGROK_213"), BadRequest),
        (httpx.Response(302, headers={"location": "/elsewhere"}), Unavailable),
    ],
)
def test_posts_raise_other_errors_once(reply, expected):
    script = Script(reply, NO_CONTENT)
    with make_client(script) as client, pytest.raises(expected) as caught:
        client.act("update", "ts_1")
    assert len(script.requests) == 1
    assert caught.value.may_have_been_applied is False


def test_retry_after_is_a_floor_under_the_backoff():
    clock = FakeClock()
    script = Script(err(429, "ERR_NGROK_226", {"Retry-After": "0"}), SESSION)
    with make_client(script, clock) as client:
        client.get_session("ts_1")
    assert clock.sleeps == [0.25]  # a Retry-After of 0 does not mean "hammer the server"
