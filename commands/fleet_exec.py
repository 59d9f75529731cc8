"""Running a fleet run: durable ticks on the job engine.

A tick reads the run and its agents' records, does what can be done now for the current
batch (send POSTs, send an update's restart once UPDATE_RESTART_DELAY has passed, look for
agents that came back), edits the progress message at most every PROGRESS_EDIT_SECONDS, and
schedules the next tick. Every POST goes through commands.approval's records
(`action:run:<run id>:<session id>`, `…:restart` for an update's restart): created before,
"sending" just before, "sent"/"failed" after, so a tick delivered twice, two ticks at once
or a consumer killed mid-POST never send a POST twice; recovery resolves a "sending" left by
a dead process. The run's POSTs and reads use the non-urgent budget, so they always leave
the reserve to people's single approved actions.

Only one chain of ticks drives a run: each tick carries the run's `chain`; Resume, Cancel
and a consumer's start-up (a killed consumer's tick never scheduled its successor) start a
new chain, and ticks of an old one stop.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.ngrok.cel import SessionFilter
from bot.ngrok.errors import NgrokError
from bot.ngrok.hosts import host_of
from bot.ngrok.models import Action, TunnelSession
from bot.slack.invocation import Invocation
from bot.slack.views.fleet import (
    AgentOutcome,
    Failure,
    RunProgress,
    render_batch_outcomes,
    render_run_progress,
)
from bot.state.runs import (
    ACTIVE_STATES,
    FleetRun,
    agent_outcomes,
    all_runs,
    load_run,
    load_targets,
    move_run,
    record_outcome,
)
from bot.state.successors import remember_successor
from commands.approval import ACTION_RECORD_SECONDS, send_recorded
from commands.execute import Outcome, is_successor
from commands.fleet_plan import (
    IPS_PER_LOOK,
    SUCCESSOR_POLL_SECONDS,
    estimate_seconds,
    split_batches,
)
from commands.grammar import compare_versions
from commands.records import ACTION_PREFIX
from commands.recovery import resolve

log = logging.getLogger("ngrok_ops.fleet")

JOB_FLEET_TICK = "fleet_tick"
JOB_FLEET_RESUME_ALL = "fleet_resume_all"
JOB_FLEET_WATCHDOG = "fleet_watchdog"
PROGRESS_EDIT_SECONDS = 2.0
BACK_WITHIN_SECONDS = 120.0
TICK_BUDGET_SECONDS = 20.0
# A tick waits this long itself instead of scheduling the next one: huey's scheduler looks
# at scheduled jobs once a second, which would round every short wait (a look for agents,
# an update's delay) up to the next second and leave the budget idle.
INLINE_WAIT_SECONDS = 2.0
STALE_CHAIN_SECONDS = 90.0
FINAL = ("done", "failed", "skipped", "left")


def action_key(run_id: str, session_id: str, restart: bool = False) -> str:
    return f"{ACTION_PREFIX}run:{run_id}:{session_id}" + (":restart" if restart else "")


# --- progress -----------------------------------------------------------------------------------


def progress_of(
    deps: Deps, run: FleetRun, outcomes: Mapping[str, Mapping[str, Any]], note: str = ""
) -> RunProgress:
    targets = load_targets(deps.store, run.id)
    batches = split_batches(targets, run.canary, run.batch)
    count = {state: 0 for state in FINAL}
    for record in outcomes.values():
        count[str(record["state"])] = count.get(str(record["state"]), 0) + 1
    failures = [
        Failure(str(r.get("label") or sid), sid, str(r.get("sentence") or ""))
        for sid, r in outcomes.items()
        if r["state"] == "failed"
    ]
    batch_index = next(
        (i for i, b in enumerate(batches) if any(t.id not in outcomes for t in b)), len(batches)
    )
    left = [t for b in batches[batch_index:] for t in b if t.id not in outcomes]
    eta = estimate_seconds(
        run.action, split_batches(left, 0, run.batch),
        max_requests=deps.settings.ngrok_max_requests,
        per_seconds=deps.settings.ngrok_window_seconds,
        update_delay=deps.settings.update_restart_delay,
    )  # fmt: skip
    return RunProgress(
        run_id=run.id, action=run.action, query_text=run.query_text, state=run.state,
        requester=run.requester, approver=run.approver, total=len(targets),
        done=count["done"], failed=count["failed"],
        skipped=count["skipped"] + len(run.skipped), remaining=len(targets) - len(outcomes)
        + count["left"], batch_index=batch_index, batches=len(batches), eta_seconds=eta,
        failures=failures, note=note,
    )  # fmt: skip


def publish_progress(
    deps: Deps, run: FleetRun, outcomes: Mapping[str, Mapping[str, Any]], *, force: bool = False,
    post: bool = False, where: Invocation | None = None, note: str = "",
) -> str | None:  # fmt: skip
    """Edits the progress message (posts it when `post`); at most every PROGRESS_EDIT_SECONDS
    unless `force`. Returns the posted message's ts."""
    now = deps.clock()
    if not force and now - run.last_edit < PROGRESS_EDIT_SECONDS:
        return None
    message = render_run_progress(progress_of(deps, run, outcomes, note))
    if post and where is not None:
        return where.public(message)
    if not run.progress_ts:
        return None
    current = load_run(deps.store, run.id)
    if current is not None:
        move_run(deps.store, current, current.state, last_edit=now)
    try:
        deps.slack.chat_update(channel=run.channel, ts=run.progress_ts, **message)
    except SlackApiError as error:
        log.warning(
            "could not edit the progress of run %s: %s", run.id, error.response.get("error")
        )
    return None


# --- chains of ticks ----------------------------------------------------------------------------


def start_chain(deps: Deps, run_id: str) -> None:
    """A new chain for the run (Resume, Cancel, a consumer start); old chains' ticks stop."""
    run = load_run(deps.store, run_id)
    if run is None or run.state not in ACTIVE_STATES:
        return
    chain = secrets.token_hex(4)
    moved = move_run(deps.store, run, run.state, chain=chain, beat=deps.clock())
    if moved is not None:
        deps.jobs.submit(JOB_FLEET_TICK, {"run_id": run_id, "chain": chain, "seq": 0})


def resume_all(deps: Deps, payload: dict[str, Any]) -> None:
    """At a consumer's start: every active run gets a fresh chain (a killed consumer's tick
    never scheduled its successor)."""
    for run in all_runs(deps.store):
        if run.state in ("running", "cancelling"):
            start_chain(deps, run.id)


def watchdog(deps: Deps, payload: dict[str, Any]) -> None:
    """Once a minute: a run whose chain has not beaten for STALE_CHAIN_SECONDS gets a new one."""
    now = deps.clock()
    for run in all_runs(deps.store):
        if run.state in ("running", "cancelling") and now - run.beat > STALE_CHAIN_SECONDS:
            log.warning(
                "run %s had no tick for %.0f s; starting a new chain", run.id, now - run.beat
            )
            start_chain(deps, run.id)


def tick(deps: Deps, payload: dict[str, Any]) -> None:
    run_id, chain, seq = str(payload["run_id"]), str(payload["chain"]), int(payload["seq"])
    if not deps.store.consume_nonce(f"fleettick:{run_id}:{chain}:{seq}", ttl_seconds=86400):
        return
    started = time.monotonic()
    delay: float | None = 0.0
    while delay is not None and time.monotonic() - started < TICK_BUDGET_SECONDS:
        if delay > INLINE_WAIT_SECONDS:
            break
        time.sleep(delay)
        run = load_run(deps.store, run_id)
        if run is None or run.chain != chain:
            return
        if run.state == "cancelling":
            _finish(deps, run, "cancelled")
            return
        if run.state != "running":
            return
        beat = move_run(deps.store, run, "running", beat=deps.clock())
        if beat is None:
            continue
        delay = Step(deps, beat).advance()
    if delay is not None:
        deps.jobs.later(delay, JOB_FLEET_TICK, {"run_id": run_id, "chain": chain, "seq": seq + 1})


# --- one step of a run --------------------------------------------------------------------------


@dataclass
class _Waiting:
    session: TunnelSession
    since: float
    expect_newer: bool


class Step:
    """One pass over the current batch. `advance()` returns the delay before the next pass,
    0 to go on at once, or None when the run ended."""

    def __init__(self, deps: Deps, run: FleetRun) -> None:
        self.deps = deps
        self.run = run
        self.store = deps.store
        self.outcomes = agent_outcomes(deps.store, run.id)
        self.targets = load_targets(deps.store, run.id)
        self.keys = deps.config.host_keys

    def advance(self) -> float | None:
        batches = split_batches(self.targets, self.run.canary, self.run.batch)
        failures = 0
        for index, batch in enumerate(batches):
            if all(t.id in self.outcomes for t in batch):
                failures += self._batch_finished(index, batch)
                continue
            if not self._taken_down(batch) and self._too_many(failures):
                self._finish_stopped(failures)
                return None
            ahead: tuple[TunnelSession, ...] = ()
            if self.run.action == "update" and index > 0 and index + 1 < len(batches):
                ahead = batches[index + 1]
            delay = self._work(batch, failures, ahead)
            self._progress()
            return delay
        _finish(self.deps, self.run, "done")
        return None

    def _too_many(self, failures: int) -> bool:
        limit = self.run.max_failures
        return failures > 0 and (limit is None or failures > limit)

    def _taken_down(self, batch: tuple[TunnelSession, ...]) -> bool:
        """Whether the batch's disruptive POSTs started: an update's restart (its update may
        have been sent ahead, which an agent survives), a restart or a stop."""
        restart = self.run.action == "update"
        return any(
            self.store.get_request(action_key(self.run.id, t.id, restart)) is not None
            for t in batch
        )

    def _send_ahead(self, ahead: tuple[TunnelSession, ...]) -> bool:
        """Sends the next batch's updates while the current batch comes back, so the budget
        does not idle between batches. Only after the canary proved the new version, only
        while no failure would stop the run, and never its restarts: an updated agent keeps
        running its old binary until the restart, which waits for the current batch."""
        sent = False
        for session in ahead:
            if self.store.get_request(action_key(self.run.id, session.id)) is not None:
                continue
            if not self._still_running():
                break
            self._send(session, "update")
            sent = True
        return sent

    def _label(self, session: TunnelSession) -> str:
        return host_of(session, self.keys) or session.id

    def _outcome(self, session: TunnelSession, state: str, sentence: str, **extra: Any) -> None:
        label = self._label(session)
        if record_outcome(
            self.store, self.run.id, session.id, state, sentence, label=label, **extra
        ):
            self.outcomes[session.id] = {
                "state": state, "sentence": sentence, "label": label, "session_id": session.id,
            }  # fmt: skip

    def _still_running(self) -> bool:
        current = load_run(self.store, self.run.id)
        return (
            current is not None and current.state == "running" and current.chain == self.run.chain
        )

    def _send(self, session: TunnelSession, action: Action, restart: bool = False) -> None:
        """Records and sends one POST exactly once (commands.approval's records)."""
        key = action_key(self.run.id, session.id, restart)
        now = self.deps.clock()
        where = Invocation(
            entry="action", user_id=self.run.requester, channel_id=self.run.channel,
            thread_ts=self.run.progress_ts or self.run.thread_ts, client=self.deps.slack,
        )  # fmt: skip
        record = {
            "id": key.removeprefix(ACTION_PREFIX), "state": "approved", "action": action,
            "session": session.to_api(), "account": self.run.account, "where": where.to_data(),
            "approver": self.run.approver or self.run.requester, "started": now, "updated": now,
            "urgent": False, "follow_up": False,
            "fields": {
                "action": action, "session_id": session.id, "requester": self.run.requester,
                "channel": self.run.channel, "run_id": self.run.id,
                "host": host_of(session, self.keys),
                "follows": "update" if restart else None,
            },
        }  # fmt: skip
        if self.store.create_request(key, record, ttl_seconds=ACTION_RECORD_SECONDS):
            send_recorded(self.deps, key, _quiet)

    def _work(
        self, batch: tuple[TunnelSession, ...], failures: int, ahead: tuple[TunnelSession, ...]
    ) -> float:
        """Moves every agent of the batch on; the delay before looking again. `failures` is
        the finished batches' count; `ahead` the batch whose updates may go out meanwhile."""
        now = self.deps.clock()
        waiting: list[_Waiting] = []
        delays: list[float] = []
        sent_any = False
        for session in batch:
            if session.id in self.outcomes:
                continue
            first = self.store.get_request(action_key(self.run.id, session.id))
            if first is None:
                if not self._still_running():
                    return SUCCESSOR_POLL_SECONDS
                self._send(session, self.run.action)
                sent_any = True
                first = self.store.get_request(action_key(self.run.id, session.id))
                if first is None:
                    continue
            state = first.get("state")
            if state == "approved":
                send_recorded(self.deps, action_key(self.run.id, session.id), _quiet)
                sent_any = True
                continue
            if state == "sending":
                self._resolve_if_stale(first)  # in flight here, or left by a dead process
                delays.append(SUCCESSOR_POLL_SECONDS)
                continue
            if state != "sent":
                self._failed_post(session, first)
                continue
            sent_at = float(first.get("updated") or now)
            if first.get("up_to_date"):
                self._outcome(session, "skipped", "already up to date")
            elif self.run.action == "stop":
                self._outcome(session, "done", "stopped")
            elif self.run.action == "restart":
                waiting.append(_Waiting(session, sent_at, expect_newer=False))
            else:
                second = self.store.get_request(action_key(self.run.id, session.id, True))
                due = sent_at + self.deps.settings.update_restart_delay
                if second is None:
                    if now < due:
                        delays.append(due - now)
                    elif self._still_running():
                        self._send(session, "restart", restart=True)
                        sent_any = True
                    continue
                if second.get("state") == "approved":
                    send_recorded(self.deps, action_key(self.run.id, session.id, True), _quiet)
                elif second.get("state") == "sent":
                    waiting.append(_Waiting(session, float(second.get("updated") or now), True))
                elif second.get("state") == "sending":
                    self._resolve_if_stale(second)
                    delays.append(SUCCESSOR_POLL_SECONDS)
                else:
                    self._outcome(
                        session, "failed",
                        "updated, but the restart that finishes it failed: "
                        + str(second.get("sentence") or "unknown"),
                    )  # fmt: skip
        if waiting and not sent_any:  # agents just restarted are not back yet
            failed_here = sum(
                1 for t in batch if self.outcomes.get(t.id, {}).get("state") == "failed"
            )
            if ahead and not delays and not self._too_many(failures + failed_here):
                self._send_ahead(ahead)
            self._look_for_successors(waiting)
            if any(w.session.id not in self.outcomes for w in waiting):
                delays.append(SUCCESSOR_POLL_SECONDS)
        if sent_any and not delays:
            return 0.0
        return min(delays) if delays else 0.0

    def _resolve_if_stale(self, record: Mapping[str, Any]) -> None:
        """A "sending" record older than ACTION_RECOVERY_SECONDS belongs to a dead process:
        recovery reads the session instead of sending again (the same path as every action)."""
        cutoff = self.deps.clock() - self.deps.settings.action_recovery_seconds
        if float(record.get("updated") or 0) < cutoff:
            try:
                resolve(self.deps, dict(record))
            except NgrokError as error:
                log.info("run %s could not resolve %s yet: %s", self.run.id, record["id"], error)

    def _failed_post(self, session: TunnelSession, record: Mapping[str, Any]) -> None:
        sentence = str(record.get("sentence") or "the request failed")
        if self.run.action == "update" and "no update available" in sentence.lower():
            self._outcome(session, "skipped", "already up to date")
        else:
            self._outcome(session, "failed", sentence)

    def _look_for_successors(self, waiting: list[_Waiting]) -> None:
        client = self.deps.ngrok_clients.get(self.run.account)
        if client is None:
            return
        now = self.deps.clock()
        for start in range(0, len(waiting), IPS_PER_LOOK):
            chunk = waiting[start : start + IPS_PER_LOOK]
            ips = tuple(sorted({w.session.ip for w in chunk if w.session.ip}))
            cel = SessionFilter(ips=ips).to_cel() if ips else None
            try:
                candidates = list(client.iter_sessions(filter=cel))
            except NgrokError as error:
                log.info("run %s could not look for restarted agents: %s", self.run.id, error)
                return
            for item in chunk:
                old = item.session
                found = next((c for c in candidates if is_successor(old, c)), None)
                if found is not None:
                    remember_successor(self.store, old.id, found.id, at=now)
                    self._came_back(old, found, item.expect_newer)
                elif now - item.since > BACK_WITHIN_SECONDS:
                    self._outcome(
                        old, "failed", f"did not come back within {BACK_WITHIN_SECONDS:.0f} s"
                    )

    def _came_back(self, old: TunnelSession, new: TunnelSession, expect_newer: bool) -> None:
        if not expect_newer:
            self._outcome(old, "done", f"back as {new.id}", successor=new.id)
            return
        try:
            newer = compare_versions(new.agent_version, old.agent_version) > 0
        except ValueError:
            newer = False
        if newer:
            self._outcome(old, "done", f"back as {new.id} on {new.agent_version}", successor=new.id)
        else:
            self._outcome(
                old, "failed", f"back as {new.id} but still on {new.agent_version or '?'}",
                successor=new.id,
            )  # fmt: skip

    def _batch_finished(self, index: int, batch: tuple[TunnelSession, ...]) -> int:
        """Posts the batch's outcomes in the thread once; returns its failures."""
        failed = sum(1 for t in batch if self.outcomes[t.id]["state"] == "failed")
        if self.store.create_request(
            f"runbatch:{self.run.id}:{index}",
            {"state": "posted"},
            ttl_seconds=ACTION_RECORD_SECONDS,
        ):
            title = "canary" if index == 0 else f"batch {index}"
            outcomes = []
            for t in batch:
                known = self.outcomes[t.id]
                label = str(known.get("label") or t.id)
                outcomes.append(
                    AgentOutcome(label, t.id, str(known["state"]), str(known["sentence"]))
                )
            _thread(self.deps, self.run).public(render_batch_outcomes(self.run.id, title, outcomes))
        return failed

    def _progress(self) -> None:
        current = load_run(self.store, self.run.id)
        if current is not None:
            publish_progress(self.deps, current, self.outcomes)

    def _finish_stopped(self, failures: int) -> None:
        note = f"Stopped: {failures} failure(s), more than this run allows."
        _finish(self.deps, self.run, "stopped", note=note)


def _quiet(outcome: Outcome) -> None:
    """Per-agent results go in the batch's thread message, not one post per POST."""


def _thread(deps: Deps, run: FleetRun) -> Invocation:
    return Invocation(
        entry="action", user_id=run.requester, channel_id=run.channel,
        thread_ts=run.thread_ts or run.progress_ts, client=deps.slack,
    )  # fmt: skip


def _finish(deps: Deps, run: FleetRun, state: str, note: str = "") -> None:
    """The final edit, the run's audit record and the outcomes of what never started."""
    outcomes = agent_outcomes(deps.store, run.id)
    final = move_run(deps.store, run, state)
    if final is None:
        return
    if state != "done":
        left = [t for t in load_targets(deps.store, run.id) if t.id not in outcomes]
        started = [t for t in left if deps.store.get_request(action_key(run.id, t.id))]
        updated_only = [
            t for t in started
            if run.action == "update" and not deps.store.get_request(action_key(run.id, t.id, True))
        ]  # fmt: skip
        if len(started) > len(updated_only):
            note = (note + " " if note else "") + (
                f"{len(started) - len(updated_only)} agent(s) had a request sent and were not "
                "confirmed back."
            )
        if updated_only:
            note = (note + " " if note else "") + (
                f"{len(updated_only)} agent(s) of the next batch took the update but were not "
                "restarted: they keep their old version until their next restart."
            )
    progress = progress_of(deps, final, outcomes, note)
    deps.auditor.record(
        "run", actor=run.approver or run.requester, approver=run.approver, action=run.action,
        session_id=run.key, run_id=run.id, requester=run.requester, channel=run.channel,
        filter=run.query_text, count=run.count, outcome=state, done=progress.done,
        failed=progress.failed, skipped=progress.skipped, remaining=progress.remaining,
        detail=(
            f"run of {run.count} agents matching {run.query_text or 'all'}: done "
            f"{progress.done}, failed {progress.failed}, skipped {progress.skipped}, "
            f"remaining {progress.remaining}"
        ),
    )  # fmt: skip
    publish_progress(deps, final, outcomes, force=True, note=note)
