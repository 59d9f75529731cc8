"""Prints the Block Kit JSON of a session list, a detail view and an approval prompt.

Rendered from realistic data (the ngrok API's documented example session plus a small
fleet), for pasting into Slack's Block Kit Builder or a closing note. Run from the repo
root: `python -m bench.render_examples` (or `python bench/render_examples.py`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.ngrok.models import Endpoint, TunnelSession
from bot.slack.blocks import (
    ButtonContext,
)
from bot.slack.views.approvals import (
    render_approval_prompt,
)
from bot.slack.views.details import render_session_detail
from bot.slack.views.sessions import (
    SessionListPage,
    render_session_list,
    sessions_that_fit,
)

NOW = datetime(2025, 9, 25, 22, 40, tzinfo=UTC)
CONTEXT = ButtonContext(
    channel_id="C07INCIDENT", thread_ts="1758839400.123456", key=b"bench-button-key-0123456789"
)

API_SESSIONS = [
    {
        "agent_version": "3.1000.0-development",
        "credential": {"id": "cr_334AeHbsqlb7v3zBOf6OPnt6tig"},
        "id": "ts_334AeguNPwngGnMIrd3SZLE7pdZ",
        "ip": "10.110.2.2",
        "metadata": '{"env":"prod","service":"billing-api","host":"ip-10-110-2-2",'
        '"owner":"<!subteam^S01|payments>"}',
        "os": "linux",
        "region": "us",
        "started_at": "2025-09-22T18:34:27Z",
        "transport": "ngrok/2",
    },
    {
        "agent_version": "3.22.1",
        "credential": {"id": "cr_2xYQ8dLkq0mBfT3sW9vE1uR7nZa"},
        "id": "ts_2xYQ9aPz1LmNoQrStUvWxYz0AbC",
        "ip": "203.0.113.17",
        "metadata": "kiosk-17 & lobby screen",
        "os": "windows",
        "region": "eu",
        "started_at": "2025-09-25T07:02:11Z",
        "transport": "ngrok/2",
    },
    {
        "credential": {"id": "cr_1AbCdEfGhIjKlMnOpQrStUvWxYz"},
        "id": "ts_1AbCdEfGhIjKlMnOpQrStUvWx01",
        "ip": "198.51.100.4",
        "region": "ap",
        "started_at": "2025-09-25T22:01:00Z",
        "transport": "ssh",
    },
]


def main() -> None:
    sessions = [TunnelSession.from_api(raw) for raw in API_SESSIONS]
    page = SessionListPage(
        sessions=sessions,
        total_online=312,
        by_region=Counter({"us": 180, "eu": 97, "ap": 35}),
        by_os=Counter({"linux": 290, "windows": 18, "darwin": 4}),
        by_version=Counter({"3.22.1": 240, "3.19.0": 60, "3.1000.0-development": 12}),
        query_text="version>=3.19 prod",
        older_cursor="https://api.ngrok.com/tunnel_sessions?before_id=ts_1AbCdEfGhIjKlMnOpQrStUvWx01&limit=100",
        newer_cursor=None,
    )
    endpoints = [
        Endpoint.from_api(
            {
                "id": "ep_334AfMvVgHypLXLh2XFA5QxLPzB",
                "url": "https://billing-api.ngrok.app",
                "upstream_url": "http://localhost:8080",
            }
        )
    ]
    examples = {
        "session_list": render_session_list(page, now=NOW, context=CONTEXT),
        "session_detail": render_session_detail(sessions[0], endpoints, now=NOW, context=CONTEXT),
        "approval_prompt": render_approval_prompt(
            "restart",
            sessions[0],
            requester_id="U01ALICE",
            approve_value="<signed approval token from bot.state.approvals>",
            cancel_value="<signed cancel token>",
            two_person=False,
            ttl_seconds=600,
        ),
    }
    fit = sessions_that_fit(page, now=NOW, context=CONTEXT)
    print(f"# {fit} of {len(sessions)} sessions fit on the list page", file=sys.stderr)
    print(json.dumps(examples, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
