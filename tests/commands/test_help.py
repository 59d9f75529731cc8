"""`/ngrok help` shows each person only what they may run."""

from tests.e2e_fixtures import MALLORY, texts_of


def test_help_shows_only_what_the_user_may_run(stack):
    alice = texts_of(stack.ask("help"))
    mallory = texts_of(stack.ask("help", user=MALLORY))
    assert "restart &lt;session-id | host" in alice
    assert "restart &lt;session-id" not in mallory and "sessions" in mallory
