"""Finding 4: an approval issued before the store lost its data never runs."""

from __future__ import annotations

import pytest

from bot.state.approvals import (
    RESET,
    TokenError,
    consume_approval,
    issue_token,
    verify_current_token,
)
from bot.state.backends import open_store

SECRET = b"security-approvals-secret-0123456789"
NOW = 1_760_000_000.0


def issue(epoch: str | None) -> str:
    token, _ = issue_token(
        secret=SECRET, action="restart", targets=["ts_334AeguNPwngGnMIrd3SZLE7pdZ"],
        requester="U0ALICE", channel="C0OPS", thread_ts=None, ttl_seconds=600, epoch=epoch,
        now=NOW,
    )  # fmt: skip
    return token


@pytest.fixture
def store(tmp_path):
    opened = open_store(redis_url=None, sqlite_path=str(tmp_path / "state.db"))
    yield opened
    opened.close()


def test_a_token_of_the_current_epoch_is_accepted_once(store):
    claims = verify_current_token(issue(store.epoch()), secret=SECRET, store=store, now=NOW)
    assert consume_approval(store, claims, now=NOW) is True
    assert consume_approval(store, claims, now=NOW) is False


@pytest.mark.parametrize("epoch", [None, "an-older-one"])
def test_a_token_of_another_or_no_epoch_is_refused_with_the_reason(store, epoch):
    with pytest.raises(TokenError) as refused:
        verify_current_token(issue(epoch), secret=SECRET, store=store, now=NOW)
    assert refused.value.reason == "reset" and str(refused.value) == RESET


def test_a_store_emptied_between_the_check_and_the_claim_still_refuses(tmp_path):
    """The epoch is read again after the nonce is claimed."""
    path = tmp_path / "state.db"
    first = open_store(redis_url=None, sqlite_path=str(path))
    claims = verify_current_token(issue(first.epoch()), secret=SECRET, store=first, now=NOW)
    first.close()
    path.unlink()
    second = open_store(redis_url=None, sqlite_path=str(path))
    try:
        assert consume_approval(second, claims, now=NOW) is False
    finally:
        second.close()
