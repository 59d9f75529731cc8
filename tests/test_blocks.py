"""Escaping, truncation, formatting and the button-value codec in bot/blocks.py."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext, ButtonValue, decode_button_value, encode_button_value

SID = "ts_334AeguNPwngGnMIrd3SZLE7pdZ"
ENTITY_OR_PLAIN = re.compile(r"(?:&(?:amp|lt|gt);|[^&<>])*")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# --- escaping and truncation -----------------------------------------------------------------


def test_escape_only_the_three_characters_ampersand_first():
    assert bk.escape("<!channel> & <@U123> \"'") == "&lt;!channel&gt; &amp; &lt;@U123&gt; \"'"
    assert bk.escape("&lt;") == "&amp;lt;"
    assert unescape(bk.escape("a&b<c>d&amp;")) == "a&b<c>d&amp;"


@pytest.mark.parametrize("limit", range(1, 40))
def test_truncate_never_splits_an_entity(limit):
    escaped = bk.escape("a&<>b" * 10)
    cut = bk.truncate_escaped(escaped, limit)
    assert len(cut) <= limit
    body = cut.removesuffix(bk.ELLIPSIS)
    assert ENTITY_OR_PLAIN.fullmatch(body), body
    assert escaped.startswith(body)


def test_truncate_keeps_short_text_and_marks_cuts():
    assert bk.truncate_escaped("short", 10) == "short"
    assert bk.truncate_escaped("x" * 11, 10) == "x" * 9 + bk.ELLIPSIS


def test_clip_counts_escaped_length():
    clipped = bk.clip("&" * 100, 50)
    assert len(clipped) <= 50
    assert clipped.startswith("&amp;" * 9)


def test_code_span_neutralises_backticks_and_newlines():
    span = bk.code_span("a`b\n```c<!here>", 100)
    assert span.startswith("`") and span.endswith("`")
    assert span.count("`") == 2
    assert "\n" not in span
    assert "&lt;!here&gt;" in span


def test_code_span_of_empty_text_is_not_empty():
    assert bk.code_span("") == "`-`"


@pytest.mark.parametrize("size", [5, 7, 50, 2992])
def test_split_escaped_keeps_everything_and_every_entity(size):
    original = ('{"k": "<!channel> & <@U1>"}\n' * 200) + "&" * 300
    escaped = bk.escape(original)
    chunks = bk.split_escaped(escaped, size)
    assert all(len(c) <= size for c in chunks)
    assert all(ENTITY_OR_PLAIN.fullmatch(c) for c in chunks)
    rejoined = "".join(chunks)
    assert unescape(rejoined).replace("\n", "") == original.replace("\n", "")


def test_split_escaped_of_short_text_is_one_chunk():
    assert bk.split_escaped("", 10) == [""]
    assert bk.split_escaped("abc", 10) == ["abc"]


# --- mentions, times -------------------------------------------------------------------------


def test_user_mention_only_for_well_formed_ids():
    assert bk.user_mention("U123ABC") == "<@U123ABC>"
    assert bk.user_mention("W0ABC") == "<@W0ABC>"
    assert bk.user_mention("<!channel>") == "&lt;!channel&gt;"
    assert bk.user_mention("U1> <!here") == "U1&gt; &lt;!here"
    assert bk.user_mention(None) == "someone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("<@U123>", "U123"), ("<@U123|alice>", "U123"), (" <@W9AB> ", "W9AB"), ("@alice", None)],
)
def test_parse_user_ref(text, expected):
    assert bk.parse_user_ref(text) == expected


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=3, hours=4, minutes=5), "3d 4h"),
        (timedelta(hours=4, minutes=12), "4h 12m"),
        (timedelta(minutes=12, seconds=3), "12m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=-5), "0s"),
        (None, "unknown"),
    ],
)
def test_format_duration(delta, text):
    assert bk.format_duration(delta) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0.4 s"), (9.94, "9.9 s"), (12.2, "12 s"), (185, "3m")]
)
def test_format_elapsed(seconds, text):
    assert bk.format_elapsed(seconds) == text


def test_date_token_uses_unix_time_and_a_utc_fallback():
    when = datetime(2025, 9, 22, 18, 34, 27, tzinfo=UTC)
    assert (
        bk.date_token(when) == "<!date^1758566067^{date_short_pretty} {time}|2025-09-22 18:34 UTC>"
    )


# --- builders --------------------------------------------------------------------------------


def test_actions_refuses_duplicate_action_ids():
    one = bk.button("A", "x", "1")
    with pytest.raises(ValueError, match="duplicate action_id"):
        bk.actions([one, bk.button("B", "x", "2")])


def test_button_refuses_values_over_2000():
    bk.button("ok", "x", "v" * 2000)
    with pytest.raises(ValueError):
        bk.button("no", "x", "v" * 2001)


def test_overflow_option_values_are_limited_to_150():
    with pytest.raises(ValueError):
        bk.overflow("x", [("a", "v" * 151)])
    with pytest.raises(ValueError):
        bk.overflow("x", [])


def test_section_refuses_untruncated_text():
    with pytest.raises(ValueError):
        bk.section("x" * 3001)


def test_message_refuses_more_than_50_blocks():
    with pytest.raises(ValueError):
        bk.message("t", [bk.divider()] * 51)


def test_header_and_buttons_truncate_plain_text():
    assert len(bk.header("h" * 500)["text"]["text"]) == bk.MAX_HEADER_TEXT
    assert len(bk.button("b" * 100, "x", "v")["text"]["text"]) == bk.MAX_BUTTON_TEXT


def test_text_length_counts_nested_texts():
    block = bk.section("abc", fields=["de"], accessory=bk.button("fgh", "x", "value-not-counted"))
    assert bk.text_length([block]) == 3 + 2 + 3


# --- button values ---------------------------------------------------------------------------


KEY = b"blocks-test-button-key-0123456789"


def test_button_value_round_trip_is_compact():
    value = ButtonValue("stop", SID, "C1", "1700.1")
    encoded = encode_button_value(value, key=KEY)
    body, _, mac = encoded.rpartition(".")
    assert json.loads(body) == {"op": "stop", "id": SID, "ch": "C1", "th": "1700.1"}
    assert len(mac) == 22 and " " not in encoded
    assert decode_button_value(encoded, key=KEY) == value


def test_page_value_carries_query_and_cursor():
    value = ButtonValue("page", channel_id="C1", query="region=us 'prod'", cursor="https://x?y=1")
    assert decode_button_value(encode_button_value(value, key=KEY), key=KEY) == value


def test_button_value_for_uses_the_context():
    raw = bk.button_value_for("details", SID, ButtonContext("C9", None, KEY))
    assert decode_button_value(raw, key=KEY) == ButtonValue("details", SID, "C9")


def test_encode_refuses_values_over_the_limit():
    value = ButtonValue("page", channel_id="C1", query="x" * 2000)
    with pytest.raises(ValueError, match="limit"):
        encode_button_value(value, key=KEY)
    with pytest.raises(ValueError):
        encode_button_value(ButtonValue("stop", SID, "C1", "1700.1"), limit=20, key=KEY)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        '"stop"',
        "{}",
        '{"op":"delete","id":"' + SID + '"}',
        '{"op":"stop"}',
        '{"op":"stop","id":"ts_short"}',
        '{"op":"stop","id":"' + SID + '","extra":"x"}',
        '{"op":"stop","id":"' + SID + '","ch":1}',
        '{"op":"stop","id":"' + SID + '","ch":"c1; drop"}',
        '{"op":"stop","id":"' + SID + '","th":"yesterday"}',
        '{"op":"stop","id":"' + SID + '","q":"region=us"}',
        '{"op":"page","id":"' + SID + '"}',
        "x" * 2001,
    ],
)
def test_decode_rejects_malformed_values(raw):
    """Malformed even when sealed with the right key, and refused unsealed."""
    from bot.slack.buttons import seal

    with pytest.raises(ValueError):
        decode_button_value(seal(raw, KEY), key=KEY)
    with pytest.raises(ValueError):
        decode_button_value(raw, key=KEY)


def test_value_of_action_reads_buttons_and_overflows():
    assert bk.value_of_action({"type": "button", "value": "v1"}) == "v1"
    overflow_click = {"type": "overflow", "selected_option": {"value": "v2", "text": {}}}
    assert bk.value_of_action(overflow_click) == "v2"
    assert bk.value_of_action({"type": "button"}) == ""
