"""register(app, deps): the only place where Slack ids meet handlers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from slack_bolt import App

from bot.deps import Deps
from bot.slack import ids
from commands import listeners
from commands.jobs import register_jobs

ACTION_HANDLERS: dict[str, Callable[..., None]] = {
    ids.ACTION_DETAILS: listeners.handle_details,
    ids.ACTION_REQUEST: listeners.handle_request,
    ids.ACTION_PAGE: listeners.handle_page,
    ids.ACTION_EXPORT: listeners.handle_export,
    ids.ACTION_SHARE: listeners.handle_share,
    ids.ACTION_APPROVE: listeners.handle_approve,
    ids.ACTION_CANCEL: listeners.handle_cancel,
    ids.ACTION_ASK_APPROVAL: listeners.handle_ask_approval,
    ids.ACTION_TWO_PERSON_APPROVE: listeners.handle_two_person_approve,
    ids.ACTION_TWO_PERSON_DENY: listeners.handle_two_person_deny,
    ids.ACTION_ALERT_AGENTS: listeners.handle_alert_agents,
    ids.ACTION_HOME_REFRESH: listeners.handle_home_refresh,
    ids.ACTION_UPDATE_OUTDATED: listeners.handle_update_outdated,
    ids.ACTION_RUN_LINK: listeners.handle_link,
}


def register(app: App, deps: Deps) -> None:
    """Binds every listener and every job; handlers get `deps` through functools.partial,
    never a global."""
    register_jobs(deps)
    app.command(ids.SLASH_COMMAND)(partial(listeners.handle_slash_command, deps=deps))
    app.event("app_mention")(partial(listeners.handle_mention, deps=deps))
    app.event(ids.EVENT_APP_HOME_OPENED)(partial(listeners.handle_app_home_opened, deps=deps))
    app.shortcut(ids.SHORTCUT_THREAD_SESSIONS)(partial(listeners.handle_thread_shortcut, deps=deps))
    for action_id, handler in ACTION_HANDLERS.items():
        app.action(action_id)(partial(handler, deps=deps))
    app.view(ids.VIEW_DECISION_REASON)(partial(listeners.handle_reason_submission, deps=deps))
    for action_id in ids.RUN_ACTIONS:
        app.action(action_id)(partial(listeners.handle_run_button, deps=deps))
