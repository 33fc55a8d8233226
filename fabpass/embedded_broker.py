"""A pure-Python MQTT 3.1.1 broker (amqtt) for the demo when Mosquitto is not installed.

It runs in a thread with its own asyncio loop so the demo's main thread stays
free for signals. It speaks MQTT 3.1.1 only: nodes and the server must be told
to use protocol "3.1.1" when it is in use (`EmbeddedBroker.protocol`).
amqtt is an optional dependency (`pip install 'fabpass[demo]'`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from fabpass.broker import BrokerError, free_port

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt listening on 127.0.0.1:`port`, anonymous, no persistence."""

    protocol = "3.1.1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        try:
            import amqtt.broker  # noqa: F401
        except ImportError as exc:
            raise BrokerError(
                "neither mosquitto nor amqtt is installed: apt-get install mosquitto, "
                "or pip install 'fabpass[demo]'"
            ) from exc
        # amqtt logs every packet at INFO; the demo is not about the broker.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            self.stop()
            raise BrokerError(f"the embedded broker did not start: {self._error}")
        return self  # Broker.start() returns once its listener is bound

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_broker())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_broker(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._broker = Broker(config)
        await self._broker.start()

    def stop(self, timeout: float = 5.0) -> None:
        loop, broker = self._loop, self._broker
        if loop is not None and loop.is_running():
            if broker is not None:
                fut = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
                try:
                    fut.result(timeout)
                except Exception as exc:  # shutting down anyway
                    log.debug("embedded broker shutdown: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._broker = None

    def cleanup(self) -> None:
        self.stop()
