"""The one-sentence error every refusal and failure is shown as."""

from __future__ import annotations

from typing import Any

from bot.slack import blocks as bk


def render_error(sentence: str, usage: str | None = None) -> dict[str, Any]:
    """One clear sentence (escaped: it may quote what the user typed) and the usage line."""
    text = f":warning: {bk.clip(sentence, 2000)}"
    blocks = [bk.section(text)]
    if usage:
        blocks.append(bk.context(f"Usage: {bk.code_span(usage, 1000)}"))
    return bk.message(sentence, blocks)


SORRY = "Something went wrong on the ngrok-ops side; it has been logged. Please try again."


def render_notice(sentence: str) -> dict[str, Any]:
    """A short confirmation (not an error): one escaped sentence."""
    return bk.message(sentence, [bk.section(f":white_check_mark: {bk.clip(sentence, 2000)}")])


def render_lost_reply(asked: str, *, approving: bool = False) -> dict[str, Any]:
    """In place of a "working…" placeholder whose job died with its consumer (SIGKILL, OOM):
    the job is not run again (a command might post a second approval prompt), so the user is
    told to ask again. An approving click may have started an action, which the action's own
    recovery finishes and reports, so that one points there instead."""

    def sentence(what: str) -> str:
        if approving:
            return (
                f"The bot restarted while handling your click on {what}; an action it had "
                "started is finished and reported in its thread, so look there before "
                "clicking again."
            )
        return f"The bot restarted while answering {what}; nothing was changed. Run it again."

    raw = bk.one_line(asked)[:200]
    return bk.message(sentence(raw), [bk.section(f":warning: {sentence(bk.code_span(asked))}")])
