"""Every message the bot sends, in one import: `from bot.views import render_…`.

The renderers live in `bot.views_sessions` (list, detail) and `bot.views_actions` (prompts,
results, records, help, audit, errors); this module only gathers them.
"""

from bot.blocks import ButtonContext, ButtonValue, decode_button_value, encode_button_value
from bot.views_actions import (
    TwoPersonState,
    format_expiry,
    render_action_result,
    render_approval_prompt,
    render_audit,
    render_cancelled,
    render_error,
    render_help,
    render_public_record,
    render_two_person_request,
)
from bot.views_sessions import (
    OP_EFFECT,
    SessionListPage,
    available_ops,
    max_sessions_per_message,
    render_session_detail,
    render_session_list,
    sessions_that_fit,
    unavailable_reason,
)

__all__ = [
    "OP_EFFECT",
    "ButtonContext",
    "ButtonValue",
    "SessionListPage",
    "TwoPersonState",
    "available_ops",
    "decode_button_value",
    "encode_button_value",
    "format_expiry",
    "max_sessions_per_message",
    "render_action_result",
    "render_approval_prompt",
    "render_audit",
    "render_cancelled",
    "render_error",
    "render_help",
    "render_public_record",
    "render_session_detail",
    "render_session_list",
    "render_two_person_request",
    "sessions_that_fit",
    "unavailable_reason",
]
