"""create_app: the one composition root, from Settings and Deps to a Bolt App."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App, BoltResponse, Respond

import commands
from bot.deps import Deps
from bot.slack.views.errors import SORRY

# Listeners only parse, check and hand work to bot.jobs, so a few threads ack everything;
# a pool larger than Bolt's default 5 still keeps acks quick when Slack retries pile up.
LISTENER_THREADS = 16


class _SkipUnusedTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns at every start that it is unused because
    a client was given; that client carries the very same token, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


def create_app(
    deps: Deps, *, token_verification: bool = True, process_before_response: bool = True
) -> App:
    """Builds the Bolt app with every listener registered in commands.register.

    `process_before_response` (the default) answers Slack only once the listener returned:
    every listener only acks and enqueues its job, so Slack's 200 now means the work is in the
    queue (a crash between the two can no longer lose a command Slack was told was received),
    and Bolt runs the listener on the request's own thread instead of handing it to a pool
    and polling every 10 ms for the ack (its way without this flag), which made every ack
    wait up to 10 ms more."""
    settings = deps.settings
    bolt_logger = logging.getLogger("ngrok_ops.bolt")
    if not any(isinstance(f, _SkipUnusedTokenWarning) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SkipUnusedTokenWarning())
    app = App(
        signing_secret=settings.slack_signing_secret or None,
        client=deps.slack,
        token_verification_enabled=token_verification,
        process_before_response=process_before_response,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="bolt-listener"
        ),
        logger=bolt_logger,
    )
    commands.register(app, deps)

    @app.error
    def on_unexpected(
        error: Exception,
        logger: logging.Logger,
        response: BoltResponse | None,
        respond: Respond | None,
    ) -> BoltResponse | None:
        """The traceback goes to the log; the user still learns that something went wrong.

        Through the payload's response_url when there is one: Slack shows a slash command's
        HTTP answer but ignores a click's, and with process_before_response the HTTP answer
        has not gone out yet even after `ack()`, so it is emptied rather than left saying
        "working…". Without a response_url the error becomes the HTTP answer."""
        logger.exception("unhandled error in a listener", exc_info=error)
        if respond is not None:
            try:
                respond(text=SORRY, response_type="ephemeral", replace_original=False)
                return BoltResponse(status=200, body="")
            except Exception:
                logger.exception("could not tell the user about the error")
        if response is not None:
            return BoltResponse(status=200, body=SORRY)
        return None

    return app
