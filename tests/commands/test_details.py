"""`/ngrok session <id>`: one agent, or one sentence when it is gone."""

from tests.e2e_fixtures import session_id_of, texts_of


def test_a_session_that_is_gone_is_no_longer_online(stack):
    gone = stack.ask("session ts_" + "A" * 27)
    assert "is not online" in texts_of(gone) and "never seen it" in texts_of(gone)
    assert [r.status for r in stack.ngrok.log()] == [404]


def test_windows_details_say_the_agent_cannot_restart_itself(stack):
    sid = session_id_of("windows", stack.ngrok)
    detail = stack.ask(f"session {sid}")
    assert "Windows agents cannot restart themselves" in texts_of(detail)
