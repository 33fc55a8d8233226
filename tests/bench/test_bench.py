"""The benchmark harness: result shape, docs block, the simulated fleet, and a quick CLI run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bench import docs
from bench.common import REPO, Result, bench_env, machine_info, percentile
from bench.fleet import Fleet
from bench.mqtt_raw import measure
from fabpass.broker import MosquittoProcess
from protocol import Ack, Event, Topics
from protocol.mqttclient import make_client, parse_mqtt_url

VALUE_KEYS = {"bench", "metric", "value", "unit", "goal", "limit", "ratio"}


def check_row(row: dict[str, Any]) -> None:
    assert isinstance(row.get("bench"), str) and row["bench"]
    if "error" in row:
        assert isinstance(row["error"], str) and row["error"]
        return
    assert VALUE_KEYS <= set(row), row
    assert isinstance(row["value"], (int, float))
    assert isinstance(row["unit"], str)
    if row["limit"] is not None and row["limit"] != 0:
        assert row["ratio"] == pytest.approx(row["value"] / row["limit"], rel=1e-2)


def test_percentile_is_an_observed_value() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([5.0, 1.0], 100) == 5.0


def test_result_ratio_goal_and_shape() -> None:
    latency = Result("x", "p99", 2.0, "ms", goal=1.0, limit=0.5)
    assert latency.ratio == 4.0 and latency.ok is False
    rate = Result("x", "rate", 6000.0, "events/s", goal=5000.0, goal_op=">=", limit=8000.0)
    assert rate.ok is True and rate.ratio == 0.75
    for r in (latency, rate, Result("x", "m", None, "", error="not available: y")):
        check_row(r.to_dict())
    assert Result("x", "m", 1.0, "ms").to_dict()["ratio"] is None


def test_a_goal_on_the_ratio_is_met_by_the_ratio_and_shown_as_such() -> None:
    """Issue 21's per-CPU goal is "≥ 0.40 × the raw subscriber's messages per CPU-second": the
    value (thousands of events/CPU-s) is compared through its ratio, and the table says so."""
    met = Result("ingest", "per_cpu", 8000.0, "events/CPU-s", goal=0.40, goal_op=">=",
                 goal_on="ratio", limit=16000.0)
    missed = Result("ingest", "per_cpu", 3000.0, "events/CPU-s", goal=0.40, goal_op=">=",
                    goal_on="ratio", limit=16000.0)
    assert met.ok is True and missed.ok is False
    assert Result("x", "m", 1.0, "u", goal=0.4, goal_on="ratio").ok is None  # no limit: no verdict
    cells = docs._cells(missed.to_dict())
    assert cells[1] == "≥ 0.4 × limit" and cells[4] == "0.188" and cells[5] == "**no**"
    assert docs._cells(met.to_dict())[5] == "yes"


def test_ingest_rows_carry_issue_21_goals() -> None:
    from bench.server_bench import _ingest_results

    r = {"rate": 6000.0, "raw": {"rate": 12000.0, "per_cpu_s": 16000.0}, "published": 1000,
         "acked": 1000, "rejected": 0, "resent": 0, "unacked_left": 0, "missing": 0,
         "extra_rows": 0, "dead_letters": 0, "dead_letter_reasons": {}, "sessions": 1,
         "payload_bytes": 300, "server_cpu_ms_per_event": 0.1, "events_per_server_cpu_s": 7000.0,
         "broker_cpu_ms_per_event": 0.05, "generator_cores": 0.5, "window_s": 60.0,
         "p99_ms": 10.0}
    rows = {res.metric: res for res in _ingest_results("postgresql", r)}
    assert rows["postgresql_events_per_s"].goal == 5000.0
    ratio = rows["postgresql_ratio_to_raw"]
    assert (ratio.goal, ratio.goal_op, ratio.ok) == (0.45, ">=", True)  # 0.5
    per_cpu = rows["postgresql_events_per_cpu_s"]
    assert (per_cpu.goal, per_cpu.goal_on, per_cpu.ok) == (0.40, "ratio", True)  # 7000/16000
    r["events_per_server_cpu_s"], r["rate"] = 6000.0, 5000.0
    low = _ingest_results("sqlite", r)
    assert low[1].ok is False and low[2].ok is False  # 0.417 < 0.45, 0.375 < 0.40


def test_write_docs_replaces_only_the_generated_block(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    info = machine_info()
    rows = [Result("ingest", "rate", 4000.0, "events/s", goal=5000.0, goal_op=">=",
                   limit=8000.0, label="ingest").to_dict(),
            {"bench": "web", "error": "not available: no server"}]
    docs.write(rows, info, path=path)
    text = path.read_text()
    assert "## Reports" in text and docs.START in text and "| ingest | ≥ 5,000 events/s |" in text
    path.write_text(text + "reports figures written by someone else\n")
    docs.write([Result("ingest", "rate", 6000.0, "events/s", goal=5000.0, goal_op=">=",
                       label="ingest").to_dict()], info, path=path)
    text = path.read_text()
    assert "reports figures written by someone else" in text
    assert "6,000 events/s" in text and "4,000 events/s" not in text
    assert text.count(docs.START) == 1 and str(info["nproc"]) in text


class AckingServer:
    """The test acts as the server: it acks every event it receives, except the first
    delivery of the very first one (so the fleet must resend it)."""

    def __init__(self, url: str) -> None:
        target = parse_mqtt_url(url)
        self.topics = Topics()
        self.seen: list[str] = []
        self.dropped: str | None = None
        self.subscribed = threading.Event()
        self.client = make_client("bench-test-server", target, protocol="5")
        self.client.on_connect = lambda c, *a: c.subscribe(self.topics.wildcard("event"), qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        event = Event.decode(msg.payload)  # real payloads: the strict decoder accepts them
        self.seen.append(event.id)
        if self.dropped is None:
            self.dropped = event.id
            return
        parts = self.topics.parse(msg.topic)
        self.client.publish(self.topics.ack(parts.site, parts.node),
                            Ack(ids=[event.id]).encode(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.broker
def test_fleet_publishes_real_events_and_resends_unacked(mosquitto: MosquittoProcess) -> None:
    server = AckingServer(mosquitto.url)
    fleet = Fleet(mosquitto.url, "lab", ["n1", "n2", "n3"], [(1, "04A1B2C3"), (2, "04112233445566")],
                  resend_after=0.5)
    try:
        fleet.connect()
        stats = fleet.run(0.6, rate=100.0, drain_timeout=10.0)
    finally:
        fleet.close()
        server.close()
    assert stats.published == len(fleet.ids) == len(set(fleet.ids)) > 20
    assert stats.unacked_left == 0 and stats.acked == stats.published
    assert stats.resent >= 1 and server.seen.count(server.dropped) >= 2  # type: ignore[arg-type]
    assert set(server.seen) == set(fleet.ids)
    assert all(lat >= 0 for lat in stats.latencies)


@pytest.mark.broker
def test_raw_broker_limit_counts_every_message(mosquitto: MosquittoProcess,
                                               tmp_path: Path) -> None:
    out = measure(mosquitto.url, b"x" * 300, 0.5, tmp_path)
    assert out["sent"] > 0 and out["count"] == out["sent"] and out["rate"] > 0


@pytest.mark.broker
@pytest.mark.postgres
def test_quick_run_of_every_benchmark_prints_one_json_object_per_figure() -> None:
    """`python -m bench --quick` runs every benchmark on what the test extra installs (issue 21:
    psutil was missing on a fresh venv) and none of them errors: an ingest whose simulated
    events the server refuses, for one, shows here."""
    from bench.__main__ import _registry

    names = set(_registry())
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick"],
                          cwd=str(REPO), env=bench_env(), capture_output=True, timeout=115)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    lines = proc.stdout.decode().splitlines()
    rows = [json.loads(ln) for ln in lines if ln.startswith("{")]
    benches = {r["bench"].split(".")[0] for r in rows}
    assert benches >= names, names - benches
    for row in rows:
        if not row["bench"].startswith("reports."):  # bench.reports prints rows of its own shape
            check_row(row)
    errors = [r for r in rows if "error" in r]
    assert not errors, errors
    lost = [r for r in rows if r.get("metric", "").endswith("_lost")]
    # ingest: SQLite and PostgreSQL; ingest_shared: 1, 2 and 3 workers, each event stored once
    assert len(lost) == 5 and all(r["value"] == 0 for r in lost), lost
    shared = {r["metric"]: r for r in rows if r["bench"] == "ingest_shared"}
    for n in (1, 2, 3):
        run = shared[f"workers{n}_events_per_s"]
        assert run["value"] > 0 and run["limit"] == shared["raw_broker_qos1"]["value"]
        assert len(run["cpu_s_by_worker"]) == n and run["extra_rows"] == 0, run
        assert shared[f"workers{n}_cpu_ms_per_event"]["value"] > 0
    assert {"workers2_scaling", "workers3_scaling"} <= set(shared)
    assert any("benchmark" in ln and "measured" in ln for ln in lines)  # the human table
    assert time.monotonic() - started < 115
