"""A fleet run's private preview: the requester changes canary, batch and when to stop in
its menus; each change re-plans the same frozen targets and replaces the preview in place,
only for the requester and only while nothing was approved, requested or cancelled yet; the
run (and a second person's request) use the plan chosen last."""

import json
import re

from bot.slack.buttons import PlanChoice
from bot.state.runs import load_run
from tests.bot_process import find_button, find_select
from tests.commands.scenario import deps_of
from tests.e2e_fixtures import (
    BOB,
    OPS,
    OTHER,
    TWO_PERSON_CONFIG,
    texts_of,
    validate_message,
)


def menu(message: dict, action_id: str) -> dict:
    return find_select(message, action_id)


def pick(stack, message: dict, action_id: str, label: str, **where) -> str:
    """Picks `label` in one of the preview's plan menus; the click's response_url key."""
    return stack.pick(find_select(message, action_id), label, **where)


def run_of(stack, message: dict):
    """The run a preview shows, as the store holds it."""
    run_id = re.search(r"run `([0-9a-f]+)`", texts_of(message)).group(1)
    return load_run(deps_of(stack).store, run_id)


def list_scans(stack) -> int:
    return len([r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"])


def test_the_requester_changes_the_batch_and_the_approved_run_uses_it(stack):
    preview = stack.ask("restart os=linux")
    count = int(re.search(r"Restart (\d+) agents", preview["text"]).group(1))
    run = run_of(stack, preview)
    assert (run.canary, run.batch, run.max_failures) == (1, 2, None)
    assert menu(preview, "ngrok_run_batch")["initial_option"]["text"]["text"] == "Batches of 2"
    assert "batch(es) of up to 2" in texts_of(preview)
    scans = list_scans(stack)
    stack.ngrok.add_session(os="linux")  # joins the fleet after the preview: not a target
    key = pick(stack, preview, "ngrok_run_batch", "Batches of 5")
    changed = stack.reply(key)
    validate_message(changed)
    assert changed["replace_original"] is True  # the ephemeral preview, edited in place
    assert f"Restart {count} agents" in changed["text"]  # the same frozen targets
    assert list_scans(stack) == scans  # re-planned, never re-queried
    batches = 1 + -(-(count - 1) // 5)
    assert f"canary of 1, then {batches - 1} batch(es) of up to 5" in texts_of(changed)
    assert menu(changed, "ngrok_run_batch")["initial_option"]["text"]["text"] == "Batches of 5"
    assert run_of(stack, changed).batch == 5
    # The old preview's Approve no longer works: what is approved is what was last shown.
    stale = stack.reply(stack.click(find_button(preview, "ngrok_run_approve")))
    assert "plan was changed since" in texts_of(stale)
    assert stack.action_posts() == []
    stack.reply(stack.click(find_button(changed, "ngrok_run_approve")))
    run = run_of(stack, changed)
    assert run.state == "done" and run.batch == 5
    titles = [c.body["text"] for c in stack.slack.calls_to("chat.postMessage")
              if c.body["text"].startswith(f"Run {run.id}, ")]  # fmt: skip
    assert [t.split(":")[0] for t in titles] == [f"Run {run.id}, canary"] + [
        f"Run {run.id}, batch {n}" for n in range(1, batches)
    ]
    assert len(stack.action_posts()) == count
    replanned = [r for r in stack.bot.audit_records() if r["event"] == "replanned"]
    assert [r["detail"] for r in replanned] == [
        "canary 1, batches of 5, stop at the first failing batch"
    ]
    assert f"changed the plan of the restart run `{run.id}`" in texts_of(stack.ask("audit 50"))


def test_someone_else_cannot_change_the_plan(stack):
    preview = stack.ask("restart os=linux")
    refused = stack.reply(pick(stack, preview, "ngrok_run_canary", "Canary: 3 agents", user=BOB))
    assert "Only the person who asked for this run can change its plan." in texts_of(refused)
    assert refused.get("replace_original") is not True  # the requester's preview stays
    assert run_of(stack, preview).canary == 1
    # The requester's own change still works (nothing was used up by the refusal).
    changed = stack.reply(pick(stack, preview, "ngrok_run_canary", "Canary: 3 agents"))
    assert "canary of 3" in texts_of(changed) and run_of(stack, changed).canary == 3


def test_no_change_after_approval_or_cancel(stack):
    preview = stack.ask("restart os=darwin")
    stack.reply(stack.click(find_button(preview, "ngrok_run_approve")))
    late = stack.reply(
        pick(stack, preview, "ngrok_run_max_failures", "Stop after more than 2 failures")
    )
    assert "This run was already approved and has run, so its plan can no longer change." in (
        texts_of(late)
    )
    assert run_of(stack, preview).max_failures is None
    other = stack.ask("stop os=darwin")  # needs a second person: Request approval
    stack.reply(stack.click(find_button(other, "ngrok_cancel")))
    refused = stack.reply(pick(stack, other, "ngrok_run_batch", "Batches of 1"))
    assert "This preview was cancelled; type the command again" in texts_of(refused)


def test_values_are_checked_like_typed_options_and_bound_to_their_channel(stack):
    preview = stack.ask("restart os=linux")
    run = run_of(stack, preview)
    key = deps_of(stack).settings.approval_secret
    forged = PlanChoice(run.id, "batch", "0", OPS).seal(key)  # sealed, but not a valid batch
    bad = stack.reply(pick(stack, preview, "ngrok_run_batch", "Batches of 5", value=forged))
    assert "`canary=` and `batch=` must be at least 1." in texts_of(bad)
    tampered = menu(preview, "ngrok_run_batch")["options"][0]["value"].replace('"v":"1"', '"v":"9"')
    altered = stack.reply(pick(stack, preview, "ngrok_run_batch", "Batches of 1", value=tampered))
    assert "not valid here" in texts_of(altered)
    elsewhere = stack.reply(pick(stack, preview, "ngrok_run_batch", "Batches of 5", channel=OTHER))
    assert "belongs to another channel" in texts_of(elsewhere)
    assert run_of(stack, preview).batch == 2  # nothing changed


def test_the_approver_sees_and_the_run_uses_the_plan_the_requester_chose(scenario_factory):
    stack = scenario_factory(config=TWO_PERSON_CONFIG)
    preview = stack.ask("restart os=linux")
    changed = stack.reply(pick(stack, preview, "ngrok_run_canary", "Canary: 2 agents"))
    changed = stack.reply(
        pick(stack, changed, "ngrok_run_max_failures", "Stop after more than 1 failure")
    )
    assert "canary of 2" in texts_of(changed) and "more than 1 failure(s)" in texts_of(changed)
    stack.reply(stack.click(find_button(changed, "ngrok_run_ask")))
    request = stack.posted(
        "chat.postMessage", predicate=lambda c: "asks for a rolling" in json.dumps(c.body)
    )[0]
    assert "canary of 2" in texts_of(request.body)
    assert "stops after more than 1 failure(s)" in texts_of(request.body)
    assert '"ngrok_run_canary"' not in json.dumps(request.body)  # no menus in public
    late = stack.reply(pick(stack, changed, "ngrok_run_canary", "Canary: 1 agent"))
    assert "already sent for approval, so its plan can no longer change" in texts_of(late)
    stack.click(find_button(request.body, "ngrok_run_tp_approve"), user=BOB, ephemeral=False)
    run = run_of(stack, changed)
    assert (run.state, run.canary, run.max_failures) == ("done", 2, 1)
    canary = [c.body for c in stack.slack.calls_to("chat.postMessage")
              if c.body["text"].startswith(f"Run {run.id}, canary")]  # fmt: skip
    assert canary and canary[0]["text"].endswith(": 2 done")
