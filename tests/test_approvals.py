"""Approval tokens: round trip, every way a token can be wrong, size, secrecy, single use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest

from bot.state.approvals import (
    MAX_TOKEN_CHARS,
    ApprovalClaims,
    TokenError,
    consume_approval,
    derive_secret,
    issue_token,
    verify_token,
)
from bot.state.backends import open_store

SECRET = b"k3y-material-that-must-never-leak-0123456789"
NOW = 1_760_000_000.4


def issue(**overrides):
    args = {
        "secret": SECRET,
        "action": "restart",
        "targets": ["ts_334AeguNPwngGnMIrd3SZLE7pdZ"],
        "requester": "U012AB3CD",
        "channel": "C0123456789",
        "thread_ts": "1760000000.123456",
        "ttl_seconds": 600,
        "epoch": "E0",
        "now": NOW,
    }
    args.update(overrides)
    return issue_token(**args)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def reason_of(token, *, secret=SECRET, now=NOW + 1) -> str:
    with pytest.raises(TokenError) as caught:
        verify_token(token, secret=secret, now=now)
    return caught.value.reason


def test_round_trip_keeps_every_claim():
    token, claims = issue(kind="two-person", request_id="req-42", targets=["ts_1", "ts_2"])
    assert claims == ApprovalClaims(
        action="restart",
        targets=("ts_1", "ts_2"),
        requester="U012AB3CD",
        channel="C0123456789",
        thread_ts="1760000000.123456",
        issued_at=1_760_000_000,
        expires_at=1_760_000_600,
        nonce=claims.nonce,
        kind="two-person",
        request_id="req-42",
        epoch="E0",
    )
    assert verify_token(token, secret=SECRET, now=NOW + 599) == claims


def test_round_trip_without_thread_or_request():
    token, claims = issue(thread_ts=None)
    verified = verify_token(token, secret=SECRET, now=NOW)
    assert verified == claims
    assert verified.thread_ts is None and verified.request_id is None and verified.kind == "self"


def test_token_is_versioned_url_safe_and_has_a_fresh_nonce():
    token, claims = issue()
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", token)
    assert len(claims.nonce) >= 22
    other_token, other = issue()
    assert other.nonce != claims.nonce and other_token != token


def test_tampered_claims_fail_the_signature():
    token, _ = issue()
    version, payload, signature = token.split(".")
    wire = json.loads(unb64(payload))
    wire["a"], wire["t"] = "stop", ["ts_someone_else"]
    forged = f"{version}.{b64(json.dumps(wire).encode())}.{signature}"
    assert reason_of(forged) == "bad_signature"
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    assert reason_of(f"{version}.{flipped}.{signature}") == "bad_signature"


def test_tampered_signature_fails():
    token, _ = issue()
    last = token[-1]
    assert reason_of(token[:-1] + ("A" if last != "A" else "B")) == "bad_signature"


def test_truncated_tokens_fail():
    token, _ = issue()
    assert reason_of(token[:-4]) == "bad_signature"
    assert reason_of(token[: token.rindex(".")]) == "malformed"
    assert reason_of(token[: token.rindex(".") + 1]) == "malformed"
    assert reason_of(token[:12]) == "malformed"


def test_wrong_secret_fails():
    token, _ = issue()
    assert reason_of(token, secret=b"another-key-entirely-0123456789") == "bad_signature"


def test_expired_at_the_expiry_second_not_before():
    token, claims = issue(ttl_seconds=60)
    assert verify_token(token, secret=SECRET, now=claims.expires_at - 0.001) == claims
    assert reason_of(token, now=claims.expires_at) == "expired"
    assert reason_of(token, now=claims.expires_at + 3600) == "expired"


def test_an_expired_token_says_what_expired_but_a_forged_one_says_nothing():
    token, claims = issue(ttl_seconds=60)
    with pytest.raises(TokenError) as expired:
        verify_token(token, secret=SECRET, now=claims.expires_at + 1)
    assert expired.value.claims == claims
    with pytest.raises(TokenError) as forged:
        verify_token(token, secret=b"another-key-entirely-0123456789", now=claims.expires_at + 1)
    assert forged.value.claims is None


def test_signature_is_checked_before_expiry():
    token, claims = issue(ttl_seconds=60)
    assert reason_of(token[:-1] + "x", now=claims.expires_at + 1) == "bad_signature"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "v1",
        "v1..",
        "v1.abc",
        "hello world",
        "v1.!!!!.abcd",
        "v1.abc.def.ghi",
        " v1.abc.def",
        "v1.é.é",
        "v2.eyJhIjoxfQ.AAAA",
        "v1." + "A" * 3000 + ".AAAA",
        '{"action": "stop"}',
        None,
        b"v1.abc.def",
    ],
)
def test_garbage_is_malformed(garbage):
    assert reason_of(garbage) == "malformed"


def test_correctly_signed_nonsense_is_malformed():
    for body in (b"not json", b"[1, 2]", b'{"a": "stop"}', b'{"a":"x","t":"ts_1"}', b"\xff\xfe"):
        signed = f"v1.{b64(body)}"
        mac = hmac.new(SECRET, signed.encode(), hashlib.sha256).digest()
        assert reason_of(f"{signed}.{b64(mac)}") == "malformed"


def test_twenty_five_targets_fit_in_a_button_value():
    targets = [f"ts_{i:02d}{'x' * 25}" for i in range(25)]
    token, _ = issue(
        targets=targets,
        action="update",
        kind="two-person",
        request_id="req_" + "r" * 22,
        requester="U0123456789AB",
        channel="C0123456789AB",
    )
    assert len(token) < MAX_TOKEN_CHARS
    assert verify_token(token, secret=SECRET, now=NOW).targets == tuple(targets)


def test_tokens_that_would_not_fit_are_refused():
    with pytest.raises(ValueError, match="fewer sessions"):
        issue(targets=[f"ts_{i:03d}{'x' * 25}" for i in range(60)])


@pytest.mark.parametrize(
    "overrides",
    [
        {"targets": "ts_1"},
        {"targets": ["ts_1", ""]},
        {"ttl_seconds": 0},
        {"action": ""},
        {"requester": ""},
        {"secret": b""},
        {"secret": "text-not-bytes"},
    ],
)
def test_issue_rejects_bad_arguments(overrides):
    with pytest.raises(ValueError):
        issue(**overrides)


def test_secret_never_appears_in_claims_or_errors():
    token, claims = issue()
    texts = [str(claims), repr(claims)]
    for bad in (token[:-1] + "x", token[:10], "garbage"):
        with pytest.raises(TokenError) as caught:
            verify_token(bad, secret=SECRET, now=NOW)
        texts += [str(caught.value), repr(caught.value), repr(caught.value.args)]
    with pytest.raises(TokenError) as caught:
        verify_token(token, secret=SECRET, now=NOW + 10_000)
    texts += [str(caught.value), repr(caught.value)]
    for text in texts:
        assert SECRET.decode() not in text
        assert SECRET.hex() not in text
        assert b64(SECRET) not in text


def test_derive_secret_is_stable_and_not_the_signing_secret():
    signing = "8f742231b10e8888abcd99yyyzzz85a5"
    key = derive_secret(approval_secret=None, signing_secret=signing)
    assert key == derive_secret(approval_secret="", signing_secret=signing)
    assert key != signing.encode()
    assert signing.encode() not in key
    assert len(key) == 32
    assert key != derive_secret(approval_secret=None, signing_secret=signing + "0")
    token, _ = issue(secret=key)
    assert reason_of(token, secret=signing.encode()) == "bad_signature"


def test_derive_secret_prefers_the_approval_secret():
    approval = "a-long-random-approval-secret-value"
    key = derive_secret(approval_secret=approval, signing_secret="signing")
    assert key == approval.encode()
    with pytest.raises(ValueError) as caught:
        derive_secret(approval_secret="short-pass", signing_secret="signing")
    assert "short-pass" not in str(caught.value)
    with pytest.raises(ValueError):
        derive_secret(approval_secret=None, signing_secret="")


def test_an_approval_is_consumed_once_across_store_instances(tmp_path):
    path = str(tmp_path / "state.db")
    first = open_store(redis_url=None, sqlite_path=path)
    second = open_store(redis_url=None, sqlite_path=path)
    try:
        token, _ = issue(ttl_seconds=600, epoch=first.epoch())
        claims = verify_token(token, secret=SECRET, now=NOW)
        assert consume_approval(first, claims, now=NOW) is True
        assert consume_approval(second, claims, now=NOW) is False
        assert (
            consume_approval(first, verify_token(token, secret=SECRET, now=NOW), now=NOW) is False
        )
        _, fresh = issue(epoch=second.epoch())
        assert consume_approval(second, fresh, now=NOW) is True
    finally:
        first.close()
        second.close()
