"""Finding 3: session-button values are sealed, and only good in the channel Slack signed."""

from __future__ import annotations

import json

import pytest

from bot.slack import blocks as bk
from bot.slack.blocks import ButtonContext, ButtonValue, decode_button_value, read_session_click
from bot.slack.buttons import OTHER_CHANNEL, ButtonRefused, PlanChoice, click_origin, seal

KEY = b"security-test-button-key-0123456789"
SID = "ts_" + "A" * 27
CTX = ButtonContext("C0PROD", "1758839400.123456", KEY)


def ephemeral_click(channel: str) -> dict:
    """The parts of a block_actions payload from an ephemeral message that name a channel."""
    container = {"type": "message", "channel_id": channel, "is_ephemeral": True}
    return {"type": "block_actions", "container": container, "channel": {"id": channel}}


def test_an_unsealed_value_is_refused():
    raw = json.dumps({"op": "restart", "id": SID, "ch": "C0PROD"}, separators=(",", ":"))
    with pytest.raises(ButtonRefused):
        decode_button_value(raw, key=KEY)


@pytest.mark.parametrize(
    ("old", "new"), [('"ch":"C0PROD"', '"ch":"C0STAGE"'), ('"op":"details"', '"op":"stop"')]
)
def test_a_value_changed_after_sealing_is_refused(old, new):
    body, _, mac = bk.button_value_for("details", SID, CTX).rpartition(".")
    with pytest.raises(ButtonRefused):
        decode_button_value(f"{body.replace(old, new)}.{mac}", key=KEY)


def test_a_value_sealed_by_another_installation_is_refused():
    raw = bk.button_value_for(
        "details", SID, ButtonContext("C0PROD", None, b"another-key-0123456789ab")
    )
    with pytest.raises(ButtonRefused):
        decode_button_value(raw, key=KEY)


def test_without_a_key_nothing_is_sealed():
    with pytest.raises(ValueError, match="no key"):
        bk.button_value_for("details", SID, ButtonContext("C0PROD"))


def test_the_longest_overflow_option_still_fits():
    longest = ButtonContext("C" + "0" * 11, "1758839400.123456", KEY)
    raw = bk.button_value_for("restart", "ts_" + "x" * 40, longest, bk.MAX_OPTION_VALUE)
    assert len(raw) <= bk.MAX_OPTION_VALUE


def test_the_click_origin_is_the_payload_channel():
    assert click_origin(ephemeral_click("C0PROD")) == "C0PROD"
    assert click_origin({"container": {"channel_id": "C0PROD"}}) == "C0PROD"
    assert click_origin({"channel": {"id": 5}, "container": {}}) == ""


def test_a_sealed_value_is_good_only_in_its_own_channel():
    raw = bk.button_value_for("restart", SID, CTX)
    assert read_session_click(ephemeral_click("C0PROD"), raw, key=KEY) == ButtonValue(
        "restart", SID, "C0PROD", "1758839400.123456"
    )
    for body in (ephemeral_click("C0STAGE"), {"type": "block_actions"}):
        with pytest.raises(ButtonRefused) as refused:
            read_session_click(body, raw, key=KEY)
        assert refused.value.sentence == OTHER_CHANNEL


def test_sealing_never_accepts_an_empty_key():
    with pytest.raises(ValueError):
        seal("{}", b"")


def test_plan_choices_are_sealed_apart_from_session_buttons_and_fit_a_menu_option():
    choice = PlanChoice("a1b2c3d4e5f6", "max_failures", "100000", "C" + "Z" * 39)
    raw = choice.seal(KEY)
    assert len(raw) <= bk.MAX_OPTION_VALUE and PlanChoice.unseal(raw, KEY) == choice
    with pytest.raises(ButtonRefused):  # altered after sealing
        PlanChoice.unseal(raw.replace('"v":"100000"', '"v":"0"'), KEY)
    with pytest.raises(ButtonRefused):  # another installation's key
        PlanChoice.unseal(raw, b"another-installation-key-0123456789")
    session = bk.button_value_for("details", SID, CTX)
    with pytest.raises(ButtonRefused):  # a session button's seal is not a plan choice's
        PlanChoice.unseal(session, KEY)
    with pytest.raises(ButtonRefused):  # and the other way round
        decode_button_value(raw, key=KEY)
    body = json.dumps({"r": "a1b2c3d4e5f6", "o": "limit", "v": "1", "ch": "C1"})
    with pytest.raises(ValueError, match="unknown option"):
        PlanChoice.unseal(seal(body, KEY, label=b"ngrok-ops plan choice v1\n"), KEY)
