"""Every message the bot renders, checked against Slack's own block models and limits.

Sessions are built from dicts shaped like the ngrok API's, with hostile and oversized
metadata; no message may carry a mention or broadcast that came from data.
"""

import json
import re
from datetime import UTC, datetime

import pytest
from slack_sdk.models.blocks import Block

from bot.ngrok.models import Endpoint, TunnelSession
from bot.slack import blocks as bk
from bot.slack.blocks import (
    ButtonContext,
    ButtonValue,
    decode_button_value,
)
from bot.slack.ids import (
    ACTION_APPROVE,
    ACTION_ASK_APPROVAL,
    ACTION_CANCEL,
    ACTION_DETAILS,
    ACTION_EXPORT,
    ACTION_PAGE,
    ACTION_REQUEST,
    ACTION_SHARE,
    ACTION_TWO_PERSON_APPROVE,
    ACTION_TWO_PERSON_DENY,
    ALL_ACTIONS,
)
from bot.slack.views.action_record import RECORD_STATES, render_action_record
from bot.slack.views.approvals import (
    render_action_result,
    render_approval_prompt,
    render_cancelled,
    render_two_person_request,
)
from bot.slack.views.audit import (
    audit_sentence,
    render_audit,
)
from bot.slack.views.details import render_session_detail
from bot.slack.views.errors import (
    render_error,
)
from bot.slack.views.export import render_audit_csv
from bot.slack.views.help import (
    render_help,
)
from bot.slack.views.sessions import (
    SessionListPage,
    max_sessions_per_message,
    render_session_list,
    sessions_that_fit,
)
from bot.state.requests import TwoPersonRequest
from commands.grammar import VERBS, help_lines

NOW = datetime(2025, 9, 25, 22, 40, 0, tzinfo=UTC)
KEY = b"views-test-button-key-0123456789"
CTX = ButtonContext("C0INCIDENT", "1700000000.000100", KEY)
REQUESTER, APPROVER = "U0REQ1", "U0APP2"
HOSTILE = "<!channel> & <@U123> <#C999> <https://evil.example|click> :tada: 🚀 `rm -rf` *b*"
MARKUP = re.compile(r"<[^>]*>")
DATE_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+ UTC>")

API_SESSION = {
    "agent_version": "3.1000.0-development",
    "credential": {"id": "cr_334AeHbsqlb7v3zBOf6OPnt6tig", "uri": "https://api.ngrok.com/x"},
    "id": "ts_334AeguNPwngGnMIrd3SZLE7pdZ",
    "ip": "10.110.2.2",
    "os": "linux",
    "region": "us",
    "started_at": "2025-09-22T18:34:27Z",
    "transport": "ngrok/2",
    "uri": "https://api.ngrok.com/tunnel_sessions/ts_334AeguNPwngGnMIrd3SZLE7pdZ",
}


def make(n: int = 0, **fields) -> TunnelSession:
    raw = dict(API_SESSION, id=f"ts_334AeguNPwngGnMIrd3SZ{n:07d}")
    raw.update(fields)
    return TunnelSession.from_api(raw)


def big_metadata() -> str:
    """4,096 characters that escape to about 5,000, with every kind of hazard."""
    text = (HOSTILE + ' {"k": "a&b"} ') * 100
    return text[:4096]


def texts_of(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts_of(item)


def elements_of(node):
    if isinstance(node, dict):
        if "action_id" in node:
            yield node
        for value in node.values():
            yield from elements_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from elements_of(item)


def assert_valid(message, mentions=()):
    """Slack's block models accept it and it stays inside every limit we know of."""
    assert set(message) == {"text", "blocks"}
    assert 0 < len(message["text"]) <= bk.MAX_FALLBACK_TEXT
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= bk.MAX_BLOCKS
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= bk.MAX_SECTION_TEXT
            assert all(len(f["text"]) <= bk.MAX_FIELD_TEXT for f in block.get("fields", []))
            assert block["text"]["verbatim"] is True
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= bk.MAX_HEADER_TEXT
        if block["type"] == "actions":
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids))
    for element in elements_of(blocks):
        assert element["action_id"] in ALL_ACTIONS
        assert len(element.get("value", "")) <= bk.MAX_BUTTON_VALUE
        assert all(len(o["value"]) <= bk.MAX_OPTION_VALUE for o in element.get("options", []))
    assert bk.text_length(blocks) <= bk.MAX_MESSAGE_TEXT
    for text in [message["text"], *texts_of(blocks)]:
        for markup in MARKUP.findall(text):
            assert DATE_TOKEN.fullmatch(markup) or markup in {f"<@{m}>" for m in mentions}, markup
    return blocks


def all_text(message) -> str:
    return "\n".join([message["text"], *texts_of(message["blocks"])])


def rows(blocks):
    return [b for b in blocks if re.fullmatch(r"row\d+", b.get("block_id", ""))]


def request_control(blocks, index):
    actions = next(b for b in blocks if b.get("block_id") == f"row{index}_actions")
    return next(e for e in actions["elements"] if e["action_id"] == ACTION_REQUEST)


def request_ops(control):
    if control["type"] == "overflow":
        values = [o["value"] for o in control["options"]]
    else:
        values = [control["value"]]
    return [decode_button_value(v, key=KEY).op for v in values]


# --- session list ----------------------------------------------------------------------------


def page_of(sessions, **kw) -> SessionListPage:
    defaults = dict(
        total_online=len(sessions),
        by_region={"us": 300, "eu": 150, "ap": 40, "au": 5, "sa": 3, "jp": 1, "in": 1},
        by_os={"linux": 480, "windows": 20, HOSTILE: 1},
        by_version={"3.22.1": 400, "3.1000.0-development": 100},
        query_text="region=us os=linux version>=3.20 prod",
        older_cursor="https://api.ngrok.com/tunnel_sessions?before_id=ts_x&limit=100",
        newer_cursor="",
    )
    defaults.update(kw)
    return SessionListPage(sessions=sessions, **defaults)


def table_rows(blocks):
    """The agent rows of the list's table block, as lists of cell texts (header dropped)."""
    table = next((b for b in blocks if b["type"] == "table"), None)
    if table is None:
        return []
    return [[c["text"] for c in row] for row in table["rows"][1:]]


def picker(blocks):
    return next(b for b in blocks if b.get("block_id") == "pick")["elements"][0]


def test_list_of_ordinary_sessions():
    sessions = [make(i) for i in range(5)]
    message = render_session_list(page_of(sessions), now=NOW, context=CTX)
    blocks = assert_valid(message)
    assert blocks[0]["text"]["text"] == "5 ngrok agents online"
    text = all_text(message)
    assert "us 300, eu 150, ap 40, au 5, sa 3, +2 more" in text
    assert "`region=us os=linux version&gt;=3.20 prod`" in text
    assert "showing 1 to 5" in text
    assert len(table_rows(blocks)) == 5
    first = table_rows(blocks)[0]
    assert first[0] == "1" and first[2] == "ts_334AeguNPwngGnMIrd3SZ0000000"
    assert first[3:] == ["us", "linux", "3.1000.0-development", "3d 4h"]
    assert [b["type"] for b in blocks].count("table") == 1


def test_list_table_names_the_host_first_when_metadata_has_one():
    sessions = [make(0, metadata='{"host": "web-1", "env": "prod"}'), make(1, metadata="host=db-2")]
    blocks = assert_valid(render_session_list(page_of(sessions), now=NOW, context=CTX))
    assert [r[1] for r in table_rows(blocks)] == ["web-1", "db-2"]
    labels = [o["text"]["text"] for o in picker(blocks)["options"]]
    assert labels[0].startswith("1. web-1 (")


def test_list_select_opens_details_of_the_agents_shown():
    sessions = [make(i) for i in range(3)]
    blocks = assert_valid(render_session_list(page_of(sessions), now=NOW, context=CTX))
    select = picker(blocks)
    assert select["type"] == "static_select" and select["action_id"] == ACTION_DETAILS
    values = [decode_button_value(o["value"], key=KEY) for o in select["options"]]
    assert values[1] == ButtonValue("details", sessions[1].id, CTX.channel_id, CTX.thread_ts)
    # Nothing on the list offers Restart/Update/Stop: acting goes through the details,
    # which show only what this user may do here.
    assert not [e for e in elements_of(blocks) if e["action_id"] == ACTION_REQUEST]


def test_list_offers_export_and_post_to_channel_with_the_query():
    blocks = assert_valid(render_session_list(page_of([make(0)]), now=NOW, context=CTX))
    buttons = next(b for b in blocks if b.get("block_id") == "list_actions")["elements"]
    assert [b["action_id"] for b in buttons] == [ACTION_EXPORT, ACTION_SHARE]
    for button in buttons:
        value = decode_button_value(button["value"], key=KEY)
        assert value.op == "page" and value.query == "region=us os=linux version>=3.20 prod"


def test_shared_list_has_no_export_or_share_and_names_who_posted_it():
    page = page_of([make(0)], shared_by="U0ALICE", rights_note="You can look but not act.")
    message = render_session_list(page, now=NOW, context=CTX)
    blocks = assert_valid(message, mentions=("U0ALICE",))
    assert not [b for b in blocks if b.get("block_id") == "list_actions"]
    assert "Posted by <@U0ALICE>" in all_text(message)
    assert "look but not act" not in all_text(message)


def test_list_escapes_hostile_metadata_and_fields():
    hostile = make(0, metadata=HOSTILE, region="<!here>", agent_version="<@U999>", ip="&")
    message = render_session_list(page_of([hostile]), now=NOW, context=CTX)
    assert_valid(message)
    text = all_text(message)
    assert "&lt;!here&gt;" in text and "&lt;@U999&gt;" in text
    hosted = make(0, metadata='{"host": "<!channel> & <@U123>"}')
    text = all_text(render_session_list(page_of([hosted]), now=NOW, context=CTX))
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text


def test_list_handles_missing_fields():
    bare = TunnelSession.from_api({"id": "ts_334AeguNPwngGnMIrd3SZLE7pdZ"})
    message = render_session_list(page_of([bare]), now=NOW, context=CTX)
    first = table_rows(assert_valid(message))[0]
    assert first[1:] == ["-", bare.id, "?", "?", "?", "unknown"]


def test_one_page_shows_100_agents_and_says_when_fewer_than_asked():
    sessions = [make(i) for i in range(100)]
    page = page_of(sessions, total_online=500, requested=500)
    message = render_session_list(page, now=NOW, context=CTX)
    blocks = assert_valid(message)
    assert len(table_rows(blocks)) == 100
    assert len(picker(blocks)["options"]) == 100
    note = blocks[-1]["elements"][0]["text"]
    assert note == (
        "Showing 100 of the 500 asked for: one page holds up to 100 agents; use *Older ▶* "
        "for the next page, or *Export* for the whole list as CSV."
    )
    print("\nRENDERED list note:", note)


def test_500_sessions_with_4096_char_metadata_fit_in_one_message():
    sessions = [make(i, metadata=big_metadata()) for i in range(100)]
    page = page_of(sessions, total_online=500, requested=100)
    message = render_session_list(page, now=NOW, context=CTX)
    blocks = assert_valid(message)
    fit = sessions_that_fit(page, now=NOW, context=CTX)
    assert 0 < fit <= max_sessions_per_message() == 100
    assert len(table_rows(blocks)) == fit
    assert bk.text_length(blocks) <= bk.MAX_MESSAGE_TEXT


def test_page_size_adapts_to_the_text_budget():
    garbled = "&" * 200
    sessions = [
        make(i, metadata=garbled, region=garbled, os=garbled, agent_version=garbled, ip=garbled)
        for i in range(100)
    ]
    page = page_of(sessions, requested=100)
    fit = sessions_that_fit(page, now=NOW, context=CTX)
    assert fit < 100
    message = render_session_list(page, now=NOW, context=CTX)
    assert len(table_rows(assert_valid(message))) == fit
    assert "did not fit into one Slack message" in all_text(message)
    exact = page_of(sessions[:fit], requested=fit)
    assert "did not fit" not in all_text(render_session_list(exact, now=NOW, context=CTX))


def test_the_sections_fallback_has_one_block_per_row_with_details():
    sessions = [make(i, metadata=f'{{"host":"web-{i}"}}') for i in range(60)]
    page = page_of(sessions, requested=60)
    message = render_session_list(page, now=NOW, context=CTX, layout="sections")
    blocks = assert_valid(message)
    shown = rows(blocks)
    assert len(shown) == max_sessions_per_message("sections") == 42
    assert shown[0]["accessory"]["action_id"] == ACTION_DETAILS
    assert "*web-0*" in shown[0]["text"]["text"]
    assert "Showing 42 of the 60 asked for: the rest did not fit" in all_text(message)


def test_page_buttons_carry_query_cursor_and_thread():
    message = render_session_list(page_of([make(0)]), now=NOW, context=CTX)
    blocks = assert_valid(message)
    newer = next(b for b in blocks if b.get("block_id") == "page_newer")["elements"][0]
    older = next(b for b in blocks if b.get("block_id") == "page_older")["elements"][0]
    assert newer["action_id"] == older["action_id"] == ACTION_PAGE
    value = decode_button_value(older["value"], key=KEY)
    assert value.op == "page"
    assert value.query == "region=us os=linux version>=3.20 prod"
    assert value.cursor.startswith("https://api.ngrok.com/")
    assert (value.channel_id, value.thread_ts) == (CTX.channel_id, CTX.thread_ts)
    assert decode_button_value(newer["value"], key=KEY).cursor == ""


def test_no_page_buttons_without_cursors():
    page = page_of([make(0)], older_cursor=None, newer_cursor=None)
    blocks = assert_valid(render_session_list(page, now=NOW, context=CTX))
    assert not [b for b in blocks if b.get("block_id", "").startswith("page_")]


def test_a_query_too_long_for_a_button_is_said_not_cut():
    page = page_of([make(0)], query_text="meta=" + "x" * 2100)
    message = render_session_list(page, now=NOW, context=CTX)
    blocks = assert_valid(message)
    assert not [e for e in elements_of(blocks) if e["action_id"] == ACTION_PAGE]
    assert "too long to carry in a Page button" in all_text(message)


def test_empty_result_with_filters_suggests_removing_them():
    message = render_session_list(page_of([], total_online=12), now=NOW, context=CTX)
    assert_valid(message)
    text = all_text(message)
    assert "No agents match `region=us os=linux version&gt;=3.20 prod`" in text
    assert "Remove some filters" in text


def test_empty_filtered_result_says_how_many_are_online_and_suggests_values():
    page = page_of(
        [], total_online=0, by_region={}, by_os={}, by_version={}, query_text="region=mars",
        older_cursor=None, newer_cursor=None, fleet_online=500,
        suggestions=["region=us", "region=eu"],
    )  # fmt: skip
    message = render_session_list(page, now=NOW, context=CTX)
    blocks = assert_valid(message)
    assert blocks[0]["text"]["text"] == "No agents match these filters"
    empty = next(b for b in blocks if b.get("block_id") == "empty")["text"]["text"]
    assert empty == (
        "No agents match `region=mars`. 500 agents are online in this account.\n"
        "Closest existing values: `region=us`, `region=eu`.\n"
        "Remove some filters, or list everything with `sessions`."
    )
    assert "No agents are connected" not in all_text(message)
    assert message["text"] == "No agents matched region=mars; 500 online in all"
    print("\nRENDERED empty result:", empty)


def test_empty_page_still_offers_older_pages():
    page = page_of([], newer_cursor=None)
    blocks = assert_valid(render_session_list(page, now=NOW, context=CTX))
    assert [b["block_id"] for b in blocks[3:]] == ["empty", "page_older"]


def test_empty_account():
    page = SessionListPage(sessions=[], total_online=0)
    message = render_session_list(page, now=NOW, context=ButtonContext("C1", key=KEY))
    assert_valid(message)
    assert "No agents are online" in all_text(message)
    assert "No agents are connected" in all_text(message)


# --- detail view -----------------------------------------------------------------------------


ENDPOINTS = [
    Endpoint.from_api(
        {"id": "ep_1", "url": "https://a.ngrok.app", "upstream_url": "http://localhost:80"}
    ),
    Endpoint.from_api(
        {"id": "tn_2", "public_url": "tcp://1.tcp.ngrok.io:2000", "forwards_to": "x"}
    ),
]


def detail(session, endpoints=ENDPOINTS):
    message = render_session_detail(session, endpoints, now=NOW, context=CTX)
    assert_valid(message)
    return message


def metadata_text(message) -> str:
    chunks = [
        b["text"]["text"]
        for b in message["blocks"]
        if b["type"] == "section" and b["text"]["text"].startswith("```")
    ]
    body = "".join(c.removeprefix("```\n").removesuffix("\n```") for c in chunks)
    return body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_detail_shows_every_field():
    message = detail(make(0, metadata="plain words"))
    text = all_text(message)
    for expected in (
        "`ts_334AeguNPwngGnMIrd3SZ0000000`",
        "`cr_334AeHbsqlb7v3zBOf6OPnt6tig`",
        "*Region*\nus",
        "*OS*\nlinux",
        "*Agent version*\n3.1000.0-development",
        "*Transport*\nngrok/2",
        "*IP*\n10.110.2.2",
        "<!date^1758566067^{date_short_pretty} {time}|2025-09-22 18:34 UTC> (up 3d 4h)",
        "`https://a.ngrok.app` → `http://localhost:80`",
        "`tcp://1.tcp.ngrok.io:2000` → `x`",
    ):
        assert expected in text
    assert metadata_text(message) == "plain words"


def test_detail_pretty_prints_json_metadata():
    meta = json.dumps({"team": "blue", "host": "<@U123>", "n": [1, 2]})
    message = detail(make(0, metadata=meta))
    assert metadata_text(message) == json.dumps(json.loads(meta), indent=2)
    assert "&lt;@U123&gt;" in all_text(message)


def test_detail_renders_4096_char_metadata_in_full():
    meta = big_metadata()
    assert len(bk.escape(meta)) > bk.MAX_SECTION_TEXT + 1000
    message = detail(make(0, metadata=meta))
    assert metadata_text(message) == bk.neutralise_backticks(meta)
    assert "cut to fit" not in all_text(message)


def test_detail_renders_large_json_metadata_in_full_or_compact():
    meta = json.dumps({f"key{i}": "<&>" * 3 for i in range(180)})[:4096].rsplit(",", 1)[0] + "}"
    assert len(meta) > 3000
    rendered = metadata_text(detail(make(0, metadata=meta)))
    assert json.loads(rendered) == json.loads(meta)


def test_detail_cuts_only_pathological_metadata_and_says_so():
    meta = "&" * 4096
    message = detail(make(0, metadata=meta))
    assert "cut to fit one Slack message; 4096 characters in all" in all_text(message)
    assert set(metadata_text(message).removesuffix(bk.ELLIPSIS)) == {"&"}


def test_detail_without_metadata_or_endpoints():
    message = detail(TunnelSession.from_api({"id": "ts_334AeguNPwngGnMIrd3SZLE7pdZ"}), [])
    text = all_text(message)
    assert "*Metadata:* none" in text and "none reported" in text and "*Started*\nunknown" in text


def op_sections(message):
    return {
        b["block_id"].removeprefix("op_"): b
        for b in message["blocks"]
        if b.get("block_id", "").startswith("op_")
    }


def test_detail_offers_all_three_actions_on_linux():
    ops = op_sections(detail(make(0)))
    assert set(ops) == {"restart", "update", "stop"}
    for op, block in ops.items():
        value = decode_button_value(block["accessory"]["value"], key=KEY)
        assert value == ButtonValue(op, make(0).id, CTX.channel_id, CTX.thread_ts)
        assert block["accessory"]["action_id"] == ACTION_REQUEST
    assert ops["stop"]["accessory"]["style"] == "danger"
    assert "new* session id" in ops["restart"]["text"]["text"]


def test_detail_explains_why_windows_cannot_restart():
    ops = op_sections(detail(make(0, os="windows")))
    assert "accessory" not in ops["restart"]
    assert ops["restart"]["text"]["text"] == (
        "Restart is not available: Windows agents cannot restart themselves; stop it and let "
        "the service manager start it again."
    )
    assert "accessory" in ops["update"] and "accessory" in ops["stop"]


def test_detail_explains_what_ssh_sessions_cannot_do():
    ops = op_sections(detail(make(0, transport="ssh")))
    assert "accessory" not in ops["restart"] and "accessory" not in ops["update"]
    assert "SSH" in ops["restart"]["text"]["text"] and "SSH" in ops["update"]["text"]["text"]
    assert ops["stop"]["accessory"]["style"] == "danger"


def test_detail_offers_no_update_on_the_newest_version_seen():
    newest = make(0, agent_version="3.26.1")
    message = render_session_detail(newest, [], now=NOW, context=CTX, newest_version="3.26.1")
    assert_valid(message)
    ops = op_sections(message)
    assert "accessory" not in ops["update"]
    assert ops["update"]["text"]["text"] == (
        "Update is not offered: this agent already runs 3.26.1, the newest version in this account."
    )
    assert "accessory" in ops["restart"] and "accessory" in ops["stop"]
    older = render_session_detail(
        make(0, agent_version="3.20.0"), [], now=NOW, context=CTX, newest_version="3.26.1"
    )
    assert "accessory" in op_sections(older)["update"]
    unknown = render_session_detail(newest, [], now=NOW, context=CTX, newest_version=None)
    assert "accessory" in op_sections(unknown)["update"]


def test_detail_with_many_endpoints_stays_in_limits():
    endpoints = [Endpoint(id=f"ep_{i}", url=f"https://{'x' * 60}{i}.ngrok.app") for i in range(300)]
    message = detail(make(0, metadata=big_metadata()), endpoints)
    assert "more" in all_text(message)


# --- approval prompt and results -------------------------------------------------------------


def prompt(op, two_person=False, session=None):
    message = render_approval_prompt(
        op,
        session or make(0, metadata=HOSTILE),
        requester_id=REQUESTER,
        approve_value="signed.approve.token",
        cancel_value="signed.cancel.token",
        two_person=two_person,
        ttl_seconds=600,
    )
    blocks = assert_valid(message, mentions=[REQUESTER])
    approval = next(b for b in blocks if b.get("block_id") == "approval")
    return message, approval["elements"]


@pytest.mark.parametrize(
    ("op", "effect"),
    [
        ("restart", "comes back with a *new* session id"),
        ("stop", "does not come back unless a supervisor (systemd, a Windows service)"),
        ("update", "at least 10 s later; the bot does that restart for you"),
    ],
)
def test_prompt_says_what_will_happen(op, effect):
    message, (approve, cancel) = prompt(op)
    text = all_text(message)
    assert effect in text
    assert "expires in 10 minutes" in text
    assert f"<@{REQUESTER}>" in text
    assert "&lt;!channel&gt;" in text
    assert approve["action_id"] == ACTION_APPROVE and approve["value"] == "signed.approve.token"
    assert cancel["action_id"] == ACTION_CANCEL and cancel["value"] == "signed.cancel.token"


def test_stop_prompt_is_danger_with_a_confirm_dialog():
    _, (approve, _) = prompt("stop")
    assert approve["style"] == "danger"
    assert approve["confirm"]["style"] == "danger"
    _, (approve, _) = prompt("restart")
    assert approve["style"] == "primary" and "confirm" not in approve


def test_two_person_prompt_asks_for_approval_instead():
    message, elements = prompt("stop", two_person=True)
    assert [e["action_id"] for e in elements] == [ACTION_ASK_APPROVAL, ACTION_CANCEL]
    assert "second person must approve" in all_text(message)


def test_prompt_with_a_hostile_requester_id_is_inert():
    message = render_approval_prompt(
        "stop",
        make(0),
        requester_id="<!channel>",
        approve_value="a",
        cancel_value="c",
        two_person=False,
        ttl_seconds=59,
    )
    assert_valid(message)
    assert "expires in 59 seconds" in all_text(message)


def test_action_results():
    done = render_action_result("restart", make(0).id, succeeded=True, elapsed_seconds=0.4)
    assert_valid(done)
    assert "ngrok accepted the restart of `ts_334AeguNPwngGnMIrd3SZ0000000` in 0.4 s" in all_text(
        done
    )
    assert "record says when it is back" in all_text(done)
    assert "new session id" in all_text(done)
    failed = render_action_result("stop", make(0).id, succeeded=False, detail="agent said <!here>")
    assert_valid(failed)
    assert "Could not stop" in all_text(failed) and "&lt;!here&gt;" in all_text(failed)


def test_no_update_available_reads_as_already_up_to_date():
    sid = make(0).id
    result = render_action_result("update", sid, succeeded=True, up_to_date=True)
    assert_valid(result)
    assert result["blocks"][0]["text"]["text"] == (
        f":white_check_mark: `{sid}` is already up to date (ngrok: no update available); "
        "nothing was changed."
    )
    assert "Could not" not in all_text(result) and ":x:" not in all_text(result)


@pytest.mark.parametrize("state", RECORD_STATES)
@pytest.mark.parametrize("op", ["restart", "stop", "update"])
def test_action_record_states(op, state):
    message = render_action_record(
        op, make(0, metadata=big_metadata()), state=state, requester_id=REQUESTER,
        approver_id=APPROVER, elapsed_seconds=0.4, detail="ERR_NGROK_805 <b>", restart_in=15,
    )  # fmt: skip
    assert_valid(message, mentions=[REQUESTER, APPROVER])
    text = all_text(message)
    assert f"Requested by <@{REQUESTER}> · approved by <@{APPROVER}>" in text
    assert "`ts_334AeguNPwngGnMIrd3SZ0000000`" in text and len(text) < 2000
    assert message["blocks"][0]["block_id"] == f"record_{state}"


def test_action_record_reads_as_it_moves():
    sid = "`ts_334AeguNPwngGnMIrd3SZ0000000`"

    def line(op, state, **kw):
        message = render_action_record(
            op, make(0), state=state, requester_id=REQUESTER, approver_id=APPROVER, **kw
        )
        return message["blocks"][0]["text"]["text"]

    assert line("restart", "running") == (
        f":hourglass_flowing_sand: *Restart* of {sid}: approved by <@{APPROVER}>; running…"
    )
    assert line("update", "restarting", elapsed_seconds=0.4, restart_in=15) == (
        f":hourglass_flowing_sand: *Update* of {sid}: updated in 0.4 s; restarting in 15 s so "
        "the new version runs…"
    )
    assert line("restart", "waiting", elapsed_seconds=0.4) == (
        f":hourglass_flowing_sand: *Restart* of {sid}: ngrok accepted it in 0.4 s; waiting for "
        "the agent to come back under a new session id…"
    )
    back = make(9, agent_version="3.26.1", metadata=HOSTILE)
    assert line("update", "done", elapsed_seconds=21, successor=back) == (
        f":white_check_mark: *Update* of {sid} done in 21 s: back as "
        "`ts_334AeguNPwngGnMIrd3SZ0000009` on 3.26.1 (was 3.1000.0-development)."
    )
    assert line("restart", "done", elapsed_seconds=2.5, successor=make(9)) == (
        f":white_check_mark: *Restart* of {sid} done in 2.5 s: back as "
        "`ts_334AeguNPwngGnMIrd3SZ0000009` on 3.1000.0-development."
    )
    assert line("restart", "unconfirmed", waited_seconds=60) == (
        f":warning: *Restart* of {sid}: ngrok accepted the restart, but the agent has not come "
        "back within 60 s; check the agent's host."
    )
    assert line("stop", "unconfirmed", waited_seconds=60) == (
        f":warning: *Stop* of {sid}: ngrok accepted the stop, but the session was still online "
        "60 s later; check the agent's host."
    )
    assert line("update", "not_updated", successor=make(9)) == (
        f":warning: *Update* of {sid}: back as `ts_334AeguNPwngGnMIrd3SZ0000009` but still on "
        "3.1000.0-development; the update did not take."
    )
    assert line("stop", "done") == (
        f":white_check_mark: *Stop* of {sid} done: the session has ended; the agent does not "
        "come back on its own."
    )
    assert line("stop", "failed", elapsed_seconds=12.3, detail="ERR_NGROK_805 <b>") == (
        f":x: *Stop* of {sid} failed in 12 s: ERR_NGROK_805 &lt;b&gt;"
    )
    assert line("update", "up_to_date") == (
        f":white_check_mark: *Update* of {sid}: already up to date (ngrok: no update "
        "available); nothing was changed."
    )
    one = render_action_record(
        "stop", make(0), state="done", requester_id=REQUESTER, approver_id=REQUESTER
    )
    assert f"Requested and approved by <@{REQUESTER}>" in all_text(one)
    assert one["text"] == "Stop of ts_334AeguNPwngGnMIrd3SZ0000000: done"


def two_person(action, session, requester):
    return TwoPersonRequest(
        id="req1", state="requested", action=action, session=session, requester=requester,
        channel="C0INCIDENT", thread_ts=None, account="default", ttl=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    "state",
    [
        "requested", "running", "restarting", "waiting", "done", "failed", "unconfirmed",
        "not_updated", "denied", "expired",
    ],
)  # fmt: skip
def test_two_person_request_states(state):
    message = render_two_person_request(
        two_person("stop", make(0, metadata=HOSTILE), REQUESTER),
        state=state,
        approve_value="tp.approve",
        deny_value="tp.deny",
        actor_id=APPROVER,
        detail="boom",
        elapsed_seconds=1.5,
        restart_in=15,
        successor=make(9, metadata=HOSTILE),
        waited_seconds=60,
    )
    blocks = assert_valid(message, mentions=[REQUESTER, APPROVER])
    text = all_text(message)
    buttons = list(elements_of(blocks))
    if state == "requested":
        assert [b["action_id"] for b in buttons] == [
            ACTION_TWO_PERSON_APPROVE,
            ACTION_TWO_PERSON_DENY,
        ]
        assert buttons[0]["style"] == "primary" and buttons[0]["value"] == "tp.approve"
        assert "expires in 10 minutes" in text
    else:
        assert buttons == []
    expected = {
        "running": f"Approved by <@{APPROVER}>; running",
        "restarting": "updated in 1.5 s, restarting in 15 s so the new version runs",
        "waiting": "ngrok accepted it in 1.5 s; checking that the session has ended",
        "done": "done in 1.5 s: the session has ended",
        "failed": "failed in 1.5 s: boom",
        "unconfirmed": "the session was still online 60 s later",
        "not_updated": "back as `ts_334AeguNPwngGnMIrd3SZ0000009` but still on",
        "denied": f"Denied by <@{APPROVER}>",
        "expired": "Expired",
        "requested": "second person must approve",
    }[state]
    assert expected in text


# --- small messages --------------------------------------------------------------------------


def test_cancelled():
    assert "nothing was changed" in all_text(assert_valid_and_return(render_cancelled()))


def assert_valid_and_return(message, mentions=()):
    assert_valid(message, mentions)
    return message


def test_error_escapes_the_sentence_and_shows_usage():
    message = render_error("I don't know `<!channel>`.", "stop <session-id>")
    assert_valid(message)
    text = all_text(message)
    assert "`&lt;!channel&gt;`" in text
    assert "Usage: `stop &lt;session-id&gt;`" in text


def test_error_without_usage_is_one_block():
    assert len(render_error("ngrok is not answering.")["blocks"]) == 1


def test_help_shows_each_allowed_command():
    message = render_help(help_lines(set(VERBS)))
    blocks = assert_valid(message)
    assert len(blocks) == 2 + len(VERBS)
    assert "`restart &lt;session-id | host" in all_text(message)
    small = render_help(help_lines({"sessions"}))
    assert "restart" not in all_text(assert_valid_and_return(small))


def test_audit_entries():
    entries = [
        {
            "ts": 1758566067.5,
            "actor": REQUESTER,
            "action": "stop",
            "session_id": make(0).id,
            "event": "failed",
            "detail": "<!channel> done",
        },
        {"ts": "2025-09-22T18:34:27Z", "actor": "<@U123>", "action": "restart"},
        {"ts": datetime(2025, 9, 22, tzinfo=UTC), "event": "denied"},
        {},
    ]
    message = render_audit(entries, title="@alice")
    assert_valid(message, mentions=[REQUESTER])
    text = all_text(message)
    assert "<!date^1758566067^" in text and "&lt;!channel&gt; done" in text
    assert "The bot denied the action of an agent; nothing was changed." in text
    assert "Recent actions: @alice" in text
    assert "approval_requested" not in text and "→" not in text


def test_audit_records_read_as_sentences_with_the_host_first():
    sid = make(0).id
    common = {"session_id": sid, "metadata": '{"host": "web-7", "env": "prod"}', "ts": 1758566067}
    lines = [
        audit_sentence({**common, "event": "approval_requested", "actor": REQUESTER,
                        "requester": REQUESTER, "action": "stop"}),
        audit_sentence({**common, "event": "denied", "actor": APPROVER, "requester": REQUESTER,
                        "action": "stop", "detail": "not during the deploy"}),
        audit_sentence({**common, "event": "executed", "actor": APPROVER, "requester": REQUESTER,
                        "action": "restart", "duration_ms": 1200}),
        audit_sentence({**common, "event": "expired", "actor": REQUESTER, "requester": REQUESTER,
                        "action": "update", "metadata": "env=prod host=db-2"}),
        audit_sentence({"event": "cancelled", "actor": REQUESTER, "action": "restart",
                        "session_id": sid}),
    ]  # fmt: skip
    assert lines == [
        f"<@{REQUESTER}> asked a second person to approve a stop of *web-7* (`{sid}`).",
        f"<@{APPROVER}> denied the stop of *web-7* (`{sid}`) (asked by <@{REQUESTER}>); "
        "nothing was changed. Reason: not during the deploy",
        f"<@{APPROVER}> restarted *web-7* (`{sid}`) (asked by <@{REQUESTER}>): done in 1.2 s.",
        f"<@{REQUESTER}>'s request to update *db-2* (`{sid}`) expired before anyone approved "
        "it; nothing was changed.",
        f"<@{REQUESTER}> cancelled the restart of agent `{sid}`; nothing was changed.",
    ]
    executed = {**common, "event": "executed", "actor": APPROVER, "action": "restart"}
    message = render_audit([{**executed, "requester": REQUESTER, "duration_ms": 1200}])
    line = assert_valid(message, mentions=[REQUESTER, APPROVER])[1]["text"]["text"]
    assert line.startswith("<!date^1758566067^{date_short_pretty} {time}|2025-09-22 18:34 UTC> · ")
    print("\nRENDERED audit:", *lines, line, sep="\n  ")


def test_audit_csv_is_the_machine_form():
    csv_text = render_audit_csv(
        [{"ts": 1758566067, "event": "executed", "action": "restart", "actor": APPROVER,
          "metadata": '{"host": "web-7"}', "session_id": make(0).id, "detail": "=cmd()"}]
    )  # fmt: skip
    header, row = csv_text.splitlines()
    assert header.startswith("time_utc,event,action,actor,requester,approver,host,session_id")
    assert row.startswith("2025-09-22 18:34:27,executed,restart,U0APP2,,,web-7,")
    assert "'=cmd()" in row  # a spreadsheet must not run it


def test_fifty_long_audit_entries_stay_in_limits():
    entry = {"ts": 1, "actor": REQUESTER, "action": "update", "detail": "x" * 5000}
    message = render_audit([entry] * 50)
    assert_valid(message, mentions=[REQUESTER])


def test_empty_audit():
    assert "Nothing recorded yet" in all_text(assert_valid_and_return(render_audit([])))


def test_two_person_request_pings_configured_approvers_only_while_waiting():
    from bot.slack.blocks import member_mention

    assert member_mention("U0BOB") == "<@U0BOB>"
    assert member_mention("S0SRE") == "<!subteam^S0SRE>"
    assert member_mention("*") is None and member_mention("<!channel>") is None
    session = TunnelSession.from_api({"id": "ts_" + "A" * 27, "metadata": "<!channel>"})
    waiting = render_two_person_request(
        two_person("stop", session, "U0ALICE"), state="requested", approve_value="v",
        deny_value="v", approvers=["U0BOB", "S0SRE", "*"],
    )  # fmt: skip
    text = json.dumps(waiting)
    assert "Approvers: <@U0BOB> <!subteam^S0SRE>" in text
    assert "<!channel>" not in text.replace("Approvers", "")
    done = render_two_person_request(
        two_person("stop", session, "U0ALICE"), state="done", actor_id="U0BOB",
        approvers=["U0BOB"],
    )  # fmt: skip
    assert "Approvers" not in json.dumps(done)
