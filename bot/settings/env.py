"""Environment and YAML to frozen settings: the only module that reads os.environ or files.

Every problem is collected before anything starts, so an operator fixing a deployment sees
the whole list at once instead of one error per restart. No message ever contains a value
of a secret setting, only its name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlparse

from bot.settings.bot_config import BotConfig, ConfigError, load_config
from bot.state.approvals import derive_secret

Mode = Literal["http", "socket"]
JobsConsumer = Literal["embedded", "separate"]

SECRET_SETTINGS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "APPROVAL_SECRET")


class SettingsError(Exception):
    """Every problem with the settings, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) with the settings")
        self.problems = problems

    def report(self) -> str:
        """The text printed before exiting with code 2."""
        lines = ["ngrok-ops cannot start; fix these settings:"]
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append("See README.md, section Settings, for what each one means.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs, read once at start-up."""

    mode: Mode
    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    slack_app_token: str = field(repr=False)
    slack_api_url: str | None
    ngrok_api_url: str
    port: int
    config: BotConfig
    approval_secret: bytes = field(repr=False)
    approval_secret_text: str = field(repr=False)  # APPROVAL_SECRET as set, for log masking
    redis_url: str | None = field(repr=False)
    state_path: str
    ngrok_max_requests: int
    ngrok_window_seconds: float
    ngrok_max_in_flight: int
    ngrok_timeout: float
    ngrok_retry_budget: float
    worker_threads: int
    urgent_worker_threads: int
    jobs_consumer: JobsConsumer
    action_recovery_seconds: float
    web_workers: int
    update_restart_delay: float
    group_cache_seconds: float
    group_stale_seconds: float
    fleet_cache_seconds: float
    log_level: str
    jobs_niceness: int = 10

    def secret_values(self) -> list[str]:
        """Every secret value, for the log filter that masks them."""
        values = [self.slack_bot_token, self.slack_signing_secret, self.slack_app_token]
        values += [account.api_key for account in self.config.accounts.values()]
        if self.redis_url:
            values.append(self.redis_url)
        values.append(self.approval_secret_text)
        return [value for value in values if value]


Number = TypeVar("Number", int, float)


def _number(
    env: Mapping[str, str],
    name: str,
    default: Number,
    low: Number,
    high: Number,
    problems: list[str],
) -> Number:
    """A bounded number setting; the type of `default` decides whole numbers or seconds."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = type(default)
    what = "a whole number" if kind is int else "a number of seconds"
    try:
        value = kind(raw)
    except ValueError:
        problems.append(f"{name} must be {what} from {low} to {high}, not {raw!r}.")
        return default
    if not low <= value <= high:
        problems.append(f"{name} must be {what} from {low} to {high}, not {value}.")
        return default
    return value


def _url(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        # The value is not echoed: a URL may carry credentials (https://user:pass@host).
        problems.append(f"{name} must be an http:// or https:// URL (the value is not shown).")
        return None
    return raw


def _token(env: Mapping[str, str], name: str, prefix: str, problems: list[str]) -> str:
    value = env.get(name, "").strip()
    if value and not value.startswith(prefix):
        problems.append(f"{name} must start with {prefix!r} (the value is not shown).")
    return value


def _approval_secret(env: Mapping[str, str], fallback: str, problems: list[str]) -> bytes:
    """APPROVAL_SECRET, or a key derived from the signing secret under its own label."""
    if not fallback and not env.get("APPROVAL_SECRET"):
        return b""  # the missing Slack secrets are already reported
    try:
        return derive_secret(
            approval_secret=env.get("APPROVAL_SECRET") or None, signing_secret=fallback
        )
    except ValueError as error:
        problems.append(f"APPROVAL_SECRET: {error}")
        return b""


def load_settings(
    env: Mapping[str, str],
    *,
    config_text: str | None,
    config_source: str,
    config_problem: str | None = None,
) -> Settings:
    """Builds Settings from a plain mapping; raises SettingsError listing every problem.
    `config_problem` is why the BOT_CONFIG file could not be read, listed with the rest."""
    problems: list[str] = [config_problem] if config_problem else []
    bot_token = _token(env, "SLACK_BOT_TOKEN", "xoxb-", problems)
    app_token = _token(env, "SLACK_APP_TOKEN", "xapp-", problems)
    signing_secret = env.get("SLACK_SIGNING_SECRET", "").strip()
    mode: Mode = "socket" if app_token else "http"
    if not bot_token:
        problems.append(
            "SLACK_BOT_TOKEN is missing: the bot token (xoxb-...) from OAuth & Permissions."
        )
    if mode == "http" and not signing_secret:
        problems.append(
            "SLACK_SIGNING_SECRET is missing: HTTP mode needs the signing secret from Basic "
            "Information (or set SLACK_APP_TOKEN to use Socket Mode)."
        )
    slack_api_url = _url(env, "SLACK_API_URL", problems)
    if slack_api_url and not slack_api_url.endswith("/"):
        slack_api_url += "/"
    default_ngrok_url = _url(env, "NGROK_API_URL", problems) or "https://api.ngrok.com"
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
        problems.append(
            "REDIS_URL must start with redis://, rediss:// or unix:// (value not shown)."
        )
    try:
        config = load_config(config_text, source=config_source, env=env)
    except ConfigError as error:
        problems.extend(error.problems)
        config = None
    if config is not None and not config.accounts:
        problems.append(
            "NGROK_API_KEY is missing: create an API key at https://dashboard.ngrok.com/api-keys "
            "(an API key, not the agent authtoken), or define accounts in BOT_CONFIG."
        )
    settings = Settings(
        mode=mode,
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=slack_api_url,
        ngrok_api_url=default_ngrok_url,
        port=_number(env, "PORT", 3000, 1, 65535, problems),
        config=config,  # type: ignore[arg-type]  # only returned when there are no problems
        approval_secret=_approval_secret(env, signing_secret or bot_token, problems),
        approval_secret_text=env.get("APPROVAL_SECRET", ""),
        redis_url=redis_url,
        state_path=env.get("STATE_PATH", "").strip() or "ngrok-ops.sqlite3",
        ngrok_max_requests=_number(env, "NGROK_RATE_LIMIT", 120, 1, 10_000, problems),
        ngrok_window_seconds=_number(env, "NGROK_RATE_WINDOW", 60.0, 0.1, 3600.0, problems),
        ngrok_max_in_flight=_number(env, "NGROK_MAX_IN_FLIGHT", 4, 1, 64, problems),
        ngrok_timeout=_number(env, "NGROK_TIMEOUT", 10.0, 0.1, 120.0, problems),
        ngrok_retry_budget=_number(env, "NGROK_RETRY_BUDGET", 30.0, 0.0, 600.0, problems),
        worker_threads=_number(env, "WORKER_THREADS", 16, 1, 256, problems),
        urgent_worker_threads=_number(env, "URGENT_WORKER_THREADS", 4, 1, 64, problems),
        jobs_consumer=_jobs_consumer(env, problems),
        action_recovery_seconds=_number(
            env, "ACTION_RECOVERY_SECONDS", 120.0, 1.0, 86_400.0, problems
        ),
        web_workers=_number(env, "WEB_CONCURRENCY", 1, 1, 64, problems),
        update_restart_delay=_number(env, "UPDATE_RESTART_DELAY", 15.0, 0.0, 600.0, problems),
        fleet_cache_seconds=_number(env, "FLEET_CACHE_SECONDS", 10.0, 0.0, 600.0, problems),
        group_cache_seconds=_number(env, "GROUP_CACHE_SECONDS", 60.0, 0.0, 3600.0, problems),
        group_stale_seconds=_number(env, "GROUP_STALE_SECONDS", 300.0, 0.0, 86_400.0, problems),
        log_level=(env.get("LOG_LEVEL", "").strip() or "INFO").upper(),
        jobs_niceness=_number(env, "JOBS_NICENESS", 10, 0, 19, problems),
    )
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {settings.log_level!r}."
        )
    if problems:
        raise SettingsError(problems)
    return settings


def _jobs_consumer(env: Mapping[str, str], problems: list[str]) -> JobsConsumer:
    value = env.get("JOBS_CONSUMER", "").strip().lower() or "embedded"
    if value == "embedded":
        return "embedded"
    if value == "separate":
        return "separate"
    problems.append(
        f"JOBS_CONSUMER must be embedded (the web process starts one) or separate (a jobs: "
        f"process runs it), not {value!r}."
    )
    return "embedded"


def load_settings_from_environment(environment: Mapping[str, str] | None = None) -> Settings:
    """Reads os.environ (or `environment`, as the console prepares it) and the BOT_CONFIG
    file (a path) for the running process."""
    env = dict(os.environ if environment is None else environment)
    config_path = env.get("BOT_CONFIG", "").strip()
    if not config_path:
        return load_settings(env, config_text=None, config_source="(no BOT_CONFIG)")
    try:
        text = Path(config_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "it is not UTF-8 text"
        problem = f"BOT_CONFIG points to {config_path!r}, which cannot be read: {reason}."
        return load_settings(
            env, config_text=None, config_source=config_path, config_problem=problem
        )
    return load_settings(env, config_text=text, config_source=config_path)
