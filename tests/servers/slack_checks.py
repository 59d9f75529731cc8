"""What the Slack stand-in accepts: request bodies parsed and messages checked as Slack would.

Kept apart from slack_api.py so the server there is only bookkeeping and answers, and so the
Block Kit rules (slack_sdk's models plus the extra refusals Slack makes) can be read in one place.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # modals and the Home tab
JSON_FIELDS = ("blocks", "attachments", "metadata", "user_auth_blocks", "view")
TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")


def block_problem(block: Any) -> str | None:
    """Why Slack would reject this block, or None.

    slack_sdk's models check lengths and counts; Slack also rejects unknown block and element
    types, empty text objects, mrkdwn headers and empty actions/context blocks, so we do too.
    """
    if not isinstance(block, dict):
        return f"block is not an object: {block!r:.80}"
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return f"unknown block type {block.get('type')!r}"
        parsed.validate_json()
        rendered = parsed.to_dict()  # validates nested elements and objects too
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return f"{block.get('type')} block: {exc}"
    if None in rendered.get("elements", []):
        return f"{block['type']} block has an element of unknown type"
    if block["type"] in ("actions", "context") and not block.get("elements"):
        return f"{block['type']} block needs at least one element"
    if block["type"] == "header" and (block.get("text") or {}).get("type") != "plain_text":
        return "header text must be plain_text"
    if block["type"] == "table":
        return _table_problem(block)
    return _text_object_problem(block)


def _table_problem(block: dict) -> str | None:
    """The table block's documented limits: 1 to 100 rows of at most 20 cells, each cell
    raw_text, raw_number or rich_text (https://docs.slack.dev/reference/block-kit/blocks/table-block)."""
    rows = block.get("rows")
    if not isinstance(rows, list) or not 1 <= len(rows) <= 100:
        return "table needs 1 to 100 rows"
    for row in rows:
        if not isinstance(row, list) or not 1 <= len(row) <= 20:
            return "a table row holds 1 to 20 cells"
        for cell in row:
            if not isinstance(cell, dict):
                return "a table cell must be an object"
            if cell.get("type") not in ("raw_text", "raw_number", "rich_text"):
                return f"unknown table cell type {cell.get('type')!r}"
            if cell["type"] == "raw_text" and not isinstance(cell.get("text"), str):
                return "a raw_text cell needs text"
    return None


def _text_object_problem(node: Any) -> str | None:
    if isinstance(node, list):
        return next(filter(None, map(_text_object_problem, node)), None)
    if not isinstance(node, dict):
        return None
    if node.get("type") in TEXT_OBJECT_TYPES:
        text = node.get("text")
        return None if isinstance(text, str) and text else "text object with empty text"
    if node.get("type") in ("section", "header", "button") and isinstance(node.get("text"), str):
        return f"{node['type']} text must be a text object, not a string"
    return next(filter(None, map(_text_object_problem, node.values())), None)


def message_problem(body: dict) -> tuple[str, str] | None:
    """(error, reason) when a message body would be refused, checking content then blocks."""
    blocks = body.get("blocks")
    has_text = isinstance(body.get("text"), str) and body["text"].strip()
    if not (has_text or blocks or body.get("attachments") or body.get("markdown_text")):
        return "no_text", "neither text nor blocks nor attachments"
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        return "invalid_blocks_format", "blocks is not a JSON array"
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        return "invalid_blocks", f"{len(blocks)} blocks; at most {MAX_MESSAGE_BLOCKS} allowed"
    for index, block in enumerate(blocks):
        problem = block_problem(block)
        if problem:
            return "invalid_blocks", f"blocks[{index}]: {problem}"
    if sum(isinstance(b, dict) and b.get("type") == "table" for b in blocks) > 1:
        return "invalid_blocks", "only one table block is allowed per message"
    return None


def parse_body(content_type: str, raw: bytes, query: str) -> dict:
    """Query and body parameters as one dict; JSON-looking form fields (blocks...) decoded."""
    body: dict = dict(parse_qsl(query, keep_blank_values=True))
    media_type = content_type.split(";")[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if media_type == "application/json":
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            body.update(data)
        else:
            body["_raw"] = text
            body["_invalid_json"] = True
    elif media_type == "application/x-www-form-urlencoded":
        body.update(parse_qsl(text, keep_blank_values=True))
    elif text:
        body["_raw"] = text
    for name in JSON_FIELDS:
        value = body.get(name)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            with contextlib.suppress(json.JSONDecodeError):  # else invalid_blocks_format later
                body[name] = json.loads(value)
    return body


def view_problem(view: Any) -> str | None:
    """Why views.publish would refuse this Home tab view, or None (slack_sdk's View model
    plus every block as in messages)."""
    from slack_sdk.models.views import View

    if not isinstance(view, dict):
        return "view is not a JSON object"
    if view.get("type") != "home":
        return f"views.publish takes a home view, not {view.get('type')!r}"
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return "view.blocks is not a JSON array"
    if len(blocks) > MAX_VIEW_BLOCKS:
        return f"{len(blocks)} blocks; at most {MAX_VIEW_BLOCKS} allowed"
    for index, block in enumerate(blocks):
        problem = block_problem(block)
        if problem:
            return f"blocks[{index}]: {problem}"
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, TypeError, ValueError) as exc:
        return f"view: {exc}"
    return None
