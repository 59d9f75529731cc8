"""A two-person fleet run's request expires like a single one: a job at the expiry time (or
a late click, if that job died with its process) moves its public message to "expired"."""

import json

from bot.state.approvals import verify_token
from commands.approval import JOB_EXPIRE_RUN
from tests.bot_process import find_button
from tests.commands.scenario import clock_of, deps_of
from tests.e2e_fixtures import BOB, OPS, TWO_PERSON_CONFIG, texts_of

CONFIG = TWO_PERSON_CONFIG


def expired_edits(stack) -> list:
    calls = stack.slack.calls_to("chat.update")
    return [c for c in calls if '"run_expired"' in json.dumps(c.body)]


def request_run(stack) -> dict:
    preview = stack.ask("restart os=darwin")
    stack.reply(stack.click(find_button(preview, "ngrok_run_ask")))
    return stack.posted(
        "chat.postMessage", predicate=lambda c: "asks for a rolling" in json.dumps(c.body)
    )[0]


def test_a_run_request_schedules_its_expiry_and_expires_once(scenario_factory):
    stack = scenario_factory(config=CONFIG)
    deps = deps_of(stack)
    before = deps.jobs.scheduled()
    request = request_run(stack)
    assert deps.jobs.scheduled() == before + 1  # the expiry job, due in 10 minutes
    approve = find_button(request.body, "ngrok_run_tp_approve")
    claims = verify_token(approve["value"], secret=deps.settings.approval_secret, now=0)
    run_id = (claims.request_id or "").removeprefix("run:")
    clock_of(stack).advance(600)
    deps.jobs.run_now(JOB_EXPIRE_RUN, {"run_id": run_id})  # what the job runs when due
    deps.jobs.run_now(JOB_EXPIRE_RUN, {"run_id": run_id})  # delivered twice: nothing more
    (edit,) = expired_edits(stack)
    assert edit.body["ts"] == request.response["ts"] and edit.body["channel"] == OPS
    assert "Expired before anyone approved it, nothing ran" in texts_of(edit.body)
    assert '"ngrok_run_tp_approve"' not in json.dumps(edit.body)  # no buttons left
    late = stack.click(approve, user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    assert len(expired_edits(stack)) == 1
    assert stack.action_posts() == []
    expired = [r for r in stack.bot.audit_records() if r["event"] == "expired"]
    assert [r["run_id"] for r in expired] == [run_id]


def test_a_late_click_expires_a_run_whose_expiry_job_never_ran(scenario_factory):
    stack = scenario_factory(config=CONFIG)
    request = request_run(stack)
    clock_of(stack).advance(599)
    assert expired_edits(stack) == []
    clock_of(stack).advance(1)
    late = stack.click(find_button(request.body, "ngrok_run_tp_approve"), user=BOB, ephemeral=False)
    assert "expired" in texts_of(stack.reply(late)).lower()
    (edit,) = expired_edits(stack)
    assert edit.body["ts"] == request.response["ts"]
    assert stack.action_posts() == []
