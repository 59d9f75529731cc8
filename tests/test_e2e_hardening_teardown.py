"""Issue 7: the harness says so when a process has to be killed, and the bot's `web:` process
stops on SIGINT promptly, also with requests and slow clients in flight."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.bot_process import BotProcess
from tests.e2e_fixtures import Stack

STOP_BOUND = 8.0  # seconds; the old shutdown sometimes took over 15 s and was SIGKILLed


def test_a_process_that_has_to_be_killed_fails_the_test(tmp_path):
    bot = BotProcess({}, log_dir=tmp_path)
    bot.command = (
        "python -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)'"
    )
    bot.start(wait_healthy=False)
    time.sleep(0.5)
    with pytest.raises(AssertionError, match="had to be killed"):
        bot.stop(timeout=1)
    assert bot.process is not None and bot.process.poll() is not None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_web_process_stops_promptly_after_work(stack_factory, sig):
    stack: Stack = stack_factory()
    for _ in range(5):
        _, key = stack.slash("sessions")
        stack.reply(key)
    idle = socket.create_connection(("127.0.0.1", stack.bot.port))
    half = socket.create_connection(("127.0.0.1", stack.bot.port))
    half.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    stack.bot.stop(sig, timeout=STOP_BOUND + 5)
    assert time.monotonic() - started < STOP_BOUND
    idle.close()
    half.close()
