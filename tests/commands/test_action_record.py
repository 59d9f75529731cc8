"""One public record per single action: posted when it is approved, edited in place as it
moves, with the update's restart and the agent's new id as replies in its thread; "done"
only once it is done."""

from tests.bot_process import find_button
from tests.e2e_fixtures import ALICE, BOB, DEFAULT_CONFIG, OPS, session_id_of

THREAD = "1700000000.000050"


def top_level_posts(stack) -> list:
    calls = stack.slack.calls_to("chat.postMessage")
    return [c for c in calls if c.body["channel"] == OPS and not c.body.get("thread_ts")]


def first_line(body: dict) -> str:
    return body["blocks"][0]["text"]["text"]


def edits_of(stack, ts: str) -> list[str]:
    return [c.body["text"] for c in stack.slack.calls_to("chat.update") if c.body["ts"] == ts]


def replies_in(stack, thread: str) -> list[str]:
    calls = stack.slack.calls_to("chat.postMessage")
    return [c.body["text"] for c in calls if c.body.get("thread_ts") == thread]


def test_a_restart_has_one_record_edited_in_place_and_the_new_id_in_its_thread(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    (record,) = top_level_posts(stack)  # nothing else goes to the channel
    assert record.body["channel"] == OPS and record.body["text"] == f"Restart of {sid}: running"
    assert first_line(record.body) == (
        f":hourglass_flowing_sand: *Restart* of `{sid}`: approved by <@{ALICE}>; running…"
    )
    ts = record.response["ts"]
    assert edits_of(stack, ts) == [f"Restart of {sid}: done"]
    now = stack.slack.message(OPS, ts)
    assert now is not None and first_line(now).startswith(
        f":white_check_mark: *Restart* of `{sid}` done in"
    )
    (back,) = replies_in(stack, ts)
    new_id = stack.ngrok.session_ids()[0]
    assert back.startswith(f":arrows_counterclockwise: Agent `{sid}` is back as `{new_id}`")


def test_an_update_is_done_only_after_the_restart_that_finishes_it(stack):
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))  # settles the restart too
    assert [p.path.rsplit("/", 1)[1] for p in stack.action_posts(sid)] == ["update", "restart"]
    (record,) = top_level_posts(stack)
    ts = record.response["ts"]
    assert record.body["text"] == f"Update of {sid}: running"
    assert edits_of(stack, ts) == [
        f"Update of {sid}: updated; restarting",
        f"Update of {sid}: done",
    ]
    restarting = stack.slack.calls_to("chat.update")[0].body
    assert first_line(restarting).endswith("restarting in 0.3 s so the new version runs…")
    restarted, back = replies_in(stack, ts)
    assert restarted == f"Restarted `{sid}` to finish its update."
    assert f"Agent `{sid}` is back as" in back and "(agent version 3.26.1)" in back
    # The edit to done came after the restart was sent, not with the update.
    done = [c for c in stack.slack.calls_to("chat.update") if c.body["text"].endswith("done")]
    assert done[0].at >= stack.action_posts(sid)[1].at


def test_an_action_asked_in_a_thread_keeps_everything_in_that_thread(stack):
    sid = session_id_of("linux", stack.ngrok)
    stack.sender.mention(
        f"<@UBOT1> restart {sid}", user=ALICE, channel=OPS, ts="1700000001.000400",
        thread_ts=THREAD,
    )  # fmt: skip
    prompt = stack.posted("chat.postEphemeral")[0]
    stack.reply(stack.click(find_button(prompt.body, "ngrok_approve"), thread_ts=THREAD))
    assert top_level_posts(stack) == []
    placeholder, record, back = replies_in(stack, THREAD)  # the mention's "Looking up…"
    assert placeholder == "Looking up the agent…"
    assert record == f"Restart of {sid}: running" and "is back as" in back
    calls = stack.slack.calls_to("chat.postMessage")
    ts = next(c.response["ts"] for c in calls if c.body["text"] == record)
    assert edits_of(stack, ts) == [f"Restart of {sid}: done"]


def test_a_two_person_update_finishes_its_request_after_the_restart(scenario_factory):
    config = DEFAULT_CONFIG.replace("action: stop", "action: [stop, update]").replace(
        "action: [restart, update]", "action: restart"
    )
    stack = scenario_factory(config=config)
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"update {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval")))
    (request,) = top_level_posts(stack)
    ts = request.response["ts"]
    approve = find_button(request.body, "ngrok_tp_approve")
    stack.click(approve, user=BOB, ephemeral=False)  # settles the restart too
    assert [p.path.rsplit("/", 1)[1] for p in stack.action_posts(sid)] == ["update", "restart"]
    assert len(top_level_posts(stack)) == 1
    assert edits_of(stack, ts) == [
        f"Update of {sid}: running", f"Update of {sid}: restarting", f"Update of {sid}: done",
    ]  # fmt: skip
    restarted, back = replies_in(stack, ts)
    assert restarted == f"Restarted `{sid}` to finish its update." and "is back as" in back
    done = stack.slack.calls_to("chat.update")[-1]
    assert done.at >= stack.action_posts(sid)[1].at
    notices = [c.body["text"] for c in stack.slack.calls_to("chat.postMessage")
               if c.body["channel"] == ALICE]  # fmt: skip
    assert notices == [
        f"Your request to update {sid}: running",
        f"Your request to update {sid}: done",
    ]
