"""Runs the bot as a real process from the Procfile and talks to it like Slack does.

End-to-end tests start the `web:` command with SLACK_API_URL and NGROK_API_URL pointed at
the local stand-ins, then send correctly signed slash commands, events and block_actions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx
from slack_sdk.signature import SignatureVerifier

REPO = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "e2e-signing-secret-5f1c9a0b7d"


def procfile_command(kind: str) -> str:
    """The command line of one Procfile process type, exactly as a platform would run it."""
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return command.strip()
    raise AssertionError(f"Procfile has no {kind}: process")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """The bot as a child process; stdout and stderr are kept for secret scans."""

    def __init__(
        self, env: dict[str, str], *, kind: str = "web", log_dir: Path | None = None
    ) -> None:
        self.port = int(env.get("PORT") or free_port())
        self.env = {**os.environ, **env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        for name in ("SLACK_APP_TOKEN",) if kind == "web" else ():
            self.env.pop(name, None)
        self.command = procfile_command(kind)
        # The logs outlive the process on purpose: tests read them after it ends. They live in
        # `log_dir` (pytest's tmp_path, which pytest prunes), or a temp dir of their own.
        folder = Path(log_dir or tempfile.mkdtemp(prefix="ngrok-ops-bot-"))
        stem = f"bot-{kind}-{self.port}"
        self._out_path, self._err_path = folder / f"{stem}.out", folder / f"{stem}.err"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self, *, wait_healthy: bool = True, timeout: float = 30.0) -> BotProcess:
        # Appending keeps the logs of an earlier run of this process for the secret scans.
        with self._out_path.open("ab") as out, self._err_path.open("ab") as err:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        if wait_healthy:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"bot exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"bot did not become healthy in {timeout} s:\n{self.stderr()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
        """Stops the whole process group with `sig` (SIGINT: gunicorn's quick shutdown; the
        tests have nothing left to drain). A process that has to be killed fails the test:
        a silent SIGKILL would hide a shutdown that hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired as error:
            self._kill_group()
            what = f"did not exit within {timeout:g} s of {signal.Signals(sig).name}"
            raise AssertionError(self._killed(what)) from error
        deadline = time.monotonic() + 5  # workers may still be finishing after the master
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            self._kill_group()
            raise AssertionError(self._killed("left processes behind after the master exited"))

    def _group_alive(self) -> bool:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)

    def _killed(self, what: str) -> str:
        tail = "\n".join(self.stderr().splitlines()[-30:])
        return f"`{self.command}` {what} and had to be killed (SIGKILL). stderr ends:\n{tail}"

    def stdout(self) -> str:
        return self._out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace")

    def audit_records(self) -> list[dict]:
        """The JSON audit lines the bot printed on stdout."""
        records = []
        for line in self.stdout().splitlines():
            if line.startswith('{"audit"'):
                records.append(json.loads(line)["audit"])
        return records


class SlackSender:
    """Builds payloads shaped like Slack's own and signs them like Slack does."""

    def __init__(self, url: str, *, secret: str = SIGNING_SECRET, team_id: str = "T111") -> None:
        self.url = url
        self.verifier = SignatureVerifier(secret)
        self.team_id = team_id
        self.http = httpx.Client(timeout=10)

    def headers(
        self, body: str, content_type: str, *, timestamp: int | None = None, sign: bool = True
    ) -> dict[str, str]:
        """The headers Slack sends with `body`, signed with the signing secret."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"content-type": content_type, "x-slack-request-timestamp": ts}
        if sign:
            headers["x-slack-signature"] = self.verifier.generate_signature(timestamp=ts, body=body)
        return headers

    def send(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(self.url, content=body.encode(), headers=headers)

    def post(
        self, body: str, content_type: str, *, timestamp: int | None = None, sign: bool = True
    ) -> httpx.Response:
        headers = self.headers(body, content_type, timestamp=timestamp, sign=sign)
        return self.send(body, headers)

    def command_body(
        self, text: str, *, user: str, channel: str, response_url: str, command: str = "/ngrok"
    ) -> str:
        return urllib.parse.urlencode(
            {
                "token": "verification_token",
                "team_id": self.team_id,
                "team_domain": "test",
                "channel_id": channel,
                "channel_name": "ops",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A111",
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:12]}",  # one per command
            }
        )

    def command(self, text: str, *, user: str, channel: str, response_url: str) -> httpx.Response:
        body = self.command_body(text, user=user, channel=channel, response_url=response_url)
        return self.post(body, "application/x-www-form-urlencoded")

    def mention(
        self, text: str, *, user: str, channel: str, ts: str, thread_ts: str | None = None
    ) -> httpx.Response:
        event = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        envelope = {
            "token": "verification_token",
            "team_id": self.team_id,
            "api_app_id": "A111",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
        }
        return self.post(json.dumps(envelope), "application/json")

    def interactive(self, payload: dict) -> httpx.Response:
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        return self.post(body, "application/x-www-form-urlencoded")

    def block_actions(
        self,
        action: dict,
        *,
        user: str,
        channel: str,
        response_url: str,
        ephemeral: bool = True,
        message_ts: str = "1700000000.000100",
        thread_ts: str | None = None,
    ) -> dict:
        """A block_actions payload for one clicked element, shaped like Slack's own."""
        container = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        }
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
            "api_app_id": "A111",
            "token": "verification_token",
            "container": container,
            "trigger_id": "111.222.valid",
            "team": {"id": self.team_id, "domain": "test"},
            "channel": {"id": channel, "name": "ops"},
            "response_url": response_url,
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }
        if not ephemeral:
            message = {"type": "message", "ts": message_ts, "text": "", "user": "UBOT1"}
            if thread_ts:
                message["thread_ts"] = thread_ts
            payload["message"] = message
        return payload

    def pick(
        self, select: dict, label: str, *, value: str | None = None, **where: object
    ) -> httpx.Response:
        """Picks the option labelled `label` in a select menu taken from a message the bot
        sent (`value` replaces the option's value, to send what Slack never would)."""
        option = next(o for o in select["options"] if o["text"]["text"] == label)
        action = {
            "action_id": select["action_id"],
            "block_id": select.get("block_id", "b"),
            "type": "static_select",
            "selected_option": option if value is None else {**option, "value": value},
        }
        return self.interactive(self.block_actions(action, **where))  # type: ignore[arg-type]

    def click(self, button: dict, **where: object) -> httpx.Response:
        """Clicks a button taken from a message the bot sent (`where`: see block_actions)."""
        action = {
            "action_id": button["action_id"],
            "block_id": button.get("block_id", "b"),
            "text": button["text"],
            "value": button.get("value", ""),
            "type": "button",
        }
        return self.interactive(self.block_actions(action, **where))  # type: ignore[arg-type]

    def message_shortcut(
        self, *, user: str, channel: str, message_ts: str, thread_ts: str | None, response_url: str
    ) -> httpx.Response:
        message = {"type": "message", "ts": message_ts, "text": "prod is down", "user": "U_OTHER"}
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {
            "type": "message_action",
            "callback_id": "ngrok_thread_sessions",
            "trigger_id": "111.222.valid",
            "message_ts": message_ts,
            "response_url": response_url,
            "team": {"id": self.team_id, "domain": "test"},
            "channel": {"id": channel, "name": "ops"},
            "user": {"id": user, "name": user.lower()},
            "message": message,
            "token": "verification_token",
        }
        return self.interactive(payload)


def buttons_in(message: dict) -> list[dict]:
    """Every button in a message body (from a recorded Slack call), with its block_id."""
    found = []
    for block in message.get("blocks") or []:
        elements = list(block.get("elements") or [])
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                found.append({**element, "block_id": block.get("block_id", "b")})
    return found


def find_button(message: dict, action_id: str, *, text: str | None = None) -> dict:
    for candidate in buttons_in(message):
        if candidate["action_id"] == action_id and (
            text is None or candidate["text"]["text"] == text
        ):
            return candidate
    raise AssertionError(f"no {action_id} button {text or ''} in {json.dumps(message)[:2000]}")


def find_select(message: dict, action_id: str) -> dict:
    """The select menu with this action id in a message body."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id and element.get("type") == "static_select":
                return {**element, "block_id": block.get("block_id", "b")}
    raise AssertionError(f"no {action_id} menu in {json.dumps(message)[:2000]}")
