"""The on-call engineer's view (issue 10), in process: feedback while waiting, honest
empty results, dense lists with export and sharing, menus that show only what may run,
the right sentence after Cancel, outcomes told to two-person requesters, readable audit."""

from __future__ import annotations

import json

import pytest

from bot.slack import ids
from bot.slack.blocks import decode_button_value
from bot.slack.invocation import Invocation, Placeholder
from commands.grammar import SessionQuery
from commands.sessions import list_sessions
from tests.e2e_fixtures import validate_message
from tests.oncall_harness import (
    ALICE,
    BOB,
    CLOSED,
    NGROK_KEY,
    OPS,
    VIEWER,
    Harness,
    button,
    buttons,
    is_working,
    start,
    texts,
)


@pytest.fixture
def make_harness(tmp_path, slack_api, ngrok_api_factory):
    made: list[Harness] = []

    def build(sessions: int = 30, **kw) -> Harness:
        ngrok = ngrok_api_factory(sessions=sessions, api_key=NGROK_KEY, restart_delay=0.05)
        harness = start(tmp_path, slack_api, ngrok, **kw)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        harness.close()


def table_rows(message):
    table = next(b for b in message["blocks"] if b["type"] == "table")
    return table["rows"][1:]


# --- 1. feedback while waiting -------------------------------------------------------------


def test_slash_ack_says_working_and_the_answer_replaces_it(make_harness):
    h = make_harness()
    response, key = h.slash("sessions")
    ack = json.loads(response.body)
    assert ack["text"] == "Looking up agents…" and is_working(ack)
    replies = h.replies(key)
    assert len(replies) == 1 and not is_working(replies[0])
    assert replies[0]["replace_original"] is True and replies[0]["response_type"] == "ephemeral"
    assert "30 ngrok agents online" in replies[0]["text"]


def test_mention_posts_a_placeholder_in_the_thread_and_updates_it(make_harness):
    h = make_harness()
    h.mention("sessions")
    placeholder = h.posted("chat.postMessage")[0]
    assert is_working(placeholder.body) and placeholder.body["thread_ts"] == "1700000000.000200"
    update = h.posted("chat.update")[-1]
    assert update.body["ts"] == placeholder.response["ts"]
    assert "30 ngrok agents online" in update.body["text"]
    assert len(h.posted("chat.postMessage")) == 1


def test_a_refusal_after_a_mention_placeholder_removes_it(make_harness):
    h = make_harness()
    h.mention("sessions", user="U0NOBODY")
    placeholder = h.posted("chat.postMessage")[0]
    assert [c.body["ts"] for c in h.posted("chat.delete")] == [placeholder.response["ts"]]
    assert "may not look" in h.posted("chat.postEphemeral")[0].body["text"]


def test_a_long_scan_reports_its_pages_at_most_every_two_seconds(make_harness):
    h = make_harness(sessions=450)  # five API pages of 100
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every look at the clock is a second later: no sleeping, no flakiness
        return now[0]

    def scan() -> list[str]:
        placeholder = Placeholder(clock=clock)
        inv = Invocation(
            "mention", ALICE, OPS, "1700000000.000200", h.deps.slack, None, placeholder
        )
        inv.working({"text": "Looking up agents…", "blocks": []})
        h.slack.clear()
        list_sessions(inv, h.deps, SessionQuery())
        return [c.body["text"] for c in h.posted("chat.update")]

    first = scan()
    assert first[:-1] == ["Looking up agents… page 2", "Looking up agents… page 4"]
    assert "450 ngrok agents online" in first[-1]
    second = scan()  # the first scan's size gives an estimate
    assert second[:-1] == ["Looking up agents… page 2 of ~5", "Looking up agents… page 4 of ~5"]
    print("\nRENDERED progress:", second[:-1])


def test_approve_replaces_the_prompt_with_restarting_then_the_result(make_harness):
    h = make_harness()
    sid = next(s for s in h.ngrok.session_ids() if h.ngrok.session(s).get("os") == "linux")
    prompt = h.ask(f"restart {sid}")
    key = h.click(button(prompt, ids.ACTION_APPROVE))
    replies = h.replies(key)
    assert replies[0]["text"] == f"Restarting {sid}…" and is_working(replies[0])
    assert replies[0]["replace_original"] is True
    assert (
        "ngrok accepted the restart" in replies[1]["text"]
        and replies[1]["replace_original"] is True
    )


# --- 2. empty result -----------------------------------------------------------------------


def test_an_empty_filtered_result_counts_the_fleet_and_suggests_values(make_harness):
    h = make_harness(sessions=500)
    body = h.ask("sessions region=mars")
    validate_message(body)
    empty = next(b for b in body["blocks"] if b.get("block_id") == "empty")["text"]["text"]
    assert empty.startswith("No agents match `region=mars`. 500 agents are online in this account.")
    assert "Closest existing values: `region=" in empty
    assert "No agents are connected" not in texts(body)
    host = h.ask("sessions web-4x")
    hint = next(b for b in host["blocks"] if b.get("block_id") == "empty")["text"]["text"]
    assert "`web-4" in hint
    print("\nRENDERED empty:", empty)


# --- 3. dense lists, export ----------------------------------------------------------------


def test_limit_500_shows_100_rows_says_why_and_exports_everything(make_harness):
    h = make_harness(sessions=500)
    body = h.ask("sessions limit=500")
    validate_message(body)
    assert len(table_rows(body)) == 100
    note = body["blocks"][-1]["elements"][0]["text"]
    assert note.startswith("Showing 100 of the 500 asked for: one page holds up to 100 agents")
    select = next(b for b in buttons(body) if b["type"] == "static_select")
    assert len(select["options"]) == 100
    h.click(button(body, ids.ACTION_EXPORT))
    [upload] = h.slack.uploaded_files()
    lines = upload["content"].splitlines()
    assert lines[0].startswith("host,session_id,region") and len(lines) == 501
    assert upload["channel"] == OPS and upload["filename"].endswith(".csv")
    assert upload["initial_comment"].startswith(f"<@{ALICE}> exported 500 agents")
    print("\nRENDERED list header:", body["blocks"][0]["text"]["text"], "|", note)


def test_picking_an_agent_in_the_select_opens_its_details(make_harness):
    h = make_harness()
    body = h.ask("sessions limit=5")
    select = next(b for b in buttons(body) if b["type"] == "static_select")
    option = select["options"][2]
    detail = h.answer(h.click(select, option=option))
    assert (
        decode_button_value(option["value"], key=h.deps.settings.approval_secret).session_id
        in detail["text"]
    )


# --- 4. post to channel --------------------------------------------------------------------


def test_post_to_channel_shows_the_same_list_and_details_to_everyone(make_harness):
    h = make_harness()
    body = h.ask("sessions limit=5")
    h.click(button(body, ids.ACTION_SHARE))
    shared = h.posted("chat.postMessage")[-1].body
    validate_message(shared)
    assert shared["channel"] == OPS and table_rows(shared) == table_rows(body)
    assert f"Posted by <@{ALICE}>" in texts(shared)
    assert not [b for b in buttons(shared) if b["action_id"] == ids.ACTION_SHARE]
    sid = h.ngrok.session_ids()[0]
    detail = h.ask(f"session {sid}")
    h.click(button(detail, ids.ACTION_SHARE), user=VIEWER)
    public = h.posted("chat.postMessage")[-1].body
    assert sid in public["text"] and f"Posted by <@{VIEWER}>" in texts(public)
    assert not [b for b in buttons(public) if b["action_id"] == ids.ACTION_REQUEST]


# --- 5. menus where nothing can run --------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "channel", "config", "hint"),
    [
        (VIEWER, OPS, None, "You can look but not act"),
        (ALICE, CLOSED, None, "Actions are not allowed in this channel"),
        (ALICE, OPS, "none", "Actions are turned off because the bot has no BOT_CONFIG"),
    ],
)
def test_details_offer_only_what_this_user_may_do_here(make_harness, user, channel, config, hint):
    h = make_harness(**({"config": None} if config == "none" else {}))
    sid = h.ngrok.session_ids()[0]
    detail = h.ask(f"session {sid}", user=user, channel=channel)
    validate_message(detail)
    assert not [b for b in buttons(detail) if b["action_id"] == ids.ACTION_REQUEST]
    assert "Every action asks for approval" not in texts(detail)
    assert texts(detail).count(hint) == 1
    listing = h.ask("sessions", user=user, channel=channel)
    assert texts(listing).count(hint) == 1


def test_an_operator_in_an_open_channel_sees_the_actions(make_harness):
    h = make_harness()
    sid = next(s for s in h.ngrok.session_ids() if h.ngrok.session(s).get("os") == "linux")
    detail = h.ask(f"session {sid}")
    key = h.deps.settings.approval_secret
    ops = [decode_button_value(b["value"], key=key).op for b in buttons(detail)
           if b["action_id"] == ids.ACTION_REQUEST]  # fmt: skip
    assert ops == ["restart", "update", "stop"]
    assert "Every action asks for approval before it runs." in texts(detail)


# --- 6. the right sentence after Cancel ----------------------------------------------------


def test_approve_after_cancel_says_it_was_cancelled(make_harness):
    h = make_harness()
    sid = next(s for s in h.ngrok.session_ids() if h.ngrok.session(s).get("os") == "linux")
    prompt = h.ask(f"restart {sid}")
    h.click(button(prompt, ids.ACTION_CANCEL))
    late = h.answer(h.click(button(prompt, ids.ACTION_APPROVE)))
    assert late["text"] == (
        f"This restart was cancelled, so it will not run. Ask again with `restart {sid}` "
        "for a new prompt."
    )
    assert not [r for r in h.ngrok.log() if r.method == "POST"]


# --- 7. two-person requesters hear every outcome; reasons go into the record ---------------


def _two_person_request(h: Harness) -> tuple[str, dict]:
    sid = h.ngrok.session_ids()[0]
    prompt = h.ask(f"stop {sid}")
    h.click(button(prompt, ids.ACTION_ASK_APPROVAL))
    request = next(c for c in h.posted("chat.postMessage") if c.body["channel"] == OPS).body
    return sid, request


def _dms_to(h: Harness, user: str) -> list[str]:
    return [c.body["text"] for c in h.posted("chat.postMessage") if c.body["channel"] == user]


def test_a_denial_asks_for_a_reason_records_it_and_tells_the_requester(make_harness):
    h = make_harness()
    sid, request = _two_person_request(h)
    h.click(button(request, ids.ACTION_TWO_PERSON_DENY), user=BOB, ephemeral=False)
    [opened] = h.posted("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == ids.VIEW_DECISION_REASON and opened.body["trigger_id"]
    assert view["title"]["text"] == "Deny request"
    values = {
        "reason": {"reason": {"type": "plain_text_input", "value": "Not during the deploy <!here>"}}
    }
    assert h.submit_view(view, values, user=BOB).status == 200
    edited = h.posted("chat.update")[-1].body
    validate_message(edited)
    state = next(b for b in edited["blocks"] if b.get("block_id") == "state_denied")
    assert state["text"]["text"] == (
        f":no_entry_sign: Denied by <@{BOB}>; nothing was changed. "
        "Reason: Not during the deploy &lt;!here&gt;"
    )
    [notice] = _dms_to(h, ALICE)
    assert notice == f"Your request to stop {sid}: denied"
    dm = next(c for c in h.posted("chat.postMessage") if c.body["channel"] == ALICE).body
    assert "Reason: Not during the deploy &lt;!here&gt;" in texts(dm)
    [denied] = [r for r in h.deps.store.recent_audit(limit=20) if r["event"] == "denied"]
    assert denied["detail"] == "Not during the deploy <!here>" and denied["actor"] == BOB
    assert not [r for r in h.ngrok.log() if r.method == "POST"]


def test_the_requester_withdraws_with_a_reason(make_harness):
    h = make_harness()
    _, request = _two_person_request(h)
    h.click(button(request, ids.ACTION_TWO_PERSON_DENY), user=ALICE, ephemeral=False)
    view = h.posted("views.open")[0].body["view"]
    assert view["title"]["text"] == "Withdraw request"
    values = {"reason": {"reason": {"type": "plain_text_input", "value": "wrong agent"}}}
    h.submit_view(view, values, user=ALICE)
    edited = texts(h.posted("chat.update")[-1].body)
    assert f"Withdrawn by <@{ALICE}>; nothing was changed. Reason: wrong agent" in edited
    assert _dms_to(h, ALICE) == []  # they did it themselves
    assert [
        r["detail"] for r in h.deps.store.recent_audit(limit=20) if r["event"] == "withdrawn"
    ] == ["wrong agent"]


def test_an_approved_request_tells_the_requester_it_runs_and_how_it_ended(make_harness):
    h = make_harness()
    sid, request = _two_person_request(h)
    h.click(button(request, ids.ACTION_TWO_PERSON_APPROVE), user=BOB, ephemeral=False)
    assert _dms_to(h, ALICE) == [
        f"Your request to stop {sid}: running",
        f"Your request to stop {sid}: done",
    ]


def test_an_expired_request_tells_the_requester(make_harness):
    from commands.approval import expire_request

    h = make_harness()
    sid, _ = _two_person_request(h)
    [record] = [
        r for r in h.deps.store.recent_audit(limit=20) if r["event"] == "approval_requested"
    ]
    expire_request(h.deps, record["request_id"])
    assert _dms_to(h, ALICE) == [f"Your request to stop {sid}: expired"]


# --- 8. audit: sentences for people, CSV for machines --------------------------------------


def test_audit_reads_as_sentences_and_csv_goes_to_the_requester_only(make_harness):
    h = make_harness()
    sid = next(s for s in h.ngrok.session_ids() if h.ngrok.session(s).get("os") == "linux")
    prompt = h.ask(f"restart {sid}")
    h.click(button(prompt, ids.ACTION_APPROVE))
    audit = h.ask("audit 5")
    validate_message(audit)
    lines = audit["blocks"][1]["text"]["text"].splitlines()
    assert any(f"<@{ALICE}> restarted" in line and ": done in" in line for line in lines)
    assert any(f"<@{ALICE}> asked to restart" in line for line in lines)
    assert "approval_requested" not in texts(audit) and "→" not in texts(audit)
    print("\nRENDERED audit (in-process):", *lines, sep="\n  ")
    _, key = h.slash("audit 5 csv")
    [upload] = h.slack.uploaded_files()
    assert upload["channel"] == "D0ALICE"
    rows = upload["content"].splitlines()
    assert rows[0].startswith("time_utc,event,action,actor") and len(rows) == 4  # 3 records
    assert "audit records as a CSV file" in h.answer(key)["text"]
