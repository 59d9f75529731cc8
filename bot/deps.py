"""What every handler needs, built once per process from Settings.

Handlers receive a Deps through `functools.partial`, never a global, so tests and the two
serving modes build the same graph. Clients are created here, never at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot import __version__
from bot.jobs import Jobs, open_queues
from bot.ngrok.client import NgrokClient
from bot.ngrok.fleet_cache import FleetCache
from bot.policy import account_for_channel, roles_of
from bot.settings.bot_config import Account, BotConfig
from bot.settings.env import Settings
from bot.slack.groups import GroupDirectory
from bot.slack.views.audit import render_audit_line
from bot.state.audit import Auditor
from bot.state.backends import open_budget_log, open_store
from bot.state.budget import DEFAULT_LEASE_SECONDS, BudgetLog, SharedBudget
from bot.state.store import Store

log = logging.getLogger("ngrok_ops.deps")

USER_AGENT = f"ngrok-ops/{__version__}"


def slack_retry_handlers() -> list[Any]:
    """429s wait for Retry-After (Slack did nothing) and failed connections are retried.
    5xx answers are not: chat.postMessage is not idempotent, and a retried one could post a
    second approval request whose buttons nobody tracks."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=2),
    ]


def build_slack_client(settings: Settings) -> WebClient:
    """The one WebClient of the process, pointed at SLACK_API_URL when set."""
    kwargs: dict[str, Any] = {
        "token": settings.slack_bot_token,
        "retry_handlers": slack_retry_handlers(),
    }
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url
    return WebClient(**kwargs)


@dataclass
class Deps:
    """The object graph handed to every handler."""

    settings: Settings
    slack: WebClient
    store: Store
    jobs: Jobs
    groups: GroupDirectory
    auditor: Auditor
    ngrok_clients: dict[str, NgrokClient]
    fleet: FleetCache
    clock: Callable[[], float] = field(default=time.time)
    budget_log: BudgetLog | None = None  # the shared ngrok budget, closed with the rest

    @property
    def config(self) -> BotConfig:
        return self.settings.config

    def roles(self, user_id: str) -> frozenset[str]:
        """The user's roles now (group membership re-read after a short cache)."""
        return roles_of(self.config, user_id, self.groups.groups_of)

    def ngrok_for(self, channel_id: str) -> tuple[Account, NgrokClient] | None:
        """The ngrok account bound to a channel, with its client; None when none applies."""
        account = account_for_channel(self.config, channel_id)
        if account is None:
            return None
        return account, self.ngrok_clients[account.name]

    def close(self) -> None:
        """Closes connections (tests and graceful shutdown)."""
        self.jobs.close()
        for client in self.ngrok_clients.values():
            client.close()
        if self.budget_log is not None:
            self.budget_log.close()
        self.store.close()


def build_deps(
    settings: Settings,
    *,
    ngrok_transport: httpx.BaseTransport | None = None,
    audit_stream: TextIO | None = None,
    private_queue: bool = False,
) -> Deps:
    """Creates the clients, the store and the queue for one process. `ngrok_transport`
    lets `python -m bot console --demo` serve the ngrok API in process, `audit_stream`
    keeps the JSON audit lines off the console's screen, and `private_queue` keeps the
    console's jobs in memory, away from a deployment's consumers (and theirs away from it)."""
    if settings.update_restart_delay < 10:
        # Allowed for tests against the local stand-in; ngrok asks for at least 10 s.
        log.warning(
            "UPDATE_RESTART_DELAY is %.1f s; ngrok needs at least 10 s between an update "
            "and the restart that completes it",
            settings.update_restart_delay,
        )
    slack = build_slack_client(settings)
    store = open_store(redis_url=settings.redis_url, sqlite_path=settings.state_path)
    # One budget per account for every process: the same file or Redis as the store.
    budget_log = open_budget_log(redis_url=settings.redis_url, sqlite_path=settings.state_path)
    clients = {
        name: NgrokClient(
            account.api_key,
            base_url=account.api_url or settings.ngrok_api_url,
            user_agent=USER_AGENT,
            timeout=settings.ngrok_timeout,
            retry_budget=settings.ngrok_retry_budget,
            transport=ngrok_transport,
            pacer=SharedBudget(
                budget_log,
                account.api_key,
                max_requests=settings.ngrok_max_requests,
                per_seconds=settings.ngrok_window_seconds,
                max_in_flight=settings.ngrok_max_in_flight,
                # A request holds its place until it finishes; httpx's timeout is per phase.
                lease_seconds=max(DEFAULT_LEASE_SECONDS, 4 * settings.ngrok_timeout),
            ),
        )
        for name, account in settings.config.accounts.items()
    }
    group_ids = {
        member
        for members in settings.config.roles.values()
        for member in members
        if member.startswith("S")
    }

    def announce(channel: str, entry: dict[str, Any]) -> None:
        slack.chat_postMessage(channel=channel, text=render_audit_line(entry), unfurl_links=False)

    auditor = Auditor(
        store, audit_channel=settings.config.audit_channel, announce=announce, stream=audit_stream
    )
    return Deps(
        settings=settings,
        slack=slack,
        store=store,
        jobs=Jobs(
            open_queues(
                redis_url=settings.redis_url,
                sqlite_path=settings.state_path,
                memory=private_queue,
            )
        ),
        groups=GroupDirectory(
            slack,
            group_ids,
            ttl_seconds=settings.group_cache_seconds,
            stale_seconds=settings.group_stale_seconds,
        ),
        auditor=auditor,
        ngrok_clients=clients,
        fleet=FleetCache(ttl_seconds=settings.fleet_cache_seconds),
        budget_log=budget_log,
    )
