"""One public record per single action: posted when it is approved, edited in place as it
moves, with the update's restart and the agent's new id as replies in its thread; "done"
only once a read shows it is done (ngrok's 204 only acknowledges a POST)."""

import threading

from tests.bot_process import find_button
from tests.commands.scenario import clock_of, deps_of
from tests.e2e_fixtures import ALICE, BOB, DEFAULT_CONFIG, OPS, session_id_of, wait_until

THREAD = "1700000000.000050"


def top_level_posts(stack) -> list:
    calls = stack.slack.calls_to("chat.postMessage")
    return [c for c in calls if c.body["channel"] == OPS and not c.body.get("thread_ts")]


def first_line(body: dict) -> str:
    return body["blocks"][0]["text"]["text"]


def edits_of(stack, ts: str) -> list[str]:
    return [c.body["text"] for c in stack.slack.calls_to("chat.update") if c.body["ts"] == ts]


def edit_calls(stack, ts: str) -> list:
    return [c for c in stack.slack.calls_to("chat.update") if c.body["ts"] == ts]


def replies_in(stack, thread: str) -> list[str]:
    calls = stack.slack.calls_to("chat.postMessage")
    return [c.body["text"] for c in calls if c.body.get("thread_ts") == thread]


def successor_looks(stack) -> list:
    """The list reads that look for a restarted agent (filtered by its IP)."""
    lists = [r for r in stack.ngrok.log() if r.path == "/tunnel_sessions"]
    return [r for r in lists if "obj.ip" in str(r.query.get("filter"))]


def test_a_restart_is_not_done_at_the_204_but_when_the_agent_is_back(scenario_factory):
    stack = scenario_factory(ngrok={"restart_delay": 0.2})  # not back at the first look
    sid = session_id_of("linux", stack.ngrok)
    version = stack.ngrok.session(sid)["agent_version"]
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    (record,) = top_level_posts(stack)  # nothing else goes to the channel
    assert record.body["channel"] == OPS and record.body["text"] == f"Restart of {sid}: running"
    assert first_line(record.body) == (
        f":hourglass_flowing_sand: *Restart* of `{sid}`: approved by <@{ALICE}>; running…"
    )
    ts = record.response["ts"]
    new_id = stack.ngrok.session_ids()[0]
    assert edits_of(stack, ts) == [
        f"Restart of {sid}: sent; waiting for the agent",
        f"Restart of {sid}: done, back as {new_id}",
    ]
    waiting, done = edit_calls(stack, ts)
    assert first_line(waiting.body).startswith(
        f":hourglass_flowing_sand: *Restart* of `{sid}`: ngrok accepted it in "
    )
    assert first_line(waiting.body).endswith(
        "waiting for the agent to come back under a new session id…"
    )
    # The 204 came first; "done" only after the look that found the new id.
    looks = successor_looks(stack)
    assert len(looks) >= 2 and waiting.at <= looks[0].at
    assert done.at >= looks[-1].at
    now = stack.slack.message(OPS, ts)
    assert now is not None and first_line(now).startswith(
        f":white_check_mark: *Restart* of `{sid}` done in"
    )
    assert first_line(now).endswith(f": back as `{new_id}` on {version}.")
    (back,) = replies_in(stack, ts)
    assert back.startswith(f":arrows_counterclockwise: Agent `{sid}` is back as `{new_id}`")


def test_a_restart_is_marked_done_even_when_slack_drops_the_reply_in_its_thread(
    scenario_factory, monkeypatch
):
    stack = scenario_factory(ngrok={"restart_delay": 0.2})
    sid = session_id_of("linux", stack.ngrok)
    slack = deps_of(stack).slack
    post = slack.chat_postMessage
    dropped: list[str] = []

    def unreachable_in_threads(**kwargs):
        if kwargs.get("thread_ts") and "is back as" in str(kwargs.get("text", "")):
            dropped.append(kwargs["text"])
            raise ConnectionResetError("Slack is unreachable")
        return post(**kwargs)

    monkeypatch.setattr(slack, "chat_postMessage", unreachable_in_threads)
    prompt = stack.ask(f"restart {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    (record,) = top_level_posts(stack)
    ts = record.response["ts"]
    new_id = stack.ngrok.session_ids()[0]
    assert len(dropped) == 1 and new_id in dropped[0]  # the thread reply was lost...
    assert edits_of(stack, ts)[-1] == f"Restart of {sid}: done, back as {new_id}"  # ...not this


def test_an_update_is_done_only_when_its_agent_is_back_on_a_newer_version(stack):
    sid = session_id_of("linux", stack.ngrok)
    old_version = stack.ngrok.session(sid)["agent_version"]
    prompt = stack.ask(f"update {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))  # settles the restart too
    assert [p.path.rsplit("/", 1)[1] for p in stack.action_posts(sid)] == ["update", "restart"]
    (record,) = top_level_posts(stack)
    ts = record.response["ts"]
    new_id = stack.ngrok.session_ids()[0]
    assert record.body["text"] == f"Update of {sid}: running"
    assert edits_of(stack, ts) == [
        f"Update of {sid}: updated; restarting",
        f"Update of {sid}: sent; waiting for the agent",
        f"Update of {sid}: done, back as {new_id}",
    ]
    restarting, waiting, done = edit_calls(stack, ts)
    assert first_line(restarting.body).endswith("restarting in 0.3 s so the new version runs…")
    assert "updated and restarted; waiting for the agent to come back on the new version" in (
        first_line(waiting.body)
    )
    assert first_line(done.body).endswith(f": back as `{new_id}` on 3.26.1 (was {old_version}).")
    restarted, back = replies_in(stack, ts)
    assert restarted == f"Restarted `{sid}` to finish its update."
    assert f"Agent `{sid}` is back as" in back and "(agent version 3.26.1)" in back
    # "restarting" went out with the update, "waiting" after the restart, "done" after that.
    update_post, restart_post = stack.action_posts(sid)
    assert restarting.at >= update_post.at and waiting.at >= restart_post.at
    assert done.at >= successor_looks(stack)[-1].at


def test_a_restart_whose_agent_never_comes_back_says_so_not_done(scenario_factory):
    stack = scenario_factory(ngrok={"restart_delay": 3600.0})  # gone for good
    sid = session_id_of("linux", stack.ngrok)
    prompt = stack.ask(f"restart {sid}")
    clock = clock_of(stack)

    def end_of_the_window() -> None:
        # The bot's look-up window is 60 s on its own clock: once it has looked (and not
        # found the agent), that clock moves past the window; the next look gives up.
        wait_until(lambda: successor_looks(stack), timeout=20, what="a look for the agent")
        clock.advance(61)

    mover = threading.Thread(target=end_of_the_window)
    mover.start()
    stack.reply(stack.click(find_button(prompt, "ngrok_approve")))
    mover.join()
    (record,) = top_level_posts(stack)
    ts = record.response["ts"]
    assert edits_of(stack, ts) == [
        f"Restart of {sid}: sent; waiting for the agent",
        f"Restart of {sid}: sent, not confirmed",
    ]
    now = stack.slack.message(OPS, ts)
    assert now is not None
    assert first_line(now) == (
        f":warning: *Restart* of `{sid}`: ngrok accepted the restart, but the agent has not "
        "come back within 60 s; check the agent's host."
    )
    assert "done" not in stack.slack.calls_to("chat.update")[-1].body["text"]
    (missing,) = replies_in(stack, ts)
    assert "has not come back within 60 s" in missing
    assert len(stack.action_posts(sid)) == 1  # looking never sends anything again


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
    new_id = stack.ngrok.session_ids()[0]
    assert edits_of(stack, ts) == [
        f"Restart of {sid}: sent; waiting for the agent",
        f"Restart of {sid}: done, back as {new_id}",
    ]


def test_a_two_person_update_finishes_its_request_when_the_agent_is_back(scenario_factory):
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
        f"Update of {sid}: running", f"Update of {sid}: restarting",
        f"Update of {sid}: waiting", f"Update of {sid}: done",
    ]  # fmt: skip
    restarted, back = replies_in(stack, ts)
    assert restarted == f"Restarted `{sid}` to finish its update." and "is back as" in back
    done = stack.slack.calls_to("chat.update")[-1]
    assert done.at >= stack.action_posts(sid)[1].at
    new_id = stack.ngrok.session_ids()[0]
    assert f"back as `{new_id}` on 3.26.1" in done.body["blocks"][2]["text"]["text"]
    notices = [c.body for c in stack.slack.calls_to("chat.postMessage")
               if c.body["channel"] == ALICE]  # fmt: skip
    assert [n["text"] for n in notices] == [
        f"Your request to update {sid}: running",
        f"Your request to update {sid}: done",
    ]
    assert f"back as `{new_id}`" in notices[1]["blocks"][0]["text"]["text"]


def test_a_two_person_stop_is_done_once_the_session_is_gone(stack):
    sid = session_id_of("linux", stack.ngrok)  # stop needs a second person by default
    prompt = stack.ask(f"stop {sid}")
    stack.reply(stack.click(find_button(prompt, "ngrok_ask_approval")))
    (request,) = top_level_posts(stack)
    ts = request.response["ts"]
    stack.click(find_button(request.body, "ngrok_tp_approve"), user=BOB, ephemeral=False)
    assert edits_of(stack, ts) == [
        f"Stop of {sid}: running", f"Stop of {sid}: waiting", f"Stop of {sid}: done",
    ]  # fmt: skip
    waiting, done = edit_calls(stack, ts)[1:]
    assert "checking that the session has ended" in waiting.body["blocks"][2]["text"]["text"]
    assert (
        "the session has ended; the agent does not come back on its own."
        in (done.body["blocks"][2]["text"]["text"])
    )
    reads = [r for r in stack.ngrok.log() if r.method == "GET" and r.path.endswith(sid)]
    assert reads[-1].status == 404 and done.at >= reads[-1].at
