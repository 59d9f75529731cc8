"""The fleet run's job names bound to their handlers (called from commands.jobs)."""

from __future__ import annotations

from functools import partial

from bot.deps import Deps
from commands.approval import JOB_EXPIRE_RUN
from commands.fleet import JOB_RUN_CLICK, expire_run
from commands.fleet_exec import (
    JOB_FLEET_RESUME_ALL,
    JOB_FLEET_TICK,
    JOB_FLEET_WATCHDOG,
    resume_all,
    tick,
    watchdog,
)

__all__ = ["JOB_RUN_CLICK", "register_fleet_jobs"]


def register_fleet_jobs(deps: Deps) -> None:
    """A request's expiry is urgent (store and Slack only); the ticks read and POST with the
    non-urgent budget. The run buttons are user jobs (commands.jobs)."""
    deps.jobs.register(JOB_EXPIRE_RUN, partial(expire_run, deps), lane="urgent")
    deps.jobs.register(JOB_FLEET_TICK, partial(tick, deps))
    deps.jobs.register(JOB_FLEET_RESUME_ALL, partial(resume_all, deps))
    deps.jobs.register(JOB_FLEET_WATCHDOG, partial(watchdog, deps))
    deps.jobs.every_minute(JOB_FLEET_WATCHDOG)
