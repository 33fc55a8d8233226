"""The node's decision logic: a state machine with no I/O of its own.

Inputs (badge placed/removed, activity edges, access lists, commands, timer
ticks, shutdown requests) go in as method calls; each call returns the
actions the daemon must carry out, in order: switch the relay, emit an event
(with the session checkpoint to store in the same transaction), signal the
member with LEDs/buzzer, resync. Time comes from an injected `Clock`, so
tests drive every rule with a fake clock and no sleeping.

Only `badge_placed` ever switches the relay on: no list, command or retained
message can start a session by itself. With a smart plug (`actuator_confirms`)
the session starts only once the plug confirmed "on" (`actuator_confirmed`);
otherwise the badge is refused (`actuator_failed`, docs/actuators.md).

Split by concern: the action types (controller/actions.py), the merged policy
(controller/policy.py), the session record (controller/session_record.py), the plug's
inputs (controller/actuator_inputs.py) and the bookings (controller/bookings.py) live
beside this module; the badge and timer rules stay here.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.actions import Action, EmitAction, RelayAction, ResyncAction, SignalAction
from controller.actuator_inputs import ActuatorInputs
from controller.bookings import BookingBook
from controller.clock import Clock
from controller.nodetime import NodeTime
from controller.policy import Policy
from controller.session_record import Session, _Signoff, badge_tag
from controller.session_record import rounded_s as _r
from controller.session_status import StatusAndRecovery
from firmware_config.node_config import SessionConfig
from protocol import AccessList, BadgeEntry, Command, format_ts

# Re-exported: the daemon, the actuator drivers and the tests import these from here.
__all__ = ["Action", "EmitAction", "NodeMachine", "Policy", "RelayAction", "ResyncAction",
           "Session", "SignalAction", "credit_refusal"]

log = logging.getLogger(__name__)

DOUBLE_TAP_S = 3.0  # a trainer's second tap within this many seconds enters sign-off
SIGNOFF_S = 30.0  # how long the node waits for the trainee's badge
COMMAND_MAX_AGE_S = 30.0  # older commands are ignored (node wall clock)

# End reasons that wait for the machine to go idle under `power_off: when_idle`;
# the others (handover, remote_stop, revoked, a forced shutdown) cut at once.
_SOFT_END = ("badge_out", "badge_removed", "timeout", "idle", "shutdown")


@dataclass
class NodeMachine(ActuatorInputs, StatusAndRecovery):
    """Badge → decision → relay, per contract section 2 (see docs/node.md for the rules)."""

    node_id: str
    site: str
    defaults: SessionConfig
    clock: Clock
    has_activity: bool = False
    cmd_locked: bool = False
    acl: AccessList | None = None
    _entries: dict[str, BadgeEntry] = field(default_factory=dict)
    _not_authorized: set[str] = field(default_factory=set)
    policy: Policy = field(init=False)
    session: Session | None = None
    relay: bool = False
    busy: bool = False
    idle_since: float = field(init=False)
    last_cmd: str | None = None
    draining: bool = False
    done: bool = False
    _signoff: _Signoff | None = None
    time: NodeTime = field(init=False)
    # a smart plug: sessions wait for its confirmation; offline refuses new ones
    actuator_confirms: bool = False
    actuator_ready: bool = True
    power_w: float | None = None  # last measured power, for heartbeats
    status_power_w: float | None = None  # the same, changed only by a real step (status)
    _energy_total: float | None = None
    _pending: BadgeEntry | None = None  # badge waiting for the plug to confirm "on"
    slots: BookingBook = field(default_factory=BookingBook)  # bookings (controller/bookings.py)
    _booked_until: datetime | None = None  # the slot end of the last `booked` refusal

    def __post_init__(self) -> None:
        self.policy = Policy.merge(self.defaults, None)
        self.idle_since = self.clock.monotonic()
        self.time = NodeTime(self.clock)

    # ------------------------------------------------------------ time (see controller/nodetime.py)

    def now_wall(self) -> datetime:
        """The time of record: the wall clock, floored by the last persisted ts and `issued`."""
        return self.time.now()

    def raise_floor(self, when: datetime | None) -> None:
        self.time.raise_floor(when)

    # ------------------------------------------------------------ access list

    @property
    def locked(self) -> bool:
        return self.cmd_locked or bool(self.acl and self.acl.locked)

    def acl_problem(self) -> str | None:
        """None when the list may be used for a decision, else the deny reason."""
        if self.acl is None:
            return "no_acl"
        if self.time.list_stale() and self.policy.on_stale != "known_badges":
            return "acl_stale"
        return None

    def acl_mismatch(self, acl: AccessList) -> str | None:
        if acl.node != self.node_id:
            return f"list is for node {acl.node!r}, this node is {self.node_id!r}"
        if acl.site != self.site:
            return f"list is for site {acl.site!r}, this node is in {self.site!r}"
        return None

    def offer_acl(self, acl: AccessList, raw: dict[str, Any] | None = None, *,
                  fresh: bool = False) -> tuple[bool, list[Action]]:
        """A list from the broker: used only if it is ours and of a greater version.

        `fresh`: delivered live (not a retained replay), so it was just issued.
        """
        problem = self.acl_mismatch(acl)
        if problem:
            log.warning("ignoring access list version %s: %s", acl.version, problem)
            return False, []
        if self.acl is not None and acl.version <= self.acl.version:
            log.debug("ignoring access list version %s (have %s)", acl.version, self.acl.version)
            return False, []
        return True, self.load_acl(acl, raw, fresh=fresh)

    def load_acl(self, acl: AccessList, raw: dict[str, Any] | None = None, *,
                 fresh: bool = False) -> list[Action]:
        """Install a list (from disk at start, or accepted by `offer_acl`)."""
        acts: list[Action] = []
        self.acl = acl
        self._entries = acl.by_uid()
        self._not_authorized = _not_authorized(raw)
        self.policy = Policy.merge(self.defaults, acl.policy)
        self.slots.load(acl.policy, acl.bookings)
        self.time.receive_list(acl.issued, acl.valid_until, fresh=fresh)
        log.info("access list version %s: %d badges, locked=%s", acl.version, len(acl.badges),
                 acl.locked)
        s = self.session
        if s is not None and self.policy.end_on_revoke and (
                s.uid not in self._entries or s.uid in self._not_authorized):
            # No UID at INFO on the receive path: the session id names it well enough.
            log.info("session %s: its badge is no longer listed: ending it (end_on_revoke)", s.id)
            self._end("revoked", acts)
        return acts

    def _decide(self, uid: str) -> tuple[BadgeEntry | None, str | None]:
        if self.draining or self.locked:
            return None, "machine_locked"
        problem = self.acl_problem()
        if problem:
            return None, problem
        entry = self._entries.get(uid)
        if entry is None:
            return None, "unknown_badge"
        if uid in self._not_authorized:
            return None, "not_authorized"
        if entry.until is not None and self.time.decision_time() >= entry.until:
            return None, "expired"
        refusal = self.slots.refusal(entry.member, entry.role, self.time.decision_time())
        if refusal is not None:
            self._booked_until = refusal.until
            return None, refusal.reason
        refused = credit_refusal(entry)
        if refused:
            return None, refused
        if not self.actuator_ready:
            return None, "actuator_offline"
        return entry, None

    # ------------------------------------------------------------ inputs

    def badge_placed(self, uid: str) -> list[Action]:
        acts: list[Action] = []
        now = self.clock.monotonic()
        s = self.session
        if self.draining:
            self._deny(uid, "machine_locked", acts)
            return acts
        if s is None and self._pending is not None:
            if uid != self._pending.uid:
                self._deny(uid, "in_use", acts)
            return acts  # the same badge again while the plug confirms: nothing new
        if s is None:
            so = self._signoff
            if so is not None and now < so.until:
                if uid == so.trainer:
                    log.info("sign-off: trainer %s tapped again; waiting for the trainee",
                             self._who(uid))
                    return acts
                self._signoff = None
                log.info("training signed: trainer %s, trainee %s", self._who(so.trainer),
                         self._who(uid))
                acts.append(self._emit("training.signed", {"trainer_uid": so.trainer,
                                                           "trainee_uid": uid}))
                acts.append(SignalAction("signed"))
                return acts
            entry, reason = self._decide(uid)
            if reason or entry is None:
                self._deny(uid, reason or "unknown_badge", acts)
            else:
                self._start(entry, acts)
            return acts

        if uid == s.uid:
            if (s.role == "trainer" and s.finishing is None
                    and now - s.started_mono <= DOUBLE_TAP_S):
                log.info("trainer %s double tap: session cancelled, sign-off for %.0f s",
                         self._who(uid), SIGNOFF_S)
                self._end("badge_out", acts)
                self._signoff = _Signoff(uid, now + SIGNOFF_S)
                acts.append(SignalAction("signoff"))
                return acts
            if s.grace_until is not None:  # present mode: the card is back
                s.grace_until = None
                log.info("session %s: badge back on the reader: session resumes", s.id)
                if s.warned:
                    self._extend(s, now, acts)
                return acts
            if s.finishing is not None:  # badged again while finishing: not done after all
                log.info("session %s: badge again while finishing: session resumes", s.id)
                s.finishing = None
                self._set_relay(True, acts)
                if s.warned or (s.deadline is not None and now >= s.deadline):
                    self._extend(s, now, acts)
                acts.append(SignalAction("granted"))
                return acts
            if s.mode == "present":
                return acts  # the same card reported twice: nothing to do
            if s.warned:
                self._extend(s, now, acts)
                return acts
            self._request_end("badge_out", acts)
            return acts

        entry, reason = self._decide(uid)
        if reason or entry is None:
            self._deny(uid, reason or "unknown_badge", acts)
            return acts
        if not self.policy.handover:
            self._deny(uid, "in_use", acts)
            return acts
        log.info("handover from %s to %s", self._who(s.uid), self._who(uid))
        self._end("handover", acts, relay_off=False)
        self._start(entry, acts)
        return acts

    def badge_removed(self, uid: str) -> list[Action]:
        acts: list[Action] = []
        s = self.session
        if (s is None or uid != s.uid or s.mode != "present" or s.grace_until is not None
                or s.finishing is not None):
            return acts
        grace = self.policy.grace_s
        if grace:
            s.grace_until = self.clock.monotonic() + grace
            log.info("session %s: badge removed: %.0f s grace", s.id, grace)
        else:
            self._request_end("badge_removed", acts)
        return acts

    def activity(self, busy: bool) -> list[Action]:
        """An edge of the activity input (True: the machine is working)."""
        if busy == self.busy:
            return []
        now = self.clock.monotonic()
        self.busy = busy
        s = self.session
        if busy:
            if s is not None:
                s.busy_since = now
        else:
            self.idle_since = now
            if s is not None and s.busy_since is not None:
                s.active_acc += now - s.busy_since
                s.busy_since = None
        return self.tick()

    def command(self, cmd: Command) -> list[Action]:
        acts: list[Action] = []
        if cmd.id == self.last_cmd:
            log.debug("command %s already applied", cmd.id)
            return acts
        age = (self.time.decision_time() - cmd.ts).total_seconds()
        if age > COMMAND_MAX_AGE_S:
            log.warning("ignoring command %s %s: issued %.0f s ago (limit %.0f s)", cmd.cmd, cmd.id,
                        age, COMMAND_MAX_AGE_S)
            return acts
        self.last_cmd = cmd.id
        log.info("command %s (%s)", cmd.cmd, cmd.id)
        if cmd.cmd == "stop":
            if self.session is not None:
                self._end("remote_stop", acts)
        elif cmd.cmd == "lock":
            self.cmd_locked = True
        elif cmd.cmd == "unlock":
            self.cmd_locked = False
        elif cmd.cmd == "identify":
            acts.append(SignalAction("identify"))
        elif cmd.cmd == "resync":
            acts.append(ResyncAction())
        return acts

    def tick(self) -> list[Action]:
        """Timers: heartbeat, grace, warning, max session, idle end, finishing, sign-off."""
        acts: list[Action] = []
        now = self.clock.monotonic()
        if self._signoff is not None and now >= self._signoff.until:
            log.info("sign-off by %s expired", self._signoff.trainer)
            self._signoff = None
        s = self.session
        if s is None:
            if self.draining:
                self.done = True
            return acts
        if now - s.last_heartbeat >= self.policy.heartbeat_s:
            s.last_heartbeat = now
            data = self._session_data(s)
            data.update(elapsed_s=_r(now - s.started_mono), active_s=_r(s.active_s(now)))
            if self.power_w is not None:
                data["power_w"] = round(self.power_w, 1)
            acts.append(self._emit("session.heartbeat", data, checkpoint=self.checkpoint()))
        self.slots.started(s.member, self.time.decision_time())
        cut_s = self._slot_cut_s(s)
        if s.finishing is not None:
            if self._idle_enough(s, now):
                self._end(s.finishing, acts)
        elif s.grace_until is not None and now >= s.grace_until:
            s.grace_until = None
            self._request_end("badge_removed", acts)
        elif cut_s is not None and cut_s <= 0:  # another member's slot starts now
            log.info("session %s ends: a booked slot of another member starts", s.id)
            self._request_end("timeout", acts)
        elif (cut_s is not None and not s.warned and self.policy.warn_before_s
              and cut_s <= self.policy.warn_before_s):
            s.warned = True
            log.info("session %s ends in %.0f s: another member's slot", s.id, cut_s)
            acts.append(SignalAction("warning"))
        elif s.deadline is not None and now >= s.deadline:
            self._request_end("timeout", acts)
        elif (s.deadline is not None and not s.warned and self.policy.warn_before_s
              and now >= s.deadline - self.policy.warn_before_s):
            s.warned = True
            log.info("session %s ends in %.0f s unless extended", s.id, s.deadline - now)
            acts.append(SignalAction("warning"))
        elif (self.has_activity and self.policy.idle_end_s and not self.busy
              and now - max(self.idle_since, s.started_mono) >= self.policy.idle_end_s):
            self._request_end("idle", acts)
        if self.session is None and self.draining:
            self.done = True
        return acts

    def shutdown(self, force: bool = False) -> list[Action]:
        """SIGTERM/SIGINT. A `when_idle` session finishes first unless `force` (second signal)."""
        acts: list[Action] = []
        s = self.session
        self.draining = True
        self._signoff = None
        self._pending = None
        if s is not None:
            if force or self.policy.power_off != "when_idle":
                self._end("shutdown", acts)
            elif s.finishing is None:
                log.info("stopping: waiting for the machine to be idle before switching off")
                self._request_end("shutdown", acts)
        if self.session is None:
            self._set_relay(False, acts)
            self.done = True
        return acts

    def fail(self) -> list[Action]:
        """The decision thread crashed: relay off, session ended as `shutdown`."""
        acts: list[Action] = []
        self._pending = None
        if self.session is not None:
            self._end("shutdown", acts)
        self._set_relay(False, acts)
        self.done = True
        return acts

    # ------------------------------------------------------------ internals

    def _emit(self, etype: str, data: dict[str, Any], *, checkpoint: dict[str, Any] | None = None,
              clear_checkpoint: bool = False) -> EmitAction:
        return EmitAction(etype, data, self.now_wall(), checkpoint, clear_checkpoint)

    def _set_relay(self, on: bool, acts: list[Action]) -> None:
        if self.relay != on:
            self.relay = on
            acts.append(RelayAction(on))

    def _deny(self, uid: str, reason: str, acts: list[Action]) -> None:
        log.debug("badge %s denied: %s", uid, reason)
        log.info("badge %s denied: %s", self._who(uid), reason)
        data: dict[str, Any] = {"uid": uid, "reason": reason}
        if reason == "booked" and self._booked_until is not None:
            data["until"] = format_ts(self._booked_until)
        acts.append(self._emit("badge.denied", data))
        acts.append(SignalAction("denied"))

    def _who(self, uid: str) -> str:
        """How INFO logs name a badge: its member id when listed, else a keyed hash (no UID)."""
        entry = self._entries.get(uid)
        if entry is not None:
            return f"{badge_tag(uid)} (member {entry.member})"
        return badge_tag(uid)

    def _session_data(self, s: Session) -> dict[str, Any]:
        return {"session": s.id, "uid": s.uid, "member": s.member}

    def _start(self, entry: BadgeEntry, acts: list[Action]) -> None:
        if self.actuator_confirms and not self.relay:
            self._pending = entry
            log.info("badge %s granted: waiting for the plug to confirm 'on'",
                     self._who(entry.uid))
            self._set_relay(True, acts)
            return
        self._begin(entry, acts)

    def _begin(self, entry: BadgeEntry, acts: list[Action]) -> None:
        now = self.clock.monotonic()
        s = Session(id=str(uuid.uuid4()), uid=entry.uid, member=entry.member, role=entry.role,
                    mode=self.policy.mode, started_wall=self.now_wall(), started_mono=now,
                    last_heartbeat=now, busy_since=now if self.busy else None,
                    energy_wh=0.0 if self._energy_total is not None else None)
        if self.policy.max_session_s:
            s.deadline = now + self.policy.max_session_s
        self.session = s
        self.slots.started(s.member, self.time.decision_time())
        log.debug("session %s started: badge %s", s.id, s.uid)
        log.info("session %s started: member %s, badge %s (%s mode)", s.id, s.member,
                 badge_tag(s.uid), s.mode)
        self._set_relay(True, acts)
        acts.append(self._emit("session.started", self._session_data(s),
                               checkpoint=self.checkpoint()))
        acts.append(SignalAction("granted"))

    def _slot_cut_s(self, s: Session) -> float | None:
        """Seconds until another member's booked slot ends this session (None: no such slot)."""
        now = self.time.decision_time()
        cut = self.slots.cut_at(s.member, s.started_wall, now)
        return None if cut is None else (cut - now).total_seconds()

    def _extend(self, s: Session, now: float, acts: list[Action]) -> None:
        cut_s = self._slot_cut_s(s)
        if cut_s is not None and cut_s <= (self.policy.warn_before_s or 0.0):
            log.info("session %s not extended: another member's slot starts in %.0f s", s.id,
                     cut_s)
            acts.append(SignalAction("denied"))
            return
        if self.policy.max_session_s:
            s.deadline = now + self.policy.max_session_s
        s.warned = False
        log.info("session %s extended", s.id)
        acts.append(SignalAction("extended"))

    def _idle_enough(self, s: Session, now: float) -> bool:
        if not self.has_activity:
            return True
        if self.busy:
            return False
        need = self.policy.idle_end_s or 0.0
        return now - self.idle_since >= need

    def _request_end(self, reason: str, acts: list[Action]) -> None:
        """End now, or, under `power_off: when_idle`, keep the relay on until the machine idles."""
        s = self.session
        if s is None:
            return
        now = self.clock.monotonic()
        if (reason in _SOFT_END and self.policy.power_off == "when_idle"
                and not self._idle_enough(s, now)):
            s.finishing = reason
            s.grace_until = None
            s.warned = False
            log.info("session %s finishing (%s): relay stays on until the machine is idle",
                     s.id, reason)
            return
        self._end(reason, acts)

    def _end(self, reason: str, acts: list[Action], *, relay_off: bool = True) -> None:
        s = self.session
        if s is None:
            return
        now = self.clock.monotonic()
        data = self._session_data(s)
        data.update(started=format_ts(s.started_wall), ended=format_ts(self.now_wall()),
                    duration_s=_r(now - s.started_mono), active_s=_r(s.active_s(now)),
                    reason=reason)
        if s.energy_wh is not None:
            data["energy_wh"] = round(s.energy_wh, 1)
        self.session = None
        log.info("session %s ended: %s after %.1f s (%.1f s active)", s.id, reason,
                 data["duration_s"], data["active_s"])
        if relay_off:
            self._set_relay(False, acts)
        acts.append(self._emit("session.ended", data, clear_checkpoint=True))


def credit_refusal(entry: BadgeEntry) -> str | None:
    """Paid use: a badge listed with `credit_ok: false` may not start a session (`no_credit`).

    Only starting is refused: a running session is never looked at again for its balance, so
    a list that arrives mid-session with `credit_ok: false` does not cut the machine."""
    return None if entry.credit_ok else "no_credit"


def _not_authorized(raw: dict[str, Any] | None) -> set[str]:
    """Badges the server lists with `"authorized": false` (an addition: listed, not trained)."""
    out: set[str] = set()
    if not raw or not isinstance(raw.get("badges"), list):
        return out
    for b in raw["badges"]:
        if isinstance(b, dict) and b.get("authorized") is False and isinstance(b.get("uid"), str):
            out.add(b["uid"])
    return out
