"""Issue 9, findings 1, 2, 6 and 7, against the Procfile's `web:` process: slow clients, large
bodies, forged log lines and malformed bodies from anyone who can reach the URL."""

from __future__ import annotations

import hmac
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.bot_process import SIGNING_SECRET
from tests.e2e_fixtures import ALICE, OPS, Stack, wait_until

SLOW = 500
ACK_BOUND = 3.0  # Slack's deadline; the measured ack is normally a few tens of ms
FORGED = "2026-01-01 00:00:00,000 ERROR ngrok_ops.jobs: FORGED"


def connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first:
        sock.sendall(first)
    return sock


@contextmanager
def slow_crowd(port: int, size: int) -> Iterator[list[socket.socket]]:
    """`size` connections that never finish a request: half-sent headers, half-sent bodies,
    silent ones, and idle keep-alive connections after one complete request."""
    kinds = [
        b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\npayload=",
        b"",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ]
    socks = []
    try:
        for n in range(size):
            socks.append(connect(port, kinds[n % len(kinds)]))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_a_signed_command_is_acked_while_500_slow_clients_are_connected(stack_factory):
    stack: Stack = stack_factory()
    with slow_crowd(stack.bot.port, SLOW):
        time.sleep(1)  # let the server take them all in
        started = time.monotonic()
        try:
            stack.slash("help")
        except httpx.TimeoutException as error:
            raise AssertionError("no ack: the slow clients hold the threads that ack") from error
        assert time.monotonic() - started < ACK_BOUND
        health = httpx.get(f"http://127.0.0.1:{stack.bot.port}/healthz", timeout=ACK_BOUND)
        assert health.status_code == 200


def test_half_sent_headers_and_bodies_are_dropped_after_a_deadline(stack_factory):
    stack: Stack = stack_factory()
    headers = connect(stack.bot.port, b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
    body = connect(
        stack.bot.port,
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npayload=",
    )
    for sock in (headers, body):
        sock.settimeout(30)
    assert headers.recv(4096) == b"", "half-sent headers must get the connection closed"
    answer = body.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_bodies_over_1_mb_are_refused_before_they_are_read(stack_factory):
    stack: Stack = stack_factory()
    # Headers only: the bot must answer without waiting for the 10 MB it was promised.
    sock = connect(
        stack.bot.port,
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10485760\r\n\r\n",
    )
    sock.settimeout(ACK_BOUND * 3)
    try:
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    except TimeoutError as error:
        raise AssertionError("the bot waited for the body instead of refusing it") from error
    finally:
        sock.close()
    # Chunked, so no Content-Length to look at: the cap applies while streaming.
    chunks = iter([b"payload=" + b"A" * 65536] * 64)  # 4 MB
    response = httpx.post(
        stack.bot.events_url,
        content=chunks,
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 413
    # Under the limit, unsigned: refused by Bolt, and its body never reaches the log.
    marker = "UNSIGNED-BODY-MARKER-" * 100
    response = stack.sender.post(f"text={marker}", "application/x-www-form-urlencoded", sign=False)
    assert response.status_code == 401
    time.sleep(0.5)
    assert "UNSIGNED-BODY-MARKER" not in stack.bot.stderr()
    # The largest real payloads still pass: a view_submission-sized signed body (~300 kB).
    url = stack.slack.response_url()
    body = stack.sender.command_body("help", user=ALICE, channel=OPS, response_url=url)
    response = stack.sender.post(
        body + "&filler=" + "x" * 300_000, "application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    stack.reply(url.rsplit("/", 1)[1])


def test_text_from_outside_cannot_forge_log_lines(stack_factory):
    stack: Stack = stack_factory()

    def forged() -> list[str]:
        return [line for line in stack.bot.stderr().splitlines() if line.startswith(FORGED)]

    body = f"text=hello\n{FORGED}\n&user_id=U1"
    response = stack.sender.post(body, "application/x-www-form-urlencoded", sign=False)
    assert response.status_code == 401
    wait_until(lambda: "Invalid request signature" in stack.bot.stderr(), what="Bolt's line")
    assert forged() == []
    # A path with an encoded newline, refused before its body is read, logged with the path.
    path = f"/slack/events%0A{FORGED.replace(' ', '%20')}"
    sock = connect(
        stack.bot.port,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".encode(),
    )
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    sock.close()
    wait_until(lambda: "refused POST" in stack.bot.stderr(), what="the refusal's log line")
    assert forged() == []


MALFORMED = [
    ("invalid UTF-8", b"text=\xff\xfe\xfa", "application/x-www-form-urlencoded"),
    ("deep JSON", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("deep JSON object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json"),
    ("JSON labelled as a form", b'{"type": "event_callback", "event": "x"}', None),
    ("JSON list labelled as a form", b'[{"type": "block_actions"}]', None),
    ("broken payload", b"payload=%7B%22type%22%3A", None),
    ("payload not an object", b"payload=%5B1%2C2%5D", None),
]


def test_malformed_bodies_get_a_4xx_and_one_log_line(stack_factory):
    stack: Stack = stack_factory()
    form = "application/x-www-form-urlencoded"
    # The job consumer starts beside the web process and logs its start-up; let it finish
    # first, so its lines are not counted as the request's.
    wait_until(lambda: "job consumer running" in stack.bot.stderr(), what="the consumer")
    time.sleep(0.5)
    for signed in (False, True):
        for name, body, content_type in MALFORMED:
            before = len(stack.bot.stderr().splitlines())
            response = post_raw(stack, body, content_type or form, signed=signed)
            assert 400 <= response.status_code < 500, (name, signed, response.status_code)
            wait_until(lambda before=before: lines_after(stack, before), what=f"a line for {name}")
            time.sleep(0.3)  # a second line (a traceback) would be written by now
            new = lines_after(stack, before)
            assert len(new) == 1, (name, signed, new)
            assert "Traceback" not in stack.bot.stderr(), name
    # Well-formed requests still work.
    _, key = stack.slash("help")
    assert stack.reply(key)


def lines_after(stack: Stack, before: int) -> list[str]:
    """Log lines written since line `before`, without gunicorn's access lines."""
    lines = stack.bot.stderr().splitlines()[before:]
    return [line for line in lines if '"POST /slack/events HTTP/1.1"' not in line]


def post_raw(stack: Stack, body: bytes, content_type: str, *, signed: bool) -> httpx.Response:
    """Posts exact bytes; signed like Slack when `signed` (the signature covers the bytes)."""
    ts = str(int(time.time()))
    headers = {"content-type": content_type, "x-slack-request-timestamp": ts}
    if signed:
        digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, "sha256")
        headers["x-slack-signature"] = "v0=" + digest.hexdigest()
    return httpx.post(stack.bot.events_url, content=body, headers=headers, timeout=10)


def test_a_body_nested_64_deep_is_still_accepted(stack_factory):
    """The nesting limit leaves room for every real payload (Slack's nest about 15 deep)."""
    stack: Stack = stack_factory()
    nested: object = "x"
    for _ in range(60):
        nested = {"k": nested}
    envelope = {"type": "url_verification", "challenge": "c-123", "extra": nested}
    response = stack.sender.post(json.dumps(envelope), "application/json")
    assert response.status_code == 200
    assert "c-123" in response.text
