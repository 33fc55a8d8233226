"""The physical limit of the ingest path: raw broker QoS 1 throughput, paho → Mosquitto → paho.

One paho publisher (this process, manual loop, 100 in flight) and one paho
subscriber (a child process, as the server is), QoS 1 both ways, payloads of
the size of a real event. Nothing is decoded or stored: it is the most any
MQTT ingest written with paho could reach on this machine.

Run as a child: `python -m bench.mqtt_raw URL TOPIC IDLE_S MAX_S` prints one
JSON line `{"count": N, "first": t, "last": t}` (perf_counter seconds).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import PYTHON, REPO, BenchError, bench_env, wait_for
from protocol.mqttclient import make_client, parse_mqtt_url


def subscriber_main(url: str, topic: str, idle_s: float, max_s: float) -> None:
    target = parse_mqtt_url(url)
    client = make_client("bench-raw-sub", target, protocol="5")
    state: dict[str, Any] = {"count": 0, "first": None, "last": None, "cpu0": None, "cpu1": None}

    def on_connect(c: mqtt.Client, *_a: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(*_a: Any) -> None:
        print("ready", flush=True)

    def on_message(_c: mqtt.Client, _u: Any, _m: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        if state["first"] is None:
            state["first"] = now
            state["cpu0"] = time.process_time()
        state["last"] = now
        state["count"] += 1
        if state["count"] % 100 == 0:
            state["cpu1"] = time.process_time()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(target.host, target.port, keepalive=60)
    start = time.perf_counter()
    # paho's loop() reads one packet per select() for a pure subscriber; read until drained
    # (at most 500 packets per wake-up) so the limit measured is the broker's and paho's parsing.
    while True:
        sock = client.socket()
        if sock is None:
            break
        wlist = [sock] if client.want_write() else []
        readable, writable, _ = select.select([sock], wlist, [], 0.1)
        if readable:
            for _ in range(500):
                before = state["count"]
                client.loop_read()
                if state["count"] == before and not client.want_write():
                    break
        if writable or client.want_write():
            client.loop_write()
        client.loop_misc()
        now = time.perf_counter()
        if now - start > max_s:
            break
        if state["last"] is not None and now - state["last"] > idle_s:
            break
    client.disconnect()
    print(json.dumps(state), flush=True)


def measure(url: str, payload: bytes, duration: float, tmp: Path) -> dict[str, float]:
    """Publish for `duration` s; return what the subscriber saw (count, rate in msg/s)."""
    topic = "bench/raw/event"
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.mqtt_raw", url, topic, str(min(2.0, max(0.5, duration / 2))),
         str(duration + 30)],
        env=bench_env(), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            proc.kill()
            _out, err = proc.communicate()
            raise BenchError("the raw subscriber did not subscribe: "
                             + err.decode(errors="replace")[-500:])
        target = parse_mqtt_url(url)
        pub = make_client("bench-raw-pub", target, protocol="5")
        outstanding = [0]
        connected = [False]

        def on_connect(*_a: Any) -> None:
            connected[0] = True

        def on_publish(*_a: Any) -> None:
            outstanding[0] -= 1

        pub.on_connect = on_connect
        pub.on_publish = on_publish
        pub.connect(target.host, target.port, keepalive=60)
        wait_for(lambda: pub.loop(0.05) is not None and connected[0], 10, "raw publisher connect")
        sent = 0
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            while outstanding[0] < 200:
                pub.publish(topic, payload, qos=1)
                outstanding[0] += 1
                sent += 1
            pub.loop(0.01)
        deadline = time.perf_counter() + 30
        while outstanding[0] > 0 and time.perf_counter() < deadline:
            pub.loop(0.01)
        pub.disconnect()
        out, err = proc.communicate(timeout=duration + 60)
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        if not lines:
            raise BenchError("the raw subscriber printed nothing: " + err.decode()[-500:])
        state = json.loads(lines[-1])
        span = (state["last"] or 0) - (state["first"] or 0)
        cpu = (state["cpu1"] or 0.0) - (state["cpu0"] or 0.0)
        per_cpu = (state["count"] // 100 * 100) / cpu if cpu > 0 else 0.0
        return {"sent": sent, "count": state["count"],
                "rate": state["count"] / span if span > 0 else 0.0,
                "per_cpu_s": per_cpu}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    subscriber_main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
