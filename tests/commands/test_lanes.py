"""An approved action never waits for listings: with every normal consumer thread held (as
when each is inside a listing waiting for the non-urgent ngrok budget) and more listings
queued behind them, Approve clicks, a two-person approval, an update's scheduled restart and
a fleet run's Pause still reach ngrok or the store. Ordering, not timing: each test asserts
that the action happened while the listings were still held and queued.

The scenario queue is in memory; tests/test_jobs_lanes.py holds the same property on the
SQLite file and Redis."""

from __future__ import annotations

import json
import threading

from bot.jobs import Jobs
from commands.jobs import JOB_CLICK, JOB_COMMAND, JOB_DECISION, JOB_DENY_REASON
from tests.bot_process import find_button
from tests.commands.scenario import deps_of, settle
from tests.commands.test_two_person import request_two_person_stop
from tests.e2e_fixtures import BOB, Stack, session_id_of, wait_until

NORMAL_THREADS = 4  # what scenario_factory starts
HANG_GUARD = 30.0  # seconds; only a broken build waits this long


class HeldLane:
    """Every normal thread inside a job that waits until released; `queued` listings wait
    behind them. Use as a context manager: leaving it releases and settles."""

    def __init__(self, stack: Stack, queued: int = 5) -> None:
        self.stack, self.jobs = stack, deps_of(stack).jobs
        self.queued = queued
        self.release = threading.Event()
        self.holding = threading.Barrier(NORMAL_THREADS + 1, timeout=HANG_GUARD)
        self.listing_keys: list[str] = []

    def _hold(self, payload: dict) -> None:
        self.holding.wait()
        assert self.release.wait(HANG_GUARD)

    def __enter__(self) -> HeldLane:
        self.jobs.register("held_listing", self._hold)
        for _ in range(NORMAL_THREADS):
            self.jobs.submit("held_listing", {})
        self.holding.wait()
        self.stack.sender.settling = False  # type: ignore[attr-defined]
        for n in range(self.queued):
            _, key = self.stack.slash(f"sessions region=us limit={n + 1}")
            self.listing_keys.append(key)
        return self

    def still_held(self) -> bool:
        """Nothing queued in the normal lane has started, and no listing was answered."""
        answered = [
            c for c in self.stack.slack.calls_to("response_url")
            if c.key in self.listing_keys and "ngrok agents online" in c.body.get("text", "")
        ]  # fmt: skip
        return self.jobs.backlog("normal") >= self.queued and not answered

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.stack.sender.settling = True  # type: ignore[attr-defined]
        settle(deps_of(self.stack))


def posted(stack: Stack, sid: str, op: str) -> bool:
    return any(r.path.endswith(f"/{sid}/{op}") for r in stack.action_posts(sid))


def test_the_lanes_of_what_people_click(stack):
    jobs: Jobs = deps_of(stack).jobs
    assert jobs.lane_of(JOB_DECISION) == jobs.lane_of(JOB_DENY_REASON) == "urgent"
    assert jobs.lane_of(JOB_CLICK) == jobs.lane_of(JOB_COMMAND) == "normal"
    for name in ("successor", "finish_update", "recover_actions", "run_click", "expire_request"):
        assert jobs.lane_of(name) == "urgent", name
    for name in ("successor_late", "fleet_tick", "watch", "home", "digest"):
        assert jobs.lane_of(name) == "normal", name


def test_an_approved_restart_reaches_ngrok_while_listings_hold_every_normal_thread(stack):
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(stack.ask(f"restart {sid}"), "ngrok_approve")
    with HeldLane(stack) as lane:
        key = stack.click(approve)
        wait_until(lambda: posted(stack, sid, "restart"), HANG_GUARD, "the restart's POST")
        result = stack.reply(key)
        assert result["text"] == f"ngrok accepted the restart of {sid}."
        assert lane.still_held()
    assert len(stack.action_posts(sid)) == 1
    for key in lane.listing_keys:  # and the listings are answered once let go
        assert "ngrok agents online" in stack.reply(key)["text"]


def test_an_update_and_its_scheduled_restart_run_while_the_normal_lane_is_held(stack):
    sid = session_id_of("linux", stack.ngrok)
    approve = find_button(stack.ask(f"update {sid}"), "ngrok_approve")
    with HeldLane(stack) as lane:
        stack.click(approve)
        wait_until(lambda: posted(stack, sid, "update"), HANG_GUARD, "the update's POST")
        # UPDATE_RESTART_DELAY later, a scheduled job in the urgent lane finishes it.
        wait_until(lambda: posted(stack, sid, "restart"), HANG_GUARD, "the update's restart")
        assert lane.still_held()


def test_a_two_person_approval_runs_while_the_normal_lane_is_held(stack):
    sid = session_id_of("linux", stack.ngrok)
    request = request_two_person_stop(stack, sid)
    with HeldLane(stack) as lane:
        stack.click(find_button(request, "ngrok_tp_approve"), user=BOB, ephemeral=False)
        wait_until(lambda: posted(stack, sid, "stop"), HANG_GUARD, "the stop's POST")
        assert lane.still_held()


def test_a_fleet_runs_approval_and_pause_are_taken_while_the_normal_lane_is_held(stack):
    """Approve run and Pause are urgent; the run's ticks (its reads and POSTs, with the
    non-urgent budget) wait in the normal lane, so nothing is sent before the pause."""
    preview = stack.ask("restart os=linux canary=1 batch=2")
    with HeldLane(stack) as lane:
        stack.click(find_button(preview, "ngrok_run_approve"))
        running = wait_until(lambda: run_messages(stack, "running"), HANG_GUARD, "running")
        stack.click(find_button(running[0].body, "ngrok_run_pause"), ephemeral=False)
        wait_until(lambda: run_messages(stack, "paused"), HANG_GUARD, "the run paused")
        assert lane.still_held()
        assert stack.action_posts() == []
    assert stack.action_posts() == []  # the queued tick found the run paused


def run_messages(stack: Stack, state: str) -> list:
    """The run's progress message posted or edited in `state`."""
    return [
        c for c in stack.slack.calls_to("chat.postMessage") + stack.slack.calls_to("chat.update")
        if f'"run_{state}"' in json.dumps(c.body)
    ]  # fmt: skip
