"""In-process checks of the pieces behind tests/test_e2e_hardening_http.py: the body checks of
bot/http_guard.py and the one-line escaping of bot/logs.py."""

from __future__ import annotations

import logging
import time

import pytest

from bot.http_guard import MAX_DEPTH, body_problem, nesting_depth
from bot.logs import MAX_MESSAGE, OneLineFilter, escape

FORM = "application/x-www-form-urlencoded"


def test_nesting_depth_ignores_brackets_inside_strings():
    assert nesting_depth(b'{"a": "[[[{{{", "b": [1, {"c": "\\"]]]"}]}') == 3
    assert nesting_depth(b"[" * 10_000) == 10_000


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"command=%2Fngrok&text=help", FORM, None),
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D", FORM, None),
        (b'{"type": "event_callback"}', "application/json; charset=utf-8", None),
        (b"", FORM, None),
        (b"text=\xff", FORM, "not UTF-8"),
        (b'{"a": 1}', FORM, "labelled as a form"),
        (b"payload=%7B", FORM, "payload field is not JSON"),
        (b"payload=1", FORM, "not a JSON object"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "application/json", "deeper"),
    ],
)
def test_body_problem_follows_bolts_parsing(body, content_type, expected):
    problem = body_problem(body, content_type)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_escape_makes_one_clipped_line():
    assert escape("a\nb\r\x1b[31m\u2028") == "a\\nb\\r\\x1b[31m\\x2028"
    clipped = escape("x" * (MAX_MESSAGE + 5))
    assert clipped.endswith("… (5 more characters)")


def test_the_filter_drops_the_unsigned_body_from_bolts_message():
    record = logging.LogRecord(
        "slack_bolt.RequestVerification", logging.INFO, __file__, 1,
        "Invalid request signature detected (signature: None, timestamp: 1, body: %s)",
        ("secret\nstuff",), None,
    )  # fmt: skip
    OneLineFilter().filter(record)
    assert record.getMessage().endswith("body: 12 characters, not logged)")


def test_an_unterminated_string_of_escaped_quotes_is_refused_quickly():
    """A pattern that would backtrack on it (quadratic in 1 MB) never sees invalid JSON."""
    started = time.monotonic()
    problem = body_problem(b'{"a": "' + b'\\"' * 500_000, "application/json")
    assert problem is not None and "not JSON" in problem
    assert time.monotonic() - started < 2.0
