"""`python -m bot jobs`: the process that runs every job (replies, approved actions, the
update's restart, expiries, recovery), on the same queues as every web process: WORKER_THREADS
threads for the normal lane and URGENT_WORKER_THREADS that take only urgent jobs (bot.jobs),
so an approval never waits for a thread that a listing holds.

The web process starts one of these itself (bot.supervisor) unless JOBS_CONSUMER=separate,
so `python -m bot` or the Procfile's `web:` alone is a complete bot, and rendering never
shares a GIL with the acks. To scale, run more of them (the Procfile's `jobs:`).
"""

from __future__ import annotations

import logging
import os
from functools import partial

from bot.app import create_app
from bot.deps import build_deps
from bot.logs import configure_logging
from bot.settings.env import load_settings_from_environment
from bot.state.consumers import start_heartbeat

log = logging.getLogger("ngrok_ops.consumer")


def lower_priority(niceness: int) -> None:
    """Run in each normal-lane worker thread as it starts: rendering replies yields the CPU
    to the web process, so on a small machine the acks (which Slack needs within 3 s) come
    first. Linux keeps a nice value per thread, so the urgent lane (approved actions) keeps
    the web process's priority; where nice is per process, the whole consumer yields.
    Where the kernel groups scheduling by session (autogroups), nice only counts within one
    session: the embedded consumer shares the web process's, but a `jobs:` process that a
    process manager starts in a session of its own on the same machine competes as an equal."""
    if niceness > 0 and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError as error:
            log.warning("could not lower the job consumer's priority: %s", error)


def run_consumer() -> None:
    """Consumes until SIGTERM, then lets running jobs finish (huey's graceful stop)."""
    settings = load_settings_from_environment()
    configure_logging(settings.log_level, settings.secret_values())
    deps = build_deps(settings)
    create_app(deps)  # registers every job handler exactly as the web process does
    deps.jobs.on_worker_start("normal", partial(lower_priority, settings.jobs_niceness))
    # The queue's heartbeat (`check` reads it) and this consumer's own (`consumer:<id>`, by
    # which others tell whether the replies it was running died with it).
    stop_beating = start_heartbeat(deps.store, deps.clock, also=deps.jobs.beat)
    # Work a dead process left half done is resolved before anything new runs.
    deps.jobs.run_now("recover_actions", {})
    deps.jobs.run_now("recover_replies", {})
    deps.jobs.submit("watch_keeper", {})  # start watching now, not at the next full minute
    deps.jobs.run_now("fleet_resume_all", {})  # a killed consumer's runs get a new chain
    log.info(
        "ngrok-ops job consumer running with %d threads and %d for urgent jobs",
        settings.worker_threads,
        settings.urgent_worker_threads,
    )
    try:
        consumer = deps.jobs.consumer(
            workers=settings.worker_threads, urgent_workers=settings.urgent_worker_threads
        )
        consumer.run()
    finally:
        stop_beating()
        deps.close()
