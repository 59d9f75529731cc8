"""`help` (or nothing): only the commands this user may run here."""

from __future__ import annotations

from bot.deps import Deps
from bot.policy import allowed_verbs
from bot.slack.invocation import Invocation
from bot.slack.views.help import render_help
from commands.grammar import help_lines


def show_help(inv: Invocation, deps: Deps) -> None:
    verbs = allowed_verbs(deps.config, deps.roles(inv.user_id), inv.channel_id)
    inv.private(render_help(help_lines(verbs)))
