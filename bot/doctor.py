"""`python -m bot check`: settings, Slack token, ngrok keys, state store and ngrok budget, as a
table.

It makes one call per dependency (auth.test, apps.connections.open in Socket Mode, one list
call per ngrok account through the shared budget, conversations.info for the audit channel,
a store ping, a count of the budget) and exits 0 only when every row is OK, so it can gate a
deployment. Every FAILED row ends with what to do about it; connection failures name the URL
that was tried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError, SlackClientError

from bot import __version__
from bot.deps import build_slack_client
from bot.jobs import LANES, Jobs, open_queues
from bot.logs import configure_logging
from bot.ngrok.client import NgrokClient
from bot.ngrok.errors import NgrokError, Unauthorized, Unavailable
from bot.queue_file import queue_path
from bot.settings.awareness import AlertsConfig
from bot.settings.env import Settings, SettingsError, load_settings_from_environment
from bot.state.backends import open_budget_log, open_store
from bot.state.budget import BudgetLog, SharedBudget
from bot.watch.cost import cadence
from bot.watch.model import STATE_PREFIX, WatchState

Row = tuple[str, bool | None, str]  # ok is None for a warning: shown, but not a failure

USER_AGENT = f"ngrok-ops/{__version__}"


SLACK_NEXT_STEPS = {
    "invalid_auth": "SLACK_BOT_TOKEN is not a valid token for this workspace: copy the Bot "
    "User OAuth Token (xoxb-…) from the app's OAuth & Permissions page.",
    "not_authed": "SLACK_BOT_TOKEN is empty: set it to the app's Bot User OAuth Token (xoxb-…).",
    "token_revoked": "The token was revoked: reinstall the app to the workspace and copy the "
    "new Bot User OAuth Token into SLACK_BOT_TOKEN.",
    "account_inactive": "The app was uninstalled or its bot deactivated: reinstall the app and "
    "copy the new token into SLACK_BOT_TOKEN.",
    "not_allowed_token_type": "The token has the wrong type: SLACK_BOT_TOKEN takes the xoxb- "
    "token, SLACK_APP_TOKEN the xapp- token (Basic Information > App-Level Tokens).",
    "missing_scope": "The app lacks a scope: add the scopes in manifest.yml to the app and "
    "reinstall it.",
    "ratelimited": "Slack rate-limited the check: wait a minute and run it again.",
}


class Problem(Exception):
    """A failed probe with its next step already worded."""


def _check(name: str, probe: Callable[[], str]) -> Row:
    try:
        return (name, True, probe())
    except Problem as problem:
        return (name, False, str(problem))
    except SlackApiError as error:
        code = str(error.response.get("error"))
        step = SLACK_NEXT_STEPS.get(code, "see https://docs.slack.dev/reference/methods for it.")
        return (name, False, f"Slack answered {code!r}. Next step: {step}")
    except NgrokError as error:
        return (name, False, str(error))
    except Exception as error:  # the doctor reports every failure as a row, never a traceback
        return (name, False, f"{type(error).__name__}: {error}")


def _slack_url(settings: Settings) -> str:
    return settings.slack_api_url or "https://slack.com/api/"


def check_rows(settings: Settings) -> list[Row]:
    """Runs every probe; each row is (what, ok, detail)."""

    def unreachable(error: Exception) -> Problem:
        return Problem(
            f"could not connect to Slack at {_slack_url(settings)} ({type(error).__name__}: "
            f"{error}). Next step: check the network or proxy from this host, and "
            "SLACK_API_URL if it is set."
        )

    def slack() -> str:
        try:
            auth = build_slack_client(settings).auth_test()
        except (SlackClientError, OSError) as error:
            if isinstance(error, SlackApiError):
                raise
            raise unreachable(error) from error
        return f"team {auth.get('team')} ({auth.get('team_id')}), bot user {auth.get('user_id')}"

    def audit_channel(channel: str) -> Callable[[], str]:
        def probe() -> str:
            try:
                info = build_slack_client(settings).conversations_info(channel=channel)
            except SlackApiError as error:
                code = error.response.get("error")
                if code == "channel_not_found":
                    raise Problem(
                        f"the bot cannot see channel {channel}. Next step: check audit_channel "
                        "in BOT_CONFIG, and for a private channel invite the bot with "
                        "`/invite @ngrok-ops` there."
                    ) from error
                raise
            except (SlackClientError, OSError) as error:
                raise unreachable(error) from error
            found = info.get("channel") or {}
            name = f"#{found.get('name') or channel}"
            if found.get("is_archived"):
                raise Problem(
                    f"{name} is archived, so audit lines cannot be posted. Next step: "
                    "unarchive it, or set audit_channel in BOT_CONFIG to a live channel."
                )
            if not found.get("is_member"):
                raise Problem(
                    f"the bot is not a member of {name}. Next step: run `/invite @ngrok-ops` "
                    "in that channel."
                )
            return f"{name}: the bot is a member and can post there"

        return probe

    def app_token() -> str:
        # Issues a WebSocket URL and leaves it unused: the one call that proves the xapp- token.
        build_slack_client(settings).apps_connections_open(app_token=settings.slack_app_token)
        return "Socket Mode connections allowed"

    def shared_budget(budget_log: BudgetLog, api_key: str) -> SharedBudget:
        return SharedBudget(
            budget_log,
            api_key,
            max_requests=settings.ngrok_max_requests,
            per_seconds=settings.ngrok_window_seconds,
        )

    def ngrok(name: str) -> Callable[[], str]:
        account = settings.config.accounts[name]

        def probe() -> str:
            base_url = account.api_url or settings.ngrok_api_url
            # Through the shared budget: a check while the bot is busy must not draw a 429.
            budget_log = open_budget_log(
                redis_url=settings.redis_url, sqlite_path=settings.state_path
            )
            try:
                with NgrokClient(
                    account.api_key,
                    base_url=base_url,
                    user_agent=USER_AGENT,
                    timeout=settings.ngrok_timeout,
                    retry_budget=5.0,
                    pacer=shared_budget(budget_log, account.api_key),
                ) as client:
                    page = client.list_sessions_page(limit=1)
            except Unauthorized as error:
                raise Problem(
                    f"{error}. Next step: create an API key at "
                    "https://dashboard.ngrok.com/api-keys and set it as NGROK_API_KEY (or the "
                    f"account's api_key in BOT_CONFIG); an authtoken is not an API key."
                ) from error
            except Unavailable as error:
                raise Problem(
                    f"{error} (tried {base_url}). Next step: check the network from this "
                    "host, NGROK_API_URL if it is set, and https://status.ngrok.com."
                ) from error
            finally:
                budget_log.close()
            online = "at least one session online" if page.sessions else "no session online"
            return f"API key accepted; {online}"

        return probe

    def store() -> str:
        backend = "Redis" if settings.redis_url else f"SQLite file {settings.state_path}"
        opened = open_store(redis_url=settings.redis_url, sqlite_path=settings.state_path)
        try:
            opened.ping()
        finally:
            opened.close()
        return f"{backend} reachable"

    def budget() -> str:
        backend = "Redis" if settings.redis_url else f"SQLite file {settings.state_path}"
        budget_log = open_budget_log(redis_url=settings.redis_url, sqlite_path=settings.state_path)
        try:
            used = {
                name: shared_budget(budget_log, account.api_key).used()
                for name, account in sorted(config.accounts.items())
            }
        finally:
            budget_log.close()
        window = f"{settings.ngrok_max_requests} per {settings.ngrok_window_seconds:g} s"
        counts = ", ".join(f"{name!r} {n}" for name, n in used.items())
        return f"{backend}; used of {window}: {counts}"

    def store_checked() -> str:
        try:
            return store()
        except Exception as error:
            where = "REDIS_URL" if settings.redis_url else f"STATE_PATH ({settings.state_path})"
            raise Problem(
                f"{type(error).__name__}: {error}. Next step: check {where}: the server must "
                "be reachable, or the directory writable by this process."
            ) from error

    mode = "Socket Mode" if settings.mode == "socket" else f"HTTP on port {settings.port}"
    config = settings.config
    rows: list[Row] = [("settings", True, f"{mode}; config: {_describe_config(settings)}")]
    rows.append(_check("slack token (auth.test)", slack))
    if settings.mode == "socket":
        rows.append(_check("slack app token (apps.connections.open)", app_token))
    if config.audit_channel:
        channel = config.audit_channel
        rows.append(_check(f"audit channel {channel}", audit_channel(channel)))
    for name in sorted(config.accounts):
        rows.append(_check(f"ngrok account {name!r}", ngrok(name)))
    rows.append(_check("state store", store_checked))
    rows += _watch_rows(settings)
    rows.append(_check("ngrok budget", budget))
    rows.append(_queue_row(settings))
    if settings.redis_url:
        rows.append(_redis_persistence(settings.redis_url))
    return rows


def _watch_rows(settings: Settings) -> list[Row]:
    """One row per watched account: its cadence from the last scan, a warning when the fleet
    is too large for poll_interval within the watcher's budget share (bot.watch.cost)."""
    watched = settings.config.alerts
    if not watched:
        return []
    try:
        opened = open_store(redis_url=settings.redis_url, sqlite_path=settings.state_path)
    except Exception as error:  # the doctor reports every failure as a row, never a traceback
        return [("watcher", False, f"{type(error).__name__}: {error}")]
    rows: list[Row] = []
    try:
        for name, cfg in sorted(watched.items()):
            record = opened.get_request(STATE_PREFIX + name)
            state = WatchState.from_data(record) if record else None
            rows.append(_watch_row(settings, name, cfg, state))
    finally:
        opened.close()
    return rows


def _watch_row(settings: Settings, name: str, cfg: AlertsConfig, state: WatchState | None) -> Row:
    label = f"watcher {name!r} (alerts to {cfg.channel})"
    if state is None or state.scanned_at is None:
        return (label, None, f"no scan yet; polls every {cfg.poll_interval:g} s once running")
    pace = cadence(
        len(state.agents) + len(state.gone),
        poll_interval=cfg.poll_interval,
        budget_share=cfg.budget_share,
        max_requests=settings.ngrok_max_requests,
        window_seconds=settings.ngrok_window_seconds,
    )
    used = pace.requests_per_hour / (pace.allowed_per_minute / cfg.budget_share * 60)
    detail = (
        f"{len(state.agents)} agents, {pace.pages} request(s) per scan, every "
        f"{pace.interval:.0f} s ({pace.requests_per_hour:.0f} requests/h, {used:.0%} of the "
        f"non-urgent budget)"
    )
    if state.problem is not None:
        return (label, False, f"{state.problem.sentence} (since the scan failed)")
    if pace.stretched:
        return (
            label,
            None,
            f"interval stretched from {cfg.poll_interval:g} s: the fleet is too large for it "
            f"within budget_share {cfg.budget_share:g}; {detail}",
        )
    return (label, True, detail)


def _redis_persistence(redis_url: str) -> Row:
    """A warning row when Redis would forget the store's data on a restart."""
    from bot.state.store_redis import RedisStore  # redis is imported only when used

    name = "redis persistence"
    opened = RedisStore(redis_url)
    try:
        problem = opened.persistence_problem()
    except Exception as error:  # the doctor reports every failure as a row, never a traceback
        return (name, False, f"{type(error).__name__}: {error}")
    finally:
        opened.close()
    return (name, None, problem) if problem else (name, True, "Redis keeps its data on restart")


def _describe_config(settings: Settings) -> str:
    config = settings.config
    if not config.configured:
        return "none (everyone may list; actions are refused until BOT_CONFIG grants them)"
    roles = ", ".join(f"{role}: {len(members)}" for role, members in sorted(config.roles.items()))
    return f"{len(config.accounts)} account(s), {len(config.channels)} channel(s), roles {roles}"


def format_table(rows: list[Row]) -> str:
    """A fixed-width table that reads well in a terminal and in CI logs."""
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for name, ok, detail in rows:
        result = "WARN  " if ok is None else "OK    " if ok else "FAILED"
        lines.append(f"{name.ljust(width)}  {result}  {detail}")
    return "\n".join(lines)


CONSUMER_SILENT_SECONDS = 30.0  # a live consumer writes its heartbeat every 5 s


def _queue_row(settings: Settings, now: float | None = None) -> Row:
    """The job queue: reachable, each lane's backlog, and whether a consumer is alive (its
    heartbeat; every consumer runs both lanes). No consumer is a WARN, not a failure:
    `check` also runs before the bot."""
    name = "job queue"
    where = "Redis" if settings.redis_url else f"SQLite file {queue_path(settings.state_path)}"
    try:
        jobs = Jobs(open_queues(redis_url=settings.redis_url, sqlite_path=settings.state_path))
        try:
            lanes = [(lane, jobs.backlog(lane), jobs.scheduled(lane)) for lane in LANES]
            beat = jobs.last_beat()
        finally:
            jobs.close()
    except Exception as error:
        step = "REDIS_URL" if settings.redis_url else "the directory of STATE_PATH"
        return (name, False, f"{type(error).__name__}: {error}. Next step: check {step}.")
    counts = f"{where}; " + "; ".join(
        f"{lane}: {waiting} waiting, {scheduled} scheduled" for lane, waiting, scheduled in lanes
    )
    age = None if beat is None else (time.time() if now is None else now) - beat
    if age is None or age > CONSUMER_SILENT_SECONDS:
        silent = "no consumer has ever reported" if age is None else f"no consumer for {age:.0f} s"
        return (
            name,
            None,
            f"{counts}; {silent}. Next step: start the bot (`python -m bot` or the Procfile "
            "`web:`, which starts one) or a `jobs:` process (`python -m bot jobs`).",
        )
    return (name, True, f"{counts}; a consumer reported {age:.0f} s ago")


def run_checks() -> int:
    """Prints the table; 0 when the bot is ready, 1 when a check failed, 2 for bad settings."""
    try:
        settings = load_settings_from_environment()
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        return 2
    # The same log set-up as the bot itself, so the secret filter guards the probes' logs too.
    configure_logging(settings.log_level, settings.secret_values())
    rows = check_rows(settings)
    print(format_table(rows))
    ready = all(ok is not False for _, ok, _ in rows)
    warned = any(ok is None for _, ok, _ in rows)
    if not ready:
        print("not ready: fix the FAILED rows above")
    else:
        print("ready, but read the WARN rows above" if warned else "ready")
    return 0 if ready else 1
