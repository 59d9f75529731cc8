"""gunicorn settings for the `web:` process and for `python -m bot` in HTTP mode.

The master checks the settings before it forks, so a broken deployment prints every
problem once and exits with code 2 instead of restarting workers that cannot boot.
"""

from __future__ import annotations

import sys
from typing import Any

from bot.settings.env import SettingsError, load_settings_from_environment
from bot.supervisor import ConsumerSupervisor

try:
    _settings = load_settings_from_environment()
except SettingsError as _error:
    print(_error.report(), file=sys.stderr, flush=True)
    sys.exit(2)

bind = f"0.0.0.0:{_settings.port}"
# gunicorn's asyncio worker reads requests on an event loop (with header and body deadlines,
# see bot/serving.py), so slow or idle clients never hold the threads that run Bolt; the
# threads are bot.wsgi.BOLT_THREADS.
worker_class = "bot.serving.Worker"
# WEB_CONCURRENCY (set by Heroku and alike) adds worker processes; approvals stay
# exactly-once across them through the shared store (SQLite file or Redis).
workers = _settings.web_workers
asgi_lifespan = "off"  # nothing to start or stop per worker
timeout = 0  # requests only ack and enqueue; the work runs in the job consumer
graceful_timeout = 20
control_socket_disable = True  # one fixed socket path would clash between instances
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Access lines go to stderr (stdout carries the JSON audit records) through a stream
# handler: `accesslog = "/dev/stderr"` is opened as a file, which fails with ENXIO when
# stderr is a socket (systemd's journal), and gunicorn would then refuse to start.
_STDERR = {"level": "INFO", "handlers": ["error_console"], "propagate": False}
logconfig_dict = {
    "root": {"level": "INFO", "handlers": []},  # the worker's configure_logging sets it up
    "loggers": {"gunicorn.error": _STDERR, "gunicorn.access": _STDERR},
}


_consumer = ConsumerSupervisor() if _settings.jobs_consumer == "embedded" else None


def when_ready(server: Any) -> None:
    """The master starts the job consumer once, beside its workers (JOBS_CONSUMER=embedded)."""
    if _consumer is not None:
        _consumer.start()


def on_exit(server: Any) -> None:
    """The consumer finishes the jobs it is running before the bot goes."""
    if _consumer is not None:
        _consumer.stop()
