"""The shared broker fixture is a real Mosquitto that carries QoS 1 messages on loopback."""

from __future__ import annotations

import queue
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from fabpass.broker import MosquittoProcess


def test_real_broker_round_trip(mosquitto: MosquittoProcess) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    port = urlparse(mosquitto.url).port
    assert port is not None
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_message = lambda c, u, m: got.put(m.payload)
    sub.connect("127.0.0.1", port)
    sub.subscribe("t/x", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for _ in range(50):  # bounded: retry until the subscription is live
            pub.publish("t/x", b"hello", qos=1).wait_for_publish(2)
            try:
                assert got.get(timeout=0.2) == b"hello"
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("no message through the broker")
    finally:
        pub.loop_stop()
        sub.loop_stop()


def test_broker_dies_with_the_process_that_started_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A demo or test run that is SIGKILLed leaves no Mosquitto behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time\n"
            "from fabpass.broker import MosquittoProcess\n"
            "b = MosquittoProcess(data_dir=sys.argv[1]).start()\n"
            "print(b.proc.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            break
        # a zombie until its new parent reaps it: check the state
        try:
            with open(f"/proc/{broker_pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(broker_pid, signal.SIGKILL)
        raise AssertionError("mosquitto outlived the process that started it")
