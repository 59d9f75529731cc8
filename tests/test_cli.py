"""`python -m bot`, `python -m bot check` and the Procfile commands, run as real processes.

Each test starts a fresh interpreter with a clean environment (PATH, HOME and PYTHONPATH
only, plus what the test sets), so nothing from the developer's shell can make it pass.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "NGROK_API_KEY")
USAGE = "usage: python -m bot [check | jobs | console [--demo] [--as U…] [--channel C…]]"
NGROK_KEY = "cli-test-ngrok-key-RIGHT-5a8e2c0d"
WRONG_NGROK_KEY = "cli-test-ngrok-key-WRONG-71b4f9e3"
SIGNING_SECRET = "cli-test-signing-secret-3c9d0e7f"


def clean_env(**extra: str) -> dict[str, str]:
    """PATH (with this interpreter's bin first, so `gunicorn` and `python` match it), HOME,
    PYTHONPATH, and the given settings."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {"PATH": path, "HOME": os.environ.get("HOME", str(REPO))}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**env, **extra}


def run_bot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def procfile_command(kind: str) -> str:
    for line in (REPO / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return command.strip()
    raise AssertionError(f"the Procfile has no {kind}: line")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_settings_report(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit code 2, one report on stderr naming each setting, and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("ngrok-ops cannot start") == 1, result.stderr
    for name in names:
        assert f"- {name}" in result.stderr, f"{name} not listed:\n{result.stderr}"
    return result.stderr


# ---- settings problems stop every entry point with code 2 --------------------------------


@pytest.mark.parametrize("args", [(), ("check",)], ids=["run", "check"])
def test_missing_settings_are_listed_in_one_message(args):
    result = run_bot(*args, env=clean_env())
    assert_settings_report(result, *MISSING)
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_procfile_commands_stop_with_code_2_on_missing_settings(kind):
    """gunicorn's config module checks the settings before forking a worker."""
    result = subprocess.run(
        ["bash", "-c", procfile_command(kind)],
        env=clean_env(PORT=str(free_port())),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_settings_report(result, *MISSING)
    assert "Booting worker" not in result.stderr


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the web process exited with {process.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the web process did not answer /healthz in time")


def test_procfile_web_serves_when_stderr_is_a_socket(tmp_path, slack_api):
    """Under systemd's journal stderr is a socket, which cannot be opened as /dev/stderr; the
    access log must still reach stderr, and stdout stays free for the audit records."""
    port = free_port()
    env = clean_env(
        PORT=str(port),
        SLACK_BOT_TOKEN=slack_api.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.base_url,
        NGROK_API_KEY=NGROK_KEY,
        NGROK_API_URL="http://127.0.0.1:9",
        STATE_PATH=str(tmp_path / "state.sqlite3"),
    )
    ours, theirs = socket.socketpair()
    with ours:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command('web')}"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=theirs.fileno(),
            text=True,
        )
        theirs.close()
        try:
            wait_healthy(port, process)
        finally:
            process.terminate()
            stdout, _ = process.communicate(timeout=30)
        ours.settimeout(10)
        stderr = b"".join(iter(lambda: ours.recv(65536), b"")).decode()
    assert "isn't writable" not in stderr
    assert '"GET /healthz HTTP/1.1" 200' in stderr
    assert "healthz" not in stdout
    assert SIGNING_SECRET not in stderr + stdout and slack_api.bot_token not in stderr + stdout


def test_bot_config_errors_name_file_line_and_key(tmp_path):
    config = tmp_path / "bot.yml"
    config.write_text(
        "roles:\n  operator: [U012ABCDEF]\n  viewr: ['*']\nchannels:\n  C0X: {actoins: true}\n",
        encoding="utf-8",
    )
    env = clean_env(
        BOT_CONFIG=str(config),
        SLACK_BOT_TOKEN="xoxb-cli-test-bot-token-0000",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        NGROK_API_KEY=NGROK_KEY,
    )
    stderr = assert_settings_report(run_bot(env=env))
    assert f"{config}:3: roles.viewr:" in stderr
    assert f"{config}:5: channels.C0X.actoins:" in stderr
    assert NGROK_KEY not in stderr and SIGNING_SECRET not in stderr


def test_unreadable_bot_config_is_named(tmp_path):
    missing = tmp_path / "nowhere.yml"
    env = clean_env(BOT_CONFIG=str(missing), SLACK_BOT_TOKEN="xoxb-cli-test-bot-token-0000")
    stderr = assert_settings_report(run_bot("check", env=env))
    assert str(missing) in stderr


# ---- usage -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("nonsense",), ("check", "extra")], ids=["unknown", "extra"])
def test_unknown_arguments_exit_2_with_the_usage_line(args):
    result = run_bot(*args, env=clean_env())
    assert result.returncode == 2
    assert USAGE in result.stderr
    assert repr(args[-1]) in result.stderr
    assert "Traceback" not in result.stderr


# ---- the doctor against the local Slack and ngrok servers ---------------------------------


@pytest.fixture
def doctor_env(tmp_path, slack_api, ngrok_api_factory):
    ngrok = ngrok_api_factory(api_key=NGROK_KEY, sessions=3)

    def env(**overrides: str) -> dict[str, str]:
        settings = {
            "SLACK_BOT_TOKEN": slack_api.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api.base_url,
            "NGROK_API_KEY": NGROK_KEY,
            "NGROK_API_URL": ngrok.base_url,
            "STATE_PATH": str(tmp_path / "state.sqlite3"),
        }
        return clean_env(**{**settings, **overrides})

    env.slack = slack_api
    env.ngrok = ngrok
    return env


def table_rows(stdout: str) -> dict[str, str]:
    """check name -> "OK" or "FAILED" (rows come after the two header lines)."""
    rows = {}
    for line in stdout.splitlines()[2:]:
        for result in (" OK ", " FAILED "):
            name, found, _ = line.partition(result)
            if found:
                rows[name.strip()] = result.strip()
                break
    return rows


def test_check_passes_against_working_servers(doctor_env):
    result = run_bot("check", env=doctor_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_rows(result.stdout) == {
        "settings": "OK",
        "slack token (auth.test)": "OK",
        "ngrok account 'default'": "OK",
        "state store": "OK",
        "ngrok budget": "OK",
    }
    assert "used of 120 per 60 s: 'default' 1" in result.stdout  # the probe's own call
    # No consumer runs in this test: a warning with the next step, not a failure.
    assert "job queue" in result.stdout and "no consumer has ever reported" in result.stdout
    assert result.stdout.splitlines()[-1] == "ready, but read the WARN rows above"
    assert [call.method for call in doctor_env.slack.calls()] == ["auth.test"]
    assert [r.path for r in doctor_env.ngrok.log()] == ["/tunnel_sessions"]


def test_check_fails_on_a_wrong_ngrok_key_without_showing_either_key(doctor_env):
    result = run_bot("check", env=doctor_env(NGROK_API_KEY=WRONG_NGROK_KEY))
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert rows["ngrok account 'default'"] == "FAILED"
    assert rows["slack token (auth.test)"] == "OK"
    assert "401" in result.stdout
    # The server echoes the presented key in its error message; the client must mask it.
    log = doctor_env.ngrok.log()
    assert log and log[0].status == 401
    output = result.stdout + result.stderr
    assert WRONG_NGROK_KEY not in output
    assert NGROK_KEY not in output
    assert SIGNING_SECRET not in output
    assert "Traceback" not in output


def test_check_fails_on_a_wrong_slack_token(doctor_env):
    wrong_token = "xoxb-cli-test-WRONG-slack-token-48d1"
    assert wrong_token != doctor_env.slack.bot_token
    result = run_bot("check", env=doctor_env(SLACK_BOT_TOKEN=wrong_token))
    assert result.returncode == 1
    rows = table_rows(result.stdout)
    assert rows["slack token (auth.test)"] == "FAILED"
    assert rows["ngrok account 'default'"] == "OK"
    assert "invalid_auth" in result.stdout
    output = result.stdout + result.stderr
    assert wrong_token not in output and doctor_env.slack.bot_token not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
def test_check_tries_the_app_token_in_socket_mode(doctor_env, right):
    slack = doctor_env.slack
    app_token = slack.app_token if right else "xapp-1-cli-test-WRONG-app-token-93c2"
    result = run_bot("check", env=doctor_env(SLACK_APP_TOKEN=app_token))
    rows = table_rows(result.stdout)
    assert rows["slack app token (apps.connections.open)"] == ("OK" if right else "FAILED")
    assert rows["slack token (auth.test)"] == "OK"
    assert result.returncode == (0 if right else 1)
    assert "Socket Mode" in result.stdout
    assert [call.method for call in slack.calls()] == ["auth.test", "apps.connections.open"]
    assert app_token not in result.stdout + result.stderr
