"""open_store and open_budget_log: the one place that picks a backend, so the backends can
import the contract."""

from __future__ import annotations

from bot.state.budget import BudgetLog
from bot.state.store import Store


def open_store(*, redis_url: str | None, sqlite_path: str) -> Store:
    """Redis when a URL is given (shared by many processes and machines), else the SQLite file."""
    if redis_url:
        from bot.state.store_redis import RedisStore  # redis is imported only when used

        return RedisStore(redis_url)
    from bot.state.store_sqlite import SqliteStore

    return SqliteStore(sqlite_path)


def open_budget_log(*, redis_url: str | None, sqlite_path: str) -> BudgetLog:
    """The shared ngrok budget beside the store: Redis when a URL is given, else the file."""
    if redis_url:
        from bot.state.budget_redis import RedisBudgetLog

        return RedisBudgetLog(redis_url)
    from bot.state.budget_sqlite import SqliteBudgetLog

    return SqliteBudgetLog(sqlite_path)
