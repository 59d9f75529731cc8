"""The audit record and the action's outcome survive failures around them."""

from __future__ import annotations

import io
import json
import socket

import httpx

from bot.ngrok.client import NgrokClient
from bot.ngrok.pacing import Pacer
from bot.slack.views.audit import render_audit_line
from bot.state.audit import Auditor
from bot.state.backends import open_store
from commands.execute import run_action


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_store_never_stops_the_record_or_the_caller():
    store = open_store(redis_url=f"redis://127.0.0.1:{closed_port()}/0", sqlite_path="unused")
    out, announced = io.StringIO(), []
    auditor = Auditor(
        store, audit_channel="C0AUDIT", announce=lambda ch, text: announced.append((ch, text)),
        stream=out,
    )  # fmt: skip
    entry = auditor.record("executed", action="stop", actor="U0ALICE", session_id="ts_" + "A" * 27)
    assert json.loads(out.getvalue())["audit"]["event"] == "executed"
    assert entry["action"] == "stop" and announced and announced[0][0] == "C0AUDIT"


def test_the_audit_line_escapes_and_never_cuts_an_entity():
    store = open_store(redis_url=None, sqlite_path=":memory:")
    announced = []
    auditor = Auditor(
        store,
        audit_channel="C0AUDIT",
        announce=lambda ch, entry: announced.append(render_audit_line(entry)),
        stream=io.StringIO(),
    )
    auditor.record("failed", action="stop", actor="U0ALICE", detail="&" * 600 + "<!channel>")
    line = announced[0]
    assert "<!channel>" not in line and "&amp;" in line
    assert not line.rstrip("…").endswith(("&", "&a", "&am", "&amp"))


def test_an_unexpected_error_after_sending_is_reported_as_maybe_applied():
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug below the client")

    client = NgrokClient(
        "key-0123456789", base_url="http://ngrok.invalid", transport=httpx.MockTransport(broken),
        pacer=Pacer(max_requests=100, per_seconds=1.0),
    )  # fmt: skip
    outcome = run_action(client, "stop", "ts_" + "B" * 27)
    assert not outcome.ok and outcome.may_have_been_applied
    assert "may have been applied" in outcome.sentence
