"""One agent in full: every field, the metadata pretty-printed, endpoints, and its actions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from bot.ngrok.hosts import DEFAULT_HOST_KEYS, host_of
from bot.ngrok.models import (
    ACTIONS,
    Action,
    Endpoint,
    TunnelSession,
    unsupported_reason,
)
from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext
from bot.slack.ids import ACTION_REQUEST, ACTION_SHARE
from bot.slack.views.agent_text import FIELD_LIMIT, OP_EFFECT, OP_LABEL, runs_newest


def render_session_detail(
    session: TunnelSession,
    endpoints: Sequence[Endpoint],
    *,
    now: datetime,
    context: ButtonContext,
    allowed: Sequence[Action] = ACTIONS,
    rights: str = "",
    shared_by: str | None = None,
    host_keys: Sequence[str] = DEFAULT_HOST_KEYS,
    newest_version: str | None = None,
) -> dict[str, Any]:
    """`allowed` are the actions this user may ask for here (bot.policy.actions_for): only
    those get a button, and `rights` says once how to get more. The public copy
    (`shared_by`, Post to channel) shows no buttons: whoever reads it has other rights.
    `newest_version` is the newest agent version seen in the account (None: not known), so
    an agent already on it is not offered an update."""
    name = host_of(session, host_keys)
    title = f"ngrok agent {name} ({session.id})" if name else f"ngrok agent {session.id}"
    top = [bk.header(title), _fact_fields(session, now, name)]
    bottom = [_endpoints_block(endpoints)]
    if shared_by:
        bottom.append(bk.context(f"Posted by {bk.user_mention(shared_by)}"))
    else:
        ops = _op_blocks(session, context, allowed, newest_version)
        bottom += ops
        share = bk.button(
            "Post to channel", ACTION_SHARE, bk.button_value_for("details", session.id, context)
        )
        bottom.append(bk.actions([share], "share"))
        if rights:
            bottom.append(bk.context(bk.escape(rights)))
        if any(b.get("accessory") for b in ops):
            bottom.append(bk.context("Every action asks for approval before it runs."))
    budget = (
        bk.MAX_MESSAGE_TEXT - bk.text_length(top) - bk.text_length(bottom) - 200
    )  # room for the metadata heading and the code-block fences
    slots = bk.MAX_BLOCKS - len(top) - len(bottom)
    blocks = top + _metadata_blocks(session.metadata, budget, slots) + bottom
    facts = " · ".join(filter(None, (session.region, session.os, session.agent_version)))
    return bk.message(f"ngrok agent {session.id}: {facts or 'details'}", blocks)


def _fact_fields(session: TunnelSession, now: datetime, host: str | None) -> dict[str, Any]:
    if session.started_at is not None:
        started = (
            f"{bk.date_token(session.started_at)} (up {bk.format_duration(session.uptime(now))})"
        )
    else:
        started = "unknown"
    facts = [("Host", bk.clip(host, FIELD_LIMIT))] if host else []
    facts += [
        ("Session", bk.code_span(session.id, 60)),
        ("Credential", bk.code_span(session.credential.id, 60) if session.credential.id else "-"),
        ("Region", bk.clip(session.region or "-", FIELD_LIMIT)),
        ("OS", bk.clip(session.os or "-", FIELD_LIMIT)),
        ("Agent version", bk.clip(session.agent_version or "-", FIELD_LIMIT)),
        ("Transport", bk.clip(session.transport or "-", FIELD_LIMIT)),
        ("IP", bk.clip(session.ip or "-", FIELD_LIMIT)),
        ("Started", started),
    ]
    return bk.section("*Session details*", fields=[f"*{k}*\n{v}" for k, v in facts])


def _metadata_blocks(metadata: str, budget: int, slots: int) -> list[dict[str, Any]]:
    """The metadata in full, as pretty JSON when it parses, over as many sections as it
    needs; cut with a visible note only if it would not fit the message at all."""
    if not metadata:
        return [
            bk.section(
                "*Metadata:* none. Set `agent.metadata` in the agent config so the agent can be "
                "found again after a restart gives it a new session id."
            )
        ]
    text = _pretty_json(metadata)
    escaped = bk.escape(bk.neutralise_backticks(text))
    if len(escaped) > budget and text != metadata:
        escaped = bk.escape(bk.neutralise_backticks(metadata))
    note = ""
    if len(escaped) > budget:
        escaped = bk.truncate_escaped(escaped, max(budget, 500))
        note = f" (cut to fit one Slack message; {len(metadata)} characters in all)"
    chunk = bk.MAX_SECTION_TEXT - len(bk.code_block(""))
    chunks = bk.split_escaped(escaped, chunk)[: max(slots - 1, 1)]
    heading = bk.section(f"*Metadata*{note}")
    return [heading, *(bk.section(bk.code_block(c)) for c in chunks)]


def _pretty_json(metadata: str) -> str:
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return metadata
    if not isinstance(parsed, dict | list):
        return metadata
    return json.dumps(parsed, indent=2, ensure_ascii=False)


def _endpoints_block(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    if not endpoints:
        return bk.section("*Endpoints:* none reported for this session.")
    lines: list[str] = []
    used = 0
    for i, endpoint in enumerate(endpoints):
        line = f"• {bk.code_span(endpoint.url or endpoint.id or '?', 300)}"
        if endpoint.upstream_url:
            line += f" → {bk.code_span(endpoint.upstream_url, 300)}"
        if used + len(line) > 2000:
            lines.append(f"…and {len(endpoints) - i} more")
            break
        lines.append(line)
        used += len(line) + 1
    return bk.section(f"*Endpoints ({len(endpoints)})*\n" + "\n".join(lines))


def _op_blocks(
    session: TunnelSession,
    context: ButtonContext,
    allowed: Sequence[Action],
    newest_version: str | None = None,
) -> list[dict[str, Any]]:
    """One section per action this user may ask for here: the button with what it does,
    or why the agent cannot do it. Separate blocks keep the ACTION_REQUEST ids unique."""
    result = []
    for op in (a for a in ACTIONS if a in allowed):
        reason = unsupported_reason(op, session)
        if not reason and op == "update" and runs_newest(session, newest_version):
            version = bk.clip(newest_version or "?", FIELD_LIMIT)
            reason = (
                f"Update is not offered: this agent already runs {version}, the newest version "
                "in this account."
            )
        if reason:
            result.append(bk.section(reason, block_id=f"op_{op}"))
            continue
        style: Literal["danger"] | None = "danger" if op == "stop" else None
        value = bk.button_value_for(op, session.id, context)
        control = bk.button(f"{OP_LABEL[op]}…", ACTION_REQUEST, value, style=style)
        text = f"*{OP_LABEL[op]}:* {OP_EFFECT[op]}"
        result.append(bk.section(text, accessory=control, block_id=f"op_{op}"))
    return result
