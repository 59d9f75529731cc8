"""Signed, expiring, single-use approval tokens carried in Slack button values.

A token says what was asked (action, target sessions), by whom and where (requester, channel,
thread), when it was issued and until when it holds, the store's epoch, plus a random nonce.
Any process holding the secret can verify a click, so no state is needed until the click; then
the nonce is consumed in the store, which makes a double click, a replayed payload or two
processes handling the same click run the action exactly once. The epoch is a random id the
store creates when it is first initialised and keeps in itself: a store that lost its data (a
Redis restarted without persistence) has forgotten its used nonces, but it also has a new
epoch, so every token issued before the loss is refused instead of running a second time.

Format: `v1.<base64url(claims JSON with short keys)>.<base64url(HMAC-SHA256)>`, unpadded, with
the MAC over `v1.<payload>` so the version cannot be swapped. Slack button values hold at most
2000 characters; 25 `ts_` targets take about 1,300.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.ngrok.models import Action, as_action
from bot.state.store import Store

VERSION = "v1"
MAX_TOKEN_CHARS = 2000  # Slack's limit for a button `value`
MIN_APPROVAL_SECRET_CHARS = 16
NONCE_GRACE_SECONDS = 300  # keep nonces past expiry, so clock skew between hosts cannot revive one
_DERIVE_LABEL = b"ngrok-ops approval tokens v1"
_TOKEN_SHAPE = re.compile(r"v[0-9]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

TokenReason = Literal["malformed", "bad_signature", "expired", "reset"]
RESET = (
    "This approval was issued before the bot's state was reset, so nothing was done; "
    "ask again for a new prompt."
)


class TokenError(ValueError):
    """A button value that must not be acted on. The message is one plain sentence for users."""

    def __init__(
        self, reason: TokenReason, message: str, *, claims: ApprovalClaims | None = None
    ) -> None:
        super().__init__(message)
        self.reason: TokenReason = reason
        # Only for "expired": the signature was genuine, so the claims can be trusted to say
        # *what* expired (e.g. which public request to mark as expired).
        self.claims = claims


@dataclass(frozen=True)
class ApprovalClaims:
    """What a token vouches for; times are whole epoch seconds."""

    action: Action
    targets: tuple[str, ...]
    requester: str
    channel: str
    thread_ts: str | None
    issued_at: int
    expires_at: int
    nonce: str
    kind: str = "self"  # "self", "two-person", or another short label
    request_id: str | None = None
    epoch: str | None = None  # the store's epoch at issue time (see the module docstring)


def derive_secret(*, approval_secret: str | None, signing_secret: str) -> bytes:
    """The token key: APPROVAL_SECRET if set, else derived from the Slack signing secret.

    The derivation uses its own label, so the signing secret itself never signs tokens and a
    leaked token key reveals nothing about it. Changing either secret voids open approvals.
    """
    if approval_secret:
        if len(approval_secret) < MIN_APPROVAL_SECRET_CHARS:
            raise ValueError(
                f"APPROVAL_SECRET is too short; use at least {MIN_APPROVAL_SECRET_CHARS} "
                "random characters."
            )
        return approval_secret.encode()
    if not signing_secret:
        raise ValueError("No secret to sign approvals with: set the Slack signing secret.")
    return hmac.new(signing_secret.encode(), _DERIVE_LABEL, hashlib.sha256).digest()


def issue_token(
    *,
    secret: bytes,
    action: Action,
    targets: Sequence[str],
    requester: str,
    channel: str,
    thread_ts: str | None,
    ttl_seconds: int,
    epoch: str | None,
    kind: str = "self",
    request_id: str | None = None,
    now: float | None = None,
) -> tuple[str, ApprovalClaims]:
    """Sign a fresh approval; raises ValueError when it would not fit a button value.
    `epoch` is `store.epoch()`; a token without one is never accepted at click time."""
    _require_key(secret)
    if isinstance(targets, str):
        raise ValueError("targets must be a sequence of session ids, not one string.")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive.")
    issued_at = int(time.time() if now is None else now)
    claims = ApprovalClaims(
        action=action,
        targets=tuple(targets),
        requester=requester,
        channel=channel,
        thread_ts=thread_ts,
        issued_at=issued_at,
        expires_at=issued_at + int(ttl_seconds),
        nonce=secrets.token_urlsafe(16),
        kind=kind,
        request_id=request_id,
        epoch=epoch,
    )
    _check_claims(claims)
    payload = _b64encode(json.dumps(_to_wire(claims), separators=(",", ":")).encode())
    signed = f"{VERSION}.{payload}"
    token = f"{signed}.{_b64encode(_mac(secret, signed))}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(
            f"The approval for {len(claims.targets)} targets does not fit in a Slack button; "
            "approve fewer sessions at once."
        )
    return token, claims


def verify_token(token: str, *, secret: bytes, now: float | None = None) -> ApprovalClaims:
    """The claims of a genuine, unexpired token; else TokenError with its reason.

    The MAC is compared (in constant time) before any claim is parsed, so forged input never
    reaches the JSON parser. Single use is the caller's next step: `consume_approval`.
    """
    _require_key(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed", "The approval button value is not a valid token.")
    if not _TOKEN_SHAPE.fullmatch(token):
        raise TokenError("malformed", "The approval button value is not a valid token.")
    signed, _, signature = token.rpartition(".")
    if not signed.startswith(VERSION + "."):
        raise TokenError("malformed", "The approval token has an unsupported version.")
    expected = _b64encode(_mac(secret, signed))
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bad_signature", "The approval token's signature does not match.")
    claims = _from_wire(signed.partition(".")[2])
    if (time.time() if now is None else now) >= claims.expires_at:
        raise TokenError("expired", "The approval has expired; ask again.", claims=claims)
    return claims


def verify_current_token(
    token: str, *, secret: bytes, store: Store, now: float | None = None
) -> ApprovalClaims:
    """`verify_token`, then refuse (reason "reset") a token issued under another epoch of the
    store: its nonce may have been used and forgotten with the rest of the store's data."""
    claims = verify_token(token, secret=secret, now=now)
    if claims.epoch is None or claims.epoch != store.epoch():
        raise TokenError("reset", RESET)
    return claims


# "replanned": a fleet run preview's token, voided when its plan was changed (a new token
# with the new plan replaced it).
Use = Literal["approved", "cancelled", "sent", "replanned"]
USES: tuple[Use, ...] = ("approved", "cancelled", "sent", "replanned")


def consume_approval(
    store: Store, claims: ApprovalClaims, *, now: float | None = None, use: Use = "approved"
) -> bool:
    """Use a verified approval once: True for the first caller anywhere, False for the rest.

    The nonce is kept until well after the token expires, so it cannot be replayed while the
    signature and expiry checks would still pass. The epoch is read again after the nonce is
    claimed: a store emptied between the click's epoch check and the claim has forgotten the
    nonce, and its new epoch says so. The winner also records what the token was used for
    (approved, cancelled, sent for approval), so a later click on another button of the same
    prompt can say what happened (`how_used`).
    """
    current = time.time() if now is None else now
    ttl = max(1.0, claims.expires_at - current) + NONCE_GRACE_SECONDS
    if not store.consume_nonce(claims.nonce, ttl_seconds=ttl):
        return False
    if claims.epoch is None or claims.epoch != store.epoch():
        return False
    store.put_request(_use_key(claims), {"state": use}, ttl_seconds=ttl)
    return True


def how_used(store: Store, claims: ApprovalClaims) -> Use | None:
    """What a consumed token was used for; None when unknown (a race, or forgotten)."""
    record = store.get_request(_use_key(claims))
    state = record.get("state") if record else None
    return next((u for u in USES if u == state), None)


def _use_key(claims: ApprovalClaims) -> str:
    return f"use:{claims.nonce}"


def _require_key(secret: bytes) -> None:
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("The approval secret must be non-empty bytes (see derive_secret).")


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _to_wire(claims: ApprovalClaims) -> dict[str, Any]:
    """Short keys keep the token small; absent optional claims are left out."""
    wire: dict[str, Any] = {
        "a": claims.action,
        "t": list(claims.targets),
        "r": claims.requester,
        "c": claims.channel,
        "i": claims.issued_at,
        "e": claims.expires_at,
        "n": claims.nonce,
        "k": claims.kind,
    }
    if claims.thread_ts is not None:
        wire["h"] = claims.thread_ts
    if claims.request_id is not None:
        wire["q"] = claims.request_id
    if claims.epoch is not None:
        wire["p"] = claims.epoch
    return wire


def _from_wire(payload: str) -> ApprovalClaims:
    """Parse signed claims; only a bug or a key shared with another format can fail here."""
    try:
        wire = json.loads(_b64decode(payload))
        if not isinstance(wire, dict) or not isinstance(wire.get("t"), list):
            raise TypeError("claims must be an object with a list of targets")
        action = as_action(wire["a"]) if isinstance(wire["a"], str) else None
        if action is None:
            raise ValueError("unknown action")
        claims = ApprovalClaims(
            action=action,
            targets=tuple(wire["t"]),
            requester=wire["r"],
            channel=wire["c"],
            thread_ts=wire.get("h"),
            issued_at=wire["i"],
            expires_at=wire["e"],
            nonce=wire["n"],
            kind=wire["k"],
            request_id=wire.get("q"),
            epoch=wire.get("p"),
        )
        _check_claims(claims)
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise TokenError("malformed", "The approval token's contents are not valid.") from None
    return claims


def _check_claims(claims: ApprovalClaims) -> None:
    """Types and non-empty fields, checked when issuing and again when parsing."""
    texts = (claims.action, claims.requester, claims.channel, claims.nonce, claims.kind)
    if not all(isinstance(value, str) and value for value in texts):
        raise ValueError("action, requester, channel, nonce and kind must be non-empty strings.")
    if not all(isinstance(target, str) and target for target in claims.targets):
        raise ValueError("Every target must be a non-empty string.")
    for optional in (claims.thread_ts, claims.request_id, claims.epoch):
        if optional is not None and not isinstance(optional, str):
            raise ValueError("thread_ts, request_id and epoch must be strings or None.")
    for stamp in (claims.issued_at, claims.expires_at):
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise ValueError("issued_at and expires_at must be whole seconds.")
