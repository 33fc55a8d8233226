"""`fabpass node`: wires the state machine to GPIO, the reader, MQTT and durable storage.

Threads: the reader loop, paho's network loop, gpiozero's callbacks and (in
simulation) a stdin reader only put items on one queue; a single decision
thread takes them off, runs the state machine and carries out its actions.
The main thread only handles signals (enqueued too) and waits.

Fail-secure: the relay device starts off, and the relay is switched off and
the pins released on every way out, including an exception in the decision
thread (the process then exits non-zero so systemd restarts it).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import signal
import sys
import threading
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from gpiozero.exc import BadPinFactory

from badge_reader import (
    BadgeReaderError,
    ReaderEvent,
    ReaderLoop,
    SimLineError,
    SimReader,
    make_reader,
    parse_sim_line,
)
from controller.actuators import Actuator, Report, apply_reports, make_actuator
from controller.clock import Clock, SystemClock
from controller.hardware import Hardware
from controller.inbox import RelayFault, log_failed_message
from controller.resend import ResendSchedule
from controller.sdnotify import notify, watchdog_interval
from controller.session import (
    Action,
    EmitAction,
    NodeMachine,
    RelayAction,
    ResyncAction,
    SignalAction,
)
from controller.storage import AclStore, Outbox
from firmware_config.node_config import NodeConfig
from protocol import MAX_ACL_BYTES, AccessList, Ack, Command, Status, Topics, format_ts, load_object
from protocol.mqttclient import make_client, parse_mqtt_url

log = logging.getLogger(__name__)

TICK_S = 0.1  # timer resolution of the decision thread
CHECKPOINT_EVERY_S = 10.0
STATUS_EVERY_S = 300.0
EXIT_FAILURE = 70  # the decision thread crashed (EX_SOFTWARE)


def software_version() -> str:
    try:
        return version("fabpass")
    except PackageNotFoundError:
        return "0.0.0"


class NodeDaemon:
    """One node process. `run()` blocks until it stops and returns the exit code."""

    def __init__(self, cfg: NodeConfig, *, simulate: bool = False, clock: Clock | None = None,
                 stdin: TextIO | None = None, pin_factory: Any = None) -> None:
        self.cfg = cfg
        self.simulate = simulate
        # A simulated node is not a Pi: its clock is assumed synced (see docs/node.md).
        self.clock: Clock = clock or SystemClock((lambda: True) if simulate else None)
        self.stdin = stdin
        self.pin_factory = pin_factory
        self.software = software_version()
        self.boot = str(uuid.uuid4())
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        topics = Topics(cfg.topic_root)
        self.t_status = topics.status(cfg.site, cfg.node_id)
        self.t_event = topics.event(cfg.site, cfg.node_id)
        self.t_acl = topics.acl(cfg.site, cfg.node_id)
        self.t_ack = topics.ack(cfg.site, cfg.node_id)
        self.t_cmd = topics.cmd(cfg.site, cfg.node_id)
        self.exit_code = 0
        self.hardware: Hardware | None = None
        self.actuator: Actuator | None = None
        self.outbox: Outbox | None = None
        self.acl_store: AclStore | None = None
        self.machine: NodeMachine | None = None
        self.client: mqtt.Client | None = None
        self.reader: Any = None
        self.reader_loop: ReaderLoop | None = None
        self.connected = False
        self._signals = 0
        self._resends = ResendSchedule()  # controller/resend.py
        self._last_status: dict[str, Any] | None = None
        self._last_status_at = -math.inf
        self._last_checkpoint = -math.inf
        self._last_locked: bool | None = None
        self._last_info: mqtt.MQTTMessageInfo | None = None
        self._watchdog = watchdog_interval()
        self._last_watchdog = -math.inf
        self._backlog = 0  # events in the outbox not yet acked (the status's `backlog`)
        self._clock_ok: bool | None = None

    # ------------------------------------------------------------ life cycle

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        try:
            self._setup()
            thread = threading.Thread(target=self._decide, name="decision")
            thread.start()
            while thread.is_alive():
                thread.join(0.2)
        except BadPinFactory as exc:
            log.error("no GPIO available (%s): is this a Raspberry Pi with gpiozero's pin "
                      "library installed? Use --simulate to run without GPIO.", exc)
            self.exit_code = 1
        except BadgeReaderError as exc:
            log.error("badge reader unavailable: %s", exc)
            self.exit_code = 1
        except Exception:
            log.exception("node failed to start")
            self.exit_code = 1
        finally:
            self._teardown()
        return self.exit_code

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.queue.put(("signal", signum))

    def _setup(self) -> None:
        cfg = self.cfg
        self.hardware = Hardware(cfg.gpio, pin_factory=self.pin_factory, simulate=self.simulate,
                                 on_activity=lambda busy: self.queue.put(("activity", busy)))
        log.info("node %s (site %s) starting, software %s, boot %s; relay off", cfg.node_id,
                 cfg.site, self.software, self.boot)
        store = Path(cfg.storage.dir)
        store.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(store / "outbox.db")
        self.acl_store = AclStore(store)
        self.actuator = make_actuator(cfg, self.hardware, self.clock, self.queue.put)
        self.machine = NodeMachine(cfg.node_id, cfg.site, cfg.session, self.clock,
                                   has_activity=(cfg.gpio.activity is not None
                                                 or self.actuator.power_activity))
        # A plug's state is unknown until it speaks: refuse sessions until then.
        self.machine.actuator_confirms = self.actuator.confirms
        self.machine.actuator_ready = not self.actuator.confirms
        self.reader = make_reader(cfg.reader, simulate=self.simulate, pin_factory=self.pin_factory)
        self.reader_loop = ReaderLoop(self.reader, lambda ev: self.queue.put(("reader", ev)),
                                      rate_hz=cfg.reader.poll_hz,
                                      miss_tolerance=cfg.reader.miss_tolerance)
        self.actuator.start()
        self._setup_mqtt()
        self.reader_loop.start()
        if self.simulate:
            threading.Thread(target=self._read_stdin, name="sim-stdin", daemon=True).start()

    def _setup_mqtt(self) -> None:
        m = self.cfg.mqtt
        target = parse_mqtt_url(m.url)
        client = make_client(f"fabpass-node-{self.cfg.node_id}", target, protocol=m.protocol,
                             username=m.username, password=m.password, tls_ca=m.tls_ca,
                             tls_cert=m.tls_cert, tls_key=m.tls_key)
        client.will_set(self.t_status, Status.last_will(self.cfg.node_id).encode(), qos=1,
                        retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        log.info("MQTT %s (protocol %s) as fabpass-node-%s", target, m.protocol, self.cfg.node_id)
        client.connect_async(target.host, target.port, keepalive=m.keepalive_s)
        client.loop_start()

    def _teardown(self) -> None:
        notify("STOPPING=1")
        if self.reader_loop is not None:
            self.reader_loop.stop()
        if self.actuator is not None:
            self.actuator.close()
        client = self.client
        if client is not None:
            try:
                if self.connected:
                    info = client.publish(self.t_status,
                                          Status.last_will(self.cfg.node_id).encode(), qos=1,
                                          retain=True)
                    info.wait_for_publish(2.0)
                client.disconnect()
            except Exception:
                log.debug("MQTT disconnect failed", exc_info=True)
            client.loop_stop()
        if self.reader is not None:
            try:
                self.reader.close()
            except Exception:
                log.debug("reader close failed", exc_info=True)
        if self.hardware is not None:
            self.hardware.close()
        if self.outbox is not None:
            self.outbox.close()
        log.info("node %s stopped (exit code %d)", self.cfg.node_id, self.exit_code)

    # ------------------------------------------------------------ thread inputs

    def _read_stdin(self) -> None:
        stream = self.stdin if self.stdin is not None else sys.stdin
        for line in stream:
            try:
                cmd = parse_sim_line(line)
            except SimLineError as exc:
                log.warning("ignored simulation line: %s", exc)
                continue
            if cmd is None:
                continue
            if cmd.action == "busy":
                self.queue.put(("busy", bool(cmd.busy)))
            elif isinstance(self.reader, SimReader):
                self.reader.apply(cmd)
        log.debug("simulation stdin closed")

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.subscribe([(self.t_acl, 1), (self.t_ack, 1), (self.t_cmd, 1)])
        self.queue.put(("connected", None))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.queue.put(("disconnected", str(reason_code)))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.queue.put(("mqtt", (message.topic, bytes(message.payload), bool(message.retain))))
        except Exception:  # never let one message break paho's network thread
            log.exception("could not queue a message")

    # ------------------------------------------------------------ decision thread

    def _decide(self) -> None:
        machine = self.machine
        assert machine is not None
        try:
            self._boot()
            next_tick = 0.0
            while not machine.done:
                now = self.clock.monotonic()
                try:
                    item = self.queue.get(timeout=max(0.0, next_tick - now))
                except queue.Empty:
                    item = None
                if item is not None:
                    self._handle(*item)
                now = self.clock.monotonic()
                if now >= next_tick:
                    self._apply(machine.tick())
                    self._actuator_tick()
                    self._housekeeping(now)
                    next_tick = now + TICK_S
                self._publish_status()
            self._publish_status()
        except Exception:
            log.exception("decision thread failed: relay off, ending the session, exiting")
            self.exit_code = EXIT_FAILURE
            if self.actuator is not None:
                self.actuator.off_now()
            try:
                self._apply(machine.fail())
            except Exception:
                log.exception("could not record the end of the session")

    def _boot(self) -> None:
        machine, outbox, store, hw = self.machine, self.outbox, self.acl_store, self.hardware
        assert machine and outbox and store and hw
        machine.raise_floor(outbox.last_ts())
        machine.cmd_locked = outbox.get_meta("locked") == "1"
        self._last_locked = machine.cmd_locked
        checkpoint = outbox.load_checkpoint()
        if checkpoint is not None:
            actions = machine.recover(checkpoint)
            if not actions:
                outbox.clear_checkpoint()
            self._apply(actions)
        cached = store.load()
        if cached is not None:
            acl, raw = cached
            problem = machine.acl_mismatch(acl)
            if problem:
                log.error("cached access list ignored: %s", problem)
            else:
                self._apply(machine.load_acl(acl, raw))
        self._apply(machine.activity(hw.busy()))
        self._backlog = outbox.count()
        log.info("node ready: state %s, %d event(s) waiting for an ack", machine.state,
                 self._backlog)
        notify("READY=1")

    def _handle(self, kind: str, payload: Any) -> None:
        machine = self.machine
        assert machine is not None
        if kind == "reader":
            ev: ReaderEvent = payload
            log.debug("reader: %s %s", ev.uid, ev.kind)
            if ev.kind == "placed":
                self._apply(machine.badge_placed(ev.uid))
            else:
                self._apply(machine.badge_removed(ev.uid))
        elif kind == "activity":
            self._apply(machine.activity(bool(payload)))
        elif kind == "busy":
            assert self.hardware is not None
            if not self.hardware.drive_activity(bool(payload)):
                log.warning("'busy' ignored: this node has no activity input ([gpio] activity)")
        elif kind == "mqtt":
            self._handle_isolated(*payload)
        elif kind == "plug":
            assert self.actuator is not None
            try:  # per-message isolation, like every received message (docs/node.md)
                reports = self.actuator.handle(payload)
            except Exception as exc:
                log.warning("plug message dropped (%s: %s)", type(exc).__name__, exc)
            else:
                self._actuate(reports)
        elif kind == "connected":
            self.connected = True
            log.info("MQTT connected")
            self._last_status = None  # republish now
            self._resend(force=True)
        elif kind == "disconnected":
            if self.connected:
                log.warning("MQTT disconnected (%s); working offline", payload)
            self.connected = False
        elif kind == "signal":
            self._signals += 1
            force = self._signals > 1
            log.info("signal %s: %s", payload,
                     "stopping now" if force else "stopping (a second signal cuts at once)")
            self._apply(machine.shutdown(force=force))

    def _handle_isolated(self, topic: str, payload: bytes, retained: bool) -> None:
        """One received message, whatever it holds, is handled or logged and dropped.

        Per-message isolation (docs/node.md): a decoder error, a wrong type, a handler bug,
        a storage error while applying it — the message is ignored and the node goes on
        gating and listening. Only a failure to drive the relay is not swallowed: the
        decision thread then stops the node fail-secure (relay off, exit 70).
        """
        try:
            self._handle_message(topic, payload, retained)
        except RelayFault:
            raise
        except Exception as exc:
            log_failed_message(log, topic, payload, retained, exc)

    def _handle_message(self, topic: str, payload: bytes, retained: bool) -> None:
        machine, outbox = self.machine, self.outbox
        assert machine and outbox
        if topic == self.t_acl:
            if not payload:
                log.info("empty retained access list on %s ignored", topic)
                return
            raw = load_object(payload, "acl", max_bytes=MAX_ACL_BYTES)
            acl = AccessList.decode(raw)
            problem = machine.acl_mismatch(acl)
            if problem:
                log.warning("ignoring access list on %s: %s", topic, problem)
                return
            accepted, actions = machine.offer_acl(acl, raw, fresh=not retained)
            if accepted:
                assert self.acl_store is not None
                try:
                    self.acl_store.save(payload)
                except OSError as exc:  # keep deciding with the list in memory
                    log.error("could not cache access list version %s: %s", acl.version, exc)
                self._apply(actions)
        elif topic == self.t_ack:
            ack = Ack.decode(payload)
            done = outbox.acknowledge(ack.ids + ack.rejected)
            self._resends.acked(ack.ids + ack.rejected, self.clock.monotonic())
            self._backlog = outbox.count()
            if ack.rejected:
                log.warning("server rejected %d event(s) %s%s (kept in its dead-letter "
                            "record)", len(ack.rejected), ", ".join(ack.rejected[:5]),
                            ", …" if len(ack.rejected) > 5 else "")
            log.debug("ack: %d event(s) done, %d waiting", done, self._backlog)
        elif topic == self.t_cmd:
            if not payload:
                return
            self._apply(machine.command(Command.decode(payload)))
        else:
            log.warning("message on unexpected topic %s ignored", topic)

    def _apply(self, actions: list[Action]) -> None:
        hw, outbox = self.hardware, self.outbox
        assert hw and outbox
        for act in actions:
            if isinstance(act, RelayAction):
                assert self.actuator is not None
                try:
                    reports = self.actuator.set(act.on)
                except Exception as exc:
                    raise RelayFault(f"could not switch the relay {'on' if act.on else 'off'}") \
                        from exc
                self._actuate(reports)
            elif isinstance(act, EmitAction):
                event = outbox.add(node=self.cfg.node_id, boot=self.boot, etype=act.type,
                                   data=act.data, ts=act.ts, checkpoint=act.checkpoint,
                                   clear_checkpoint=act.clear_checkpoint)
                self._backlog += 1
                if act.checkpoint is not None:
                    self._last_checkpoint = self.clock.monotonic()
                log.debug("event %s #%d %s", event.type, event.seq, event.id)
                self._publish_event(event.id, event.encode())
            elif isinstance(act, SignalAction):
                try:
                    hw.signal(act.pattern)
                except Exception:  # feedback is best effort; never stop a decision for it
                    log.exception("signal %s failed", act.pattern)
            elif isinstance(act, ResyncAction):
                self._last_status = None
                self._resend(force=True)

    def _actuate(self, reports: list[Report]) -> None:
        """What the actuator reported, as state-machine inputs (docs/actuators.md)."""
        if reports:
            assert self.machine is not None
            self._apply(apply_reports(self.machine, reports, self.cfg.actuator.device))

    def _actuator_tick(self) -> None:
        machine, actuator = self.machine, self.actuator
        assert machine is not None and actuator is not None
        # `when_idle` and busy: the plug must not cut the machine by itself (a print).
        protect = machine.policy.power_off == "when_idle" and machine.busy
        self._actuate(actuator.tick(protect))

    # ------------------------------------------------------------ MQTT output

    def _publish_event(self, event_id: str, payload: bytes) -> None:
        if not self.connected or self.client is None:
            return
        info = self.client.publish(self.t_event, payload, qos=1)
        self._last_info = info
        self._resends.sent(event_id, self.clock.monotonic())

    def _resend(self, *, force: bool = False) -> None:
        """Publish the unacked events: all of them on (re)connect, else those unacked for a while."""
        outbox = self.outbox
        assert outbox is not None
        now = self.clock.monotonic()
        if not self.connected:
            return
        due = self._resends.due(outbox.pending(), now, force=force)
        if due:
            log.info("sending %d unacked event(s)", len(due))
            for event_id, payload in due:
                self._publish_event(event_id, payload)
        self._resends.round_done(now, resent=bool(due), force=force)

    def _publish_status(self) -> None:
        machine, client = self.machine, self.client
        assert machine is not None
        fields = machine.status_fields()
        fields["backlog"] = self._backlog
        now = self.clock.monotonic()
        if fields["clock_ok"] != self._clock_ok:
            if self._clock_ok is not None or not fields["clock_ok"]:
                (log.info if fields["clock_ok"] else log.warning)(
                    "clock_ok %s (system clock %s s from the access list's time, synced: %s)",
                    fields["clock_ok"], _fmt_skew(machine.time.skew_s()),
                    self.clock.synced())
            self._clock_ok = fields["clock_ok"]
        if machine.cmd_locked != self._last_locked and self.outbox is not None:
            self.outbox.set_meta("locked", "1" if machine.cmd_locked else "0")
            self._last_locked = machine.cmd_locked
        if fields == self._last_status and now - self._last_status_at < STATUS_EVERY_S:
            return
        if self._last_status is None or fields["state"] != self._last_status.get("state"):
            log.info("state %s", fields["state"])
        self._last_status = fields
        if not self.connected or client is None:
            return
        body = {"v": 1, "node": self.cfg.node_id, "online": True, **fields,
                "software": self.software, "ts": format_ts(machine.now_wall())}
        client.publish(self.t_status, json.dumps(body, separators=(",", ":")).encode(), qos=1,
                       retain=True)
        self._last_status_at = now

    def _housekeeping(self, now: float) -> None:
        machine, outbox = self.machine, self.outbox
        assert machine and outbox
        if self.connected and self._resends.is_due(now):
            self._resend()
        if machine.session is not None and now - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            checkpoint = machine.checkpoint()
            if checkpoint is not None:
                outbox.save_checkpoint(checkpoint)
            self._last_checkpoint = now
        if self._watchdog and now - self._last_watchdog >= self._watchdog:
            notify("WATCHDOG=1")
            self._last_watchdog = now


def _fmt_skew(skew: float | None) -> str:
    return "?" if skew is None else f"{skew:+.0f}"
