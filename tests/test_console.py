"""`python -m bot console`: the text renderer in process, and the console as a real process.

The renderer is fed the bot's own views (every block type they use) and hostile text. The
process tests pipe commands into `python -m bot console --demo` and read what it printed:
one test pipes a whole script, the other drives it line by line to use the ids it lists.
Syncing on the console's own echo of the next command keeps them free of sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.console.loopback import Outbox, answer_web_api
from bot.console.render import clean, readable, render_message
from bot.ngrok.models import Endpoint, TunnelSession
from bot.slack.blocks import ButtonContext
from bot.slack.ids import (
    ACTION_APPROVE,
    ACTION_CANCEL,
    ACTION_DETAILS,
    ACTION_REQUEST,
    ACTION_SHARE,
)
from bot.slack.views.action_record import render_action_record
from bot.slack.views.approvals import (
    render_action_result,
    render_approval_prompt,
    render_two_person_request,
)
from bot.slack.views.audit import render_audit
from bot.slack.views.details import render_session_detail
from bot.slack.views.errors import render_error
from bot.slack.views.fleet import RunLine, render_runs
from bot.slack.views.help import render_help
from bot.slack.views.sessions import SessionListPage, render_session_list
from bot.state.requests import TwoPersonRequest
from tests.test_structure import PRODUCT_MODULES, imported_modules, is_third_party_or_stdlib
from tests.test_views import API_SESSION

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CTX = ButtonContext("C0CONSOLE", None, b"console-test-button-key-0123")
ESCAPES = "\x1b[31mred\x1b[0m\x07\x08\u202eevil\x9b2J"


def session(n: int, **fields: object) -> TunnelSession:
    """A session shaped like the ngrok API's, as tests/test_views.py builds them."""
    raw = dict(API_SESSION, id=f"ts_334AeguNPwngGnMIrd3SZ{n:07d}", region="eu")
    raw["started_at"] = "2026-01-05T10:00:00Z"
    raw.update(fields)
    return TunnelSession.from_api(raw)


def text_of(message: dict, label: str = "private") -> tuple[str, dict[str, dict]]:
    lines, choices = render_message(message, label)
    return "\n".join(lines), {c.number: c.action for c in choices}


# ---- the renderer on the bot's own messages ----------------------------------------------


def test_a_list_shows_header_rows_and_numbered_buttons_and_menu_options():
    page = SessionListPage(
        sessions=[session(1, metadata="web-1 & <db>"), session(2)],
        total_online=2,
        by_region={"eu": 2},
        by_os={"linux": 2},
        older_cursor="cursor",
    )
    text, actions = text_of(render_session_list(page, now=NOW, context=CTX))
    assert "2 ngrok agents online" in text.splitlines()[1]
    assert "ts_334AeguNPwngGnMIrd3SZ0000001" in text
    assert "&amp;" not in text and "&lt;" not in text
    # The table's rows, then one numbered choice per agent of the "open an agent" menu.
    assert "[1.1] " in text and "[1.2] " in text
    assert actions["1.2"]["action_id"] == ACTION_DETAILS
    assert actions["1.2"]["type"] == "static_select"
    assert "[4] Older ▶" in text


def test_a_detail_view_shows_fields_code_spans_and_readable_dates():
    endpoints = [Endpoint.from_api({"id": "ep_1", "url": "https://a.ngrok.app"})]
    message = render_session_detail(session(1), endpoints, now=NOW, context=CTX)
    text, actions = text_of(message)
    assert text.splitlines()[1] == "ngrok agent ts_334AeguNPwngGnMIrd3SZ0000001"
    assert "  • *Region* eu" in text and "  • *IP* 10.110.2.2" in text
    assert "`https://a.ngrok.app`" in text
    assert "<!date" not in text and "2026-01-05 10:00 UTC" in text
    assert {a["action_id"] for a in actions.values()} == {ACTION_REQUEST, ACTION_SHARE}


def test_an_approval_prompt_offers_approve_and_cancel_and_names_the_requester():
    message = render_approval_prompt(
        "stop", session(1), requester_id="U0ME", approve_value="tok.a", cancel_value="tok.c",
        two_person=False, ttl_seconds=600,
    )  # fmt: skip
    lines, choices = render_message(message, "private")
    assert [(c.number, c.label) for c in choices] == [("1", "Approve stop"), ("2", "Cancel")]
    assert (
        choices[0].action["action_id"] == ACTION_APPROVE and choices[0].action["value"] == "tok.a"
    )
    assert choices[0].confirm.startswith("The agent exits")  # the stop's confirm dialog
    assert choices[1].action["action_id"] == ACTION_CANCEL
    assert "Requested by @U0ME" in "\n".join(lines)


def test_results_records_and_two_person_requests_read_as_sentences():
    done, _ = text_of(render_action_result("restart", session(1).id, succeeded=True))
    assert done.splitlines()[1].startswith("⏳ ngrok accepted the restart of `ts_")
    failed = render_action_record(
        "restart",
        session(1),
        state="failed",
        requester_id="U0A",
        approver_id="U0B",
        elapsed_seconds=1.0,
        detail="agent said <!here>",
    )
    record, _ = text_of(failed)
    assert "@U0A" in record and "@U0B" in record and "<@" not in record
    request = render_two_person_request(
        TwoPersonRequest(
            id="r1",
            state="requested",
            action="stop",
            session=session(1),
            requester="U0A",
            channel="C0OPS",
            thread_ts=None,
            account="default",
            ttl=600,
        ),
        state="requested",
        approve_value="tp.a",
        deny_value="tp.d",
    )
    text, actions = text_of(request)
    assert [a["value"] for a in actions.values()] == ["tp.a", "tp.d"]
    assert "[1] Approve" in text and "[2] Deny" in text


def test_help_audit_and_errors_render_without_markup():
    help_text, actions = text_of(render_help([("help", "Show this list.")]))
    assert "`help`" in help_text and actions == {}
    entry = {"ts": 1767614400, "actor": "U0A", "action": "restart", "event": "executed",
             "session_id": session(1).id, "outcome": "ok"}  # fmt: skip
    audit, _ = text_of(render_audit([entry]))
    assert "@U0A" in audit and "2026-01-05" in audit and "<!date" not in audit
    error, _ = text_of(render_error("No such thing.", "help"))
    assert "No such thing." in error and "`help`" in error


def test_context_dividers_tables_and_unknown_blocks():
    message = {
        "text": "t",
        "blocks": [
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "a"},
                                             {"type": "plain_text", "text": "b"}]},
            {"type": "table", "rows": [
                [{"type": "raw_text", "text": "id"}, {"type": "raw_text", "text": "region"}],
                [{"type": "raw_text", "text": "ts_1"},
                 {"type": "rich_text", "elements": [{"type": "rich_text_section",
                  "elements": [{"type": "text", "text": "eu"}]}]}],
            ]},
            {"type": "video"},
        ],
    }  # fmt: skip
    text, _ = text_of(message)
    lines = text.splitlines()
    assert lines[1] == "-" * 40 and lines[2] == "  a · b"
    assert lines[3:6] == ["  id    region", "  ----  ------", "  ts_1  eu"]
    assert lines[6] == "(video block not shown)"


def test_menus_in_one_block_print_one_choice_a_line_with_the_chosen_one_marked():
    first = {"text": {"type": "plain_text", "text": "Batches of 2"}, "value": "b2"}
    second = {"text": {"type": "plain_text", "text": "Batches of 5"}, "value": "b5"}
    select = {
        "type": "static_select", "action_id": "ngrok_run_batch", "options": [first, second],
        "placeholder": {"type": "plain_text", "text": "Batch size"}, "initial_option": second,
    }  # fmt: skip
    other = {**select, "action_id": "ngrok_run_canary", "initial_option": first}
    text, actions = text_of(
        {"text": "t", "blocks": [{"type": "actions", "elements": [select, other]}]}
    )
    assert text.splitlines()[1:] == [
        "  Batch size:", "  [1.1] Batches of 2", "  [1.2] Batches of 5 (chosen)",
        "  Batch size:", "  [2.1] Batches of 2 (chosen)", "  [2.2] Batches of 5",
    ]  # fmt: skip
    assert actions["1.2"]["selected_option"] == second


def test_a_link_button_prints_its_url_and_is_no_choice():
    link = "https://console.invalid/C1/1.2"
    lines = [RunLine("abc123", "restart", "done", "", 3, "U0A", link, "done 3")]
    text, actions = text_of(render_runs(lines))
    assert f"Progress: {link}" in text and actions == {}


def test_a_message_without_blocks_prints_its_text():
    text, _ = text_of({"text": "plain &lt;words&gt;"}, "public in C1")
    assert text.splitlines() == [text.splitlines()[0], "plain <words>"]
    assert text.startswith("── public in C1 ─")


def test_untrusted_text_cannot_reach_the_terminal_as_escape_sequences():
    hostile = session(1, metadata=f'{{"host": "{ESCAPES}"}}', os=ESCAPES)
    for message in (
        render_session_detail(hostile, [], now=NOW, context=CTX),
        render_session_list(SessionListPage([hostile], 1), now=NOW, context=CTX),
        render_error(f"ngrok said: {ESCAPES}"),
    ):
        text, _ = text_of(message, label=ESCAPES)
        assert "red" in text and "evil" in text
        assert not any(ch in text for ch in "\x1b\x07\x08\u202e\x9b"), repr(text)
    assert clean("a\tb\r\nc\x00") == "a b\nc"
    assert readable("<@U1> <#C2|ops> <!channel> <https://x.example|site>") == (
        "@U1 #ops @channel site (https://x.example)"
    )


def test_the_loopback_web_api_records_what_the_app_posts():
    outbox = Outbox()
    posted = answer_web_api(outbox, "chat.postMessage", {"channel": "C1", "text": "hi"})
    edited = answer_web_api(outbox, "chat.update", {"channel": "C1", "ts": posted["ts"]})
    ephemeral = answer_web_api(outbox, "chat.postEphemeral", {"channel": "C1", "user": "U1"})
    assert posted["ok"] and edited["ts"] == posted["ts"] and ephemeral["message_ts"]
    kinds = [(d.kind, d.channel) for d in outbox.take_all()]
    assert kinds == [("public", "C1"), ("edit", "C1"), ("private", "C1")]
    assert outbox.take_all() == []


@pytest.mark.parametrize("package", ["bot.demo", "bot.console"])
def test_console_packages_import_no_tests_and_demo_only_httpx(package):
    for module, path in PRODUCT_MODULES.items():
        if module != package and not module.startswith(package + "."):
            continue
        for name in imported_modules(path):
            assert not name.startswith("tests"), f"{module} imports {name}"
            if package == "bot.demo" and not name.startswith(("bot.demo", "__future__")):
                assert is_third_party_or_stdlib(name, ("httpx",)), f"{module} imports {name}"


# ---- the console as a process ---------------------------------------------------------------


def console_env() -> dict[str, str]:
    """No Slack or ngrok settings at all; a Socket Mode token that must be ignored."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(REPO))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["SLACK_APP_TOKEN"] = "xapp-not-used-by-the-console"
    return env


def test_piped_commands_print_a_transcript_and_exit_0(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo"],
        input="sessions limit=3\nhelp\nrestart nonsense\nfrobnicate\n",
        capture_output=True, text=True, cwd=tmp_path, env=console_env(), timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "ngrok>" not in out
    assert re.search(r"^300 ngrok agents online$", out, re.M)
    assert len(re.findall(r"^  \d  .*  (ts_\w{27})  ", out, re.M)) == 3
    assert [line for line in out.splitlines() if line.startswith(">>> ")] == [
        ">>> /ngrok sessions limit=3", ">>> /ngrok help",
        ">>> /ngrok restart nonsense", ">>> /ngrok frobnicate",
    ]  # fmt: skip
    assert "`sessions [region=us,eu]" in out
    assert "I don't know the command `frobnicate`" in out
    assert list(tmp_path.iterdir()) == []  # the demo's state lives in a temporary directory


class ConsoleProcess:
    """`python -m bot console --demo` fed one command at a time; a command's output ends
    where the console echoes the `help` sent after it."""

    SYNC = "help"

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "console", "--demo"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=cwd, env=console_env(),
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _next(self) -> str:
        line = self.lines.get(timeout=60)
        assert line is not None, "the console exited early"
        return line

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n{self.SYNC}\n")
        self.proc.stdin.flush()
        while not (echo := self._next()).startswith(">>> "):
            pass  # the rest of the previous sync's help
        output = [echo]
        while (got := self._next()) != f">>> /ngrok {self.SYNC}":
            output.append(got)
        return "\n".join(output)

    def finish(self) -> tuple[int, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def test_list_look_restart_approve_and_audit_in_one_session(tmp_path):
    console = ConsoleProcess(tmp_path)
    try:
        listing = console.ask("sessions os=linux limit=4")
        total = int(re.search(r"^(\d+) ngrok agents online$", listing, re.M).group(1))
        assert 0 < total < 300 and f"*OS:* linux {total}" in listing
        ids = re.findall(r"^  \d  .*  (ts_\w{27})  ", listing, re.M)
        assert len(ids) == 4 and len(set(ids)) == 4
        target = ids[0]

        detail = console.ask(f"session {target}")
        assert f"ngrok agent {target}" in detail and "*Endpoints" in detail

        prompt = console.ask(f"restart {target}")
        assert "── private: only you see this" in prompt
        approve = re.search(r"\[(\d+)\] Approve restart", prompt).group(1)

        result = console.ask(approve)
        assert result.startswith(f">>> [{approve}] Approve restart")
        assert "── replaces the message you clicked" in result
        assert f"ngrok accepted the restart of `{target}`" in result
        assert "── public in C0CONSOLE: everyone there sees this" in result
        successor = re.search(rf"Agent `{target}` is back as `(ts_\w{{27}})`", result).group(1)
        assert successor != target

        again = console.ask(approve)  # the prompt's Approve, a second time: nothing runs
        assert "was already approved once" in again

        after = console.ask("sessions os=linux limit=4")
        assert re.findall(r"^  \d  .*  (ts_\w{27})  ", after, re.M)[0] == successor
        assert target not in after

        audit = console.ask("audit")
        assert f"asked to restart agent `{target}`" in audit
        assert f"approved the restart of agent `{target}`" in audit
        assert f"restarted agent `{target}`" in audit and ": done in" in audit

        assert "no choice 99" in console.ask("99")
    finally:
        code, stderr = console.finish()
    assert code == 0 and "Traceback" not in stderr
