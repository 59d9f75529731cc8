"""The log filter masks secrets in whole lines, tracebacks included; group membership
survives a passing Slack failure."""

from __future__ import annotations

import io
import logging

from slack_sdk import WebClient

from bot.logs import RedactingFormatter
from bot.slack.groups import GroupDirectory

SECRET = "ngrok-api-key-that-must-not-leak-42"


def test_secrets_and_slack_tokens_are_masked_in_tracebacks_too():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s", [SECRET]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"key {SECRET} and token xoxb-1234-5678-abcdef")
        except RuntimeError:
            logger.exception("failed with %s", SECRET)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert SECRET not in text and "xoxb-1234" not in text
    assert text.count("[redacted]") >= 3


def test_a_failed_membership_read_keeps_the_last_good_one(slack_api):
    slack_api.set_usergroup("S0ONCALL", ["U0DAVE"])
    client = WebClient(token=slack_api.bot_token, base_url=slack_api.base_url)
    clock = [0.0]
    groups = GroupDirectory(client, ["S0ONCALL"], ttl_seconds=10, clock=lambda: clock[0])
    assert groups.groups_of("U0DAVE") == frozenset({"S0ONCALL"})
    clock[0] = 11.0
    slack_api.fail_next("usergroups.users.list", status=200, error="fatal_error", retry_after=None)
    assert groups.groups_of("U0DAVE") == frozenset({"S0ONCALL"})
    slack_api.set_usergroup("S0ONCALL", [])
    assert groups.groups_of("U0DAVE") == frozenset()  # the failure was not cached


def test_a_group_never_read_grants_nothing(slack_api):
    client = WebClient(token=slack_api.bot_token, base_url=slack_api.base_url)
    groups = GroupDirectory(client, ["S0MISSING"], ttl_seconds=10)
    assert groups.groups_of("U0DAVE") == frozenset()
