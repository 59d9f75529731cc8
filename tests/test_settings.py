"""load_settings from plain dicts: the mode, every problem at once, and no secret anywhere.

The fake secrets are long and distinctive so a scan for them cannot match by accident.
"""

from __future__ import annotations

import pytest

from bot.settings.env import SettingsError, load_settings

BOT_TOKEN = "xoxb-1111-2222-FAKEbotTOKENzq81"
APP_TOKEN = "xapp-1-A111-3333-FAKEappTOKENzq82"
SIGNING_SECRET = "FAKEsigningSECRETzq83abcdef"
NGROK_KEY = "FAKEngrokKEYzq84_0123456789abcdef"
PROD_KEY = "FAKEprodNGROKkeyzq85_0123456789ab"
APPROVAL_SECRET = "FAKEapprovalSECRETzq86_0123456789abcdef0123"
REDIS_PASSWORD = "FAKEredisPASSWORDzq87"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, NGROK_KEY, PROD_KEY, APPROVAL_SECRET)
SECRETS += (REDIS_PASSWORD,)
HTTP_ENV = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "NGROK_API_KEY": NGROK_KEY,
}


def load(env, config_text=None, source="test"):
    return load_settings(env, config_text=config_text, config_source=source)


def problems_of(env, config_text=None, source="test"):
    with pytest.raises(SettingsError) as caught:
        load(env, config_text, source)
    return caught.value


def problem_naming(problems, name):
    found = [p for p in problems if name in p]
    assert len(found) == 1, f"expected one problem naming {name}: {problems}"
    return found[0]


def assert_no_secret(text):
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == [], f"secret(s) leaked into: {text}"


# ---- modes ----------------------------------------------------------------------------------


def test_http_mode_with_the_three_required_settings():
    settings = load(HTTP_ENV)
    assert settings.mode == "http"
    assert settings.slack_bot_token == BOT_TOKEN
    assert settings.slack_signing_secret == SIGNING_SECRET
    assert settings.config.accounts["default"].api_key == NGROK_KEY
    assert settings.ngrok_api_url == "https://api.ngrok.com"
    assert settings.slack_api_url is None
    assert settings.port == 3000
    assert len(settings.approval_secret) >= 32


def test_http_mode_needs_the_signing_secret():
    env = {k: v for k, v in HTTP_ENV.items() if k != "SLACK_SIGNING_SECRET"}
    error = problems_of(env)
    assert len(error.problems) == 1
    assert "SLACK_SIGNING_SECRET is missing" in error.problems[0]
    assert "SLACK_APP_TOKEN" in error.problems[0]  # names the way out: Socket Mode


def test_socket_mode_when_an_app_token_is_set_needs_no_signing_secret():
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "NGROK_API_KEY": NGROK_KEY}
    settings = load(env)
    assert settings.mode == "socket"
    assert settings.slack_app_token == APP_TOKEN
    assert settings.slack_signing_secret == ""
    assert settings.approval_secret  # approvals still get a signing key


def test_values_are_read_and_normalised():
    env = {
        **HTTP_ENV,
        "PORT": "8123",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "NGROK_API_URL": "http://127.0.0.1:8",
        "STATE_PATH": "/var/lib/ngrok-ops/state.sqlite3",
        "NGROK_TIMEOUT": "2.5",
        "NGROK_RETRY_BUDGET": "0",
        "LOG_LEVEL": "debug",
        "APPROVAL_SECRET": APPROVAL_SECRET,
    }
    settings = load(env)
    assert settings.port == 8123
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"  # slack_sdk joins with a slash
    assert settings.ngrok_api_url == "http://127.0.0.1:8"
    assert settings.state_path == "/var/lib/ngrok-ops/state.sqlite3"
    assert settings.ngrok_timeout == 2.5
    assert settings.ngrok_retry_budget == 0.0
    assert load(HTTP_ENV).ngrok_retry_budget == 30.0
    assert settings.log_level == "DEBUG"
    assert settings.approval_secret == APPROVAL_SECRET.encode()


# ---- every problem at once ------------------------------------------------------------------


def test_empty_environment_lists_every_missing_setting_at_once():
    error = problems_of({})
    assert len(error.problems) >= 3
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "NGROK_API_KEY"):
        problem_naming(error.problems, name + " is missing")
    report = error.report().splitlines()
    assert report[0].startswith("ngrok-ops cannot start")
    assert sum(line.startswith("  - ") for line in report) == len(error.problems)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "abc", "PORT must be a whole number"),
        ("PORT", "70000", "PORT must be a whole number from 1 to 65535"),
        ("SLACK_BOT_TOKEN", "FAKEnoPREFIXzq88", "SLACK_BOT_TOKEN must start with 'xoxb-'"),
        ("SLACK_APP_TOKEN", "xoxb-FAKEwrongKINDzq89", "SLACK_APP_TOKEN must start with 'xapp-'"),
        ("NGROK_API_URL", "ftp://x", "NGROK_API_URL must be an http:// or https:// URL"),
        ("SLACK_API_URL", "localhost:9", "SLACK_API_URL must be an http:// or https:// URL"),
        ("REDIS_URL", "http://example", "REDIS_URL must start with redis://"),
        ("NGROK_TIMEOUT", "0", "NGROK_TIMEOUT must be a number of seconds from 0.1 to 120.0"),
        ("NGROK_RETRY_BUDGET", "-1", "NGROK_RETRY_BUDGET must be a number of seconds from 0.0"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"),
        ("APPROVAL_SECRET", "short", "APPROVAL_SECRET is too short"),
    ],
)
def test_each_malformed_value_is_reported(name, value, expected):
    error = problems_of({**HTTP_ENV, name: value})
    assert expected in problem_naming(error.problems, name)


def test_several_malformed_values_are_reported_together():
    env = {**HTTP_ENV, "PORT": "abc", "SLACK_BOT_TOKEN": "FAKEnoPREFIXzq88"}
    env["NGROK_API_URL"] = "ftp://x"
    error = problems_of(env)
    assert len(error.problems) == 3
    for name in ("PORT", "SLACK_BOT_TOKEN", "NGROK_API_URL"):
        problem_naming(error.problems, name)


def test_config_problem_names_file_line_and_key_next_to_environment_problems():
    text = "roles:\n  operator: [U012ABCDEF]\n  viewr: ['*']\n"
    error = problems_of({**HTTP_ENV, "PORT": "abc"}, text, "/etc/ngrok-ops/bot.yml")
    config_problem = problem_naming(error.problems, "viewr")
    assert config_problem.startswith("/etc/ngrok-ops/bot.yml:3: roles.viewr:")
    assert "viewer" in config_problem  # the suggestion
    problem_naming(error.problems, "PORT")


def test_config_accounts_replace_the_ngrok_api_key():
    text = "accounts:\n  prod: {api_key_env: NGROK_API_KEY_PROD}\n"
    env = {k: v for k, v in HTTP_ENV.items() if k != "NGROK_API_KEY"}
    settings = load({**env, "NGROK_API_KEY_PROD": PROD_KEY}, text, "bot.yml")
    assert set(settings.config.accounts) == {"prod"}
    error = problems_of(env, text, "bot.yml")
    assert error.problems == [
        "bot.yml:2: accounts.prod.api_key_env: the environment variable NGROK_API_KEY_PROD "
        "is not set"
    ]


# ---- secrets --------------------------------------------------------------------------------


def test_repr_of_settings_shows_no_secret():
    env = {
        **HTTP_ENV,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "APPROVAL_SECRET": APPROVAL_SECRET,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0",
        "NGROK_API_KEY_PROD": PROD_KEY,
    }
    text = "accounts:\n  prod: {api_key_env: NGROK_API_KEY_PROD}\n  default: {}\n"
    text = text.replace("{}", "{api_key_env: NGROK_API_KEY}")
    settings = load(env, text, "bot.yml")
    assert settings.config.accounts["prod"].api_key == PROD_KEY  # the secrets are in there
    assert_no_secret(repr(settings))
    assert_no_secret(str(settings))
    assert_no_secret(repr(settings.config))
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, NGROK_KEY, PROD_KEY):
        assert secret in settings.secret_values()  # so the log filter can mask them
    assert any(REDIS_PASSWORD in value for value in settings.secret_values())


def test_no_secret_in_any_problem_of_malformed_secret_settings():
    env = {
        "SLACK_BOT_TOKEN": "FAKEbotTOKENwithoutPREFIXzq90",
        "SLACK_APP_TOKEN": "FAKEappTOKENwithoutPREFIXzq91",
        "APPROVAL_SECRET": "FAKEzq92",
        "REDIS_URL": f"http://:{REDIS_PASSWORD}@127.0.0.1/",
        "NGROK_API_KEY": NGROK_KEY,
        "PORT": "abc",
    }
    error = problems_of(env)
    assert len(error.problems) >= 5
    scanned = [*SECRETS, *(v for k, v in env.items() if k != "PORT")]
    text = "\n".join([error.report(), str(error), repr(error), *map(str, error.args)])
    assert [s for s in scanned if s in text] == []


@pytest.mark.parametrize(
    "config_text",
    [
        f"audit_channel: {BOT_TOKEN}\n",  # a token pasted where a channel id belongs
        f"roles:\n  operator: ['{SIGNING_SECRET}']\n",
        f"roles:\n  viewer: '{APP_TOKEN}'\n",
        f"accounts:\n  prod: {{api_key_env: {NGROK_KEY}}}\n",  # the key itself, not its name
        f"{APPROVAL_SECRET}: 1\n",
    ],
    ids=["bot-token", "signing-secret", "app-token", "ngrok-key", "approval-secret"],
)
def test_secrets_pasted_into_bot_config_are_not_echoed(config_text):
    env = {**HTTP_ENV, "SLACK_APP_TOKEN": APP_TOKEN, "APPROVAL_SECRET": APPROVAL_SECRET}
    error = problems_of(env, config_text, "bot.yml")
    assert error.problems and all(p.startswith("bot.yml:") for p in error.problems)
    assert_no_secret(error.report())
