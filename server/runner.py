"""What `fabpass server` and `fabpass ingest` run.

`fabpass server` = waitress serving `create_app()` (≥ 8 threads) plus exactly
one ingest and one access-list publisher as threads of the same process,
sharing one MQTT connection. `fabpass ingest` runs the ingest alone (several
of them can share the event load through MQTT 5 shared subscriptions).
SIGTERM/SIGINT stop everything cleanly: the batch in hand is committed and
acknowledged, the MQTT session is kept by the broker.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from sqlalchemy import Engine

from protocol import Topics
from server.db import check_migrated, make_engine, make_sessionmaker, writer_engine
from server.jobs import (
    AlertJob,
    BookingWindow,
    FabmanagerSync,
    Housekeeping,
    MailSender,
    RollupRefresher,
    WebhookSender,
)
from server.messaging.ingest import Ingest
from server.messaging.link import MqttLink, MqttSettings
from server.messaging.publisher import AclPublisher

log = logging.getLogger(__name__)

SHARE_GROUP = "fabpass"


@dataclass
class CoreOptions:
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic_root: str = "fabpass"
    client_id: str = "fabpass-server"
    protocol: str = "5"
    ingest: bool = True
    publisher: bool = True
    shared: bool = False        # events through `$share/fabpass/...`
    statuses: bool = True       # also follow node statuses
    acl_valid_for: timedelta = timedelta(days=7)
    batch_max: int = 500
    batch_ms: float = 20.0
    housekeeping_delay_s: float = 60.0  # first daily privacy job after start
    rollup_interval_s: float = 10.0  # report roll-ups refreshed in the background
    smtp_url: str = ""  # FABPASS_SMTP_URL; empty: mails wait in the queue
    mail_from: str = "fabpass@localhost"
    webhook_allow_hosts: tuple[str, ...] = ()
    alert_offline_s: float = 600.0
    public_url: str = "http://localhost:8000"
    fabmanager_sync_min: float = 0.0  # 0: the Fab-manager schedule is off

    @classmethod
    def from_settings(cls, settings: dict[str, Any], **overrides: Any) -> CoreOptions:
        env = os.environ
        opts = cls(
            mqtt_url=settings.get("MQTT_URL") or cls.mqtt_url,
            topic_root=settings.get("TOPIC_ROOT") or cls.topic_root,
            client_id=env.get("FABPASS_MQTT_CLIENT_ID", cls.client_id),
            protocol="311" if env.get("FABPASS_MQTT_PROTOCOL", "5") in ("3", "311", "3.1.1")
            else "5",
            acl_valid_for=timedelta(days=float(env.get("FABPASS_ACL_VALID_DAYS", "7"))),
            rollup_interval_s=float(env.get("FABPASS_ROLLUP_INTERVAL_S", "10")),
            smtp_url=settings.get("SMTP_URL") or "",
            mail_from=settings.get("MAIL_FROM") or cls.mail_from,
            webhook_allow_hosts=tuple(settings.get("WEBHOOK_ALLOW_HOSTS") or ()),
            alert_offline_s=float(settings.get("ALERT_NODE_OFFLINE_S") or cls.alert_offline_s),
            public_url=settings.get("PUBLIC_URL") or cls.public_url,
            fabmanager_sync_min=float(settings.get("FABMANAGER_SYNC_MINUTES") or 0),
        )
        for key, value in overrides.items():
            setattr(opts, key, value)
        return opts


class ServerCore:
    """The MQTT side of the server: one connection, an ingest and/or a publisher."""

    def __init__(self, engine: Engine, options: CoreOptions) -> None:
        self.options = options
        # One writer at a time on SQLite: take the write lock at BEGIN, not half-way.
        writer = writer_engine(engine)
        self.sessions = make_sessionmaker(writer)
        self.topics = Topics(options.topic_root)
        self.link = MqttLink(MqttSettings(url=options.mqtt_url, client_id=options.client_id,
                                          protocol=options.protocol))
        self.ingest: Ingest | None = None
        self.publisher: AclPublisher | None = None
        self.housekeeping: Housekeeping | None = None
        self.rollups: RollupRefresher | None = None
        self.booking_window: BookingWindow | None = None
        self.mail: MailSender | None = None
        self.webhooks: WebhookSender | None = None
        self.alerts: AlertJob | None = None
        self.fabmanager: FabmanagerSync | None = None
        if options.ingest:
            self.ingest = Ingest(self.sessions, self.topics, self.link,
                                 batch_max=options.batch_max, batch_ms=options.batch_ms)
            self.ingest.attach(shared_group=SHARE_GROUP if options.shared else None,
                               statuses=options.statuses)
        if options.publisher:
            self.publisher = AclPublisher(self.link, self.sessions, self.topics,
                                          valid_for=options.acl_valid_for,
                                          readers=make_sessionmaker(engine))
            self.housekeeping = Housekeeping(self.sessions,
                                             first_delay_s=options.housekeeping_delay_s)
            self.rollups = RollupRefresher(self.sessions, interval_s=options.rollup_interval_s)
            self.booking_window = BookingWindow(self.sessions)
            self.mail = MailSender(self.sessions, options.smtp_url, options.mail_from)
            self.webhooks = WebhookSender(self.sessions, list(options.webhook_allow_hosts))
            self.alerts = AlertJob(self.sessions, offline_after_s=options.alert_offline_s,
                                   public_url=options.public_url)
            if options.fabmanager_sync_min > 0:
                self.fabmanager = FabmanagerSync(self.sessions, options.fabmanager_sync_min * 60)

    def start(self) -> None:
        if self.ingest:
            self.ingest.start()
        if self.publisher:
            self.publisher.start()
        if self.housekeeping:
            self.housekeeping.start()
        if self.rollups:
            self.rollups.start()
        if self.booking_window:
            self.booking_window.start()
        if self.mail:
            self.mail.start()
        if self.webhooks:
            self.webhooks.start()
        if self.alerts:
            self.alerts.start()
        if self.fabmanager:
            self.fabmanager.start()
        self.link.start()
        log.info("MQTT core started (%s, client id %s, ingest=%s, publisher=%s, shared=%s)",
                 self.link.target, self.options.client_id, bool(self.ingest),
                 bool(self.publisher), self.options.shared)

    def stop(self, *, forget_session: bool = False) -> None:
        if self.booking_window:
            self.booking_window.stop()
        if self.mail:
            self.mail.stop()
        if self.webhooks:
            self.webhooks.stop()
        if self.alerts:
            self.alerts.stop()
        if self.fabmanager:
            self.fabmanager.stop()
        if self.rollups:
            self.rollups.stop()
        if self.housekeeping:
            self.housekeeping.stop()
        if self.publisher:
            self.publisher.stop()
        if self.ingest:
            self.ingest.stop()
        self.link.stop(forget_session=forget_session)
        if self.ingest:
            log.info("ingest stopped: %s", self.ingest.stats.as_dict())


def _install_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_server(host: str, port: int, *, threads: int = 8, shared: bool = False) -> None:
    """`fabpass server`: the web UI/API under waitress plus the MQTT core (blocks).

    `shared`: the server's ingest is one member of the shared subscription (it still follows
    node statuses, like worker 0), so extra `fabpass ingest --shared` workers take load off it.
    """
    from waitress.server import create_server

    from server.app import create_app

    app = create_app()  # refuses to start without FABPASS_SECRET_KEY
    engine: Engine = app.extensions["fabpass.engine"]
    check_migrated(engine)  # names `fabpass db upgrade`
    core = ServerCore(engine, CoreOptions.from_settings(app.config, shared=shared))
    wsgi = create_server(app, host=host, port=port, threads=max(threads, 8))

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        raise SystemExit(0)  # waitress's loop catches it and shuts its workers down

    core.start()
    _install_signals(_stop)
    log.info("fabpass server on http://%s:%s", host, wsgi.effective_port)  # type: ignore[union-attr]
    try:
        wsgi.run()
    finally:
        wsgi.close()
        core.stop()
        engine.dispose()
        log.info("fabpass server stopped")


def run_ingest(settings: dict[str, Any], *, worker: int | None = None, shared: bool = False,
               client_id: str | None = None, publisher: bool = False,
               stop: threading.Event | None = None) -> None:
    """`fabpass ingest`: the ingest alone (blocks until SIGTERM/SIGINT or `stop`)."""
    engine = make_engine(settings["DATABASE_URL"])
    check_migrated(engine)
    if client_id is None:
        base = os.environ.get("FABPASS_MQTT_CLIENT_ID", "fabpass-ingest")
        client_id = base if worker is None else f"{base}-{worker}"
    # Worker 0 (or a lone ingest) follows statuses: retained messages are not sent to shared
    # subscriptions, and one follower is enough.
    statuses = not shared or not worker
    core = ServerCore(engine, CoreOptions.from_settings(
        settings, client_id=client_id, shared=shared, publisher=publisher, statuses=statuses))
    stop = stop or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        _install_signals(_stop)
    core.start()
    try:
        stop.wait()
    finally:
        core.stop()
        engine.dispose()


__all__ = ["CoreOptions", "ServerCore", "run_ingest", "run_server"]
