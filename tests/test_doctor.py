"""`python -m bot check`, row by row, in process: every FAILED row says what to do next,
connection failures name the URL tried, and the audit channel is checked."""

from __future__ import annotations

import socket

import pytest

from bot.doctor import check_rows, format_table
from bot.settings.env import load_settings

KEY = "doctor-ngrok-api-key-0123456789"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens


@pytest.fixture
def rows_for(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(api_key=KEY, sessions=2)

    def rows(config: str | None = None, **env: str) -> dict[str, tuple[bool, str]]:
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": slack_api.bot_token,
                "SLACK_SIGNING_SECRET": "doctor-signing-secret-0123",
                "SLACK_API_URL": slack_api.base_url,
                "NGROK_API_KEY": KEY,
                "NGROK_API_URL": ngrok.base_url,
                "STATE_PATH": str(tmp_path / "state.sqlite3"),
                "NGROK_TIMEOUT": "2",
                **env,
            },
            config_text=config,
            config_source="test",
        )
        found = check_rows(settings)
        print(format_table(found))
        return {name: (ok, detail) for name, ok, detail in found}

    rows.slack = slack_api  # type: ignore[attr-defined]
    return rows


AUDIT_CONFIG = """
roles:
  operator: [U0ALICE]
audit_channel: C0AUDIT
"""


def test_invalid_auth_says_which_token_to_copy(rows_for):
    ok, detail = rows_for(SLACK_BOT_TOKEN="xoxb-doctor-wrong-token")["slack token (auth.test)"]
    assert not ok
    assert detail.startswith("Slack answered 'invalid_auth'. Next step: SLACK_BOT_TOKEN is not")
    assert "Bot User OAuth Token (xoxb-…)" in detail and "xoxb-doctor-wrong-token" not in detail


def test_connection_failures_name_the_url_tried(rows_for):
    slack_url = f"http://127.0.0.1:{closed_port()}/api/"
    ngrok_url = f"http://127.0.0.1:{closed_port()}"
    rows = rows_for(SLACK_API_URL=slack_url, NGROK_API_URL=ngrok_url)
    ok, detail = rows["slack token (auth.test)"]
    assert not ok and f"could not connect to Slack at {slack_url}" in detail
    assert "Next step: check the network" in detail
    ok, detail = rows["ngrok account 'default'"]
    assert not ok and f"(tried {ngrok_url})" in detail and "Next step:" in detail


def test_a_wrong_ngrok_key_points_to_the_dashboard(rows_for):
    ok, detail = rows_for(NGROK_API_KEY="doctor-WRONG-key-0123456789")["ngrok account 'default'"]
    assert not ok and "https://dashboard.ngrok.com/api-keys" in detail


@pytest.mark.parametrize(
    ("facts", "ok", "says"),
    [
        ({}, True, "the bot is a member and can post there"),
        ({"is_member": False}, False, "the bot is not a member of #c0audit. Next step: run "
         "`/invite @ngrok-ops` in that channel."),
        ({"is_archived": True}, False, "#c0audit is archived, so audit lines cannot be posted. "
         "Next step: unarchive it"),
        ({"exists": False}, False, "the bot cannot see channel C0AUDIT. Next step:"),
    ],
)  # fmt: skip
def test_the_audit_channel_is_checked(rows_for, facts, ok, says):
    rows_for.slack.set_channel("C0AUDIT", **facts)
    row_ok, detail = rows_for(AUDIT_CONFIG)["audit channel C0AUDIT"]
    assert row_ok is ok and says in detail


def test_every_failing_row_says_what_to_do(rows_for):
    rows_for.slack.set_channel("C0AUDIT", is_member=False)
    rows = rows_for(
        AUDIT_CONFIG,
        SLACK_BOT_TOKEN="xoxb-doctor-wrong-token",
        NGROK_API_KEY="doctor-WRONG-key-0123456789",
    )
    failing = {name: detail for name, (ok, detail) in rows.items() if not ok}
    assert len(failing) >= 2
    assert all("Next step:" in detail for detail in failing.values()), failing


def test_the_job_queue_row_says_whether_a_consumer_is_alive(rows_for, tmp_path):
    from bot.jobs import Jobs, open_queues

    ok, detail = rows_for()["job queue"]
    assert ok is None and "no consumer has ever reported" in detail
    assert "python -m bot jobs" in detail  # the next step
    queue = Jobs(open_queues(redis_url=None, sqlite_path=str(tmp_path / "state.sqlite3")))
    queue.register("list", lambda payload: None)
    queue.register("approve", lambda payload: None, lane="urgent")
    for _ in range(3):
        queue.submit("list", {})
    queue.submit("approve", {})
    queue.beat()  # what a running consumer does every 5 s
    queue.close()
    ok, detail = rows_for()["job queue"]
    assert ok is True and "a consumer reported" in detail
    assert "urgent: 1 waiting, 0 scheduled; normal: 3 waiting, 0 scheduled" in detail
