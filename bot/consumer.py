"""`python -m bot jobs`: the process that runs every job (replies, approved actions, the
update's restart, expiries, recovery), on the same queue as every web process.

The web process starts one of these itself (bot.supervisor) unless JOBS_CONSUMER=separate,
so `python -m bot` or the Procfile's `web:` alone is a complete bot, and rendering never
shares a GIL with the acks. To scale, run more of them (the Procfile's `jobs:`).
"""

from __future__ import annotations

import logging
import os
import threading

from bot.app import create_app
from bot.deps import build_deps
from bot.logs import configure_logging
from bot.settings.env import load_settings_from_environment

log = logging.getLogger("ngrok_ops.consumer")
HEARTBEAT_SECONDS = 5.0


def lower_priority(niceness: int) -> None:
    """The consumer yields the CPU to the web process: on a small machine the acks (which
    Slack needs within 3 s) come before rendering replies. Called before any thread starts,
    so every worker thread inherits it (Linux keeps a nice value per thread)."""
    if niceness > 0 and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError as error:
            log.warning("could not lower the job consumer's priority: %s", error)


def run_consumer() -> None:
    """Consumes until SIGTERM, then lets running jobs finish (huey's graceful stop)."""
    settings = load_settings_from_environment()
    configure_logging(settings.log_level, settings.secret_values())
    lower_priority(settings.jobs_niceness)
    deps = build_deps(settings)
    create_app(deps)  # registers every job handler exactly as the web process does
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                deps.jobs.beat()
            except Exception:
                log.exception("could not write the consumer heartbeat")

    deps.jobs.beat()
    threading.Thread(target=beat, name="consumer-heartbeat", daemon=True).start()
    # Work a dead process left half done is resolved before anything new runs.
    deps.jobs.run_now("recover_actions", {})
    deps.jobs.submit("watch_keeper", {})  # start watching now, not at the next full minute
    deps.jobs.run_now("fleet_resume_all", {})  # a killed consumer's runs get a new chain
    log.info("ngrok-ops job consumer running with %d threads", settings.worker_threads)
    try:
        deps.jobs.consumer(workers=settings.worker_threads).run()
    finally:
        stop.set()
        deps.close()
