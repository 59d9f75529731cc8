"""Finding 9: a slash command replayed within Slack's 5-minute window runs once."""

from __future__ import annotations

from bot.state.backends import open_store
from bot.state.replays import REPLAY_WINDOW_SECONDS, first_delivery


def test_each_delivery_id_runs_once_per_kind(tmp_path):
    store = open_store(redis_url=None, sqlite_path=str(tmp_path / "state.db"))
    try:
        assert first_delivery(store, "command", "111.222.abc")
        assert not first_delivery(store, "command", "111.222.abc")
        assert first_delivery(store, "event", "111.222.abc")  # kinds never collide
        assert first_delivery(store, "command", None) and first_delivery(store, "command", None)
    finally:
        store.close()


def test_the_window_outlasts_slacks_five_minutes():
    assert REPLAY_WINDOW_SECONDS > 300
