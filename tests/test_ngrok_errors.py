"""The error tree: classification by status then error_code, and redaction of secrets."""

import email.utils
import json

import pytest

from bot.ngrok.errors import (
    REDACTED,
    AgentFailed,
    BadRequest,
    MayHaveBeenApplied,
    NgrokError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unsupported,
    error_from_response,
    parse_retry_after,
    redact,
)

KEY = "2Zk9qLmNoPqRsTuVwXyZaBcDeFg_7hIjKlMnOpQrStUvWx"


def body(code=None, msg="something", status=400, op="op_2RfSBcv0nsy71XCHWOegjx1OoKh"):
    payload = {"status_code": status, "msg": msg, "details": {"operation_id": op}}
    if code is not None:
        payload["error_code"] = code
    return json.dumps(payload).encode()


def classify(status, raw, method="GET", headers=None):
    return error_from_response(status, raw, headers or {}, method=method, secrets=[KEY])


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "ERR_NGROK_203", Unauthorized),
        (403, "ERR_NGROK_202", Unauthorized),
        (403, "ERR_NGROK_220", Unauthorized),
        (400, "ERR_NGROK_208", Unauthorized),
        (401, None, Unauthorized),
        (404, None, NotFound),
        (429, "ERR_NGROK_226", RateLimited),
        (429, "ERR_NGROK_225", RateLimited),
        (429, None, RateLimited),
        (400, "ERR_NGROK_804", Unsupported),
        (400, "ERR_NGROK_805", Unsupported),
        (400, "ERR_NGROK_806", Unsupported),
        (400, "ERR_NGROK_1121", Unsupported),
        (400, "ERR_NGROK_1122", Unsupported),
        (403, "ERR_NGROK_1700", Unsupported),
        (400, "ERR_NGROK_1701", Unsupported),
        (400, "ERR_NGROK_1702", Unsupported),
        (400, "ERR_NGROK_807", AgentFailed),
        (400, "ERR_NGROK_808", AgentFailed),
        (409, "ERR_NGROK_809", AgentFailed),
        (400, "invalid_cel_expression", BadRequest),
        (400, "ERR_NGROK_218", BadRequest),
        (400, "ERR_NGROK_233", BadRequest),
        (422, None, BadRequest),
        (500, None, Unavailable),
        (503, "ERR_NGROK_999", Unavailable),
        (502, "ERR_NGROK_810", Unavailable),
    ],
)
def test_get_errors_are_classified_by_status_then_code(status, code, expected):
    err = classify(status, body(code, status=status), "GET")
    assert type(err) is expected
    assert err.status == status
    assert err.error_code == code
    assert err.operation_id == "op_2RfSBcv0nsy71XCHWOegjx1OoKh"
    assert err.message == "something"
    assert err.may_have_been_applied is False


@pytest.mark.parametrize(
    ("status", "code"),
    [(502, "ERR_NGROK_810"), (400, "ERR_NGROK_810"), (500, None), (503, None), (504, "X")],
)
def test_post_server_failures_may_have_been_applied(status, code):
    err = classify(status, body(code, msg="boom", status=status), "POST")
    assert isinstance(err, MayHaveBeenApplied)
    assert err.may_have_been_applied is True
    assert "outcome is unknown" in err.message
    assert "session list" in err.message
    assert err.message.startswith("boom")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, None, NotFound),
        (429, "ERR_NGROK_226", RateLimited),
        (400, "ERR_NGROK_1122", Unsupported),
        (400, "ERR_NGROK_809", AgentFailed),
    ],
)
def test_post_client_errors_are_not_may_have_been_applied(status, code, expected):
    err = classify(status, body(code, status=status), "POST")
    assert type(err) is expected
    assert err.may_have_been_applied is False


@pytest.mark.parametrize(
    "raw",
    [b"<html><body>502 Bad Gateway</body></html>", b"", b"[1, 2]", b'"text"', b"\xff\xfe"],
)
def test_non_json_bodies_do_not_break_classification(raw):
    err = classify(502, raw, "GET", {"ngrok-operation-id": "op_fromheader"})
    assert type(err) is Unavailable
    assert err.error_code is None
    assert err.operation_id == "op_fromheader"
    assert "HTTP 502" in err.message
    assert "html" not in err.message.lower()


def test_non_json_404_is_still_not_found():
    err = classify(404, b"Not Found", "GET")
    assert type(err) is NotFound
    assert err.error_code is None


def test_missing_and_odd_keys_are_tolerated():
    raw = json.dumps({"error_code": 7, "msg": None, "details": "nope"}).encode()
    err = classify(400, raw)
    assert type(err) is BadRequest
    assert err.error_code is None
    assert err.operation_id is None
    assert "HTTP 400" in err.message


def test_rate_limited_reads_retry_after_seconds_and_dates():
    err = classify(429, body("ERR_NGROK_226", status=429), headers={"retry-after": "7"})
    assert isinstance(err, RateLimited)
    assert err.retry_after == 7.0
    assert classify(429, b"", headers={}).retry_after is None
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after(date, now=1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None


def test_echoed_credential_is_redacted_everywhere():
    msg = f"The authentication you specified does not look valid. Your credential: {KEY}"
    err = classify(401, body("ERR_NGROK_203", msg=msg, status=401))
    for text in (err.message, str(err), repr(err), *map(str, err.args)):
        assert KEY not in text
        assert REDACTED in text
    assert "Your credential: [REDACTED]" in err.message


def test_redact_removes_given_secrets_bearer_and_token_shapes():
    other = "3Ab4Cd5Ef6Gh7Ij8Kl9Mn0Op1Qr_2St3Uv4Wx5Yz"
    text = (
        f"key={KEY}; header Authorization: Bearer abc.def-ghi; echoed {other}; "
        "Your credential: 'not-a-key-but-secret'; session ts_334AeguNPwngGnMIrd3SZLE7pdZ"
    )
    clean = redact(text, ["abc.def-ghi", KEY, ""])
    for secret in (KEY, "abc.def-ghi", other, "not-a-key-but-secret"):
        assert secret not in clean
    assert "ts_334AeguNPwngGnMIrd3SZLE7pdZ" in clean
    assert redact("nothing to hide", []) == "nothing to hide"


def test_redact_prefers_the_longest_secret():
    assert redact("abcdef", ["abc", "abcdef"]) == REDACTED


def test_constructor_redacts_every_field():
    err = NgrokError(
        f"oops {KEY}", status=400, error_code=KEY, operation_id=f"op_{KEY}", secrets=[KEY]
    )
    assert KEY not in str(err) + repr(err) + (err.error_code or "") + (err.operation_id or "")


def test_str_names_the_status_code_and_operation():
    err = classify(404, body(None, msg="Resource not found", status=404, op="op_1"))
    assert str(err) == "Resource not found (HTTP 404, operation op_1)"
    assert str(NgrokError("plain")) == "plain"
